"""synthetic: DLIO's placeholder file holding its list position as text; the loader makes data itself."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from pytest_dlio.config.model import Dataset
from pytest_dlio.formats import Encoded
from pytest_dlio.layout import DataFile
from pytest_dlio.storage.base import Buffer


def encode(f: DataFile, ds: Dataset, rng: np.random.Generator) -> Encoded:
    return Encoded([str(f.position).encode()])


def read_samples(data: Buffer, f: DataFile, ds: Dataset, sidecars: Mapping[str, Buffer] | None = None) -> Iterator:
    sample = np.zeros(f.dims, dtype=np.uint8)
    for _ in range(f.samples):
        yield sample
