"""Which storage options and environment variables hold secrets: listed once, used to redact and scrub."""

from __future__ import annotations

#: ``storage.storage_options`` keys whose values are credentials (shown as ``***``, never echoed).
SECRET_KEYS = ("secret_access_key", "access_key_id", "account_key", "sas_token", "connection_string",
               "session_token")

#: Environment variables (also read from ``.env``) whose values are credentials.
SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN", "AZURE_STORAGE_KEY",
              "AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_CONNECTION_STRING")
