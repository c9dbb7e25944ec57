"""``mem://name``: an in-process dict shared per name, for measuring the harness's own overhead."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator

from pytest_dlio.errors import NotFound
from pytest_dlio.storage.base import Buffer, ObjectStore, Writer
from pytest_dlio.storage.uri import check_key

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

    def _k(self, op: str, key: str) -> str:
        return self._prefix + check_key(self.uri, op, key)

    async def put(self, key: str, data: Buffer, *, fsync: bool = False) -> None:
        # docstring inherited
        self._data[self._k("put", key)] = bytes(data)

    async def get(self, key: str) -> Buffer:
        # docstring inherited
        try:
            return self._data[self._k("get", key)]
        except KeyError:
            raise NotFound(self.uri, "get", key) from None

    async def get_range(self, key: str, start: int, length: int) -> Buffer:
        # docstring inherited
        try:
            data = self._data[self._k("get_range", key)]
        except KeyError:
            raise NotFound(self.uri, "get_range", key) from None
        return memoryview(data)[start:start + length]

    async def size(self, key: str) -> int:
        # docstring inherited
        try:
            return len(self._data[self._k("size", key)])
        except KeyError:
            raise NotFound(self.uri, "size", key) from None

    async def list(self, prefix: str = "") -> AsyncIterator[tuple[str, int]]:
        # docstring inherited
        full, cut = self._prefix + prefix, len(self._prefix)
        with _LOCK:
            items = [(k[cut:], len(v)) for k, v in list(self._data.items()) if k.startswith(full)]
        for item in items:
            yield item

    async def delete(self, key: str) -> None:
        # docstring inherited
        self._data.pop(self._k("delete", key), None)

    async def open_writer(self, key: str, *, fsync: bool = False) -> Writer:
        # docstring inherited
        return MemoryWriter(self, self._k("open_writer", key))


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
