"""Which config keys and environment variables hold credentials — listed once — and how to hide their values."""

from __future__ import annotations

from typing import Any

#: ``storage.storage_options`` keys whose values are credentials (shown as ``***``, never echoed).
SECRET_KEYS = frozenset({"secret_access_key", "access_key_id", "account_key", "sas_token", "connection_string",
                         "session_token"})

#: Environment variables (also read from ``.env``) whose values are credentials.
SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN", "AZURE_STORAGE_KEY",
              "AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_CONNECTION_STRING")


def redact(data: Any) -> Any:
    """A copy of plain data with every credential value replaced by ``***``."""
    if isinstance(data, dict):
        return {k: ("***" if k in SECRET_KEYS and v else redact(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [redact(v) for v in data]
    return data
