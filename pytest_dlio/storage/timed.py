"""``TimedStore``: records every read (bytes, seconds) into a recorder, so callers need not time reads.

Model: zarr's ``LoggingStore``. Reads are ``get`` (and ``get_pooled``, counted as ``get``), ``get_range`` (and
``get_range_pooled``, counted as ``get_range``),
``get_ranges`` and ``get_suffix``; each call is one record (a ``get_ranges`` call is one record of its
total bytes and wall time). Writes, sizes, listings and deletes are counted in :attr:`TimedStore.calls`
but not recorded as reads.
"""

from __future__ import annotations

import builtins
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Protocol

from pytest_dlio.storage.base import Buffer, ObjectStore, Pooled, Writer
from pytest_dlio.storage.wrapper import WrapperStore


class ReadRecorder(Protocol):
    """Where a TimedStore reports reads (``timeline.Reads`` is one)."""

    def add(self, nbytes: int, seconds: float) -> None:
        """One read of ``nbytes`` bytes that took ``seconds`` (from request to last byte)."""


class TimedStore(WrapperStore):
    """Forwards to ``store``; reports every read to ``recorder`` and counts every call by operation."""

    def __init__(self, store: ObjectStore, recorder: ReadRecorder) -> None:
        super().__init__(store)
        self.recorder = recorder
        #: Calls per operation name (``get``, ``get_range``, ``put``, ``size``, ``list``, …).
        self.calls: Counter[str] = Counter()

    async def _get(self, key: str) -> Buffer:
        self.calls["get"] += 1
        t = time.perf_counter()
        data = await super()._get(key)
        self.recorder.add(len(data), time.perf_counter() - t)
        return data

    async def _get_pooled(self, key: str) -> Pooled:
        self.calls["get"] += 1
        t = time.perf_counter()
        got = await super()._get_pooled(key)
        self.recorder.add(len(got.data), time.perf_counter() - t)
        return got

    async def _get_range(self, key: str, start: int, length: int) -> Buffer:
        self.calls["get_range"] += 1
        t = time.perf_counter()
        data = await super()._get_range(key, start, length)
        self.recorder.add(len(data), time.perf_counter() - t)
        return data

    async def _get_range_pooled(self, key: str, start: int, length: int) -> Pooled:
        self.calls["get_range"] += 1
        t = time.perf_counter()
        got = await super()._get_range_pooled(key, start, length)
        self.recorder.add(len(got.data), time.perf_counter() - t)
        return got

    async def _get_ranges(self, key: str, ranges: builtins.list[tuple[int, int]]) -> builtins.list[Buffer]:
        self.calls["get_ranges"] += 1
        t = time.perf_counter()
        parts = await super()._get_ranges(key, ranges)
        self.recorder.add(sum(len(p) for p in parts), time.perf_counter() - t)
        return parts

    async def _get_suffix(self, key: str, n: int) -> Buffer:
        self.calls["get_suffix"] += 1
        t = time.perf_counter()
        data = await super()._get_suffix(key, n)
        self.recorder.add(len(data), time.perf_counter() - t)
        return data

    async def _put(self, key: str, data: Buffer, fsync: bool) -> None:
        self.calls["put"] += 1
        await super()._put(key, data, fsync)

    async def _size(self, key: str) -> int:
        self.calls["size"] += 1
        return await super()._size(key)

    def _list(self, prefix: str) -> AsyncIterator[tuple[str, int]]:
        self.calls["list"] += 1
        return super()._list(prefix)

    async def _delete(self, key: str) -> None:
        self.calls["delete"] += 1
        await super()._delete(key)

    async def _open_writer(self, key: str, fsync: bool) -> Writer:
        self.calls["open_writer"] += 1
        return await super()._open_writer(key, fsync)
