"""A thread pool per store for blocking POSIX calls, with OSError → StorageError translation."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from pytest_dlio.errors import NotFound, StorageError

T = TypeVar("T")
_MISSING = (errno.ENOENT, errno.ENOTDIR, errno.EISDIR)
_WRITE_CLASH = (errno.EEXIST, errno.ENOTDIR, errno.EISDIR)
_WRITES = ("put", "open_writer", "write", "close")


def translate(exc: OSError, uri: str, op: str, key: str | None) -> StorageError:
    """An OSError as NotFound (missing) or StorageError (anything else), naming URI, op and key."""
    reason = exc.strerror or type(exc).__name__
    if exc.errno in _WRITE_CLASH and op in _WRITES:
        return StorageError(
            uri,
            op,
            key,
            f"{reason}; on a filesystem a key cannot be both an object and a folder (e.g. 'a' and 'a/b')",
        )
    if exc.errno in _MISSING:
        return NotFound(uri, op, key)
    if exc.errno == errno.ENOSPC:
        reason += "; free space on the target filesystem or use a smaller --dlio-scale"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        reason += "; check the folder's permissions or pick another --dlio-storage/--dlio-data-root"
    return StorageError(uri, op, key, reason)


class BlockingPool:
    """Runs sync functions on a bounded thread pool; every OSError leaves as a StorageError."""

    def __init__(self, uri: str, threads: int) -> None:
        self.uri = uri
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="dlio-io")

    async def run(self, op: str, key: str | None, fn: Callable[..., T], *args: Any) -> T:
        """Await ``fn(*args)`` on the pool."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        except OSError as exc:
            raise translate(exc, self.uri, op, key) from exc

    def shutdown(self) -> None:
        """Stop the threads (waits for running calls)."""
        self._pool.shutdown(wait=True)
