"""What a training epoch reads for multi-sample files: the unit DLIO's reader for the format reads."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from pytest_dlio.config.model import Parquet, ParquetColumn
from pytest_dlio.phases.train import run_training
from pytest_dlio.ranks import SingleComm
from pytest_dlio.storage import open_store
from tests.test_train_loop import Recording, fill, make_cfg


def _train(cfg, name):
    async def go():
        store = Recording(open_store(f"mem://reads-{name}"))
        await fill(store._s, cfg)
        run = await run_training(cfg, store, comm=SingleComm())
        return store, run

    return asyncio.run(go())


def test_indexed_binary_reads_each_sample_by_range() -> None:
    cfg = make_cfg(files=2, spf=32, bs=4, threads=2)
    cfg = replace(cfg, dataset=replace(cfg.dataset, format="indexed_binary"))
    store, run = _train(cfg, "ib")
    data_ranges = [r for r in store.ranges if not r[0].endswith(".idx")]
    assert len(data_ranges) == 64 and {r[2] for r in data_ranges} == {64}  # one record-sized range per sample
    assert not [k for k in store.gets if not k.endswith(".idx")]  # never the whole data file
    assert (
        run.metrics.read_bytes == 64 * 64 + 2 * 2 * 32 * 8
    )  # samples + the two uint64 index files of each file


def test_parquet_reads_each_row_group_once() -> None:
    cols = (
        ParquetColumn("a", "float32", 4),
        ParquetColumn("b", "int8", 16, read=False),
        ParquetColumn("c", "float64"),
    )
    cfg = make_cfg(files=2, spf=64, bs=8, threads=2)
    cfg = replace(
        cfg, dataset=replace(cfg.dataset, format="parquet", parquet=Parquet(columns=cols, row_group_size=16))
    )
    store, run = _train(cfg, "pq")
    assert not store.gets  # footer and row groups by range only
    assert sorted(k for k, _ in store.suffixes) == sorted(
        {k for k, _, _ in store.ranges}
    )  # one footer read a file
    assert len(store.ranges) == 2 * 4  # 4 row groups of 16 rows in each of 2 files, once each
    assert run.loader.batches == 16


def test_npz_reads_each_file_once_per_epoch() -> None:
    cfg = make_cfg(files=4, spf=8, bs=4, threads=2)
    cfg = replace(cfg, dataset=replace(cfg.dataset, format="npz"))
    store, run = _train(cfg, "npz")
    assert not store.ranges
    epochs = cfg.train.epochs
    assert len(store.gets) == 4 * epochs and sorted(set(store.gets)) == sorted(set(store.gets[:4]))
