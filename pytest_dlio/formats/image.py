"""jpeg/png: one Pillow-encoded uint8 (d1, d2) greyscale image per file; the reader decodes it."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_dlio.formats.base import DataFile, Encoded, Format
from pytest_dlio.randbytes import random_array
from pytest_dlio.storage.base import Buffer

if TYPE_CHECKING:
    from pytest_dlio.config.model import Dataset


class ImageFormat(Format):
    heavy = True

    def __init__(self, name: str, pil: str) -> None:
        self.name, self.pil = name, pil

    def dtype(self, ds: Dataset) -> str:
        return "uint8"  # DLIO forces uint8 pixels

    def encode(self, f: DataFile, ds: Dataset, rng: np.random.Generator) -> Encoded:
        from PIL import Image

        d1, d2 = (f.dims + (1,))[:2]
        pixels = random_array((d1, d2), "uint8", rng)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format=self.pil)
        return Encoded([buf.getbuffer()])

    def decode(
        self, data: Buffer, f: DataFile, ds: Dataset, sidecars: Mapping[str, Buffer] | None = None
    ) -> Sequence[Any]:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            pixels = np.asarray(img)
        return [pixels] * f.samples  # DLIO's image reader returns the one image for each sample


JPEG = ImageFormat("jpeg", "JPEG")
PNG = ImageFormat("png", "PNG")
