"""StoreOptions: everything a backend needs besides its URI — tuning and resolved credentials."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pytest_dlio.config.storage_options import S3_MIN_PART, StorageOptions
from pytest_dlio.storage.credentials import AzureSettings, Credentials, Environment, S3Settings

MiB = 2**20
__all__ = ["S3_MIN_PART", "StoreOptions"]


@dataclass(frozen=True)
class StoreOptions:
    """Backend tuning and credentials (built by ``StorageSession.options_for``, or by hand in tests)."""

    threads: int = 8  # file/direct thread pool size (set from reader.read_threads)
    part_size: int = 8 * MiB  # S3 multipart part / Azure staged block size
    concurrency: int = 8  # parts, blocks or ranges in flight per object
    timeout: float = 60.0  # read timeout in seconds
    connect_timeout: float = 5.0  # connect timeout in seconds (a refused or unreachable endpoint fails fast)
    list_page_size: int = 1000  # keys per list request (S3 caps at 1000, Azure at 5000)
    credentials: Credentials = field(default_factory=Credentials)
    #: Create the bucket/container when missing; only ever True for the embedded emulators.
    create_missing: bool = False
    #: Set by the session when the endpoint is an embedded emulator (for header lines and messages).
    emulator: str | None = None
    #: ``storage_library``: the S3 client library (s3dlio, minio, s3torchconnector); None: aiobotocore.
    library: str | None = None

    @classmethod
    def from_config(cls, options: StorageOptions, credentials: Credentials, threads: int = 8) -> StoreOptions:
        """Tuning from the typed ``storage_options`` (defaults for what is not given) and ``credentials``."""
        t, default = options.tuning, cls()
        return cls(
            threads=threads,
            part_size=t.part_size or default.part_size,
            concurrency=t.concurrency or default.concurrency,
            timeout=t.timeout or default.timeout,
            connect_timeout=t.connect_timeout
            or min(t.timeout or default.connect_timeout, default.connect_timeout),
            list_page_size=t.list_page_size or default.list_page_size,
            credentials=credentials,
            library=options.storage_library,
        )

    @classmethod
    def from_storage_options(
        cls, raw: Mapping[str, Any], env: Environment | None = None, threads: int = 8
    ) -> StoreOptions:
        """From DLIO ``storage_options`` keys (ConfigError when one is bad), resolved against ``env``
        (default: an empty environment, so only what ``raw`` gives counts)."""
        from pytest_dlio.config.model import StorageConfig

        typed = StorageConfig(storage_options=tuple(sorted(raw.items()))).options
        return cls.from_config(typed, Credentials.resolve(typed, env or Environment()), threads)

    @property
    def s3(self) -> S3Settings:
        return self.credentials.s3

    @property
    def azure(self) -> AzureSettings:
        return self.credentials.azure

    def with_(self, **changes: Any) -> StoreOptions:
        """A copy with ``changes`` applied."""
        return replace(self, **changes)

    def secrets(self) -> tuple[str, ...]:
        """Every secret value we know of, for scrubbing messages."""
        return self.credentials.secrets()
