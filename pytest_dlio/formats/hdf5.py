"""hdf5: datasets ``records_k`` (spf, *dims) and ``labels``; chunks, maxshape, gzip/lzf (libver latest).

``records`` is a hard link to ``records_0`` (no second copy of the data): DLIO 2.0.0's reader and generator
use that one dataset name (``h5['records']``), HEAD's use ``records_{k}``; both read our files."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_dlio.errors import ConfigError
from pytest_dlio.formats.base import DataFile, Encoded, Format
from pytest_dlio.randbytes import random_array
from pytest_dlio.storage.base import Buffer

if TYPE_CHECKING:
    from pytest_dlio.config.model import Dataset


def dataset_options(ds: Dataset, shape: tuple[int, ...]) -> dict[str, Any]:
    """h5py create_dataset keywords DLIO passes ('none' means no filter, unlike DLIO's raw string)."""
    kw: dict[str, Any] = {}
    if ds.compression == "gzip":
        kw.update(compression="gzip", compression_opts=ds.compression_level)
    elif ds.compression == "lzf":
        kw["compression"] = "lzf"
    elif ds.compression not in ("none", "", None):
        raise ConfigError(
            f"dataset.compression: {ds.compression!r} is not an HDF5 filter; use none, gzip or lzf"
        )
    if ds.hdf5.chunk_dims:
        kw["chunks"] = tuple(ds.hdf5.chunk_dims)
    if ds.hdf5.max_shape:
        kw["maxshape"] = (shape[0], *ds.hdf5.max_shape)
    return kw


def _encode(f: DataFile, ds: Dataset, rng: np.random.Generator) -> Encoded:
    import h5py  # imported on use: h5py takes ~0.3 s to import

    shape = (f.samples, *f.dims)
    records = random_array(shape, f.dtype, rng)
    kw = dataset_options(ds, shape)
    buf = io.BytesIO()
    try:
        with h5py.File(buf, "w", libver="latest") as h5:
            for k in range(max(1, ds.hdf5.num_dset_per_record)):
                h5.create_dataset(f"records_{k}", shape, dtype=f.dtype, data=records, **kw)
            h5["records"] = h5["records_0"]  # DLIO 2.0.0's name for it (a link: no extra bytes of data)
            h5.create_dataset("labels", data=[0] * f.samples)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"dataset.hdf5: h5py rejects chunk_dims/max_shape {kw} for records {shape}: {exc}; "
            "fix dataset.hdf5.chunk_dims or dataset.hdf5.max_shape"
        ) from None
    return Encoded([buf.getbuffer()])


class Hdf5(Format):
    name = "hdf5"
    heavy = True

    def dims(self, ds: Dataset, drawn: tuple[int, ...]) -> tuple[int, ...]:
        """DLIO splits explicit ``record_dims`` over ``num_dset_per_record`` datasets along the first axis."""
        if ds.record_dims and ds.hdf5.num_dset_per_record > 1:
            return (int(drawn[0] / ds.hdf5.num_dset_per_record), *drawn[1:])
        return drawn

    def encode(self, f: DataFile, ds: Dataset, rng: np.random.Generator) -> Encoded:
        return _encode(f, ds, rng)

    def decode(
        self, data: Buffer, f: DataFile, ds: Dataset, sidecars: Mapping[str, Buffer] | None = None
    ) -> Sequence[Any]:
        import h5py

        with h5py.File(io.BytesIO(data), "r") as h5:
            dsets = [h5[k] for k in sorted(k for k in h5 if k.startswith("records_"))] or [h5["records"]]
            n = dsets[0].shape[0]
            return [dsets[0][i] if len(dsets) == 1 else [d[i] for d in dsets] for i in range(n)]


FORMAT = Hdf5()
