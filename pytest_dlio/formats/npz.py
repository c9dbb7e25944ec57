"""npz: ``np.savez(x=records(*dims, spf), y=[0]*spf)`` (stored, never compressed: dlio.md §1.8.5)."""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping

import numpy as np

from pytest_dlio.config.model import Dataset
from pytest_dlio.formats import Encoded
from pytest_dlio.formats.npy import records
from pytest_dlio.layout import DataFile
from pytest_dlio.storage.base import Buffer


def encode(f: DataFile, ds: Dataset, rng: np.random.Generator) -> Encoded:
    buf = io.BytesIO()
    np.savez(buf, x=records(f, rng), y=[0] * f.samples)
    return Encoded([buf.getbuffer()])


def read_samples(data: Buffer, f: DataFile, ds: Dataset, sidecars: Mapping[str, Buffer] | None = None) -> Iterator:
    with np.load(io.BytesIO(data)) as z:
        x = z["x"]
    for i in range(x.shape[-1]):
        yield x[..., i]
