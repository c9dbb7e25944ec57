"""csv: spf identical rows of prod(dims) random values, no header/index; optional gz/bz2/zip/xz."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zipfile
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_dlio.errors import ConfigError
from pytest_dlio.formats.base import DataFile, Encoded, Format
from pytest_dlio.randbytes import random_array
from pytest_dlio.storage.base import Buffer

if TYPE_CHECKING:
    from pytest_dlio.config.model import Dataset

#: pandas' file suffix per compression; DLIO appends it to the ``.csv`` name
CSV_SUFFIX = {"gzip": ".gz", "bz2": ".bz2", "zip": ".zip", "xz": ".xz"}


def _text(f: DataFile, rng: np.random.Generator) -> bytes:
    row = random_array((int(np.prod(f.dims)),), f.dtype, rng)
    if row.dtype.kind == "f":
        row = np.nan_to_num(row, nan=0.0, posinf=1.0, neginf=-1.0)
    line = (",".join(map(str, row.tolist())) + "\n").encode()
    return line * f.samples  # DLIO writes the same record spf times


def compress(raw: bytes, method: str, inner: str) -> bytes:
    """pandas' ``compression={"method": m}`` output for m in gzip/bz2/zip/xz."""
    if method == "gzip":
        return gzip.compress(raw, mtime=0)
    if method == "bz2":
        return bz2.compress(raw)
    if method == "xz":
        return lzma.compress(raw)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(inner, raw)
    return buf.getvalue()


def _encode(f: DataFile, ds: Dataset, rng: np.random.Generator) -> Encoded:
    raw = _text(f, rng)
    if ds.compression in CSV_SUFFIX:
        name = f.key.rsplit("/", 1)[-1].removesuffix(CSV_SUFFIX[ds.compression])
        return Encoded([compress(raw, ds.compression, name)])
    if ds.compression not in ("none", "", None):
        raise ConfigError(
            f"dataset.compression: {ds.compression!r} does not apply to csv; use none, gzip, bz2, zip or xz"
        )
    return Encoded([raw])


def decompress(data: Buffer, method: str) -> bytes:
    if method == "gzip":
        return gzip.decompress(data)
    if method == "bz2":
        return bz2.decompress(data)
    if method == "xz":
        return lzma.decompress(data)
    if method == "zip":
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return z.read(z.namelist()[0])
    return bytes(data)


class Csv(Format):
    name = "csv"
    heavy = True

    def extension(self, ds: Dataset) -> str:
        return "csv" + CSV_SUFFIX.get(ds.compression, "")

    def encode(self, f: DataFile, ds: Dataset, rng: np.random.Generator) -> Encoded:
        return _encode(f, ds, rng)

    def decode(
        self, data: Buffer, f: DataFile, ds: Dataset, sidecars: Mapping[str, Buffer] | None = None
    ) -> Sequence[Any]:
        raw = decompress(data, ds.compression if ds.compression in CSV_SUFFIX else "none")
        rows = np.loadtxt(io.BytesIO(raw), delimiter=",", ndmin=2, dtype=f.dtype)
        return list(rows)  # one flat row per sample


FORMAT = Csv()
