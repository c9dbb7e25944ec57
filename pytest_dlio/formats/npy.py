"""npy: ``np.save(records)`` with records of shape (*dims, spf); the reader slices (as ``np.load`` then
``x[..., i]``, but as a zero-copy view of the fetched bytes, so decoding is light and runs inline).

Encoding fills one buffer in place (header, then random data at its 64-byte aligned offset): the bytes
are exactly ``np.save``'s, without generating into one array and copying into another. Streaming (datagen on
local files) yields the header, then the random data one small reused buffer at a time.
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_dlio.formats.base import DataFile, Encoded, Format, Slices, Stream
from pytest_dlio.randbytes import POOL, fill_random, random_chunks
from pytest_dlio.storage.base import Buffer

if TYPE_CHECKING:
    from pytest_dlio.config.model import Dataset


def header(shape: tuple[int, ...], dtype: str) -> bytes:
    """The header ``np.save`` writes for a C-order array."""
    d = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    buf = io.BytesIO()
    try:
        np.lib.format.write_array_header_1_0(buf, d)
    except ValueError:
        buf = io.BytesIO()
        np.lib.format.write_array_header_2_0(buf, d)
    return buf.getvalue()


def npy_bytes(
    shape: tuple[int, ...], dtype: str, rng: np.random.Generator, pooled: list[np.ndarray] | None = None
) -> np.ndarray:
    """A whole .npy file (uint8) holding random data of ``shape``/``dtype`` (in a POOL buffer when
    ``pooled`` is given: the buffer is appended to it)."""
    head = header(shape, dtype)
    n = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    if pooled is None:
        base = np.empty(-(-(len(head) + n) // 8), dtype=np.uint64).view(np.uint8)
    else:
        base = POOL.take(len(head) + n)
        pooled.append(base)
    out = base[: len(head) + n]
    out[: len(head)] = np.frombuffer(head, dtype=np.uint8)
    fill_random(out[len(head) :], rng)
    return out


_MAGIC = b"\x93NUMPY"
_HEADERS: dict[bytes, tuple[tuple[int, ...], bool, np.dtype, int]] = {}  # header bytes -> parsed


def _parse(head: bytes) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    f = io.BytesIO(head)
    version = np.lib.format.read_magic(f)
    fmt = np.lib.format
    shape, fortran, dtype = (fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0)(f)
    return shape, fortran, dtype, f.tell()


def view(data: Buffer) -> np.ndarray:
    """An .npy file's array as a zero-copy view of the bytes (what np.load does, minus the copy).

    A dataset's files share a few headers; each distinct header is parsed once (numpy parses it with
    ``ast.literal_eval``, about as costly as reading a small record), then looked up by its bytes.
    """
    mv = memoryview(data).cast("B")
    head: bytes | None = None
    if len(mv) >= 10 and mv[:6] == _MAGIC:
        major = mv[6]
        end = (
            10 + int.from_bytes(mv[8:10], "little") if major == 1 else 12 + int.from_bytes(mv[8:12], "little")
        )
        head = bytes(mv[:end])
    parsed = _HEADERS.get(head) if head is not None else None
    if parsed is None:
        parsed = _parse(head if head is not None else bytes(mv[:16]))  # not npy: numpy says why
        if head is not None and len(_HEADERS) < 256:
            _HEADERS[head] = parsed
    shape, fortran, dtype, offset = parsed
    count = math.prod(shape)
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    return arr.reshape(shape, order="F" if fortran else "C")


def file_size(shape: tuple[int, ...], dtype: str) -> int:
    """Bytes of the .npy file ``np.save`` writes for an array of ``shape``/``dtype``."""
    return len(header(shape, dtype)) + int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize


class Npy(Format):
    name = "npy"

    def predicted_size(self, ds: Dataset, dims: tuple[int, ...], dtype: str, position: int) -> int | None:
        return file_size((*dims, ds.num_samples_per_file), dtype)

    def encode(self, f: DataFile, ds: Dataset, rng: np.random.Generator) -> Encoded:
        pooled: list[np.ndarray] = []
        return Encoded([npy_bytes((*f.dims, f.samples), f.dtype, rng, pooled).data], pooled=pooled)

    def stream(self, f: DataFile, ds: Dataset, rng: np.random.Generator, buf: np.ndarray) -> Stream:
        shape = (*f.dims, f.samples)
        head = header(shape, f.dtype)
        n = int(np.prod(shape, dtype=np.int64)) * np.dtype(f.dtype).itemsize
        return Stream(len(head) + n, itertools.chain((head,), (c.data for c in random_chunks(n, rng, buf))))

    def decode(
        self, data: Buffer, f: DataFile, ds: Dataset, sidecars: Mapping[str, Buffer] | None = None
    ) -> Sequence[Any]:
        return Slices(view(data))


FORMAT = Npy()
