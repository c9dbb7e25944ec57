"""npy: ``np.save(records)`` with records of shape (*dims, spf); the reader ``np.load``s and slices."""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping

import numpy as np

from pytest_dlio.config.model import Dataset
from pytest_dlio.formats import Encoded
from pytest_dlio.layout import DataFile
from pytest_dlio.randbytes import random_array
from pytest_dlio.storage.base import Buffer


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


def records(f: DataFile, rng: np.random.Generator) -> np.ndarray:
    """DLIO's records tensor for a file: (*dims, spf)."""
    return random_array((*f.dims, f.samples), f.dtype, rng)


def encode(f: DataFile, ds: Dataset, rng: np.random.Generator) -> Encoded:
    arr = records(f, rng)
    return Encoded([header(arr.shape, f.dtype), memoryview(arr.reshape(-1).view(np.uint8))])


def read_samples(data: Buffer, f: DataFile, ds: Dataset, sidecars: Mapping[str, Buffer] | None = None) -> Iterator:
    x = np.load(io.BytesIO(data))
    for i in range(x.shape[-1]):
        yield x[..., i]
