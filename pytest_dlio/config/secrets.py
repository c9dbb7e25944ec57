"""The one list of credential keys and variables, and how a key or value is kept out of any text we show."""

from __future__ import annotations

import difflib
from typing import Any

#: ``storage.storage_options`` keys whose values are credentials (never printed, never echoed).
SECRET_KEYS = frozenset(
    {"secret_access_key", "access_key_id", "account_key", "sas_token", "connection_string", "session_token"}
)
#: Words that make any key (a misspelt one included) be treated as holding a credential.
_SECRET_WORDS = ("secret", "key", "token", "sas", "password", "passwd", "credential", "connection_string")


def is_secret_key(name: str) -> bool:
    """True for a credential key, and for anything that looks like one (``secret_acess_key``, ``sas_tok``)."""
    low = name.lower()
    if low in SECRET_KEYS or any(w in low for w in _SECRET_WORDS):
        return True
    return bool(difflib.get_close_matches(low, SECRET_KEYS, n=1, cutoff=0.7))


def secret_path(path: tuple[str, ...]) -> bool:
    """True when the key path ends in a (possibly misspelt) credential key."""
    return bool(path) and is_secret_key(path[-1])


#: Environment variables (also read from ``.env``) whose values are credentials.
SECRET_ENV = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_CONNECTION_STRING",
)


def redact(data: Any) -> Any:
    """A copy of plain data with every credential value replaced by ``***``."""
    if isinstance(data, dict):
        return {k: ("***" if k in SECRET_KEYS and v else redact(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [redact(v) for v in data]
    return data
