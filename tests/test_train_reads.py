"""What a training epoch reads for multi-sample files: the unit DLIO's reader for the format reads, and the
samples the loader delivers are the ones the encoder wrote for each index."""

from __future__ import annotations

import asyncio
import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import h5py
import numpy as np
import pytest

from pytest_dlio import layout
from pytest_dlio.config.model import Parquet, ParquetColumn
from pytest_dlio.formats import get_format
from pytest_dlio.phases.train import Loader, dataset_files, epoch_order, run_training
from pytest_dlio.ranks import SingleComm
from pytest_dlio.storage import open_store
from pytest_dlio.timeline import Reads
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
    assert run.metrics.read_bytes == 64 * 64 + 2 * 2 * 32 * 8  # samples + the two uint64 index files of each file


def test_parquet_reads_each_row_group_once() -> None:
    cols = (ParquetColumn("a", "float32", 4), ParquetColumn("b", "int8", 16, read=False), ParquetColumn("c", "float64"))
    cfg = make_cfg(files=2, spf=64, bs=8, threads=2)
    cfg = replace(cfg, dataset=replace(cfg.dataset, format="parquet", parquet=Parquet(columns=cols, row_group_size=16)))
    store, run = _train(cfg, "pq")
    assert not store.gets  # footer and row groups by range only
    spans = [r for r in store.ranges if r[2] > 8]
    footers = 2 * 2  # per file: the 8-byte tail, then the footer
    assert len(store.ranges) - footers == 2 * 4  # 4 row groups of 16 rows in each of 2 files, once each
    assert run.loader.batches == 16 and spans


def test_npz_reads_each_file_once_per_epoch() -> None:
    cfg = make_cfg(files=4, spf=8, bs=4, threads=2)
    cfg = replace(cfg, dataset=replace(cfg.dataset, format="npz"))
    store, run = _train(cfg, "npz")
    assert not store.ranges
    epochs = cfg.train.epochs
    assert len(store.gets) == 4 * epochs and sorted(set(store.gets)) == sorted(set(store.gets[:4]))


def _reference(fmt: str, data: bytes, sidecars: dict[str, bytes], f: layout.DataFile) -> list[np.ndarray]:
    """Every sample of an encoded file, read back with numpy/h5py directly (not through our readers)."""
    if fmt == "npy":
        x = np.load(io.BytesIO(data))
        return [x[..., i] for i in range(x.shape[-1])]
    if fmt == "npz":
        with np.load(io.BytesIO(data)) as z:
            x = z["x"]
        return [x[..., i] for i in range(x.shape[-1])]
    if fmt in ("indexed_binary", "mmap_indexed_binary"):
        off_key, sz_key = f.sidecars
        spans = zip(np.frombuffer(sidecars[off_key], np.uint64).tolist(),
                    np.frombuffer(sidecars[sz_key], np.uint64).tolist(), strict=True)
        return [np.frombuffer(data[o:o + n], dtype=np.uint8) for o, n in spans]
    if fmt == "hdf5":
        with h5py.File(io.BytesIO(data), "r") as h5:
            (name,) = [k for k in h5 if k.startswith("records_")]
            return list(h5[name][()])
    raise AssertionError(fmt)


@pytest.mark.parametrize("shuffle,threads,read_type", [("off", 0, "on_demand"), ("seed", 2, "on_demand"),
                                                        ("seed", 2, "memory")])
@pytest.mark.parametrize("fmt", ["npy", "npz", "indexed_binary", "mmap_indexed_binary", "hdf5"])
def test_loader_delivers_the_samples_the_encoder_wrote(fmt: str, shuffle: str, threads: int,
                                                       read_type: str) -> None:
    # 3 files of 4 samples, batches of 3 (batches span files); shuffled with 2 concurrent readers, samples
    # jump between files and exercise the loader's per-file caches
    cfg = make_cfg(files=3, spf=4, bs=3, threads=threads, sample_shuffle=shuffle, file_shuffle=shuffle,
                   read_type=read_type)
    cfg = replace(cfg, dataset=replace(cfg.dataset, format=fmt))
    files = dataset_files(cfg, "train")
    order = epoch_order(cfg, 1, 0, 1, shared_seed=0)
    assert sorted(order.tolist()) == list(range(12))
    if shuffle != "off":
        assert order.tolist() != list(range(12))

    async def go() -> tuple[dict[str, list[np.ndarray]], list[list[object]]]:
        store = open_store(f"mem://decoded-{fmt}-{shuffle}-{read_type}")
        written: dict[str, list[np.ndarray]] = {}
        rng = np.random.default_rng(0)
        for f in files:
            enc = get_format(fmt).encode(f, cfg.dataset, rng)
            data = bytes(enc.data())
            enc.release()
            await store.put(f.key, data)
            for k, v in enc.sidecars.items():
                await store.put(k, v)
            written[f.key] = _reference(fmt, data, enc.sidecars, f)
        pool = ThreadPoolExecutor(threads) if threads else None
        try:
            loader = Loader(cfg, store, files, Reads(), pool, np.random.default_rng(1))
            return written, [batch async for batch in loader.batches(order, 3)]
        finally:
            if pool is not None:
                pool.shutdown()

    written, batches = asyncio.run(go())
    samples = [x for k in sorted(written) for x in written[k]]
    assert len(samples) == 12 and len({x.tobytes() for x in samples}) == 12  # distinct: misrouting would show
    assert [len(b) for b in batches] == [3, 3, 3, 3]
    delivered = [np.asarray(x) for b in batches for x in b]
    for idx, got in zip(order.tolist(), delivered, strict=True):
        f = files[idx // 4]
        want = written[f.key][idx % 4]
        assert got.dtype == want.dtype and got.shape == want.shape, (fmt, idx)
        assert np.array_equal(got, want), f"{fmt}: sample {idx} (sample {idx % 4} of {f.key}) differs"
