"""StoreOptions: everything a backend needs besides its URI (DLIO's storage_options plus tuning)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pytest_dlio.config.secrets import SECRET_KEYS
from pytest_dlio.errors import StorageError

MiB = 2**20
S3_MIN_PART = 5 * MiB


@dataclass(frozen=True)
class StoreOptions:
    """Backend tuning and credentials; ``storage_options`` holds DLIO's keys (and az ones) verbatim."""

    threads: int = 8  # file/direct thread pool size (set from reader.read_threads)
    part_size: int = 8 * MiB  # S3 multipart part / Azure staged block size
    concurrency: int = 8  # parts or blocks in flight per object
    timeout: float = 60.0  # connect/read timeout in seconds
    list_page_size: int = 1000  # keys per list request (S3 caps at 1000, Azure at 5000)
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    #: Create the bucket/container when missing; only ever True for the embedded emulators.
    create_missing: bool = False
    #: Set by the session when the endpoint is an embedded emulator (for header lines and messages).
    emulator: str | None = None

    def with_(self, **changes: Any) -> StoreOptions:
        """A copy with ``changes`` applied."""
        return replace(self, **changes)

    def get(self, key: str, default: Any = None) -> Any:
        """One storage_options value (None and "" count as unset)."""
        value = self.storage_options.get(key)
        return default if value is None or value == "" else value

    def secrets(self) -> tuple[str, ...]:
        """Every secret value we know of, for scrubbing messages."""
        env = ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN", "AZURE_STORAGE_KEY",
               "AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_CONNECTION_STRING")
        values = [str(self.storage_options.get(k) or "") for k in SECRET_KEYS]
        values += [os.environ.get(k, "") for k in env]
        values += [dotenv_values().get(k, "") or "" for k in env]
        return tuple(v for v in values if v)


def parse_bool(value: Any, key: str) -> bool:
    """A bool from YAML bool or the strings DLIO uses ('true'/'false', case-insensitive)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off", ""):
        return False
    raise StorageError("storage_options", "configure", key, f"expected true or false, got {value!r}")


def parse_int(value: Any, key: str, minimum: int = 1) -> int:
    """An int >= ``minimum`` from YAML int or string."""
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise StorageError("storage_options", "configure", key, f"expected a whole number, got {value!r}") from None
    if n < minimum:
        raise StorageError("storage_options", "configure", key, f"expected a number >= {minimum}, got {n}")
    return n


_DOTENV_CACHE: dict[Path, dict[str, str]] = {}


def dotenv_values(path: Path | None = None) -> dict[str, str]:
    """KEY=VALUE pairs of ``.env`` in the cwd (dl-driver convention), without touching os.environ."""
    path = (path or Path.cwd() / ".env").resolve()
    if path in _DOTENV_CACHE:
        return _DOTENV_CACHE[path]
    values: dict[str, str] = {}
    if path.is_file():
        try:
            import dotenv

            values = {k: v for k, v in dotenv.dotenv_values(path).items() if v is not None}
        except ImportError:
            for line in path.read_text(errors="replace").splitlines():
                line = line.strip()
                if not line or line.startswith("#") or "=" not in line:
                    continue
                k, v = line.removeprefix("export ").split("=", 1)
                values[k.strip()] = v.strip().strip("'\"")
    _DOTENV_CACHE[path] = values
    return values


def env(name: str) -> str | None:
    """An environment variable, else the same name from ``.env`` in the cwd."""
    value = os.environ.get(name) or dotenv_values().get(name)
    return value or None
