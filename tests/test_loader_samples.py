"""The training loader delivers the right sample for every read unit: each sample of a shuffled order,
as the format's reference reader finds it in the stored file (whole file decoded inline or in the pool,
one range per sample, one range per parquet row group), on a real mem:// store."""

from __future__ import annotations

import asyncio
import io
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_dlio.config.model import Dataset, Parquet, ParquetColumn, Reader, WorkloadConfig
from pytest_dlio.formats import get_format
from pytest_dlio.layout import dataset_files
from pytest_dlio.phases import loader as loader_module
from pytest_dlio.phases.loader import Loader
from pytest_dlio.randbytes import file_rng
from pytest_dlio.storage import open_store
from pytest_dlio.timeline import Reads
from tests.test_formats_roundtrip import reference_samples

CASES = [  # (id, format, spf, threads, read_type, Dataset keywords)
    ("npy-view", "npy", 4, 2, "on_demand", {"record_dims": (3, 5), "record_element_type": "float32"}),
    ("npz-pool", "npz", 4, 2, "on_demand", {}),
    ("npz-one-per-file-inline", "npz", 1, 0, "on_demand", {}),
    ("tfrecord", "tfrecord", 4, 2, "on_demand", {}),
    ("indexed-ranges", "indexed_binary", 4, 2, "on_demand", {}),
    ("indexed-memory-whole-file", "indexed_binary", 4, 2, "memory", {}),
    ("mmap-indexed", "mmap_indexed_binary", 4, 1, "on_demand", {}),
    ("hdf5-pool", "hdf5", 3, 2, "memory", {"record_dims": (4, 6), "record_element_type": "int32"}),
    ("csv-gzip", "csv", 3, 2, "on_demand", {"compression": "gzip"}),
    ("png", "png", 2, 2, "on_demand", {}),
    ("synthetic", "synthetic", 2, 0, "on_demand", {}),
]


async def stored(cfg: WorkloadConfig, name: str) -> Any:
    store = open_store(f"mem://loader-{name}-{uuid.uuid4().hex}")
    ds = cfg.dataset
    for f in dataset_files(cfg):
        enc = get_format(ds.format).encode(f, ds, file_rng(5, f.position))
        for k, v in enc.sidecars.items():
            await store.put(k, v)
        await store.put(f.key, bytes(enc.data()))
    return store


async def delivered(cfg: WorkloadConfig, store: Any, order: np.ndarray, bs: int) -> list[Any]:
    files = [f for f in dataset_files(cfg) if f.split == "train"]
    threads = cfg.reader.read_threads
    pool = ThreadPoolExecutor(threads) if threads else None
    try:
        loader = Loader(cfg, store, files, Reads(), pool, np.random.default_rng(0))
        return [s async for batch in loader.batches(order, bs) for s in batch]
    finally:
        if pool is not None:
            pool.shutdown()


def config(fmt: str, spf: int, threads: int, read_type: str, **kw: Any) -> WorkloadConfig:
    kw = {"record_length_bytes": 24 * 24, **kw}
    ds = Dataset(format=fmt, num_files_train=3, num_samples_per_file=spf, **kw)
    return WorkloadConfig(
        framework="pytorch",
        dataset=ds,
        reader=Reader(data_loader="pytorch", batch_size=2, read_threads=threads, read_type=read_type),
    )


@pytest.mark.parametrize("fmt,spf,threads,read_type,kw", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_sample_is_the_one_stored(fmt: str, spf: int, threads: int, read_type: str, kw: dict) -> None:
    cfg = config(fmt, spf, threads, read_type, **kw)
    files = [f for f in dataset_files(cfg) if f.split == "train"]
    order = np.random.default_rng(1).permutation(len(files) * spf)
    order = order[: len(order) // 2 * 2]

    async def go() -> tuple[list[Any], list[list[np.ndarray]]]:
        store = await stored(cfg, fmt)
        got = await delivered(cfg, store, order, 2)
        want = []
        for f in files:
            side = {k: bytes(await store.get(k)) for k in f.sidecars}
            want.append(reference_samples(bytes(await store.get(f.key)), f, cfg.dataset, side))
        return got, want

    got, want = asyncio.run(go())
    assert len(got) == len(order)
    for i, sample in zip(order.tolist(), got, strict=True):
        expected = want[i // spf][i % spf]
        assert np.asarray(sample).tobytes() == expected.tobytes(), f"sample {i}"


def test_parquet_rows_come_from_their_row_group_span() -> None:
    """DLIO's parquet reader reads a row's row group (the selected columns' chunks) and discards it: each
    row delivers that span's size, which is the row group's selected chunks in the file's metadata."""
    cols = (ParquetColumn("a", "float32", 4), ParquetColumn("b", "int8", 16, read=False))
    cfg = config("parquet", 10, 2, "on_demand", parquet=Parquet(columns=cols, row_group_size=4))
    files = [f for f in dataset_files(cfg) if f.split == "train"]
    order = np.random.default_rng(2).permutation(30)

    async def go() -> tuple[list[Any], list[bytes]]:
        store = await stored(cfg, "parquet")
        return await delivered(cfg, store, order, 2), [bytes(await store.get(f.key)) for f in files]

    got, datas = asyncio.run(go())
    for i, size in zip(order.tolist(), got, strict=True):
        meta = pq.read_metadata(io.BytesIO(datas[i // 10]))
        group = meta.row_group((i % 10) // 4)  # row groups of 4, 4, 2 rows
        chunks = [group.column(c) for c in range(group.num_columns)]
        (a,) = [c for c in chunks if c.path_in_schema.startswith("a")]
        assert size == a.total_compressed_size, f"row {i}"


@pytest.mark.parametrize("fmt", ["parquet", "npy"])
def test_runs_from_one_read_unit_are_served_whole(fmt: str) -> None:
    """A batch of many rows from a few units (dlrm: 12288 rows from two row groups) is taken a run at a
    time: every sample is still the stored one, in order, and each unit the order reaches is read once."""
    kw: dict[str, Any] = {"record_dims": (3, 5), "record_element_type": "float32"}
    if fmt == "parquet":
        kw = {"parquet": Parquet(columns=(ParquetColumn("a", "float32", 4),), row_group_size=4)}
    cfg = config(fmt, 10, 1, "on_demand", **kw)  # one reader task: batches in turn, reads in a known order
    files = [f for f in dataset_files(cfg) if f.split == "train"]
    # runs inside row groups, across group and file boundaries, and back to a unit read before
    order = np.array([*range(0, 12), 20, 21, 22, 23, 12, 13, 14, 15, 16, 17, 18, 19, 4, 5, 6, 7])

    async def go() -> tuple[list[Any], list[bytes], Reads]:
        store = await stored(cfg, fmt)
        reads = Reads()
        with ThreadPoolExecutor(1) as pool:
            loader = Loader(cfg, store, files, reads, pool, np.random.default_rng(0))
            got = [s async for batch in loader.batches(order, 14) for s in batch]
        return got, [bytes(await store.get(f.key)) for f in files], reads

    got, datas, reads = asyncio.run(go())
    assert len(got) == len(order)
    if fmt == "npy":
        want = [reference_samples(d, f, cfg.dataset, {}) for d, f in zip(datas, files, strict=True)]
        for i, sample in zip(order.tolist(), got, strict=True):
            assert np.asarray(sample).tobytes() == want[i // 10][i % 10].tobytes(), f"sample {i}"
        # the loader keeps its 2 most recent files: 0, 1, 2 | 2 and 1 kept, 0 read again
        assert len(reads.nbytes) == 4
        return
    for i, size in zip(order.tolist(), got, strict=True):
        group = pq.read_metadata(io.BytesIO(datas[i // 10])).row_group((i % 10) // 4)
        assert size == group.column(0).total_compressed_size, f"row {i}"
    # each file's footer (1 read: one suffix holds it), then each row group the epoch touches once, as
    # DLIO's row-group window reads it: f0 g0 g1 g2, f1 g0, f2 g0, f1 g1 g2 (f1 g0 and f0 g1, needed
    # again later, are not reread)
    assert len(reads.nbytes) == 1 * 3 + 7


@pytest.mark.parametrize("fmt", ["parquet", "npy"])
def test_runs_cut_a_batch_where_its_read_unit_changes(fmt: str) -> None:
    """However a batch is ordered (unshuffled rows of shuffled files, dlrm's order; rows shuffled; runs
    across row-group and file boundaries), it is cut exactly where the sample's (file, unit) changes, the
    unit from the file's footer (row groups of 4, 4, 2 rows), into runs of one unit each."""
    kw: dict[str, Any] = {"record_dims": (3, 5), "record_element_type": "float32"}
    if fmt == "parquet":
        kw = {"parquet": Parquet(columns=(ParquetColumn("a", "float32", 4),), row_group_size=4)}
    cfg = config(fmt, 10, 1, "on_demand", **kw)
    files = [f for f in dataset_files(cfg) if f.split == "train"]
    rng = np.random.default_rng(7)
    orders = [
        np.concatenate([np.arange(f * 10, f * 10 + 10) for f in (2, 0, 1)]),  # files shuffled
        np.arange(3, 27),  # across groups and files
        rng.permutation(30),  # rows shuffled
        np.concatenate([np.arange(5, 9), np.arange(5, 9), [29, 28, 0]]),  # a unit again, steps back
        np.repeat(np.arange(30), 3)[: 64 * 3],  # more than 64 stretches: each file's rows at once
    ]

    async def go() -> tuple[Loader, list[list[tuple[int, int]] | None]]:
        store = await stored(cfg, fmt)
        loader = Loader(cfg, store, files, Reads(), None, np.random.default_rng(0))
        for f in files:
            await loader._locate(f) if fmt == "parquet" else None
        return loader, [loader._runs(o) for o in orders]

    loader, runs = asyncio.run(go())
    for order, got in zip(orders, runs, strict=True):
        keys = [(i // 10, (i % 10) // 4 if fmt == "parquet" else 0) for i in order.tolist()]
        cuts = [p for p in range(1, len(keys)) if keys[p] != keys[p - 1]]
        bounds = [0, *cuts, len(keys)]
        assert got == list(zip(bounds[:-1], bounds[1:], strict=True)), order.tolist()
    if fmt == "parquet":  # a file not located yet: no runs (the per-sample path reads its footer first)
        del loader._spans[files[1].key]
        assert loader._runs(np.arange(8, 14)) is None and loader._runs(np.arange(0, 8)) is not None


@pytest.mark.parametrize(
    ("fmt", "threads", "decodes"), [("npz", 2, True), ("npy", 0, True), ("indexed_binary", 2, False)]
)
def test_decode_time_is_measured(fmt: str, threads: int, decodes: bool) -> None:
    """The loader sums the time it spent decoding (in the pool or inline): the AU verdict compares it with
    the time reads took. Ranged units (a view of the bytes) are not decoded."""
    cfg = config(fmt, 2, threads, "on_demand")
    files = [f for f in dataset_files(cfg) if f.split == "train"]

    async def go() -> float:
        store = await stored(cfg, fmt)
        pool = ThreadPoolExecutor(threads) if threads else None
        try:
            loader = Loader(cfg, store, files, Reads(), pool, np.random.default_rng(0))
            assert [s async for b in loader.batches(np.arange(6), 2) for s in b]
            return loader.stats.decode_seconds
        finally:
            if pool is not None:
                pool.shutdown()

    spent = asyncio.run(go())
    assert (spent > 0) is decodes


@settings(max_examples=150, deadline=None)
@given(
    files=st.permutations(range(12)),
    spf=st.integers(1, 40),
    rows_shuffled=st.booleans(),
    scan=st.integers(1, 64),
    few=st.integers(0, 8),
    cut=st.integers(0, 200),
)
def test_files_in_order_are_those_of_first_appearance(
    files: list[int], spf: int, rows_shuffled: bool, scan: int, few: int, cut: int
) -> None:
    """The files an epoch's footers are read for, in the order its samples first reach them, found a
    chunk at a time (chunks as small as one sample, across file edges; shuffled rows or not, each way of
    reading a chunk — by its runs, or by np.unique when it has ``few`` runs or more; an order cut short,
    as a rank's block is, so some files never appear)."""
    cfg = config("npy", spf, 1, "on_demand")
    cfg = replace(cfg, dataset=replace(cfg.dataset, num_files_train=12))
    train = [f for f in dataset_files(cfg) if f.split == "train"]
    loader = Loader(cfg, open_store("mem://files-in-order"), train, Reads(), None, np.random.default_rng(0))
    order = np.concatenate([np.arange(f * spf, (f + 1) * spf) for f in files]).astype(np.int64)
    if rows_shuffled:
        order = np.random.default_rng(cut).permutation(order)
    order = order[cut % len(order) :]
    want = list(dict.fromkeys((order // spf).tolist()))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(loader_module, "_SCAN", scan)
        mp.setattr(loader_module, "_FEW_RUNS", few)
        assert loader._files_in_order(order) == want
