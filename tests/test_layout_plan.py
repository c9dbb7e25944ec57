"""layout.py: DLIO's file names, sizes, size draw and rank split (dlio.md §3.2 checked examples)."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest

from pytest_dlio.config.model import Dataset, Hdf5, Parquet, ParquetColumn, WorkloadConfig
from pytest_dlio.errors import ConfigError
from pytest_dlio.formats.npy import header
from pytest_dlio.layout import dataset_files, files_for_rank, planned_bytes, sample_dims


def cfg(**ds: object) -> WorkloadConfig:
    return WorkloadConfig(dataset=Dataset(**ds))


def test_default_workload_names() -> None:
    files = dataset_files(cfg(format="npz", num_files_train=4, num_files_eval=2, record_length_bytes=4096))
    assert [f.key for f in files] == [
        "train/img_0_of_4.npz",
        "train/img_1_of_4.npz",
        "train/img_2_of_4.npz",
        "train/img_3_of_4.npz",
        "valid/img_0_of_2.npz",
        "valid/img_1_of_2.npz",
    ]
    assert [f.position for f in files] == list(range(6))
    assert [(f.split, f.index) for f in files][4:] == [("valid", 0), ("valid", 1)]


def test_subfolders_round_robin_and_padding() -> None:
    keys = [f.key for f in dataset_files(cfg(format="npz", num_files_train=12, num_subfolders_train=3))]
    assert keys[:4] == [
        "train/0/img_00_of_12.npz",
        "train/1/img_01_of_12.npz",
        "train/2/img_02_of_12.npz",
        "train/0/img_03_of_12.npz",
    ]
    keys = [f.key for f in dataset_files(cfg(format="npy", num_files_train=11, num_subfolders_train=10))]
    assert keys[10] == "train/00/img_10_of_11.npy"


def test_one_subfolder_is_flat() -> None:
    keys = [f.key for f in dataset_files(cfg(format="npz", num_files_train=2, num_subfolders_train=1))]
    assert keys == ["train/img_0_of_2.npz", "train/img_1_of_2.npz"]


def test_unet3d_names_and_size_draw_match_dlio() -> None:
    rl, sd = 146600628, 68341808
    files = dataset_files(
        cfg(
            format="npz",
            num_files_train=168,
            record_length_bytes=rl,
            record_length_bytes_stdev=sd,
            data_folder="data/unet3d/",
        )
    )
    assert files[0].key == "train/img_000_of_168.npz" and files[-1].key == "train/img_167_of_168.npz"
    # DLIO's code path, verbatim in effect: legacy global seed, 2n normal draws, floored at 1
    state = np.random.get_state()
    try:
        np.random.seed(10)
        dim = [max(int(d), 1) for d in np.random.normal(int(math.sqrt(rl)), sd / 2 / math.sqrt(rl), 2 * 168)]
    finally:
        np.random.set_state(state)
    assert [f.dims for f in files] == [(dim[2 * i], dim[2 * i + 1]) for i in range(168)]
    assert files[0].dims == (15865, 14125)  # pinned: the first unet3d file DLIO draws
    mean = sum(f.raw_bytes for f in files) / len(files)
    assert 0.8 * rl < mean < 1.2 * rl


def test_eval_files_share_the_draw_after_train() -> None:
    both = dataset_files(
        cfg(
            format="npy",
            num_files_train=3,
            num_files_eval=2,
            record_length_bytes=10000,
            record_length_bytes_stdev=3000,
        )
    )
    dims = sample_dims(Dataset(record_length_bytes=10000, record_length_bytes_stdev=3000), 5)
    assert [f.dims for f in both] == dims
    assert len(set(dims)) > 1


def test_record_dims_draw_and_dtype() -> None:
    files = dataset_files(
        cfg(format="npy", num_files_train=3, record_dims=(8, 16, 4), record_element_type="float32")
    )
    assert all(f.dims == (8, 16, 4) and f.dtype == "float32" for f in files)
    assert files[0].expected_size == len(header((8, 16, 4, 1), "float32")) + 8 * 16 * 4 * 4
    drawn = dataset_files(
        cfg(
            format="npy",
            num_files_train=3,
            record_dims=(100, 100),
            record_length_bytes=100,
            record_length_bytes_stdev=2000,
        )
    )
    assert len({f.dims for f in drawn}) > 1 and all(len(f.dims) == 2 for f in drawn)


def test_images_forced_to_uint8() -> None:
    assert (
        dataset_files(cfg(format="jpeg", num_files_train=1, record_element_type="float32"))[0].dtype
        == "uint8"
    )


def test_checked_sizes() -> None:
    assert (
        dataset_files(cfg(format="npz", num_files_train=1, record_length_bytes=4096))[0].expected_size == 4594
    )
    assert (
        dataset_files(cfg(format="npy", num_files_train=1, record_length_bytes=4096))[0].expected_size == 4224
    )
    ib = dataset_files(
        cfg(format="indexed_binary", num_files_train=1, num_samples_per_file=4, record_length_bytes=4096)
    )[0]
    assert ib.expected_size == 16384
    assert ib.sidecars == (
        "train/img_0_of_1.indexed_binary.off.idx",
        "train/img_0_of_1.indexed_binary.sz.idx",
    )


@pytest.mark.parametrize(
    "shape,dtype",
    [
        ((64, 64, 1), "uint8"),
        ((3, 5, 7, 2), "float32"),
        ((1,), "int64"),
        ((4000, 3000, 1), "uint8"),
        ((10**9, 3, 1), "float64"),
    ],
)
def test_npy_header_matches_np_save(shape: tuple[int, ...], dtype: str) -> None:
    if math.prod(shape) > 10**8:  # header only: compare with np.save of a broadcast-free tiny twin
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            buf, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape}
        )
        assert len(header(shape, dtype)) == len(buf.getvalue())
        return
    buf = io.BytesIO()
    np.save(buf, np.zeros(shape, dtype))
    assert len(header(shape, dtype)) + math.prod(shape) * np.dtype(dtype).itemsize == len(buf.getvalue())


def test_sidecars_and_extensions() -> None:
    tf = dataset_files(cfg(format="tfrecord", num_files_train=2, num_files_eval=1, num_subfolders_train=2))
    assert tf[1].key == "train/1/img_1_of_2.tfrecord"
    assert tf[1].sidecars == ("index/train/img_1_of_2.tfrecord.idx",)
    assert tf[2].sidecars == ("index/valid/img_0_of_1.tfrecord.idx",)
    gz = dataset_files(cfg(format="csv", num_files_train=1, compression="gzip"))[0]
    assert gz.key == "train/img_0_of_1.csv.gz" and gz.expected_size is None
    assert dataset_files(cfg(format="parquet", num_files_train=1))[0].key == "train/img_0_of_1.parquet"
    assert dataset_files(cfg(format="synthetic", num_files_train=12))[11].expected_size == 2


def test_rank_split_is_round_robin() -> None:
    files = dataset_files(cfg(format="npz", num_files_train=5, num_files_eval=2))
    assert [f.position for f in files_for_rank(files, 1, 3)] == [1, 4]
    assert sorted(f.position for r in range(3) for f in files_for_rank(files, r, 3)) == list(range(7))


def test_hdf5_dsets_split_record_dims() -> None:
    ds = Dataset(format="hdf5", num_files_train=1, record_dims=(8, 4), hdf5=Hdf5(num_dset_per_record=2))
    assert sample_dims(ds, 1) == [(4, 4)]


def test_unknown_format_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="hdf5_opt"):
        dataset_files(cfg(format="hdf5_opt"))


def test_planned_bytes_uses_payload_when_size_unknown() -> None:
    files = dataset_files(cfg(format="png", num_files_train=2, record_length_bytes=1024))
    assert planned_bytes(files) == 2 * 32 * 32


def test_parquet_row_bytes_match_mlperf_v3_workloads() -> None:
    dtypes = ["int8"] * 45 + ["float16"] * 50 + ["float32"] * 56 + ["float64"] * 49
    dlrm = tuple(ParquetColumn(f"feature_{i:03d}", d) for i, d in enumerate(dtypes))
    f = dataset_files(cfg(format="parquet", num_files_train=1, parquet=Parquet(columns=dlrm)))[0]
    assert f.sample_bytes == 761  # mlperf_v3.md §2: 761 B/row
    flux = tuple(
        ParquetColumn(n, "float32", s)
        for n, s in [
            ("t5_encodings", 524328),
            ("clip_encodings", 409),
            ("mean", 8232),
            ("logvar", 8232),
            ("timestamp", 7),
        ]
    )
    f = dataset_files(cfg(format="parquet", num_files_train=1, parquet=Parquet(columns=flux)))[0]
    assert f.sample_bytes == 2164832  # = flux's record_length
