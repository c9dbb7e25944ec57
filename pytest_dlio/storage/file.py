"""``file:///abs/path``: POSIX files through a thread pool; writes land atomically via a temp name."""

from __future__ import annotations

import errno
import mmap
import os
import stat
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from pytest_dlio.storage._pool import BlockingPool
from pytest_dlio.storage.base import Buffer, ObjectStore, Writer
from pytest_dlio.storage.uri import check_key

TMP_MARK = ".dlio-tmp-"


def temp_path(path: Path) -> Path:
    """A unique hidden sibling of ``path`` that listing ignores."""
    return path.with_name(f".{path.name}{TMP_MARK}{uuid.uuid4().hex[:12]}")


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename in it is durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(tmp: Path, path: Path, fsync: bool) -> None:
    """Rename ``tmp`` over ``path`` (atomic), fsyncing the directory when asked."""
    os.replace(tmp, path)
    if fsync:
        fsync_dir(path.parent)


def _put(path: Path, data: Buffer, fsync: bool, known_dirs: set[Path] | None = None) -> None:
    if known_dirs is None or path.parent not in known_dirs:
        path.parent.mkdir(parents=True, exist_ok=True)
        if known_dirs is not None:
            known_dirs.add(path.parent)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb", buffering=0) as f:
            view = memoryview(data)
            while view:
                n = f.write(view)
                view = view[n:]
            if fsync:
                os.fsync(f.fileno())
        commit(tmp, path, fsync)
    except FileNotFoundError:
        tmp.unlink(missing_ok=True)
        if known_dirs is None:
            raise
        known_dirs.discard(path.parent)  # the folder was removed behind our back: create it again
        _put(path, data, fsync, None)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _get(path: Path) -> bytes:
    with open(path, "rb", buffering=0) as f:
        return f.read()


POOL_MIN = 1 << 20  # whole-object reads this large go into pooled buffers (below, a fresh bytes is cheap)


class BufferPool:
    """Reusable page-aligned buffers (anonymous mmaps) for large whole-object reads, shared by a store's
    threads.

    A fresh multi-MiB buffer per read costs page zeroing and faulting on top of the copy (the read's own
    cost for page-cached data); a returned buffer is faulted in already. Page alignment matters as much:
    measured here, ``readinto`` a malloc'd bytearray or numpy array runs at half the speed of ``readinto``
    an mmap (or of a fresh ``f.read()``). ``take`` hands out the smallest free buffer that fits (or a new
    one); at most ``keep`` free buffers are kept.
    """

    def __init__(self, keep: int = 16) -> None:
        self.keep = keep
        self._free: list[mmap.mmap] = []
        self._lock = threading.Lock()
        self.allocated = 0  # buffers ever made (a test checks reuse through it)

    def take(self, n: int) -> mmap.mmap:
        with self._lock:
            fits = [b for b in self._free if n <= len(b) <= 2 * n]
            if fits:
                buf = min(fits, key=len)
                self._free.remove(buf)
                return buf
            self.allocated += 1
        return mmap.mmap(-1, -(-n // 65536) * 65536)

    def give(self, buf: mmap.mmap) -> None:
        with self._lock:
            if len(self._free) < self.keep:
                self._free.append(buf)


class Pooled:
    """A whole object read into a pooled buffer: ``data`` is valid until ``release()``, which hands the
    buffer back for the next read (views of ``data`` must not be used after it)."""

    __slots__ = ("_buf", "_pool", "data")

    def __init__(self, data: Buffer, buf: mmap.mmap | None = None, pool: BufferPool | None = None) -> None:
        self.data, self._buf, self._pool = data, buf, pool

    def release(self) -> None:
        buf, self._buf = self._buf, None
        if buf is not None and self._pool is not None:
            self._pool.give(buf)


def _get_pooled(path: Path, pool: BufferPool) -> Pooled:
    with open(path, "rb", buffering=0) as f:
        n = os.fstat(f.fileno()).st_size
        if n < POOL_MIN:
            return Pooled(f.read())
        buf = pool.take(n)
        view = memoryview(buf)[:n]
        got = 0
        while got < n:
            k = f.readinto(view[got:])
            if not k:
                break
            got += k
        return Pooled(view[:got], buf, pool)


def _get_range(path: Path, start: int, length: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        if length == 0:
            return b""
        return os.pread(fd, length, start)
    finally:
        os.close(fd)


def _size(path: Path) -> int:
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, "not a file", str(path))
    return st.st_size


def _list(root: Path, prefix: str) -> list[tuple[str, int]]:
    # Walk only the deepest folder the prefix names; filter the rest by string prefix (sibling-safe).
    base = root / prefix.rsplit("/", 1)[0] if "/" in prefix else root
    out: list[tuple[str, int]] = []
    if not base.is_dir():
        return out
    for dirpath, _dirs, files in os.walk(base):
        for name in files:
            if TMP_MARK in name:
                continue
            full = os.path.join(dirpath, name)
            key = os.path.relpath(full, root).replace(os.sep, "/")
            if key.startswith(prefix):
                try:
                    out.append((key, os.stat(full).st_size))
                except FileNotFoundError:
                    continue
    return out


def _delete(path: Path) -> None:
    try:
        path.unlink()
    except (FileNotFoundError, NotADirectoryError):
        pass


class FileStore(ObjectStore):
    """POSIX files under a root folder (created on first write)."""

    def __init__(self, uri: str, root: Path, threads: int = 8) -> None:
        super().__init__(uri)
        self.root = root
        self._io = BlockingPool(uri, threads)
        self._dirs: set[Path] = set()  # folders known to exist: saves a mkdir per put
        self._buffers: BufferPool | None = None  # get_pooled's buffers, made on first use

    def path(self, op: str, key: str) -> Path:
        """The file for ``key``."""
        return self.root / check_key(self.uri, op, key)

    async def put(self, key: str, data: Buffer, *, fsync: bool = False) -> None:
        # docstring inherited
        await self._io.run("put", key, _put, self.path("put", key), data, fsync, self._dirs)

    async def get(self, key: str) -> Buffer:
        # docstring inherited
        return await self._io.run("get", key, _get, self.path("get", key))

    async def get_pooled(self, key: str) -> Pooled:
        """Read a whole object into a reused buffer (file stores only; the training loader uses it).

        Same bytes and errors as ``get``; the caller calls ``release()`` once it no longer uses ``data``.
        """
        if self._buffers is None:
            self._buffers = BufferPool()
        return await self._io.run("get", key, _get_pooled, self.path("get", key), self._buffers)

    async def get_range(self, key: str, start: int, length: int) -> Buffer:
        # docstring inherited
        return await self._io.run("get_range", key, _get_range, self.path("get_range", key), start, length)

    async def size(self, key: str) -> int:
        # docstring inherited
        return await self._io.run("size", key, _size, self.path("size", key))

    async def list(self, prefix: str = "") -> AsyncIterator[tuple[str, int]]:
        # docstring inherited
        for item in await self._io.run("list", prefix or None, _list, self.root, prefix):
            yield item

    async def delete(self, key: str) -> None:
        # docstring inherited
        await self._io.run("delete", key, _delete, self.path("delete", key))

    async def open_writer(self, key: str, *, fsync: bool = False) -> Writer:
        # docstring inherited
        path = self.path("open_writer", key)
        tmp = temp_path(path)

        def _open() -> int:
            path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

        fd = await self._io.run("open_writer", key, _open)
        return FileWriter(self, key, path, tmp, fd, fsync)

    async def close(self) -> None:
        # docstring inherited
        self._io.shutdown()


def _write_all(fd: int, data: Buffer) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class FileWriter(Writer):
    """Appends to a temp file; ``close`` renames it into place."""

    def __init__(self, store: FileStore, key: str, path: Path, tmp: Path, fd: int, fsync: bool) -> None:
        self._store, self._key, self._path, self._tmp, self._fd, self._fsync = store, key, path, tmp, fd, fsync

    async def write(self, data: Buffer) -> None:
        # docstring inherited
        await self._store._io.run("write", self._key, _write_all, self._fd, data)

    async def close(self) -> None:
        # docstring inherited
        def _close() -> None:
            try:
                if self._fsync:
                    os.fsync(self._fd)
            finally:
                os.close(self._fd)
            commit(self._tmp, self._path, self._fsync)

        await self._store._io.run("close", self._key, _close)

    async def abort(self) -> None:
        # docstring inherited
        def _abort() -> None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._tmp.unlink(missing_ok=True)

        await self._store._io.run("abort", self._key, _abort)
