"""The one async storage interface every phase talks to.

Model: zarr-python 3's ``zarr.abc.store.Store`` and obstore — small, byte-range aware. The public methods
are concrete: they check the contract's edge cases here, once for every backend, then call the backend's
primitives (``_put``, ``_get``, ``_get_range``, ``_size``, ``_list``, ``_delete``, ``_open_writer``), which
only do I/O. Fixed here:

- Keys are ``/``-separated, relative to the store's root: not empty, no leading ``/``, no empty, ``.`` or
  ``..`` segment, no NUL. A bad key is a :class:`~pytest_dlio.errors.StorageError` before any I/O.
- A negative start or length is a StorageError; a zero length returns ``b""`` (a missing key still raises
  NotFound); a range past the end returns the bytes that exist (possibly ``b""``).
- An empty object is a valid object (``size == 0``; ``get`` returns ``b""``).
- ``delete`` of a missing key is silent.
- A missing key raises :class:`~pytest_dlio.errors.NotFound` from ``get``, ``get_range``, ``get_ranges``,
  ``get_suffix`` and ``size``.
- Every backend failure is raised as StorageError (URI, operation, key) — never a bare
  botocore/azure/OSError, and never with a secret in its text.
"""

from __future__ import annotations

import abc
import asyncio
import builtins
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar

from pytest_dlio.errors import NotFound, StorageError
from pytest_dlio.storage.stats import RetryCounter

Buffer = bytes | bytearray | memoryview
T = TypeVar("T")

_KEY_RULE = "keys are relative '/'-separated names: not empty, no leading '/', no empty, '.' or '..' segment"


def check_key(uri: str, op: str, key: str) -> str:
    """``key`` when it is a valid object key, else StorageError naming the rule."""
    # Every get and put passes here (~1 us per call on mem://, where the whole op takes ~2): the rule as
    # substring tests on "/key/" (an empty, "." or ".." segment, or a leading or trailing "/", makes one
    # of them match) instead of a split and a generator over its parts.
    if key.__class__ is str and key and "\x00" not in key:
        wrapped = f"/{key}/"
        if "//" not in wrapped and "/./" not in wrapped and "/../" not in wrapped:
            return key
    if (
        not isinstance(key, str)
        or not key
        or "\x00" in key
        or key.startswith("/")
        or any(p in ("", ".", "..") for p in key.split("/"))
    ):
        raise StorageError(uri, op, key if isinstance(key, str) and key else repr(key), _KEY_RULE)
    return key


def check_prefix(uri: str, op: str, prefix: str) -> str:
    """A listing prefix: ``""``, or a key start (a trailing ``/`` and a partial last name are fine)."""
    if prefix and (
        prefix.startswith("/")
        or "\x00" in prefix
        or any(p in ("", ".", "..") for p in prefix.removesuffix("/").split("/"))
    ):
        raise StorageError(
            uri,
            op,
            prefix,
            "prefixes are relative '/'-separated names: no leading '/', no empty, '.' or '..' segment",
        )
    return prefix


def check_range(uri: str, op: str, key: str, start: int, length: int) -> None:
    """StorageError for a negative start or length."""
    if start < 0 or length < 0:
        raise StorageError(
            uri,
            op,
            key,
            f"byte range start={start} length={length}: start and length "
            "must be >= 0 (use get_suffix for the last n bytes)",
        )


def check_suffix(uri: str, op: str, key: str, n: int) -> None:
    """StorageError for a negative suffix length."""
    if n < 0:
        raise StorageError(uri, op, key, f"suffix length {n}: must be >= 0")


async def gather_bounded(coros: Iterable[Awaitable[T]], limit: int) -> list[T]:
    """``asyncio.gather`` with at most ``limit`` awaitables running at once (results in order)."""
    slots = asyncio.Semaphore(max(1, limit))

    async def one(c: Awaitable[T]) -> T:
        async with slots:
            return await c

    return list(await asyncio.gather(*(one(c) for c in coros)))


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


class _BufferPool(Protocol):
    def give(self, buf: Any, /) -> None: ...


class Pooled:
    """A whole object read by ``get_pooled``: ``data`` is valid until ``release()``, which hands a pooled
    buffer back for the next read (views of ``data`` must not be used after it; without a pool it does
    nothing)."""

    __slots__ = ("_buf", "_pool", "data")

    def __init__(self, data: Buffer, buf: Any = None, pool: _BufferPool | None = None) -> None:
        self.data, self._buf, self._pool = data, buf, pool

    def release(self) -> None:
        buf, self._buf = self._buf, None
        if buf is not None and self._pool is not None:
            self._pool.give(buf)


class ObjectStore(abc.ABC):
    """Async key → bytes store rooted at a URI. One instance per event loop."""

    #: Whether ``list`` is supported (all built-in backends: yes).
    supports_listing: bool = True
    #: Whether reads may be served from the OS page cache (file:// yes; O_DIRECT and object stores no).
    page_cached: bool = False
    #: Requests ``get_ranges`` keeps in flight on backends that issue them concurrently.
    concurrency: int = 8
    #: Whether ``get_pooled`` and ``get_range_pooled`` are worth using: reads into reused buffers
    #: (file://), or reads that bring their own buffer (direct://). Elsewhere they are ``get`` and
    #: ``get_range``.
    pooled_reads: bool = False

    def __init__(self, uri: str) -> None:
        self.uri = uri
        #: Retries this store made, by cause (object stores count them; shared with wrappers).
        self.retries = RetryCounter()

    def __str__(self) -> str:
        return self.uri

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"

    # ---- capabilities ----
    @property
    def local_root(self) -> Path | None:
        """The folder behind the store when its objects are local files (file://, direct://), else None."""
        return None

    async def make_durable(self, keys: Sequence[str]) -> None:
        """Flush what the store still buffers of ``keys`` to stable storage (blocking until it is there).
        Local files: an fsync of each, on the store's threads (datagen calls it so the kernel's writeback of
        a fresh dataset does not compete with the training that reads it next). Stores whose puts are
        durable when they return (object stores, the default) do nothing."""
        return None

    def reserve_read_buffers(self, count: int, size: int) -> None:
        """Make ``count`` reusable read buffers of ``size`` bytes ready, their pages faulted in (blocking;
        call it before anything is timed). Stores without read buffers (the default) do nothing."""
        return None

    def blocking_get(self) -> Callable[[str], Pooled] | None:
        """A plain function reading a whole object into a reused buffer on the caller's own thread, or
        None when the store has none (object stores, wrappers: their I/O stays on the event loop).

        Local file stores have one: a loader with its own reader threads (DLIO's workers) then reads,
        decodes and queues batches on them, as DLIO's workers do, instead of handing every read to the
        store's pool and back through the event loop. The function checks the key, raises what ``get``
        raises, and returns a :class:`Pooled` whose ``release()`` hands the buffer back.
        """
        return None

    def blocking_get_range(self) -> Callable[[str, int, int], Pooled] | None:
        """:meth:`get_range_pooled` as a plain function on the caller's own thread, or None when the store
        has none (as :meth:`blocking_get`). The parquet row-group window of a local file store reads,
        counts and hands back each range on its own threads with it, taking a range already read without
        a round trip through the event loop. Same checks, bytes and errors as ``get_range_pooled``."""
        return None

    def blocking_get_suffix(self) -> Callable[[str, int], Buffer] | None:
        """:meth:`get_suffix` as a plain function on the caller's own thread, or None when the store has
        none (as :meth:`blocking_get_range`). The parquet window of a local file store reads each epoch's
        footers on its own threads with it, one after another per reader as DLIO's readers do, rather
        than a round trip through the event loop per footer. Same checks, bytes and errors as
        ``get_suffix``."""
        return None

    def local_path(self, key: str) -> Path | None:
        """The file holding ``key`` when the store is local (see :attr:`local_root`), else None."""
        check_key(self.uri, "local_path", key)
        root = self.local_root
        return None if root is None else root / key

    # ---- the interface: checks here, I/O in the primitives ----
    async def put(self, key: str, data: Buffer, *, fsync: bool = False) -> None:
        """Write a whole object; atomic (readers see the old object or the new one, never half)."""
        await self._put(check_key(self.uri, "put", key), data, fsync)

    async def get(self, key: str) -> Buffer:
        """Read a whole object."""
        return await self._get(check_key(self.uri, "get", key))

    async def get_pooled(self, key: str) -> Pooled:
        """Read a whole object, into a reused buffer where the store has them (:attr:`pooled_reads`).

        Same bytes and errors as ``get``; the caller calls ``release()`` once it no longer uses ``data``
        (the training loader does, when a batch is dropped).
        """
        return await self._get_pooled(check_key(self.uri, "get", key))

    async def get_range(self, key: str, start: int, length: int) -> Buffer:
        """Read ``length`` bytes from ``start`` (short, possibly empty, past the end of the object)."""
        check_key(self.uri, "get_range", key)
        check_range(self.uri, "get_range", key, start, length)
        if length == 0:
            await self._exists_or_raise("get_range", key)
            return b""
        return await self._get_range(key, start, length)

    async def get_range_pooled(self, key: str, start: int, length: int) -> Pooled:
        """``get_range`` into a reused buffer where the store has them (:attr:`pooled_reads`).

        Same bytes and errors as ``get_range``; the caller calls ``release()`` once it no longer uses
        ``data`` (views of it must not be used after). A fresh multi-MiB buffer per range costs a page
        fault per 4 KiB on top of the copy: checkpoint loads and parquet row-group reads use this.
        """
        check_key(self.uri, "get_range", key)
        check_range(self.uri, "get_range", key, start, length)
        if length == 0:
            await self._exists_or_raise("get_range", key)
            return Pooled(b"")
        return await self._get_range_pooled(key, start, length)

    async def get_ranges(self, key: str, ranges: Sequence[tuple[int, int]]) -> builtins.list[Buffer]:
        """Read many ``(start, length)`` ranges of one object; results in the order given.

        Each range follows :meth:`get_range`'s rules. Object stores issue the requests concurrently,
        at most :attr:`concurrency` at once.
        """
        check_key(self.uri, "get_ranges", key)
        for start, length in ranges:
            check_range(self.uri, "get_ranges", key, start, length)
        if not ranges:
            await self._exists_or_raise("get_ranges", key)
            return []
        if all(length == 0 for _, length in ranges):
            await self._exists_or_raise("get_ranges", key)
            return [b"" for _ in ranges]
        return await self._as_op("get_ranges", key, self._get_ranges(key, [(s, n) for s, n in ranges]))

    async def get_suffix(self, key: str, n: int) -> Buffer:
        """The last ``n`` bytes of an object (the whole object when it is shorter)."""
        check_key(self.uri, "get_suffix", key)
        check_suffix(self.uri, "get_suffix", key, n)
        if n == 0:
            await self._exists_or_raise("get_suffix", key)
            return b""
        return await self._as_op("get_suffix", key, self._get_suffix(key, n))

    async def size(self, key: str) -> int:
        """Size of an object in bytes."""
        return await self._size(check_key(self.uri, "size", key))

    def list(self, prefix: str = "") -> AsyncIterator[tuple[str, int]]:
        """Every ``(key, size)`` whose key starts with ``prefix``, in any order (paginated underneath)."""
        return self._list(check_prefix(self.uri, "list", prefix))

    async def delete(self, key: str) -> None:
        """Remove an object; silent when it does not exist."""
        await self._delete(check_key(self.uri, "delete", key))

    async def open_writer(self, key: str, *, fsync: bool = False) -> Writer:
        """Start a streaming upload of ``key`` (see :class:`Writer`)."""
        return await self._open_writer(check_key(self.uri, "open_writer", key), fsync)

    async def close(self) -> None:
        """Release clients, pools and sessions. Override when the backend holds any."""
        return None

    # ---- defaults built on the interface; override when the backend can do better ----
    async def exists(self, key: str) -> bool:
        """Override when a cheaper HEAD exists."""
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

    async def _exists_or_raise(self, op: str, key: str) -> None:
        await self._as_op(op, key, self._size(key))

    async def _as_op(self, op: str, key: str, call: Awaitable[T]) -> T:
        """``await call``; a NotFound from a primitive it is built on names ``op``, the caller's method."""
        try:
            return await call
        except NotFound as exc:
            if exc.op == op:
                raise
            raise NotFound(self.uri, op, key) from exc

    # ---- primitives: I/O only; keys and ranges arrive checked ----
    @abc.abstractmethod
    async def _put(self, key: str, data: Buffer, fsync: bool) -> None: ...

    @abc.abstractmethod
    async def _get(self, key: str) -> Buffer: ...

    async def _get_pooled(self, key: str) -> Pooled:
        """Default: ``get``'s buffer, nothing to hand back. File stores override it."""
        return Pooled(await self._get(key))

    @abc.abstractmethod
    async def _get_range(self, key: str, start: int, length: int) -> Buffer:
        """``length`` > 0 bytes from ``start`` >= 0; short or empty past the end; NotFound when missing."""

    async def _get_range_pooled(self, key: str, start: int, length: int) -> Pooled:
        """Default: ``get_range``'s buffer, nothing to hand back. File stores override it."""
        return Pooled(await self._get_range(key, start, length))

    async def _get_ranges(self, key: str, ranges: builtins.list[tuple[int, int]]) -> builtins.list[Buffer]:
        """Default: one range after the other. Object stores override to issue them concurrently."""
        return [await self._range_or_empty(key, s, n) for s, n in ranges]

    async def _range_or_empty(self, key: str, start: int, length: int) -> Buffer:
        return await self._get_range(key, start, length) if length else b""

    async def _get_suffix(self, key: str, n: int) -> Buffer:
        """Default: size, then one range (two requests). Override where one request does it."""
        size = await self._size(key)
        if size == 0:
            return b""
        return await self._get_range(key, max(0, size - n), min(n, size))

    @abc.abstractmethod
    async def _size(self, key: str) -> int: ...

    @abc.abstractmethod
    def _list(self, prefix: str) -> AsyncIterator[tuple[str, int]]: ...

    @abc.abstractmethod
    async def _delete(self, key: str) -> None: ...

    @abc.abstractmethod
    async def _open_writer(self, key: str, fsync: bool) -> Writer: ...

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
