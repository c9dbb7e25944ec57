"""Every registered format round-trips: encode → the predicted sizes are the encoded sizes → decode (and
the ranged read units) give each sample with DLIO's shape and dtype and the bytes a reference reader
finds in the file."""

from __future__ import annotations

import csv
import gzip
import io
import struct

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pytest_dlio.config import schema
from pytest_dlio.config.model import Dataset, Parquet, ParquetColumn, WorkloadConfig
from pytest_dlio.errors import ConfigError
from pytest_dlio.formats import FORMATS, WITHOUT_GENERATOR, DataFile, ReadUnit, get_format
from pytest_dlio.layout import dataset_files
from pytest_dlio.randbytes import file_rng

SPF = 3
#: (case id, format, Dataset keywords): every registered format at least once
CASES = [
    ("npz", "npz", {"record_length_bytes": 40 * 40, "record_length_bytes_stdev": 300}),
    ("npy-float32", "npy", {"record_dims": (6, 5, 4), "record_element_type": "float32"}),
    ("hdf5", "hdf5", {"record_dims": (8, 6), "record_element_type": "int16"}),
    ("csv-gzip", "csv", {"record_length_bytes": 64, "compression": "gzip"}),
    ("jpeg", "jpeg", {"record_length_bytes": 48 * 40, "record_length_bytes_stdev": 400}),
    ("png", "png", {"record_length_bytes": 48 * 48}),
    ("tfrecord", "tfrecord", {"record_length_bytes": 130 * 130}),
    ("indexed_binary", "indexed_binary", {"record_length_bytes": 4096}),
    ("mmap_indexed_binary", "mmap_indexed_binary", {"record_length_bytes": 1000}),
    ("parquet-legacy", "parquet", {"record_length_bytes": 64, "parquet": Parquet(row_group_size=2)}),
    (
        "parquet-columns",
        "parquet",
        {
            "parquet": Parquet(
                row_group_size=2,
                columns=(
                    ParquetColumn("v", "float32", 3),
                    ParquetColumn("s", "string", 5),
                    ParquetColumn("skip", "int8", read=False),
                ),
            )
        },
    ),
    ("synthetic", "synthetic", {}),
]


def test_cases_cover_the_registry_and_the_schema_enum_matches_it() -> None:
    assert {fmt for _, fmt, _ in CASES} == set(FORMATS)
    assert set(schema.FORMATS) == set(FORMATS) | set(WITHOUT_GENERATOR)
    assert all(get_format(name).name == name for name in FORMATS)
    with pytest.raises(ConfigError, match=r"'hdf5_opt' has no data generator; use one of npz, npy"):
        get_format("hdf5_opt")


def reference_samples(data: bytes, f: DataFile, ds: Dataset, sidecars: dict[str, bytes]) -> list[np.ndarray]:
    """Each sample as the format's reference library (or its written spec) reads the file."""
    fmt = ds.format
    if fmt == "npy":
        x = np.load(io.BytesIO(data))
        return [x[..., i] for i in range(x.shape[-1])]
    if fmt == "npz":
        with np.load(io.BytesIO(data)) as z:
            x = z["x"]
        return [x[..., i] for i in range(x.shape[-1])]
    if fmt == "hdf5":
        with h5py.File(io.BytesIO(data), "r") as h5:
            return list(h5["records_0"][()])
    if fmt == "csv":
        rows = csv.reader(io.StringIO(gzip.decompress(data).decode()))
        return [np.array([float(v) for v in row]).astype(f.dtype) for row in rows]
    if fmt in ("jpeg", "png"):
        with Image.open(io.BytesIO(data)) as img:
            return [np.asarray(img)] * f.samples
    if fmt == "tfrecord":  # framing: u64 length, u32 crc, body, u32 crc; the image bytes end the Example
        out, pos = [], 0
        while pos < len(data):
            (length,) = struct.unpack_from("<Q", data, pos)
            body = data[pos + 12 : pos + 12 + length]
            out.append(np.frombuffer(body[len(body) - f.sample_bytes :], dtype=np.uint8))
            pos += 16 + length
        return out
    if fmt in ("indexed_binary", "mmap_indexed_binary"):  # samples back to back
        n = f.sample_bytes
        return [np.frombuffer(data[i * n : (i + 1) * n], dtype=np.uint8) for i in range(f.samples)]
    if fmt == "synthetic":
        assert data == str(f.position).encode()  # the placeholder; the reader makes its own data
        return [np.zeros(f.dims, dtype=np.uint8)] * f.samples
    raise AssertionError(f"no reference reader for {fmt}: add one when adding a format")


def expected_shape(f: DataFile, fmt: str) -> tuple[tuple[int, ...], str]:
    """One sample's shape and dtype as DLIO's reader returns it."""
    if fmt == "csv":
        return (int(np.prod(f.dims)),), f.dtype  # one flat row
    if fmt in ("tfrecord", "indexed_binary", "mmap_indexed_binary"):
        return (f.sample_bytes,), "uint8"  # raw bytes
    if fmt == "synthetic":
        return f.dims, "uint8"
    return f.dims, f.dtype


@pytest.mark.parametrize("fmt,kw", [(fmt, kw) for _, fmt, kw in CASES], ids=[c for c, _, _ in CASES])
def test_round_trip(fmt: str, kw: dict) -> None:
    ds = Dataset(format=fmt, num_files_train=2, num_files_eval=1, num_samples_per_file=SPF, **kw)
    files = dataset_files(WorkloadConfig(dataset=ds))
    codec = get_format(fmt)
    for f in files:
        enc = codec.encode(f, ds, file_rng(11, f.position))
        data = bytes(enc.data())
        assert f.key.endswith("." + codec.extension(ds))
        if f.expected_size is not None:
            assert enc.size == f.expected_size
        assert sorted(enc.sidecars) == sorted(f.sidecars)
        for key, want in zip(f.sidecars, f.sidecar_sizes or (None,) * len(f.sidecars), strict=True):
            assert want is None or len(enc.sidecars[key]) == want, key
        if codec.read_unit is ReadUnit.ROW_GROUP:
            check_row_groups(data, f, ds)
            continue
        got = list(codec.decode(data, f, ds, enc.sidecars))
        want = reference_samples(data, f, ds, enc.sidecars)
        shape, dtype = expected_shape(f, fmt)
        assert len(got) == len(want) == SPF
        for g, w in zip(got, want, strict=True):
            assert (g.shape, str(g.dtype)) == (shape, dtype)
            assert g.tobytes() == w.tobytes()
        if codec.read_unit is ReadUnit.SAMPLE_RANGE:  # one ranged read per sample, located by the index
            spans = codec.sample_spans(f, enc.sidecars)
            assert [spans.unit_of(i) for i in range(SPF)] == list(range(SPF))
            for i, (off, n) in enumerate(spans.spans):
                assert bytes(codec.decode_span(data[off : off + n], f, ds)) == want[i].tobytes()


def check_row_groups(data: bytes, f: DataFile, ds: Dataset) -> None:
    """parquet: decode gives one table per row group, the rows pyarrow reads; the footer alone locates
    each row group's column chunks (the selected columns only)."""
    codec = get_format("parquet")
    tables = list(codec.decode(data, f, ds))
    reference = pq.read_table(io.BytesIO(data))
    read = [c.name for c in ds.parquet.columns if c.read] or reference.column_names
    assert sum(t.num_rows for t in tables) == SPF
    assert [t.column_names for t in tables] == [read] * len(tables)
    rows = [r for t in tables for r in t.to_pylist()]
    # compared as text: random float bytes can be NaN, and NaN != NaN
    assert repr(rows) == repr(reference.select(read).to_pylist())
    if not ds.parquet.columns:  # legacy mode: one uint8 list of the sample's bytes per row
        assert all(len(r["data"]) == f.sample_bytes and all(0 <= v < 256 for v in r["data"]) for r in rows)
    else:
        assert all(len(r["v"]) == 3 and len(r["s"]) == 5 for r in rows)
    tail = data[-codec.footer_tail :]
    n = codec.footer_length(tail)
    spans = codec.row_group_spans(data[-n:], ds, None)
    meta = pq.read_metadata(io.BytesIO(data))
    groups = [meta.row_group(r) for r in range(meta.num_row_groups)]
    assert spans.first.tolist() == np.cumsum([0] + [g.num_rows for g in groups])[:-1].tolist()
    assert [spans.unit_of(i) for i in range(SPF)] == [0, 0, 1]
    for g, (off, length) in zip(groups, spans.spans, strict=True):
        chunks = [g.column(c) for c in range(g.num_columns)]
        chunks = [c for c in chunks if c.path_in_schema.split(".")[0] in read]
        assert length == sum(c.total_compressed_size for c in chunks)  # the selected chunks are adjacent
        starts = [c.dictionary_page_offset if c.has_dictionary_page else c.data_page_offset for c in chunks]
        assert off == min(starts) and off + length <= len(data) - n  # a chunk starts at its dictionary page
        assert codec.decode_span(data[off : off + length], f, ds) == length


def test_tfrecord_records_of_a_new_layout_are_parsed_in_full() -> None:
    """Only records whose bytes before the image match a parsed one (same length) skip the field-by-field
    parse: a record of the same length with another feature name is parsed, and has no image."""
    from pytest_dlio.formats.example_proto import bytes_feature_prefix, example_prefix, int64_feature
    from pytest_dlio.formats.tfrecord import masked_crc, samples

    def record(name: str, img: bytes) -> bytes:
        size = int64_feature("size", [len(img)])
        prefix = bytes_feature_prefix(name, len(img))
        body = example_prefix(len(size) + len(prefix) + len(img)) + size + prefix + img
        n = struct.pack("<Q", len(body))
        return n + struct.pack("<I", masked_crc(n)) + body + struct.pack("<I", masked_crc(body))

    a, b, c = (bytes([i]) * 32 for i in (1, 2, 3))
    data = record("image", a) + record("image", b) + record("imagf", c) + record("image", c)
    got = samples(data)
    assert [bytes(x) for x in got] == [a, b, b"", c]
    assert len({len(record("image", a)), len(record("imagf", c))}) == 1  # same length, other layout
