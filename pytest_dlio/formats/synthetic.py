"""synthetic: DLIO's placeholder file holding its list position as text; the loader makes data itself."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_dlio.formats.base import DataFile, Encoded, Format
from pytest_dlio.storage.base import Buffer

if TYPE_CHECKING:
    from pytest_dlio.config.model import Dataset


class Synthetic(Format):
    name = "synthetic"

    def predicted_size(self, ds: Dataset, dims: tuple[int, ...], dtype: str, position: int) -> int | None:
        return len(str(position))

    def encode(self, f: DataFile, ds: Dataset, rng: np.random.Generator) -> Encoded:
        return Encoded([str(f.position).encode()])

    def decode(
        self, data: Buffer, f: DataFile, ds: Dataset, sidecars: Mapping[str, Buffer] | None = None
    ) -> Sequence[Any]:
        return [np.zeros(f.dims, dtype=np.uint8)] * f.samples


FORMAT = Synthetic()
