"""``WrapperStore``: a store that delegates everything to another store (zarr's ``WrapperStore``).

Subclasses override the primitives they change (``_get``, ``_put``, …) and call ``super()`` for the I/O.
The public methods stay the base's, so keys and ranges are checked before any wrapper sees them; the
wrapped store checks them again (a few string operations) and does the I/O.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from pytest_dlio.storage.base import Buffer, ObjectStore, Pooled, Writer


class WrapperStore(ObjectStore):
    """Every method and capability forwarded to ``store``; ``uri`` names the wrapper (default: the same)."""

    def __init__(self, store: ObjectStore, uri: str | None = None) -> None:
        super().__init__(uri or store.uri)
        self.store = store
        # capabilities are the wrapped store's
        self.supports_listing = store.supports_listing
        self.page_cached = store.page_cached
        self.concurrency = store.concurrency
        self.pooled_reads = store.pooled_reads
        self.retries = store.retries  # one count for the store and every wrapper around it

    @property
    def local_root(self) -> Path | None:
        # docstring inherited
        return self.store.local_root

    def reserve_read_buffers(self, count: int, size: int) -> None:
        # docstring inherited
        self.store.reserve_read_buffers(count, size)

    async def make_durable(self, keys: Sequence[str]) -> None:
        # docstring inherited
        await self.store.make_durable(keys)

    # ---- primitives: the wrapped store's public methods ----
    async def _put(self, key: str, data: Buffer, fsync: bool) -> None:
        await self.store.put(key, data, fsync=fsync)

    async def _get(self, key: str) -> Buffer:
        return await self.store.get(key)

    async def _get_pooled(self, key: str) -> Pooled:
        return await self.store.get_pooled(key)

    async def _get_range(self, key: str, start: int, length: int) -> Buffer:
        return await self.store.get_range(key, start, length)

    async def _get_range_pooled(self, key: str, start: int, length: int) -> Pooled:
        return await self.store.get_range_pooled(key, start, length)

    async def _get_ranges(self, key: str, ranges: builtins.list[tuple[int, int]]) -> builtins.list[Buffer]:
        return await self.store.get_ranges(key, ranges)

    async def _get_suffix(self, key: str, n: int) -> Buffer:
        return await self.store.get_suffix(key, n)

    async def _size(self, key: str) -> int:
        return await self.store.size(key)

    def _list(self, prefix: str) -> AsyncIterator[tuple[str, int]]:
        return self.store.list(prefix)

    async def _delete(self, key: str) -> None:
        await self.store.delete(key)

    async def _open_writer(self, key: str, fsync: bool) -> Writer:
        return await self.store.open_writer(key, fsync=fsync)

    # ---- the rest ----
    async def exists(self, key: str) -> bool:
        # docstring inherited
        return await self.store.exists(key)

    async def delete_prefix(self, prefix: str) -> int:
        # docstring inherited
        return await self.store.delete_prefix(prefix)

    async def close(self) -> None:
        # docstring inherited
        await self.store.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.store!r})"
