"""The dataset file plan, exactly as DLIO's generator lays it out (dlio.md §3.2). Pure: no I/O.

Keys are relative to the data folder: ``train/[sub/]{prefix}_{i:0W}_of_{N}.{ext}`` then ``valid/…``.
Per-file sample dims come from DLIO's own draw: legacy ``np.random.seed(10)`` then
``normal(dimension, dimension_stdev, 2*total_files)`` (``max(int(d), 1)``); file ``i`` of the combined
train+eval list uses draws ``2i`` and ``2i+1`` (or draw ``2i`` as a full shape when ``record_dims`` is set).
Everything format-specific (suffix, element type, sample shape, exact sizes, sidecars) comes from the
format (``formats/``); this module knows no format by name.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

from pytest_dlio.config.model import Dataset, WorkloadConfig
from pytest_dlio.formats import get_format
from pytest_dlio.formats.base import DataFile

__all__ = ["DataFile", "dataset_files", "files_for_rank", "planned_bytes", "sample_dims", "split_keys"]


def split_keys(ds: Dataset, split: str) -> list[str]:
    """DLIO's names for one split, in index order."""
    n, nsub = (
        (ds.num_files_train, ds.num_subfolders_train)
        if split == "train"
        else (ds.num_files_eval, ds.num_subfolders_eval)
    )
    width, sub_w, ext = len(str(n)), len(str(nsub)), get_format(ds.format).extension(ds)
    keys = []
    for i in range(n):
        name = f"{ds.file_prefix}_{i:0{width}d}_of_{n}.{ext}"
        keys.append(f"{split}/{i % nsub:0{sub_w}d}/{name}" if nsub > 1 else f"{split}/{name}")
    return keys


def sample_dims(ds: Dataset, total_files: int) -> list[tuple[int, ...]]:
    """One sample shape per file of the combined list, from DLIO's seeded draw (as the format shapes it)."""
    fmt = get_format(ds.format)
    # shaped once per distinct draw: a parquet schema's row size sums its columns, and dlrm's 1024 files
    # x 200 columns took 0.15 s a call (datagen, train and the checks each ask)
    shaped: dict[tuple[int, ...], tuple[int, ...]] = {}
    out = []
    for d in _drawn_dims(ds, total_files):
        got = shaped.get(d)
        if got is None:
            got = shaped[d] = fmt.dims(ds, d)
        out.append(got)
    return out


def _drawn_dims(ds: Dataset, total_files: int) -> list[tuple[int, ...]]:
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
        return shapes
    dimension = int(math.sqrt(rl))
    stdev = ds.record_length_bytes_stdev / 2.0 / math.sqrt(rl) if rl > 0 else 0.0
    if stdev > 0:
        flat = [max(int(d), 1) for d in draws.normal(dimension, stdev, 2 * total_files)]
    else:
        flat = [dimension] * (2 * total_files)
    return [(flat[2 * i], flat[2 * i + 1]) for i in range(total_files)]


def plan_token(ds: Dataset, dims: tuple[int, ...], dtype: str) -> str:
    """A short token of what one file's bytes encode: its samples and their shape, and the dataset
    settings a format's encoder reads (its parquet, hdf5 and compression settings). Files of one plan
    differ only by their seeds; a file whose token differs was written for other settings."""
    what = (
        ds.format,
        ds.num_samples_per_file,
        dims,
        dtype,
        ds.record_length_bytes_resize,
        ds.compression,
        ds.compression_level,
        ds.enable_chunking,
        ds.chunk_size,
        # what the parquet writer reads (not the read flags or read_mode: those are the reader's)
        tuple((c.name, c.dtype, c.size) for c in ds.parquet.columns),
        ds.parquet.row_group_size,
        ds.parquet.partition_by,
        ds.parquet.generation_batch_size,
        ds.parquet.use_s3dlio_gen,
        ds.hdf5,
    )
    return f"p{zlib.crc32(repr(what).encode()):08x}"


def dataset_files(cfg: WorkloadConfig) -> list[DataFile]:
    """Every file DLIO generates for ``cfg``: train files then eval files (DLIO's list order), with the
    sizes and sidecars the format predicts (ConfigError for a format without a generator)."""
    ds = cfg.dataset
    fmt = get_format(ds.format)
    keys = [("train", i, k) for i, k in enumerate(split_keys(ds, "train"))]
    keys += [("valid", i, k) for i, k in enumerate(split_keys(ds, "valid"))]
    dims = sample_dims(ds, len(keys))
    dtype = fmt.dtype(ds)
    files = []
    for pos, ((split, i, key), d) in enumerate(zip(keys, dims, strict=True)):
        size = fmt.predicted_size(ds, d, dtype, pos)
        files.append(
            DataFile(
                key=key,
                split=split,
                index=i,
                position=pos,
                dims=d,
                dtype=dtype,
                samples=ds.num_samples_per_file,
                expected_size=size,
                sidecars=fmt.sidecar_keys(ds, key, split),
                sidecar_sizes=fmt.sidecar_sizes(ds, d, dtype),
                plan="" if size is not None else plan_token(ds, d, dtype),
            )
        )
    return files


def files_for_rank(files: list[DataFile], rank: int, size: int) -> list[DataFile]:
    """Rank ``rank`` of ``size`` writes list positions rank, rank+size, … (DLIO's split)."""
    return files[rank::size]


def planned_bytes(files: list[DataFile]) -> int:
    """Bytes the files will take (payload size when the encoded size is unknown)."""
    return sum(f.expected_size if f.expected_size is not None else f.raw_bytes for f in files)
