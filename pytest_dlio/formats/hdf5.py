"""hdf5: datasets ``records_k`` (spf, *dims) and ``labels``; chunks, maxshape, gzip/lzf (libver latest)."""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from typing import Any

import h5py
import numpy as np

from pytest_dlio.config.model import Dataset
from pytest_dlio.errors import ConfigError
from pytest_dlio.formats import Encoded
from pytest_dlio.layout import DataFile
from pytest_dlio.randbytes import random_array
from pytest_dlio.storage.base import Buffer


def dataset_options(ds: Dataset, shape: tuple[int, ...]) -> dict[str, Any]:
    """h5py create_dataset keywords DLIO passes ('none' means no filter, unlike DLIO's raw string)."""
    kw: dict[str, Any] = {}
    if ds.compression == "gzip":
        kw.update(compression="gzip", compression_opts=ds.compression_level)
    elif ds.compression == "lzf":
        kw["compression"] = "lzf"
    elif ds.compression not in ("none", "", None):
        raise ConfigError(f"dataset.compression: {ds.compression!r} is not an HDF5 filter; use none, gzip or lzf")
    if ds.hdf5.chunk_dims:
        kw["chunks"] = tuple(ds.hdf5.chunk_dims)
    if ds.hdf5.max_shape:
        kw["maxshape"] = (shape[0], *ds.hdf5.max_shape)
    return kw


def encode(f: DataFile, ds: Dataset, rng: np.random.Generator) -> Encoded:
    shape = (f.samples, *f.dims)
    records = random_array(shape, f.dtype, rng)
    kw = dataset_options(ds, shape)
    buf = io.BytesIO()
    try:
        with h5py.File(buf, "w", libver="latest") as h5:
            for k in range(max(1, ds.hdf5.num_dset_per_record)):
                h5.create_dataset(f"records_{k}", shape, dtype=f.dtype, data=records, **kw)
            h5.create_dataset("labels", data=[0] * f.samples)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"dataset.hdf5: h5py rejects chunk_dims/max_shape {kw} for records {shape}: {exc}; "
                          "fix dataset.hdf5.chunk_dims or dataset.hdf5.max_shape") from None
    return Encoded([buf.getbuffer()])


def read_samples(data: Buffer, f: DataFile, ds: Dataset, sidecars: Mapping[str, Buffer] | None = None) -> Iterator:
    with h5py.File(io.BytesIO(data), "r") as h5:
        names = sorted(k for k in h5 if k.startswith("records_"))
        n = h5[names[0]].shape[0]
        for i in range(n):
            yield h5[names[0]][i] if len(names) == 1 else [h5[k][i] for k in names]
