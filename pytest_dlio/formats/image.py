"""jpeg/png: one Pillow-encoded uint8 (d1, d2) greyscale image per file; the reader decodes it."""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping

import numpy as np
from PIL import Image

from pytest_dlio.config.model import Dataset
from pytest_dlio.formats import Encoded
from pytest_dlio.layout import DataFile
from pytest_dlio.randbytes import random_array
from pytest_dlio.storage.base import Buffer

_PIL = {"jpeg": "JPEG", "png": "PNG"}


def encode(f: DataFile, ds: Dataset, rng: np.random.Generator) -> Encoded:
    d1, d2 = (f.dims + (1,))[:2]
    pixels = random_array((d1, d2), "uint8", rng)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=_PIL[ds.format])
    return Encoded([buf.getbuffer()])


def read_samples(data: Buffer, f: DataFile, ds: Dataset, sidecars: Mapping[str, Buffer] | None = None) -> Iterator:
    with Image.open(io.BytesIO(data)) as img:
        pixels = np.asarray(img)
    for _ in range(f.samples):
        yield pixels
