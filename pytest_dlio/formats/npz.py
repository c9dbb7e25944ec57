"""npz: ``np.savez(x=records(*dims, spf), y=[0]*spf)`` (stored, never compressed: dlio.md §1.8.5).

The zip container is assembled around the .npy members byte for byte as ``np.savez`` writes it
(forced zip64 local headers, fixed 1980-01-01 timestamps, CRC-32 of each member), as parts, so the
random payload is never copied; members of 4 GiB and more go through ``np.savez`` itself.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator, Mapping

import numpy as np

from pytest_dlio.config.model import Dataset
from pytest_dlio.formats import Encoded
from pytest_dlio.formats.npy import npy_bytes
from pytest_dlio.layout import DataFile
from pytest_dlio.storage.base import Buffer

try:  # ISA-L's CRC-32 is ~6x zlib's; the same checksum
    from isal.isal_zlib import crc32
except ImportError:  # pragma: no cover - the formats extra installs isal
    from zlib import crc32

_DOS_DATE = (0 << 9) | (1 << 5) | 1  # 1980-01-01, what numpy's ZipInfo carries
_VERSION = 45  # zip64
_ATTR = 0o600 << 16
_LIMIT = 0xFFFFFFFF


def _local(name: bytes, crc: int, size: int) -> bytes:
    head = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", _VERSION, 0, 0, 0, _DOS_DATE, crc, _LIMIT, _LIMIT,
                       len(name), 20)
    return head + name + struct.pack("<HHQQ", 1, 16, size, size)


def _central(name: bytes, crc: int, size: int, offset: int) -> bytes:
    return struct.pack("<4sBBHHHHHIIIHHHHHII", b"PK\x01\x02", _VERSION, 3, _VERSION, 0, 0, 0, _DOS_DATE, crc,
                       size, size, len(name), 0, 0, 0, 0, _ATTR, offset) + name


def zip_members(members: list[tuple[str, np.ndarray]]) -> list[Buffer]:
    """The parts of a stored zip holding ``members`` (name, uint8 content)."""
    parts: list[Buffer] = []
    central: list[bytes] = []
    offset = 0
    for name, content in members:
        raw = name.encode()
        crc = crc32(content)
        local = _local(raw, crc, content.nbytes)
        central.append(_central(raw, crc, content.nbytes, offset))
        parts += [local, memoryview(content)]
        offset += len(local) + content.nbytes
    cd = b"".join(central)
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(members), len(members), len(cd), offset, 0)
    return [*parts, cd + end]


def encode(f: DataFile, ds: Dataset, rng: np.random.Generator) -> Encoded:
    shape = (*f.dims, f.samples)
    pooled: list[np.ndarray] = []
    x = npy_bytes(shape, f.dtype, rng, pooled)
    y = io.BytesIO()
    np.save(y, np.array([0] * f.samples))
    if x.nbytes + y.tell() + 1024 >= _LIMIT:
        buf = io.BytesIO()
        arr = np.load(io.BytesIO(memoryview(x)))
        np.savez(buf, x=arr, y=[0] * f.samples)
        return Encoded([buf.getbuffer()])
    members = [("x.npy", x), ("y.npy", np.frombuffer(y.getvalue(), dtype=np.uint8))]
    return Encoded(zip_members(members), pooled=pooled)


def read_samples(data: Buffer, f: DataFile, ds: Dataset, sidecars: Mapping[str, Buffer] | None = None) -> Iterator:
    with np.load(io.BytesIO(data)) as z:
        x = z["x"]
    for i in range(x.shape[-1]):
        yield x[..., i]
