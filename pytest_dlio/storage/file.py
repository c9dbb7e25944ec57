"""``file:///abs/path``: POSIX files through a thread pool; writes land atomically via a temp name.

A temp name says who writes it: ``.{name}.dlio-tmp-{pid}-{host}-{start}-{random}`` (``host``: a hash of
the host name, ``start``: the writer process's start time, so a reused pid is not mistaken for it). A
killed writer's temp files are removed by :func:`remove_stale_temps` (the next run's first open of the
store): only names of exactly this form, and only when the writer is dead — its pid is not alive on this
host with that start time — or, written from another host, untouched for :data:`STALE_AFTER` seconds.
"""

from __future__ import annotations

import asyncio
import errno
import mmap
import os
import re
import socket
import stat
import threading
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from pytest_dlio.errors import StorageError
from pytest_dlio.storage._pool import BlockingPool, translate
from pytest_dlio.storage.base import (
    Buffer,
    ObjectStore,
    Pooled,
    Writer,
    check_key,
    check_range,
    check_suffix,
    gather_bounded,
)

TMP_MARK = ".dlio-tmp-"
STALE_AFTER = 24 * 3600.0  # seconds untouched after which another host's temp file counts as abandoned
_TMP_NAME = re.compile(r"\.dlio-tmp-(\d+)-([0-9a-f]{8})-(\d+)-[0-9a-f]{12}$")


def _host_tag() -> str:
    return f"{zlib.crc32(socket.gethostname().encode()):08x}"


def process_start(pid: int) -> int:
    """A process's start time in clock ticks since boot (Linux /proc), 0 when unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat_line = f.read()
    except OSError:
        return 0
    # the command name (field 2) may hold spaces and parentheses: fields are counted after its last ')'
    fields = stat_line[stat_line.rfind(b")") + 2 :].split()
    return int(fields[19]) if len(fields) > 19 else 0


_ME = (os.getpid(), process_start(os.getpid()))


def _writer_tag() -> str:
    global _ME
    if _ME[0] != os.getpid():  # forked since import
        _ME = (os.getpid(), process_start(os.getpid()))
    return f"{_ME[0]}-{_host_tag()}-{_ME[1]}"


def temp_path(path: Path) -> Path:
    """A unique hidden sibling of ``path`` that listing ignores, naming its writer (module docstring)."""
    return path.with_name(f".{path.name}{TMP_MARK}{_writer_tag()}-{uuid.uuid4().hex[:12]}")


def _alive(pid: int, start: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    now = process_start(pid)
    return not (start and now and now != start)  # same pid, another start: the pid was reused


def abandoned(name: str, mtime: float, now: float | None = None) -> bool:
    """True when ``name`` is a pytest-dlio temp file whose writer is gone (see the module docstring)."""
    m = _TMP_NAME.search(name)
    if m is None:
        return False  # not a name we make: never touched
    pid, host, start = int(m[1]), m[2], int(m[3])
    if host == _host_tag():
        return not _alive(pid, start)
    return (time.time() if now is None else now) - mtime > STALE_AFTER


async def open_temp(pool: BlockingPool, key: str, tmp: Path, opener: Callable[[], int]) -> int:
    """Run ``opener`` (creates ``tmp``, returns its fd) on ``pool``; when the caller is cancelled meanwhile
    (Ctrl-C, SIGTERM), the open still finishes in its thread, so close and remove what it made."""
    fut = asyncio.ensure_future(pool.run("open_writer", key, opener))
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        try:
            fd = await fut
        except BaseException:
            raise asyncio.CancelledError from None
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise


def remove_stale_temps(root: Path) -> list[Path]:
    """Delete the temp files of dead writers under ``root`` (a killed run's leftovers); returns them."""
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if TMP_MARK not in name:
                continue
            full = Path(dirpath) / name
            try:
                if abandoned(name, full.lstat().st_mtime):
                    full.unlink()
                    removed.append(full)
            except FileNotFoundError:
                continue
    return removed


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


def _open_temp_for(path: Path, known_dirs: set[Path]) -> tuple[Path, int]:
    """A fresh temp sibling of ``path`` open for writing (its folder made when not known to exist)."""
    for attempt in (0, 1):
        if attempt or path.parent not in known_dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
            known_dirs.add(path.parent)
        tmp = temp_path(path)
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except FileNotFoundError:
            if attempt:
                raise
            known_dirs.discard(path.parent)  # the folder was removed behind our back: create it again
    raise AssertionError("unreachable")


@contextmanager
def landing(fd: int, tmp: Path, path: Path, fsync: bool) -> Iterator[None]:
    """Write through ``fd`` (open on the temp file ``tmp``) inside the block; then fsync when asked,
    close, and rename ``tmp`` over ``path`` (:func:`commit`). On any error ``fd`` is closed and ``tmp``
    removed: nothing appears under ``path``."""
    try:
        try:
            yield
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        commit(tmp, path, fsync)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _put_chunks(
    path: Path,
    chunks: Iterable[Buffer],
    patches: Callable[[], Iterable[tuple[int, Buffer]]],
    fsync: bool,
    known_dirs: set[Path],
) -> int:
    tmp, fd = _open_temp_for(path, known_dirs)
    with landing(fd, tmp, path, fsync):
        written = 0
        for chunk in chunks:
            _write_all(fd, chunk)
            written += memoryview(chunk).nbytes
        for offset, data in patches():
            view = memoryview(data).cast("B")
            while view:
                n = os.pwrite(fd, view, offset)
                view, offset = view[n:], offset + n
    return written


def _get(path: Path) -> bytes:
    with open(path, "rb", buffering=0) as f:
        return f.read()


POOL_MIN = 1 << 20  # whole-object reads this large go into pooled buffers (below, a fresh bytes is cheap)


def page_buffer(n: int) -> mmap.mmap:
    """A page-aligned buffer of at least ``n`` bytes for large reads: a *private* anonymous mapping with
    transparent huge pages asked for. ``mmap.mmap(-1, n)`` is a shared mapping (shmem-backed, faulted in
    4 KiB pages): reading into a fresh one ran at 0.5-0.7 GiB/s here, a private one with MADV_HUGEPAGE at
    2.8-3.4 GiB/s (THP is ``madvise`` on many distributions)."""
    size = -(-n // mmap.PAGESIZE) * mmap.PAGESIZE
    buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    advice = getattr(mmap, "MADV_HUGEPAGE", None)
    if advice is not None and size >= 2 << 20:
        try:
            buf.madvise(advice)
        except OSError:  # a kernel without THP: 4 KiB pages, still private
            pass
    return buf


class BufferPool:
    """Reusable page-aligned buffers (anonymous mmaps) for large whole-object reads, shared by a store's
    threads.

    A fresh multi-MiB buffer per read costs page zeroing and faulting on top of the copy (the read's own
    cost for page-cached data); a returned buffer is faulted in already. Page alignment matters as much:
    measured here, ``readinto`` a malloc'd bytearray or numpy array runs at half the speed of ``readinto``
    an mmap (or of a fresh ``f.read()``). ``take`` hands out the smallest free buffer that fits (or a new
    one); free buffers are kept up to ``keep``, or up to the most ever out at once when that is more (a
    loader with 4 batches of 7 ahead holds 35: dropping the returns beyond 16 made every epoch fault in
    fresh 12 MiB buffers again), so the pool never holds more than its users once needed.
    """

    def __init__(self, keep: int = 16, fit: float = 2.0) -> None:
        self.keep, self.fit = keep, fit  # a free buffer serves a request of n bytes up to fit * n
        self._free: list[mmap.mmap] = []
        self._lock = threading.Lock()
        self.allocated = 0  # buffers ever made (a test checks reuse through it)
        self._out = self._peak = 0  # buffers taken and not given back; the most at once

    def take(self, n: int) -> mmap.mmap:
        with self._lock:
            self._out += 1
            self._peak = max(self._peak, self._out)
            # the smallest that fits, the most recently returned among equals: its pages are the likeliest
            # to be in the CPU's cache still, which makes the copy into it cheaper
            best = -1
            for i in range(len(self._free) - 1, -1, -1):
                size = len(self._free[i])
                if n <= size <= self.fit * n and (best < 0 or size < len(self._free[best])):
                    best = i
            if best >= 0:
                return self._free.pop(best)
            self.allocated += 1
        return page_buffer(-(-n // 65536) * 65536)

    def give(self, buf: mmap.mmap) -> None:
        with self._lock:
            self._out -= 1
            if len(self._free) < max(self.keep, self._peak):
                self._free.append(buf)


#: ``get_range_pooled``'s buffers, process-wide: stores are opened per phase, and a store's own fresh
#: buffers cost a page fault per 4 KiB on first use (15 ms for a 16 MiB range, 5x the read itself). Ranges
#: are bounded (a checkpoint reader's chunk), so any free buffer that fits serves and four are kept.
RANGE_BUFFERS = BufferPool(keep=4, fit=float("inf"))


def _fsync_file(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:  # replaced or removed since it was written (a superseded marker)
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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


def _get_range_pooled(path: Path, start: int, length: int, pool: BufferPool) -> Pooled:
    fd = os.open(path, os.O_RDONLY)
    try:
        if length < POOL_MIN:
            return Pooled(os.pread(fd, length, start))
        buf = pool.take(length)
        try:
            view = memoryview(buf)[:length]
            got = 0
            while got < length:
                k = os.preadv(fd, [view[got:]], start + got)
                if not k:
                    break
                got += k
        except BaseException:
            pool.give(buf)
            raise
        return Pooled(view[:got], buf, pool)
    finally:
        os.close(fd)


def _get_range(path: Path, start: int, length: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, length, start)
    finally:
        os.close(fd)


def _get_ranges(path: Path, ranges: list[tuple[int, int]]) -> list[bytes]:
    fd = os.open(path, os.O_RDONLY)  # one open for every range
    try:
        return [os.pread(fd, length, start) if length else b"" for start, length in ranges]
    finally:
        os.close(fd)


def _get_suffix(path: Path, n: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        return os.pread(fd, min(n, size), max(0, size - n)) if size else b""
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

    page_cached = True
    pooled_reads = True
    #: :meth:`put_chunks_blocking` serves (O_DIRECT stores, which need aligned staging, say False)
    blocking_put = True

    def __init__(self, uri: str, root: Path, threads: int = 8) -> None:
        super().__init__(uri)
        self.root = root
        self._io = BlockingPool(uri, threads)
        self._threads = max(1, threads)
        self._dirs: set[Path] = set()  # folders known to exist: saves a mkdir per put
        # get_pooled's buffers (made here, not on first use: reader threads reaching a fresh store at once
        # each made a pool, and all but one were lost with their buffers)
        self._buffers = BufferPool()

    @property
    def local_root(self) -> Path:
        # docstring inherited
        return self.root

    async def _put(self, key: str, data: Buffer, fsync: bool) -> None:
        await self._io.run("put", key, _put, self.root / key, data, fsync, self._dirs)

    async def _get(self, key: str) -> Buffer:
        return await self._io.run("get", key, _get, self.root / key)

    async def _get_pooled(self, key: str) -> Pooled:
        return await self._io.run("get", key, self._read_whole, self.root / key)

    def put_chunks_blocking(
        self,
        key: str,
        chunks: Iterable[Buffer],
        patches: Callable[[], Iterable[tuple[int, Buffer]]] = tuple,
        *,
        fsync: bool = False,
    ) -> int:
        """``put`` of an object given as consecutive ``chunks``, run in the caller's thread; returns its bytes.

        Each chunk is written before the next is drawn (a producer may refill one buffer), then
        ``patches()``'s ``(offset, bytes)`` overwrite what they cover (values known only at the end, such
        as a checksum in a header); the object appears atomically, like ``put``'s. Datagen makes and writes
        a file chunk by chunk in one thread this way: each chunk is still in cache when it is written. Raises
        StorageError (NotFound) as ``put`` does; an error from ``chunks`` leaves nothing behind.
        """
        if not self.blocking_put:
            raise StorageError(self.uri, "put", key, "this store writes through its own staging: use put")
        check_key(self.uri, "put", key)
        try:
            return _put_chunks(self.root / key, chunks, patches, fsync, self._dirs)
        except OSError as exc:
            raise translate(exc, self.uri, "put", key) from exc

    def _read_whole(self, path: Path) -> Pooled:
        return _get_pooled(path, self._buffers)

    def reserve_read_buffers(self, count: int, size: int) -> None:
        # docstring inherited
        if size < POOL_MIN or count <= 0:
            return  # reads this small are fresh bytes (_get_pooled)
        taken = [self._buffers.take(size) for _ in range(count)]
        for buf in taken:
            memoryview(buf)[:: mmap.PAGESIZE] = bytes(-(-len(buf) // mmap.PAGESIZE))  # fault every page in
            self._buffers.give(buf)

    def blocking_get(self) -> Callable[[str], Pooled]:
        # docstring inherited
        def read(key: str) -> Pooled:
            check_key(self.uri, "get", key)
            try:
                return self._read_whole(self.root / key)
            except OSError as exc:
                raise translate(exc, self.uri, "get", key) from exc

        return read

    def blocking_get_range(self) -> Callable[[str, int, int], Pooled] | None:
        # docstring inherited
        def read(key: str, start: int, length: int) -> Pooled:
            check_key(self.uri, "get_range", key)
            check_range(self.uri, "get_range", key, start, length)
            path = self.root / key
            try:
                if length == 0:
                    _size(path)  # a file must exist (not a folder), as get_range_pooled checks
                    return Pooled(b"")
                return _get_range_pooled(path, start, length, RANGE_BUFFERS)
            except OSError as exc:
                raise translate(exc, self.uri, "get_range", key) from exc

        return read

    def blocking_get_suffix(self) -> Callable[[str, int], Buffer] | None:
        # docstring inherited
        def read(key: str, n: int) -> Buffer:
            check_key(self.uri, "get_suffix", key)
            check_suffix(self.uri, "get_suffix", key, n)
            path = self.root / key
            try:
                if n == 0:
                    _size(path)  # a file must exist (not a folder), as get_suffix checks
                    return b""
                return _get_suffix(path, n)
            except OSError as exc:
                raise translate(exc, self.uri, "get_suffix", key) from exc

        return read

    async def _get_range_pooled(self, key: str, start: int, length: int) -> Pooled:
        # A fresh multi-MiB buffer per range (malloc'd in whichever pool thread ran the read, freed on the
        # event loop) cost warm checkpoint loads a page fault per 4 KiB.
        return await self._io.run(
            "get_range", key, _get_range_pooled, self.root / key, start, length, RANGE_BUFFERS
        )

    async def _get_range(self, key: str, start: int, length: int) -> Buffer:
        return await self._io.run("get_range", key, _get_range, self.root / key, start, length)

    async def _get_ranges(self, key: str, ranges: list[tuple[int, int]]) -> list[Buffer]:
        return list(await self._io.run("get_ranges", key, _get_ranges, self.root / key, ranges))

    async def _get_suffix(self, key: str, n: int) -> Buffer:
        return await self._io.run("get_suffix", key, _get_suffix, self.root / key, n)

    async def _size(self, key: str) -> int:
        return await self._io.run("size", key, _size, self.root / key)

    async def _list(self, prefix: str) -> AsyncIterator[tuple[str, int]]:
        for item in await self._io.run("list", prefix or None, _list, self.root, prefix):
            yield item

    async def _delete(self, key: str) -> None:
        await self._io.run("delete", key, _delete, self.root / key)

    async def make_durable(self, keys: Sequence[str]) -> None:
        # docstring inherited
        paths = [(k, self.root / check_key(self.uri, "make_durable", k)) for k in keys]
        await gather_bounded(
            (self._io.run("make_durable", k, _fsync_file, p) for k, p in paths), self._threads
        )

    async def _open_writer(self, key: str, fsync: bool) -> Writer:
        path = self.root / key
        tmp = temp_path(path)

        def _open() -> int:
            path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

        fd = await open_temp(self._io, key, tmp, _open)
        return FileWriter(self, key, path, tmp, fd, fsync)

    async def close(self) -> None:
        # docstring inherited
        self._io.shutdown()


def _write_all(fd: int, data: Buffer) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class FileWriter(Writer):
    """Appends to a temp file; ``close`` renames it into place."""

    def __init__(self, store: FileStore, key: str, path: Path, tmp: Path, fd: int, fsync: bool) -> None:
        self._store, self._key, self._path, self._tmp, self._fd, self._fsync = (
            store,
            key,
            path,
            tmp,
            fd,
            fsync,
        )

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
