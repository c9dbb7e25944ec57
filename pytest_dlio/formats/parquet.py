"""parquet (MLPerf Storage v3 dialect, mlperf_v3.md §5): one sample = one row, pyarrow writer.

Column-schema mode when ``dataset.parquet.columns`` is set (scalar types, FixedSizeList when size > 1,
unknown dtypes as FixedSizeList<float32>), else one ``data`` column FixedSizeList<uint8>[prod(dims)].
Rows are written in batches of ``generation_batch_size`` (0: ``row_group_size``), each batch with
``row_group_size``, so a batch that is not a multiple gives partial row groups, as DLIO does.
Uncompressed unless ``dataset.compression`` names a real parquet codec.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pytest_dlio.config.model import Dataset, ParquetColumn
from pytest_dlio.formats import Encoded
from pytest_dlio.layout import DataFile
from pytest_dlio.randbytes import random_array, random_bytes
from pytest_dlio.storage.base import Buffer

NUMERIC = ("uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64",
           "float16", "float32", "float64")
CODECS = ("snappy", "gzip", "brotli", "lz4", "zstd")


def column_type(col: ParquetColumn) -> pa.DataType:
    if col.dtype in ("string", "binary", "bool"):
        return {"string": pa.string(), "binary": pa.binary(), "bool": pa.bool_()}[col.dtype]
    dtype = col.dtype if col.dtype in NUMERIC else "float32"
    scalar = pa.from_numpy_dtype(np.dtype(dtype))
    if col.size > 1 or col.dtype not in NUMERIC:
        return pa.list_(scalar, max(1, col.size))
    return scalar


def _column(col: ParquetColumn, rows: int, rng: np.random.Generator) -> pa.Array:
    size = max(1, col.size)
    if col.dtype in ("string", "binary"):
        raw = random_bytes(rows * size, rng)
        if col.dtype == "string":
            raw = (raw % 26 + 97).astype(np.uint8)  # ascii a-z
        offsets = pa.array(np.arange(rows + 1, dtype=np.int32) * size)
        cls = pa.StringArray if col.dtype == "string" else pa.BinaryArray
        return cls.from_buffers(rows, offsets.buffers()[1], pa.py_buffer(raw.tobytes()))
    if col.dtype == "bool":
        return pa.array(random_array((rows,), "bool", rng))
    dtype = col.dtype if col.dtype in NUMERIC else "float32"
    values = pa.array(random_array((rows * size,), dtype, rng))
    if isinstance(column_type(col), pa.FixedSizeListType):
        return pa.FixedSizeListArray.from_arrays(values, size)
    return values


def columns(f: DataFile, ds: Dataset) -> tuple[ParquetColumn, ...]:
    """The schema as columns (legacy mode: one uint8 ``data`` column of the sample size)."""
    if ds.parquet.columns:
        return ds.parquet.columns
    return (ParquetColumn(name="data", dtype="uint8", size=max(1, f.sample_bytes)),)


def codec(ds: Dataset) -> str:
    return ds.compression if ds.compression in CODECS else "NONE"


def encode(f: DataFile, ds: Dataset, rng: np.random.Generator) -> Encoded:
    cols = columns(f, ds)
    schema = pa.schema([pa.field(c.name, column_type(c)) for c in cols])
    rgs = max(1, ds.parquet.row_group_size)
    batch = ds.parquet.generation_batch_size or rgs
    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(sink, schema, compression=codec(ds)) as writer:
        done = 0
        while done < f.samples:
            n = min(batch, f.samples - done)
            table = pa.table([_column(c, n, rng) for c in cols], schema=schema)
            writer.write_table(table, row_group_size=rgs)
            done += n
    return Encoded([memoryview(sink.getvalue())])


def selected(ds: Dataset) -> list[str] | None:
    """Columns the reader reads: those with ``read: true`` (None = all)."""
    cols = ds.parquet.columns
    if not cols or all(c.read for c in cols):
        return None
    return [c.name for c in cols if c.read]


def read_samples(data: Buffer, f: DataFile, ds: Dataset, sidecars: Mapping[str, Buffer] | None = None) -> Iterator:
    pf = pq.ParquetFile(pa.BufferReader(pa.py_buffer(data)))
    cols = selected(ds)
    for rg in range(pf.num_row_groups):
        yield pf.read_row_group(rg, columns=cols)
