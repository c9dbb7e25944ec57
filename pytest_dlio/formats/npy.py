"""npy: ``np.save(records)`` with records of shape (*dims, spf); the reader slices (as ``np.load`` then
``x[..., i]``, but as a zero-copy view of the fetched bytes, so decoding is light and runs inline).

Encoding fills one buffer in place (header, then random data at its 64-byte aligned offset): the bytes
are exactly ``np.save``'s, without generating into one array and copying into another.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_dlio.formats.base import DataFile, Encoded, Format, Slices
from pytest_dlio.randbytes import POOL, fill_random
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


def npy_bytes(shape: tuple[int, ...], dtype: str, rng: np.random.Generator,
              pooled: list[np.ndarray] | None = None) -> np.ndarray:
    """A whole .npy file (uint8) holding random data of ``shape``/``dtype`` (in a POOL buffer when
    ``pooled`` is given: the buffer is appended to it)."""
    head = header(shape, dtype)
    n = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    if pooled is None:
        base = np.empty(-(-(len(head) + n) // 8), dtype=np.uint64).view(np.uint8)
    else:
        base = POOL.take(len(head) + n)
        pooled.append(base)
    out = base[:len(head) + n]
    out[:len(head)] = np.frombuffer(head, dtype=np.uint8)
    fill_random(out[len(head):], rng)
    return out


def view(data: Buffer) -> np.ndarray:
    """An .npy file's array as a zero-copy view of the bytes (what np.load does, minus the copy)."""
    f = io.BytesIO(data)
    version = np.lib.format.read_magic(f)
    fmt = np.lib.format
    shape, fortran, dtype = (fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0)(f)
    count = int(np.prod(shape)) if shape else 1
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=f.tell())
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

    def decode(self, data: Buffer, f: DataFile, ds: Dataset,
               sidecars: Mapping[str, Buffer] | None = None) -> Sequence[Any]:
        return Slices(view(data))


FORMAT = Npy()
