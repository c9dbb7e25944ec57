"""Every format's bytes open with the reference library and have DLIO's shapes, keys and columns."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import struct
import zipfile
import zlib

import crc32c
import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pytest_dlio.config.model import Dataset, Hdf5, Parquet, ParquetColumn, WorkloadConfig
from pytest_dlio.errors import ConfigError, DlioError
from pytest_dlio.formats import Encoded, get_format, sample_of
from pytest_dlio.layout import DataFile, dataset_files
from pytest_dlio.randbytes import file_rng


def decode(data: object, f: DataFile, ds: Dataset, sidecars: dict | None = None) -> list:
    return list(get_format(ds.format).decode(data, f, ds, sidecars))  # type: ignore[arg-type]


def make(fmt: str, n: int = 1, **kw: object) -> tuple[Dataset, list[DataFile], list[Encoded]]:
    ds = Dataset(format=fmt, num_files_train=n, **{"record_length_bytes": 4096, **kw})
    files = dataset_files(WorkloadConfig(dataset=ds))
    encs = [get_format(fmt).encode(f, ds, file_rng(7, f.position)) for f in files]
    for f, e in zip(files, encs, strict=True):
        assert f.expected_size in (None, e.size)
        assert set(e.sidecars) == set(f.sidecars)
    return ds, files, encs


def test_npz_is_np_savez() -> None:
    ds, (f,), (e,) = make(
        "npz", num_samples_per_file=3, record_length_bytes=10000, record_length_bytes_stdev=900
    )
    with np.load(io.BytesIO(e.data())) as z:
        assert z.files == ["x", "y"]
        assert z["x"].shape == (*f.dims, 3) and z["x"].dtype == np.uint8
        assert z["y"].tolist() == [0, 0, 0]
    assert len(decode(e.data(), f, ds)) == 3
    reference = io.BytesIO()
    with np.load(io.BytesIO(e.data())) as z:
        np.savez(reference, x=z["x"], y=[0] * 3)
    assert bytes(e.data()) == reference.getvalue()  # byte for byte what np.savez writes


def test_npy_is_np_save_with_element_type() -> None:
    ds, (f,), (e,) = make("npy", num_samples_per_file=2, record_dims=(5, 6, 7), record_element_type="float32")
    x = np.load(io.BytesIO(e.data()))
    assert x.shape == (5, 6, 7, 2) and x.dtype == np.float32
    assert e.size == f.expected_size
    reference = io.BytesIO()
    np.save(reference, x)
    assert bytes(e.data()) == reference.getvalue()
    samples = decode(e.data(), f, ds)
    assert len(samples) == 2 and samples[1].shape == (5, 6, 7)


@pytest.mark.parametrize("compression,opts", [("none", None), ("gzip", 6), ("lzf", None)])
def test_hdf5_datasets_and_filters(compression: str, opts: int | None) -> None:
    ds, (f,), (e,) = make(
        "hdf5",
        num_samples_per_file=4,
        compression=compression,
        compression_level=6,
        record_dims=(8, 16),
        hdf5=Hdf5(chunk_dims=(1, 8, 16), num_dset_per_record=2, max_shape=(64, 64)),
    )
    with h5py.File(io.BytesIO(e.data()), "r") as h5:
        assert sorted(h5) == ["labels", "records", "records_0", "records_1"]  # records: DLIO 2.0.0's link
        rec = h5["records_0"]
        assert rec.shape == (4, 4, 16) and rec.chunks == (1, 8, 16)  # dims[0] / num_dset_per_record
        assert rec.maxshape == (4, 64, 64)
        assert rec.compression == (None if compression == "none" else compression)
        assert rec.compression_opts == opts
        assert h5["labels"][()].tolist() == [0, 0, 0, 0]
    assert len(decode(e.data(), f, ds)) == 4


def test_hdf5_rejects_non_hdf5_filter() -> None:
    with pytest.raises(ConfigError, match="not an HDF5 filter"):
        make("hdf5", compression="xz")


@pytest.mark.parametrize(
    "compression,opener",
    [
        ("none", bytes),
        ("gzip", gzip.decompress),
        ("bz2", bz2.decompress),
        ("xz", lzma.decompress),
        ("zip", lambda b: zipfile.ZipFile(io.BytesIO(b)).read("img_0_of_1.csv")),
    ],
)
def test_csv_rows_columns_and_compression(compression: str, opener: object) -> None:
    ds, (f,), (e,) = make("csv", num_samples_per_file=3, record_length_bytes=100, compression=compression)
    text = opener(bytes(e.data()))  # type: ignore[operator]
    table = np.loadtxt(io.BytesIO(text), delimiter=",", ndmin=2)
    assert table.shape == (3, 100)  # spf rows x d1*d2 columns, no header, no index
    assert (table[0] == table[2]).all()  # DLIO repeats the record
    assert len(decode(e.data(), f, ds)) == 3
    if compression != "none":
        assert f.key.endswith({"gzip": ".gz", "bz2": ".bz2", "xz": ".xz", "zip": ".zip"}[compression])


@pytest.mark.parametrize("fmt,pil", [("jpeg", "JPEG"), ("png", "PNG")])
def test_images_decode_with_pillow(fmt: str, pil: str) -> None:
    ds, (f,), (e,) = make(fmt, record_length_bytes=120 * 120, record_length_bytes_stdev=3000)
    with Image.open(io.BytesIO(e.data())) as img:
        assert img.format == pil and img.mode == "L"
        assert img.size == (f.dims[1], f.dims[0])
    (pixels,) = decode(e.data(), f, ds)
    assert pixels.shape == f.dims


def reference_tfrecords(data: bytes) -> list[bytes]:
    """The TFRecord framing spec, independently: u64 length, masked crc(length), data, masked crc(data)."""

    def masked(b: bytes) -> int:
        c = crc32c.crc32c(b)
        return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF

    out, pos = [], 0
    while pos < len(data):
        length = struct.unpack("<Q", data[pos : pos + 8])[0]
        assert struct.unpack("<I", data[pos + 8 : pos + 12])[0] == masked(data[pos : pos + 8])
        body = data[pos + 12 : pos + 12 + length]
        assert struct.unpack("<I", data[pos + 12 + length : pos + 16 + length])[0] == masked(body)
        out.append(body)
        pos += 16 + length
    assert pos == len(data)
    return out


def test_tfrecord_framing_example_and_dali_index() -> None:
    ds, (f,), (e,) = make("tfrecord", num_samples_per_file=5, record_length_bytes=300 * 300)
    data = bytes(e.data())
    bodies = reference_tfrecords(data)
    assert len(bodies) == 5 and e.size == f.expected_size
    # protobuf: Example.features(1) -> map entries(1) {key(1), Feature(2)}; both names present
    assert b"\n\x05image" in bodies[0] and b"\n\x04size" in bodies[0]
    samples = decode(data, f, ds)
    assert [s.nbytes for s in samples] == [300 * 300] * 5
    from pytest_dlio.formats.example_proto import parse_example

    ex = parse_example(bodies[0])
    assert ex["size"] == [300 * 300] and len(ex["image"]) == 300 * 300
    assert bytes(samples[0]) == ex["image"]
    lines = e.sidecars["index/train/img_0_of_1.tfrecord.idx"].decode().splitlines()
    rec = 16 + len(bodies[0])
    assert lines == [f"{k * rec} {rec}" for k in range(5)]


def test_tfrecord_corruption_is_detected() -> None:
    ds, (f,), (e,) = make("tfrecord", num_samples_per_file=2)
    data = bytearray(e.data())
    data[100] ^= 0xFF
    with pytest.raises(DlioError, match="CRC mismatch"):
        decode(bytes(data), f, ds)
    with pytest.raises(DlioError, match="truncated"):
        decode(bytes(e.data())[:-3], f, ds)


@pytest.mark.parametrize("fmt", ["indexed_binary", "mmap_indexed_binary"])
def test_indexed_binary_and_idx_files(fmt: str) -> None:
    ds, (f,), (e,) = make(fmt, num_samples_per_file=4)
    assert e.size == 16384
    off = np.frombuffer(e.sidecars[f.sidecars[0]], dtype=np.uint64)
    sz = np.frombuffer(e.sidecars[f.sidecars[1]], dtype=np.uint64)
    assert off.tolist() == [0, 4096, 8192, 12288] and sz.tolist() == [4096] * 4
    samples = decode(e.data(), f, ds, e.sidecars)
    assert bytes(samples[2]) == bytes(e.data())[8192:12288]
    with pytest.raises(DlioError, match="index files"):
        decode(e.data(), f, ds)


def test_parquet_columns_row_groups_and_selection() -> None:
    cols = (
        ParquetColumn("t5", "float32", 7),
        ParquetColumn("a", "int8", read=False),
        ParquetColumn("b", "float16"),
        ParquetColumn("c", "float64", read=True),
        ParquetColumn("s", "string", 3),
        ParquetColumn("odd", "weird", 2),
    )
    ds, (f,), (e,) = make(
        "parquet",
        num_samples_per_file=100,
        parquet=Parquet(columns=cols, row_group_size=48, generation_batch_size=100),
    )
    pf = pq.ParquetFile(io.BytesIO(e.data()))
    assert [pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)] == [48, 48, 4]
    schema = pf.schema_arrow
    assert schema.field("t5").type == pa.list_(pa.float32(), 7)
    assert schema.field("a").type == pa.int8() and schema.field("b").type == pa.float16()
    assert schema.field("odd").type == pa.list_(pa.float32(), 2)
    assert pf.metadata.row_group(0).column(0).compression == "UNCOMPRESSED"
    groups = decode(e.data(), f, ds)
    assert [g.num_rows for g in groups] == [48, 48, 4]
    assert "a" not in groups[0].column_names and "t5" in groups[0].column_names


def test_parquet_legacy_mode_and_real_codec() -> None:
    ds, (f,), (e,) = make(
        "parquet",
        num_samples_per_file=10,
        record_length_bytes=64,
        compression="snappy",
        parquet=Parquet(row_group_size=4),
    )
    pf = pq.ParquetFile(io.BytesIO(e.data()))
    assert pf.schema_arrow.names == ["data"]
    assert pf.schema_arrow.field("data").type == pa.list_(pa.uint8(), 64)
    assert pf.metadata.num_rows == 10 and pf.num_row_groups == 3  # batch = row_group_size: 4, 4, 2
    assert pf.metadata.row_group(0).column(0).compression == "SNAPPY"


def test_synthetic_holds_its_position() -> None:
    ds, files, encs = make("synthetic", n=12)
    assert [bytes(e.data()) for e in encs][10:] == [b"10", b"11"]


@pytest.mark.parametrize("fmt", ["npz", "npy", "indexed_binary"])
def test_contents_are_incompressible(fmt: str) -> None:
    _, _, encs = make(fmt, n=1, record_length_bytes=1 << 20)
    raw = bytes(encs[0].data())
    assert len(zlib.compress(raw, 6)) / len(raw) > 0.99


def test_no_duplicate_4k_blocks_across_a_dataset() -> None:
    _, files, encs = make("indexed_binary", n=8, num_samples_per_file=4, record_length_bytes=64 << 10)
    blocks = set()
    total = 0
    for e in encs:
        raw = bytes(e.data())
        for i in range(0, len(raw), 4096):
            blocks.add(raw[i : i + 4096])
            total += 1
    assert total == 8 * 4 * 16 and len(blocks) == total


def test_released_buffers_are_reused_and_refilled(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_dlio.randbytes import POOL

    # the pool is process-wide: buffers other tests released in this worker would be taken first
    monkeypatch.setattr(POOL, "_free", [])
    ds, (f,), (e,) = make("npy", record_length_bytes=1 << 20)
    first = bytes(e.data())
    base = e.pooled[0]
    e.release()
    assert e.parts == [] and e.pooled == []
    again = get_format("npy").encode(f, ds, file_rng(8, 0))
    assert again.pooled[0] is base  # same pages, no fresh page faults
    assert bytes(again.data()) != first and again.size == f.expected_size
    again.release()
    POOL.take(1)  # a small request never gets a huge buffer
    assert all(b is not base for b in [POOL.take(16)])


def test_sample_of_picks_one_and_reports_a_missing_one() -> None:
    ds, (f,), (e,) = make("npy", num_samples_per_file=3)
    data = bytes(e.data())
    assert (sample_of(decode(data, f, ds), f, 2) == np.load(io.BytesIO(data))[..., 2]).all()
    with pytest.raises(DlioError, match="has no sample 3"):
        sample_of(decode(data, f, ds), f, 3)
