"""What the ``s3://`` stores over a blocking SDK share (minio, s3torchconnector): the bucket and prefix, a
thread pool every call runs on, one client made on first use, and every SDK error turned into a
StorageError by the store's ``_error``."""

from __future__ import annotations

import abc
import asyncio
import builtins
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from pytest_dlio.errors import StorageError
from pytest_dlio.storage.base import Buffer, ObjectStore, gather_bounded
from pytest_dlio.storage.settings import S3_MIN_PART, StoreOptions

T = TypeVar("T")


class BlockingSdkStore(ObjectStore):
    """Objects under ``s3://bucket/prefix`` through one blocking SDK client per store, on a thread pool of
    ``max(concurrency, threads)`` threads (plus :attr:`extra_threads`)."""

    #: Name prefix of the pool's threads.
    thread_name = "dlio-sdk"
    #: Threads beyond the request concurrency (minio: one for a streaming upload's producer side).
    extra_threads = 0

    def __init__(self, uri: str, bucket: str, prefix: str, options: StoreOptions) -> None:
        super().__init__(uri)
        self.bucket, self._prefix, self.options = bucket, f"{prefix}/" if prefix else "", options
        self.part_size = max(S3_MIN_PART, options.part_size)
        self.concurrency = options.concurrency
        self._threads = max(options.concurrency, options.threads)
        self._pool = ThreadPoolExecutor(
            self._threads + self.extra_threads, thread_name_prefix=self.thread_name
        )
        self._client: Any = None
        self._lock = asyncio.Lock()

    def _key(self, key: str) -> str:
        return self._prefix + key

    @abc.abstractmethod
    def _connect(self) -> Any:
        """The SDK client (called once, on a pool thread)."""

    @abc.abstractmethod
    def _error(self, exc: BaseException, op: str, key: str | None) -> StorageError:
        """An SDK error as a StorageError (NotFound for a missing key), secrets scrubbed."""

    async def _run(self, op: str, key: str | None, fn: Callable[[Any], T]) -> T:
        """``fn(client)`` on the pool; every SDK error leaves as a StorageError."""
        loop = asyncio.get_running_loop()
        try:
            if self._client is None:
                async with self._lock:
                    if self._client is None:
                        self._client = await loop.run_in_executor(self._pool, self._connect)
            return await loop.run_in_executor(self._pool, fn, self._client)
        except StorageError:
            raise
        except Exception as exc:  # the SDK's own errors
            raise self._error(exc, op, key) from exc

    async def _get_ranges(self, key: str, ranges: builtins.list[tuple[int, int]]) -> builtins.list[Buffer]:
        return await gather_bounded((self._range_or_empty(key, s, n) for s, n in ranges), self.concurrency)

    async def close(self) -> None:
        # docstring inherited
        self._pool.shutdown(wait=True)
        self._client = None
