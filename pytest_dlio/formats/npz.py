"""npz: ``np.savez(x=records(*dims, spf), y=[0]*spf)`` (stored, never compressed: dlio.md §1.8.5).

The zip container is assembled around the .npy members byte for byte as ``np.savez`` writes it
(forced zip64 local headers, fixed 1980-01-01 timestamps, CRC-32 of each member) in one pooled buffer
whose random payload is filled in place (never copied); 4 GiB and more goes through ``np.savez``. Streamed
(datagen on local files), the same container is made as it is written, its first CRC patched at the end.
"""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_dlio.formats.base import DataFile, Encoded, Format, Slices, Stream
from pytest_dlio.formats.npy import file_size, header, view
from pytest_dlio.randbytes import POOL, RandomCrc, crc32, fill_random, random_array, random_chunks
from pytest_dlio.storage.base import Buffer

if TYPE_CHECKING:
    from pytest_dlio.config.model import Dataset

_DOS_DATE = (0 << 9) | (1 << 5) | 1  # 1980-01-01, what numpy's ZipInfo carries
_VERSION = 45  # zip64
_ATTR = 0o600 << 16
_LIMIT = 0xFFFFFFFF
#: np.savez's container around its two members x.npy/y.npy: forced zip64 local headers + central directory
ZIP_OVERHEAD = 234


def _local(name: bytes, crc: int, size: int) -> bytes:
    head = struct.pack(
        "<4sHHHHHIIIHH", b"PK\x03\x04", _VERSION, 0, 0, 0, _DOS_DATE, crc, _LIMIT, _LIMIT, len(name), 20
    )
    return head + name + struct.pack("<HHQQ", 1, 16, size, size)


def _central(name: bytes, crc: int, size: int, offset: int) -> bytes:
    return (
        struct.pack(
            "<4sBBHHHHHIIIHHHHHII",
            b"PK\x01\x02",
            _VERSION,
            3,
            _VERSION,
            0,
            0,
            0,
            _DOS_DATE,
            crc,
            size,
            size,
            len(name),
            0,
            0,
            0,
            0,
            _ATTR,
            offset,
        )
        + name
    )


_LOCAL_LEN = 30 + len(b"x.npy") + 20  # a member's local header (zip64 extra field included)
_CD_LEN = 2 * (46 + len(b"x.npy"))  # the central directory's two entries


def _parts(f: DataFile) -> tuple[bytes, int, bytes]:
    """The x member's npy header, its payload's bytes, and the whole y member."""
    shape = (*f.dims, f.samples)
    y = io.BytesIO()
    np.save(y, np.array([0] * f.samples))
    return (
        header(shape, f.dtype),
        int(np.prod(shape, dtype=np.int64)) * np.dtype(f.dtype).itemsize,
        y.getvalue(),
    )


def _tail(crc_x: int, x_len: int, y_raw: bytes) -> bytes:
    """Everything after the x member: y's local header and bytes, the central directory, its end record."""
    crc_y = crc32(y_raw)
    y_at = _LOCAL_LEN + x_len
    return b"".join(
        (
            _local(b"y.npy", crc_y, len(y_raw)),
            y_raw,
            _central(b"x.npy", crc_x, x_len, 0),
            _central(b"y.npy", crc_y, len(y_raw), y_at),
            struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 2, 2, _CD_LEN, y_at + _LOCAL_LEN + len(y_raw), 0),
        )
    )


def _encode(f: DataFile, ds: Dataset, rng: np.random.Generator) -> Encoded:
    head, n, y_raw = _parts(f)
    if n + len(head) + len(y_raw) + 1024 >= _LIMIT:
        buf = io.BytesIO()
        np.savez(buf, x=random_array((*f.dims, f.samples), f.dtype, rng), y=[0] * f.samples)
        return Encoded([buf.getbuffer()])
    # one contiguous file, placed so the random payload starts 8-byte aligned (filled in place)
    x_len = len(head) + n
    total = _LOCAL_LEN + x_len + _LOCAL_LEN + len(y_raw) + _CD_LEN + 22
    pad = (-(_LOCAL_LEN + len(head))) % 8
    base = POOL.take(total + pad)
    out = base[pad : pad + total]
    data_at = _LOCAL_LEN + len(head)
    fill_random(out[data_at : data_at + n], rng)
    out[_LOCAL_LEN:data_at] = np.frombuffer(head, dtype=np.uint8)
    crc_x = crc32(out[data_at : data_at + n], crc32(head))
    out[:_LOCAL_LEN] = np.frombuffer(_local(b"x.npy", crc_x, x_len), dtype=np.uint8)
    out[_LOCAL_LEN + x_len :] = np.frombuffer(_tail(crc_x, x_len, y_raw), dtype=np.uint8)
    return Encoded([out.data], pooled=[base])


def _stream(f: DataFile, rng: np.random.Generator, buf: np.ndarray) -> Stream | None:
    """``_encode``'s container, made as it is written: the x member's CRC-32 (in its local header, at the
    start) is known only after its data, so the header goes out with a zero CRC and is patched at the end."""
    head, n, y_raw = _parts(f)
    if n + len(head) + len(y_raw) + 1024 >= _LIMIT:
        return None  # np.savez's own container (zip64 sizes differ): encode
    x_len = len(head) + n
    crc_x = RandomCrc(crc32(head))  # from what made the bytes: no pass over them

    def chunks() -> Iterator[Buffer]:
        yield _local(b"x.npy", 0, x_len) + head
        for c in random_chunks(n, rng, buf, crc_x):
            yield c.data
        yield _tail(crc_x.value(), x_len, y_raw)

    total = _LOCAL_LEN + x_len + _LOCAL_LEN + len(y_raw) + _CD_LEN + 22
    return Stream(total, chunks(), lambda: [(0, _local(b"x.npy", crc_x.value(), x_len))])


class Npz(Format):
    name = "npz"
    heavy = True

    def predicted_size(self, ds: Dataset, dims: tuple[int, ...], dtype: str, position: int) -> int | None:
        spf = ds.num_samples_per_file
        return file_size((*dims, spf), dtype) + file_size((spf,), "int64") + ZIP_OVERHEAD

    def encode(self, f: DataFile, ds: Dataset, rng: np.random.Generator) -> Encoded:
        return _encode(f, ds, rng)

    def stream(self, f: DataFile, ds: Dataset, rng: np.random.Generator, buf: np.ndarray) -> Stream | None:
        return _stream(f, rng, buf)

    def decode(
        self, data: Buffer, f: DataFile, ds: Dataset, sidecars: Mapping[str, Buffer] | None = None
    ) -> Sequence[Any]:
        member = stored_member(data, "x.npy")
        if member is not None:  # the common case: a view of the fetched bytes, CRC checked as np.load does
            return Slices(view(member))
        with np.load(io.BytesIO(data)) as z:  # compressed or unusual containers: numpy's own reader
            return Slices(z["x"])


class _Reader(io.RawIOBase):
    """A read-only file over a buffer, without the copy ``io.BytesIO`` makes of anything but ``bytes``."""

    def __init__(self, data: Buffer) -> None:
        super().__init__()
        self._mv, self._pos = memoryview(data).cast("B"), 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = (0, self._pos, len(self._mv))[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, b: Any) -> int:
        chunk = self._mv[self._pos : self._pos + len(b)]
        n = len(chunk)
        memoryview(b).cast("B")[:n] = chunk
        self._pos += n
        return n


def stored_member(data: Buffer, name: str) -> memoryview | None:
    """The bytes of an uncompressed zip member as a view of ``data`` (None when it is absent or
    compressed). Its CRC-32 is checked like ``zipfile`` checks it on a full read (ZipError-style
    ``BadZipFile`` on a mismatch)."""
    with zipfile.ZipFile(_Reader(data)) as zf:
        try:
            info = zf.getinfo(name)
        except KeyError:
            return None
        if info.compress_type != zipfile.ZIP_STORED:
            return None
    mv = memoryview(data).cast("B")
    at = info.header_offset
    sig, nlen, elen = struct.unpack_from("<4s22xHH", mv, at)
    if sig != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"bad local header for {name}")
    start = at + 30 + nlen + elen
    member = mv[start : start + info.file_size]
    if len(member) != info.file_size or crc32(member) != info.CRC:
        raise zipfile.BadZipFile(f"Bad CRC-32 for file {name!r}")
    return member


FORMAT = Npz()
