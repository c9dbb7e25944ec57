"""Credentials resolved once per session: config options first, then the environment, then ``.env``.

One place for both object stores (the backends used to re-read the environment and ``.env`` each).
Per setting, the first that is set wins: the ``storage_options`` key, the environment variable, the same
variable in ``.env`` in the working folder (dl-driver's convention). The README's "Credentials" list is
this module's precedence; keep them in step.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType

from pytest_dlio.config.secrets import SECRET_ENV, SECRET_KEYS
from pytest_dlio.config.storage_options import StorageOptions


def read_dotenv(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` pairs of a ``.env`` file (python-dotenv when installed), without touching os.environ."""
    if not path.is_file():
        return {}
    try:
        import dotenv

        return {k: v for k, v in dotenv.dotenv_values(path).items() if v is not None}
    except ImportError:
        values: dict[str, str] = {}
        for line in path.read_text(errors="replace").splitlines():
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            k, v = line.removeprefix("export ").split("=", 1)
            values[k.strip()] = v.strip().strip("'\"")
        return values


@dataclass(frozen=True)
class Environment:
    """The variables credentials may come from: the process environment, then ``.env``."""

    environ: Mapping[str, str] = field(default_factory=dict)
    dotenv: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def capture(cls, cwd: Path | None = None) -> Environment:
        """A snapshot of ``os.environ`` and of ``.env`` in ``cwd`` (default: the working folder)."""
        # Values pytest-dlio itself exported for s3dlio/s3torchconnector are not configuration.
        from pytest_dlio.storage._awsenv import as_before

        return cls(
            MappingProxyType(as_before(os.environ)),
            MappingProxyType(read_dotenv((cwd or Path.cwd()) / ".env")),
        )

    def get(self, *names: str) -> str | None:
        """The first of ``names`` that is set (environment before ``.env``, per name); "" counts as unset."""
        for name in names:
            value = self.environ.get(name) or self.dotenv.get(name)
            if value:
                return value
        return None

    def secrets(self) -> tuple[str, ...]:
        """Every secret value in the environment or ``.env``, used or not (for scrubbing)."""
        values = [src.get(k, "") for k in SECRET_ENV for src in (self.environ, self.dotenv)]
        return tuple(v for v in values if v)


@dataclass(frozen=True)
class S3Settings:
    """Where and how an s3:// store connects."""

    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    path_style: bool = False
    max_attempts: int = 5


@dataclass(frozen=True)
class AzureSettings:
    """Where and how an az:// store connects."""

    connection_string: str | None = field(default=None, repr=False)
    account: str | None = None
    account_key: str | None = field(default=None, repr=False)
    sas_token: str | None = field(default=None, repr=False)
    account_url: str | None = None
    api_version: str | None = None
    max_attempts: int = 5

    @property
    def configured(self) -> bool:
        """Whether any credential or account is configured (else the session uses Azurite)."""
        return bool(self.connection_string or self.account)


def _conn_field(conn: str | None, name: str) -> str | None:
    for part in (conn or "").split(";"):
        k, _, v = part.partition("=")
        if k.strip().lower() == name.lower():
            return v.strip()
    return None


@dataclass(frozen=True)
class Credentials:
    """Both backends' settings, resolved; ``secrets()`` is every value to keep out of messages."""

    s3: S3Settings = field(default_factory=S3Settings)
    azure: AzureSettings = field(default_factory=AzureSettings)
    #: Secret values seen in the environment and ``.env`` (scrubbed even when not used).
    seen: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def resolve(cls, options: StorageOptions, env: Environment) -> Credentials:
        """Every setting in order of precedence: option, environment variable, ``.env``, default."""
        s, a = options.s3, options.azure
        endpoint = s.endpoint_url or env.get("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
        s3 = S3Settings(
            endpoint_url=endpoint,
            region=s.region or env.get("AWS_REGION", "AWS_DEFAULT_REGION") or "us-east-1",
            access_key_id=s.access_key_id or env.get("AWS_ACCESS_KEY_ID"),
            secret_access_key=s.secret_access_key or env.get("AWS_SECRET_ACCESS_KEY"),
            session_token=s.session_token or env.get("AWS_SESSION_TOKEN"),
            path_style=s.force_path_style
            if s.force_path_style is not None
            else bool(s.endpoint_url or env.get("AWS_ENDPOINT_URL")),
            max_attempts=s.max_attempts or 5,
        )
        conn = a.connection_string or env.get("AZURE_STORAGE_CONNECTION_STRING")
        azure = AzureSettings(
            connection_string=conn,
            account=a.account_name
            or _conn_field(conn, "AccountName")
            or env.get("AZURE_STORAGE_ACCOUNT", "AZURE_BLOB_ACCOUNT"),
            account_key=a.account_key or env.get("AZURE_STORAGE_KEY"),
            sas_token=a.sas_token or env.get("AZURE_STORAGE_SAS_TOKEN"),
            account_url=a.account_url,
            api_version=a.api_version,
            max_attempts=a.max_attempts or 5,
        )
        return cls(s3, azure, env.secrets())

    def secrets(self) -> tuple[str, ...]:
        """Every secret value of both backends' settings plus those seen in the environment."""
        values = [
            getattr(settings, f.name)
            for settings in (self.s3, self.azure)
            for f in fields(settings)
            if f.name in SECRET_KEYS
        ]
        return tuple(dict.fromkeys(v for v in (*values, *self.seen) if v))
