"""``direct:///abs/path``: O_DIRECT I/O with page-aligned mmap buffers, padded writes and ftruncate."""

from __future__ import annotations

import mmap
import os
import threading
from collections.abc import Callable
from pathlib import Path

from pytest_dlio.errors import StorageError
from pytest_dlio.storage.base import Buffer, Pooled, Writer
from pytest_dlio.storage.file import FileStore, commit, landing, open_temp, page_buffer, temp_path

ALIGN = 4096
CHUNK = 4 * 2**20  # bounded staging buffer per write call / writer
_PROBED: dict[Path, str | None] = {}
_PROBE_LOCK = threading.Lock()


def _up(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def probe(folder: Path) -> str | None:
    """None when ``folder`` accepts O_DIRECT (open + one aligned write), else the reason it does not."""
    with _PROBE_LOCK:
        if folder in _PROBED:
            return _PROBED[folder]
        if not hasattr(os, "O_DIRECT"):
            reason: str | None = "O_DIRECT is Linux-only"
        else:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f".dlio-odirect-probe-{os.getpid()}-{threading.get_ident()}"
            buf = mmap.mmap(-1, ALIGN)
            reason = None
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o600)
                try:
                    os.write(fd, buf)
                finally:
                    os.close(fd)
            except OSError as exc:
                reason = exc.strerror or str(exc.errno)
            finally:
                buf.close()
                path.unlink(missing_ok=True)
        _PROBED[folder] = reason
        return reason


def _open_direct(path: Path, flags: int) -> int:
    return os.open(path, flags | os.O_DIRECT, 0o644)


def _pwrite_all(fd: int, buf: mmap.mmap, length: int, offset: int) -> None:
    view = memoryview(buf)[:length]
    try:
        while view:
            n = os.pwritev(fd, [view], offset)
            view, offset = view[n:], offset + n
    finally:
        view.release()


def _write_padded(fd: int, staging: mmap.mmap, data: memoryview, offset: int) -> int:
    """Write ``data`` at ``offset`` (aligned) through ``staging``; returns bytes of real data written."""
    for pos in range(0, len(data), len(staging)):
        piece = data[pos : pos + len(staging)]
        staging[: len(piece)] = piece
        _pwrite_all(fd, staging, _up(len(piece)), offset + pos)
    return len(data)


def _preadv_all(fd: int, buf: mmap.mmap, offset: int) -> int:
    view, total = memoryview(buf), 0
    try:
        while total < len(buf):
            n = os.preadv(fd, [view[total:]], offset + total)
            if n == 0:
                break
            total += n
            if n % ALIGN:
                break  # short read: end of file
    finally:
        view.release()
    return total


_STAGING = threading.local()


def _staging() -> mmap.mmap:
    """This thread's aligned staging buffer for puts, made once: a fresh one per put (page faults and
    zeroing of up to 4 MiB, huge-page allocation) put O_DIRECT puts at 0.55-0.6 of a raw loop here."""
    buf: mmap.mmap | None = getattr(_STAGING, "buf", None)
    if buf is None:
        buf = _STAGING.buf = page_buffer(CHUNK)
    return buf


def _probe_and_put(root: Path, path: Path, data: Buffer, fsync: bool) -> str | None:
    """``_put`` when ``root`` accepts O_DIRECT, else the reason it does not (one trip to a thread)."""
    reason = probe(root)
    if reason is None:
        _put(path, data, fsync)
    return reason


def _put(path: Path, data: Buffer, fsync: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    view = memoryview(data).cast("B")
    staging = _staging()
    try:
        fd = _open_direct(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a filesystem refusing O_DIRECT may have created it
        raise
    with landing(fd, tmp, path, fsync):
        _write_padded(fd, staging, view, 0)
        if len(view) % ALIGN:
            os.ftruncate(fd, len(view))


def _read(path: Path, start: int, length: int | None, suffix: bool = False) -> memoryview:
    """``length`` bytes from ``start`` (None: to the end); with ``suffix``, the last ``length`` bytes."""
    fd = _open_direct(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if suffix and length is not None:
            start = max(0, size - length)
        end = size if length is None else min(size, start + length)
        if end <= start:
            return memoryview(b"")
        lo = start - start % ALIGN
        buf = page_buffer(_up(end) - lo)
        got = _preadv_all(fd, buf, lo)
        return memoryview(buf)[start - lo : min(end, lo + got) - lo]
    finally:
        os.close(fd)


class DirectStore(FileStore):
    """O_DIRECT files under a root folder; support is probed once per folder."""

    async def _check(self, op: str, key: str | None) -> None:
        self._refused(op, key, await self._io.run(op, key, probe, self.root))

    def _refused(self, op: str, key: str | None, reason: str | None) -> None:
        if reason:
            raise StorageError(
                self.uri,
                op,
                key,
                f"the filesystem refuses O_DIRECT ({reason}); use file:// "
                "or put the folder on a disk filesystem such as ext4/xfs",
            )

    page_cached = False
    blocking_put = False

    async def _put(self, key: str, data: Buffer, fsync: bool) -> None:
        self._refused(
            "put",
            key,
            await self._io.run("put", key, _probe_and_put, self.root, self.root / key, data, fsync),
        )

    async def _get(self, key: str) -> Buffer:
        return await self._io.run("get", key, _read, self.root / key, 0, None)

    async def _get_range(self, key: str, start: int, length: int) -> Buffer:
        return await self._io.run("get_range", key, _read, self.root / key, start, length)

    def reserve_read_buffers(self, count: int, size: int) -> None:
        """O_DIRECT reads bring their own aligned buffer: nothing to reserve."""

    def _read_whole(self, path: Path) -> Pooled:
        """O_DIRECT reads bring their own aligned buffer (``get``'s bytes, nothing to hand back): what
        ``get_pooled`` and ``blocking_get`` read."""
        return Pooled(_read(path, 0, None))

    def blocking_get_range(self) -> Callable[[str, int, int], Pooled] | None:
        """None: FileStore's reads the page cache; a range read here goes through ``_get_range_pooled``
        (O_DIRECT, on the store's pool), so a parquet window over direct:// stays O_DIRECT."""
        return None

    def blocking_get_suffix(self) -> Callable[[str, int], Buffer] | None:
        """None: FileStore's reads the page cache; footers here are read O_DIRECT, on the store's pool."""
        return None

    async def _get_range_pooled(self, key: str, start: int, length: int) -> Pooled:
        """O_DIRECT reads bring their own aligned buffer: ``get_range``'s bytes, nothing to hand back."""
        return Pooled(await self._get_range(key, start, length))

    async def _get_ranges(self, key: str, ranges: list[tuple[int, int]]) -> list[Buffer]:
        return [await self._range_or_empty(key, s, n) for s, n in ranges]

    async def _get_suffix(self, key: str, n: int) -> Buffer:
        return await self._io.run("get_suffix", key, _read, self.root / key, 0, n, True)

    async def _open_writer(self, key: str, fsync: bool) -> Writer:
        await self._check("open_writer", key)
        path = self.root / key
        tmp = temp_path(path)

        def _open() -> int:
            path.parent.mkdir(parents=True, exist_ok=True)
            return _open_direct(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)

        fd = await open_temp(self._io, key, tmp, _open)
        return DirectWriter(self, key, path, tmp, fd, fsync)


class DirectWriter(Writer):
    """Fills one aligned staging buffer; writes it whenever full; pads and truncates the tail on close."""

    def __init__(self, store: DirectStore, key: str, path: Path, tmp: Path, fd: int, fsync: bool) -> None:
        self._store, self._key, self._path, self._tmp, self._fd, self._fsync = (
            store,
            key,
            path,
            tmp,
            fd,
            fsync,
        )
        self._buf = page_buffer(CHUNK)
        self._fill = 0
        self._offset = 0

    def _write(self, data: Buffer) -> None:
        view = memoryview(data).cast("B")
        while view:
            n = min(len(view), CHUNK - self._fill)
            self._buf[self._fill : self._fill + n] = view[:n]
            self._fill += n
            view = view[n:]
            if self._fill == CHUNK:
                _pwrite_all(self._fd, self._buf, CHUNK, self._offset)
                self._offset += CHUNK
                self._fill = 0

    async def write(self, data: Buffer) -> None:
        # docstring inherited
        await self._store._io.run("write", self._key, self._write, data)

    async def close(self) -> None:
        # docstring inherited
        def _close() -> None:
            try:
                if self._fill:
                    _pwrite_all(self._fd, self._buf, _up(self._fill), self._offset)
                    if self._fill % ALIGN:
                        os.ftruncate(self._fd, self._offset + self._fill)
                if self._fsync:
                    os.fsync(self._fd)
            finally:
                os.close(self._fd)
                self._buf.close()
            commit(self._tmp, self._path, self._fsync)

        try:
            await self._store._io.run("close", self._key, _close)
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise

    async def abort(self) -> None:
        # docstring inherited
        def _abort() -> None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._buf.close()
            self._tmp.unlink(missing_ok=True)

        await self._store._io.run("abort", self._key, _abort)


__all__ = ["DirectStore", "probe"]
