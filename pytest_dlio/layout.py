"""The dataset file plan, exactly as DLIO's generator lays it out (dlio.md §3.2). Pure: no I/O.

Keys are relative to the data folder: ``train/[sub/]{prefix}_{i:0W}_of_{N}.{ext}`` then ``valid/…``.
Per-file sample dims come from DLIO's own draw: legacy ``np.random.seed(10)`` then
``normal(dimension, dimension_stdev, 2*total_files)`` (``max(int(d), 1)``); file ``i`` of the combined
train+eval list uses draws ``2i`` and ``2i+1`` (or draw ``2i`` as a full shape when ``record_dims`` is set).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pytest_dlio.config.model import Dataset, WorkloadConfig
from pytest_dlio.errors import ConfigError

#: Formats DLIO can generate (``hdf5_opt`` is an enum value without a generator).
GENERATED = ("npz", "npy", "hdf5", "csv", "jpeg", "png", "tfrecord", "indexed_binary",
             "mmap_indexed_binary", "parquet", "synthetic")
CSV_SUFFIX = {"gzip": ".gz", "bz2": ".bz2", "zip": ".zip", "xz": ".xz"}
#: Formats whose encoded size depends on the content (checked through a size marker instead).
UNPREDICTABLE = ("hdf5", "csv", "jpeg", "png", "parquet")
#: Where datagen keeps the encoded size of files whose size can't be computed (see phases/datagen.py).
MARKER_PREFIX = ".dlio/sizes/"


@dataclass(frozen=True)
class DataFile:
    """One generated file: where it goes, what it holds and how big it will be."""

    key: str  # relative to the data folder
    split: str  # "train" or "valid"
    index: int  # index within its split (the number in the name)
    position: int  # index in DLIO's combined list (train files then eval files): rank split and seeds
    dims: tuple[int, ...]  # one sample's shape
    dtype: str  # element type
    samples: int  # samples in the file
    expected_size: int | None  # exact bytes of ``key``, None when only known after encoding
    sidecars: tuple[str, ...] = ()  # extra keys written with it (tfrecord index, indexed_binary idx)

    @property
    def sample_bytes(self) -> int:
        return math.prod(self.dims) * np.dtype(self.dtype).itemsize

    @property
    def raw_bytes(self) -> int:
        """Payload bytes before any container overhead (spf × sample bytes)."""
        return self.sample_bytes * self.samples


def check_format(fmt: str) -> None:
    """ConfigError unless DLIO can generate ``fmt``."""
    if fmt not in GENERATED:
        raise ConfigError(f"dataset.format: {fmt!r} has no data generator; use one of {', '.join(GENERATED)}")


def extension(ds: Dataset) -> str:
    """The file name suffix after the dot: the format name (+ csv compression suffix)."""
    if ds.format == "csv" and ds.compression in CSV_SUFFIX:
        return "csv" + CSV_SUFFIX[ds.compression]
    return ds.format


def split_keys(ds: Dataset, split: str) -> list[str]:
    """DLIO's names for one split, in index order."""
    n, nsub = (ds.num_files_train, ds.num_subfolders_train) if split == "train" else (
        ds.num_files_eval, ds.num_subfolders_eval)
    width, sub_w, ext = len(str(n)), len(str(nsub)), extension(ds)
    keys = []
    for i in range(n):
        name = f"{ds.file_prefix}_{i:0{width}d}_of_{n}.{ext}"
        keys.append(f"{split}/{i % nsub:0{sub_w}d}/{name}" if nsub > 1 else f"{split}/{name}")
    return keys


def element_type(ds: Dataset) -> str:
    """DLIO forces uint8 for images."""
    return "uint8" if ds.format in ("jpeg", "png") else str(np.dtype(ds.record_element_type))


def sample_dims(ds: Dataset, total_files: int) -> list[tuple[int, ...]]:
    """One sample shape per file of the combined list, from DLIO's seeded draw."""
    rl = float(ds.record_length_bytes)
    draws = np.random.RandomState(10)  # == np.random.seed(10) on the legacy global generator
    if ds.record_dims:
        dims = [int(d) for d in ds.record_dims]
        stdev = ds.record_length_bytes_stdev / 2.0 / rl if rl else 0.0
        if stdev > 0:
            values = draws.normal(loc=dims, scale=stdev, size=(2 * total_files, len(dims)))
            drawn = np.maximum(values.astype(int), 1).tolist()
            shapes = [tuple(int(v) for v in drawn[2 * i]) for i in range(total_files)]
        else:
            shapes = [tuple(dims)] * total_files
        if ds.format == "hdf5" and ds.hdf5.num_dset_per_record > 1:
            shapes = [(int(s[0] / ds.hdf5.num_dset_per_record), *s[1:]) for s in shapes]
        return shapes
    dimension = int(math.sqrt(rl))
    stdev = ds.record_length_bytes_stdev / 2.0 / math.sqrt(rl) if rl > 0 else 0.0
    if stdev > 0:
        flat = [max(int(d), 1) for d in draws.normal(dimension, stdev, 2 * total_files)]
    else:
        flat = [dimension] * (2 * total_files)
    return [(flat[2 * i], flat[2 * i + 1]) for i in range(total_files)]


def npy_header_len(shape: tuple[int, ...], dtype: str) -> int:
    """Bytes of the header ``np.save`` writes for an array of ``shape``/``dtype``."""
    from pytest_dlio.formats.npy import header

    return len(header(shape, dtype))


NPZ_ZIP_OVERHEAD = 234  # np.savez, 2 members x.npy/y.npy with forced zip64 local headers + central dir


def varint_len(v: int) -> int:
    return max(1, (v.bit_length() + 6) // 7)


def tfrecord_example_len(payload: int, size_value: int) -> int:
    """Serialized tf.train.Example with ``image`` (payload bytes) and ``size`` (one int64)."""
    blist = 1 + varint_len(payload) + payload
    f_img = 1 + varint_len(blist) + blist
    e_img = (1 + 1 + 5) + 1 + varint_len(f_img) + f_img
    packed = varint_len(size_value)
    ilist = 1 + varint_len(packed) + packed
    f_size = 1 + varint_len(ilist) + ilist
    e_size = (1 + 1 + 4) + 1 + varint_len(f_size) + f_size
    features = 1 + varint_len(e_size) + e_size + 1 + varint_len(e_img) + e_img
    return 1 + varint_len(features) + features


def predicted_size(ds: Dataset, dims: tuple[int, ...], dtype: str, position: int) -> int | None:
    """Exact bytes DLIO's generator writes for one file, or None when content-dependent."""
    spf = ds.num_samples_per_file
    sample = math.prod(dims) * np.dtype(dtype).itemsize
    fmt = ds.format
    if fmt == "npy":
        return npy_header_len((*dims, spf), dtype) + sample * spf
    if fmt == "npz":
        return (npy_header_len((*dims, spf), dtype) + sample * spf + npy_header_len((spf,), "int64") + 8 * spf
                + NPZ_ZIP_OVERHEAD)
    if fmt in ("indexed_binary", "mmap_indexed_binary"):
        return sample * spf
    if fmt == "tfrecord":
        return spf * (16 + tfrecord_example_len(sample, sample))
    if fmt == "synthetic":
        return len(str(position))
    return None


def sidecar_keys(ds: Dataset, key: str, split: str) -> tuple[str, ...]:
    if ds.format == "tfrecord":
        return (f"index/{split}/{key.rsplit('/', 1)[-1]}.idx",)
    if ds.format in ("indexed_binary", "mmap_indexed_binary"):
        return (f"{key}.off.idx", f"{key}.sz.idx")
    return ()


def parquet_row_bytes(ds: Dataset) -> int:
    """Payload bytes of one row in parquet column-schema mode (unknown dtypes count as float32)."""
    total = 0
    for c in ds.parquet.columns:
        if c.dtype in ("string", "binary"):
            total += max(1, c.size)
        elif c.dtype == "bool":
            total += 1
        else:
            try:
                item = np.dtype(c.dtype).itemsize
            except TypeError:
                item = 4
            total += item * max(1, c.size)
    return total


def dataset_files(cfg: WorkloadConfig) -> list[DataFile]:
    """Every file DLIO generates for ``cfg``: train files then eval files (DLIO's list order).

    In parquet column-schema mode a sample is one row, so ``dims`` is ``(row bytes,)`` of uint8.
    """
    ds = cfg.dataset
    check_format(ds.format)
    keys = [("train", i, k) for i, k in enumerate(split_keys(ds, "train"))]
    keys += [("valid", i, k) for i, k in enumerate(split_keys(ds, "valid"))]
    dims = sample_dims(ds, len(keys))
    if ds.format == "parquet" and ds.parquet.columns:
        dims = [(parquet_row_bytes(ds),)] * len(keys)
    dtype = element_type(ds)
    files = []
    for pos, ((split, i, key), d) in enumerate(zip(keys, dims, strict=True)):
        files.append(DataFile(key=key, split=split, index=i, position=pos, dims=d, dtype=dtype,
                              samples=ds.num_samples_per_file, expected_size=predicted_size(ds, d, dtype, pos),
                              sidecars=sidecar_keys(ds, key, split)))
    return files


def files_for_rank(files: list[DataFile], rank: int, size: int) -> list[DataFile]:
    """Rank ``rank`` of ``size`` writes list positions rank, rank+size, … (DLIO's split)."""
    return files[rank::size]


def planned_bytes(files: list[DataFile]) -> int:
    """Bytes the files will take (payload size when the encoded size is unknown)."""
    return sum(f.expected_size if f.expected_size is not None else f.raw_bytes for f in files)
