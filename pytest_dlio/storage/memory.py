"""``mem://name``: an in-process dict shared per name, for measuring the harness's own overhead."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator

from pytest_dlio.errors import NotFound
from pytest_dlio.storage.base import Buffer, ObjectStore, Writer

_SPACES: dict[str, dict[str, bytes]] = {}
_LOCK = threading.Lock()


def space(name: str) -> dict[str, bytes]:
    """The shared dict behind ``mem://name``."""
    with _LOCK:
        return _SPACES.setdefault(name, {})


class MemoryStore(ObjectStore):
    """Objects as immutable ``bytes`` in a process-wide dict; ``prefix`` scopes keys inside the name."""

    def __init__(self, uri: str, name: str, prefix: str = "") -> None:
        super().__init__(uri)
        self._data = space(name)
        self._prefix = f"{prefix}/" if prefix else ""

    def _obj(self, op: str, key: str) -> bytes:
        try:
            return self._data[self._prefix + key]
        except KeyError:
            raise NotFound(self.uri, op, key) from None

    async def _put(self, key: str, data: Buffer, fsync: bool) -> None:
        self._data[self._prefix + key] = bytes(data)

    async def _get(self, key: str) -> Buffer:
        try:  # _obj inlined: this is the whole of a mem:// get, the harness's floor
            return self._data[self._prefix + key]
        except KeyError:
            raise NotFound(self.uri, "get", key) from None

    async def _get_range(self, key: str, start: int, length: int) -> Buffer:
        return memoryview(self._obj("get_range", key))[start : start + length]

    async def _get_suffix(self, key: str, n: int) -> Buffer:
        data = self._obj("get_suffix", key)
        return memoryview(data)[max(0, len(data) - n) :]

    async def _size(self, key: str) -> int:
        return len(self._obj("size", key))

    async def _list(self, prefix: str) -> AsyncIterator[tuple[str, int]]:
        full, cut = self._prefix + prefix, len(self._prefix)
        with _LOCK:
            items = [(k[cut:], len(v)) for k, v in list(self._data.items()) if k.startswith(full)]
        for item in items:
            yield item

    async def _delete(self, key: str) -> None:
        self._data.pop(self._prefix + key, None)

    async def _open_writer(self, key: str, fsync: bool) -> Writer:
        return MemoryWriter(self, self._prefix + key)


class MemoryWriter(Writer):
    """Collects chunks; ``close`` publishes them as one object."""

    def __init__(self, store: MemoryStore, full_key: str) -> None:
        self._store, self._key, self._chunks = store, full_key, bytearray()

    async def write(self, data: Buffer) -> None:
        # docstring inherited
        self._chunks += data

    async def close(self) -> None:
        # docstring inherited
        self._store._data[self._key] = bytes(self._chunks)
        self._chunks = bytearray()

    async def abort(self) -> None:
        # docstring inherited
        self._chunks = bytearray()
