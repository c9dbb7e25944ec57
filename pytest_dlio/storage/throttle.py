"""``ThrottledStore``: a bandwidth cap and an added latency on any store, from ``?bandwidth_mib_s=B&latency_ms=L``.

For tests and what-if planning ("how many accelerators would a 100 MiB/s store keep busy?"). Every
request first waits ``L`` ms; then its bytes are booked on a :class:`Budget`, one timeline shared by every
store opened with the same cap on the same backend (scheme + bucket/container/mem name; all of file:// and
direct:// is one budget), so the stores together move at most ``B`` MiB/s — reads and writes alike.

A request that started at ``t0`` and moved ``n`` bytes finishes at ``max(t0, end of the budget's previous
booking) + n / rate``; it returns no earlier than that. So one sequential reader gets ``min(real, B)``, and
any number of concurrent readers share ``B``.

The budget is per process (:class:`RateBudget`, thread-safe) unless ``$DLIO_THROTTLE_DIR`` names a folder:
then it is a :class:`FileBudget` there, one small file per budget under ``fcntl.flock``, shared by every
process given the same folder (``time.monotonic`` is system-wide on Linux, so one timeline serves them
all). A launcher of local ranks creates the folder, sets the variable for its children and removes it.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import fcntl
import hashlib
import os
import struct
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

from pytest_dlio.errors import StorageError
from pytest_dlio.storage.base import Buffer, ObjectStore, Pooled, Writer
from pytest_dlio.storage.uri import Throttle, parse_uri
from pytest_dlio.storage.wrapper import WrapperStore

MiB = 2**20


class Budget(Protocol):
    """A shared transfer-rate budget."""

    def claim(self, nbytes: int, started: float) -> float:
        """Book ``nbytes`` for a transfer that began at ``started`` (``time.monotonic()``); return how many
        seconds from now the caller must wait until the transfer counts as done (<= 0: none)."""


class RateBudget:
    """One in-process timeline at ``bytes_per_s``: bookings run back to back (a token bucket without burst)."""

    def __init__(self, bytes_per_s: float) -> None:
        self.bytes_per_s = bytes_per_s
        self._free_at = 0.0
        self._lock = threading.Lock()  # stores on several event loops (threads) share one budget

    def claim(self, nbytes: int, started: float) -> float:
        # docstring inherited
        with self._lock:
            self._free_at = max(self._free_at, started) + nbytes / self.bytes_per_s
            return self._free_at - time.monotonic()


class FileBudget:
    """The same timeline kept in a file, so processes share it: 8 bytes (the booking end), under flock."""

    def __init__(self, path: Path, bytes_per_s: float) -> None:
        self.path, self.bytes_per_s = path, bytes_per_s
        self._lock = threading.Lock()  # flock excludes other processes, not other threads on our descriptor
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def claim(self, nbytes: int, started: float) -> float:
        # docstring inherited
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                raw = os.pread(self._fd, 8, 0)
                free_at = max(struct.unpack("d", raw)[0] if len(raw) == 8 else 0.0, started)
                free_at += nbytes / self.bytes_per_s
                os.pwrite(self._fd, struct.pack("d", free_at), 0)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        return free_at - time.monotonic()

    def __del__(self) -> None:
        with contextlib.suppress(OSError, AttributeError):
            os.close(self._fd)


#: A folder shared by cooperating processes: their budgets live there (see the module docstring).
BUDGET_DIR_ENV = "DLIO_THROTTLE_DIR"
_BUDGETS: dict[tuple[str, str, str, float], Budget] = {}
_BUDGETS_LOCK = threading.Lock()


def shared_budget(base_uri: str, bandwidth_mib_s: float) -> Budget:
    """The budget for ``bandwidth_mib_s`` on the backend behind ``base_uri`` (created once per process)."""
    p = parse_uri(base_uri)
    scope = "local" if p.scheme in ("file", "direct") else p.scheme
    folder = os.environ.get(BUDGET_DIR_ENV, "")
    key = (folder, scope, p.netloc, bandwidth_mib_s)
    with _BUDGETS_LOCK:
        budget = _BUDGETS.get(key)
        if budget is None:
            if folder:
                name = hashlib.sha256(repr(key[1:]).encode()).hexdigest()[:16]
                try:
                    budget = FileBudget(Path(folder) / f"budget-{name}", bandwidth_mib_s * MiB)
                except OSError as exc:
                    raise StorageError(
                        base_uri,
                        "open",
                        reason=f"${BUDGET_DIR_ENV} {folder}: {exc.strerror}; "
                        "point it at an existing writable folder or unset it",
                    ) from None
            else:
                budget = RateBudget(bandwidth_mib_s * MiB)
            _BUDGETS[key] = budget
        return budget


class ThrottledStore(WrapperStore):
    """Forwards to ``store`` with ``throttle.latency_ms`` added per request and the bandwidth on ``budget``."""

    def __init__(
        self, store: ObjectStore, throttle: Throttle, uri: str | None = None, budget: Budget | None = None
    ) -> None:
        super().__init__(store, uri)
        self.throttle = throttle
        self._latency = throttle.latency_ms / 1000
        if budget is None and throttle.bandwidth_mib_s is not None:
            budget = shared_budget(store.uri, throttle.bandwidth_mib_s)
        self.budget = budget

    async def _request(self) -> float:
        """Wait the request latency; the time the transfer starts."""
        if self._latency:
            await asyncio.sleep(self._latency)
        return time.monotonic()

    async def _moved(self, nbytes: int, started: float) -> None:
        if self.budget is not None and nbytes:
            wait = self.budget.claim(nbytes, started)
            if wait > 0:
                await asyncio.sleep(wait)

    async def _get(self, key: str) -> Buffer:
        t = await self._request()
        data = await super()._get(key)
        await self._moved(len(data), t)
        return data

    async def _get_pooled(self, key: str) -> Pooled:
        t = await self._request()
        got = await super()._get_pooled(key)
        await self._moved(len(got.data), t)
        return got

    async def _get_range(self, key: str, start: int, length: int) -> Buffer:
        t = await self._request()
        data = await super()._get_range(key, start, length)
        await self._moved(len(data), t)
        return data

    async def _get_range_pooled(self, key: str, start: int, length: int) -> Pooled:
        t = await self._request()
        got = await super()._get_range_pooled(key, start, length)
        await self._moved(len(got.data), t)
        return got

    async def _get_ranges(self, key: str, ranges: builtins.list[tuple[int, int]]) -> builtins.list[Buffer]:
        t = await self._request()  # the ranges are requested concurrently: one latency for all
        parts = await super()._get_ranges(key, ranges)
        await self._moved(sum(len(p) for p in parts), t)
        return parts

    async def _get_suffix(self, key: str, n: int) -> Buffer:
        t = await self._request()
        data = await super()._get_suffix(key, n)
        await self._moved(len(data), t)
        return data

    async def _put(self, key: str, data: Buffer, fsync: bool) -> None:
        t = await self._request()
        await super()._put(key, data, fsync)
        await self._moved(len(data), t)

    async def _size(self, key: str) -> int:
        await self._request()
        return await super()._size(key)

    async def _list(self, prefix: str) -> AsyncIterator[tuple[str, int]]:
        await self._request()
        async for item in super()._list(prefix):
            yield item

    async def _delete(self, key: str) -> None:
        await self._request()
        await super()._delete(key)

    async def _open_writer(self, key: str, fsync: bool) -> Writer:
        await self._request()
        return ThrottledWriter(self, await super()._open_writer(key, fsync))

    async def exists(self, key: str) -> bool:
        # docstring inherited
        return await ObjectStore.exists(self, key)  # through _size: one throttled request

    async def delete_prefix(self, prefix: str) -> int:
        # docstring inherited
        return await ObjectStore.delete_prefix(self, prefix)  # one throttled delete per key


class ThrottledWriter(Writer):
    """Books each write's bytes on the store's budget; ``close`` (the commit) is one more request."""

    def __init__(self, store: ThrottledStore, writer: Writer) -> None:
        self._store, self._writer = store, writer

    async def write(self, data: Buffer) -> None:
        # docstring inherited
        t = time.monotonic()
        await self._writer.write(data)
        await self._store._moved(len(data), t)

    async def close(self) -> None:
        # docstring inherited
        await self._store._request()
        await self._writer.close()

    async def abort(self) -> None:
        # docstring inherited
        await self._writer.abort()
