"""The one async storage interface every phase talks to, plus URI parsing.

Model: zarr-python 3's ``zarr.abc.store.Store`` and obstore — small, byte-range aware. Edge cases,
fixed here once for every backend:

- ``get_range`` past the end returns the bytes that exist (possibly ``b""``); a zero length returns ``b""``.
- An empty object is a valid object (``size == 0``; ``get`` returns ``b""``).
- ``delete`` of a missing key is silent.
- A missing key raises :class:`~pytest_dlio.errors.NotFound` from ``get``, ``get_range`` and ``size``.
- Keys are ``/``-separated, relative to the store's root, never start with ``/``.
- Every backend failure is raised as :class:`~pytest_dlio.errors.StorageError` (URI, operation, key) —
  never a bare botocore/azure/OSError, and never with a secret in its text.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from typing import Self

Buffer = bytes | bytearray | memoryview


class Writer(abc.ABC):
    """A streaming upload of one object: bounded memory, committed by ``close``, discarded by ``abort``.

    Until ``close`` returns, no object is visible under the final key (file: temp name then rename;
    S3: multipart upload; Azure: staged blocks then commit).
    """

    @abc.abstractmethod
    async def write(self, data: Buffer) -> None:
        """Append ``data``."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Commit the object (and fsync it first when the writer was opened with ``fsync=True``)."""

    @abc.abstractmethod
    async def abort(self) -> None:
        """Drop everything written so far; nothing appears under the key."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            await self.close()
        else:
            await self.abort()


class ObjectStore(abc.ABC):
    """Async key → bytes store rooted at a URI. One instance per event loop."""

    #: Required alignment of offsets/lengths for efficient I/O (4096 for O_DIRECT, 1 otherwise).
    alignment: int = 1
    #: Whether ``list`` is supported (all built-in backends: yes).
    supports_listing: bool = True

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def __str__(self) -> str:
        return self.uri

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"

    @abc.abstractmethod
    async def put(self, key: str, data: Buffer, *, fsync: bool = False) -> None:
        """Write a whole object; atomic (readers see the old object or the new one, never half)."""

    @abc.abstractmethod
    async def get(self, key: str) -> Buffer:
        """Read a whole object."""

    @abc.abstractmethod
    async def get_range(self, key: str, start: int, length: int) -> Buffer:
        """Read ``length`` bytes from ``start`` (short at the end of the object)."""

    @abc.abstractmethod
    async def size(self, key: str) -> int:
        """Size of an object in bytes."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> AsyncIterator[tuple[str, int]]:
        """Every ``(key, size)`` whose key starts with ``prefix``, in any order (paginated underneath)."""

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Remove an object; silent when it does not exist."""

    @abc.abstractmethod
    async def open_writer(self, key: str, *, fsync: bool = False) -> Writer:
        """Start a streaming upload of ``key`` (see :class:`Writer`)."""

    async def close(self) -> None:
        """Release clients, pools and sessions. Override when the backend holds any."""
        return None

    # ---- defaults built on the core; override when the backend can do better ----
    async def exists(self, key: str) -> bool:
        """Override when a cheaper HEAD exists."""
        from pytest_dlio.errors import NotFound

        try:
            await self.size(key)
        except NotFound:
            return False
        return True

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every key under ``prefix``; returns how many. Override for batch deletes."""
        keys = [k async for k, _ in self.list(prefix)]
        for k in keys:
            await self.delete(k)
        return len(keys)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
