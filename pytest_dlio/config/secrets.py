"""Which config keys hold credentials — listed once — and how to hide their values."""

from __future__ import annotations

from typing import Any

SECRET_KEYS = frozenset({"secret_access_key", "access_key_id", "account_key", "sas_token", "connection_string",
                         "session_token"})


def redact(data: Any) -> Any:
    """A copy of plain data with every credential value replaced by ``***``."""
    if isinstance(data, dict):
        return {k: ("***" if k in SECRET_KEYS and v else redact(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [redact(v) for v in data]
    return data
