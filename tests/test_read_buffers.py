"""Pooled read buffers: a file store reads large whole objects into reused buffers (``get_pooled``) and the
training loader, which knows when a batch is dropped, hands them back then. Real temp dirs, real O_DIRECT.

What must hold: the bytes are ``get``'s bytes; every sample a consumer sees before asking for the next
batch is the stored sample (no buffer is reused while its batch is alive); buffers really are reused;
errors are ``get``'s; O_DIRECT stores keep their own aligned reads.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_dlio.config.model import Dataset, Reader, WorkloadConfig
from pytest_dlio.errors import DlioError, NotFound
from pytest_dlio.formats import get_format
from pytest_dlio.layout import dataset_files
from pytest_dlio.phases.loader import Loader
from pytest_dlio.phases.sampler import epoch_order
from pytest_dlio.randbytes import file_rng
from pytest_dlio.storage import open_store
from pytest_dlio.storage.base import ObjectStore
from pytest_dlio.storage.direct import probe
from pytest_dlio.storage.file import POOL_MIN, FileStore
from pytest_dlio.storage.settings import StoreOptions
from pytest_dlio.storage.throttle import RateBudget, ThrottledStore
from pytest_dlio.storage.timed import TimedStore
from pytest_dlio.storage.uri import Throttle
from pytest_dlio.timeline import Reads


def config(files: int, threads: int, record: int, fmt: str = "npy") -> WorkloadConfig:
    ds = Dataset(format=fmt, num_files_train=files, num_samples_per_file=1, record_length_bytes=record)
    return WorkloadConfig(
        framework="pytorch",
        dataset=ds,
        reader=Reader(
            data_loader="pytorch",
            batch_size=2,
            read_threads=threads,
            prefetch_size=2,
            sample_shuffle="seed",
            file_shuffle="seed",
        ),
    )


async def fill(store: Any, cfg: WorkloadConfig) -> dict[str, bytes]:
    out = {}
    for f in dataset_files(cfg):
        enc = get_format(cfg.dataset.format).encode(f, cfg.dataset, file_rng(9, f.position))
        out[f.key] = bytes(enc.data())
        await store.put(f.key, out[f.key])
        for k, v in enc.sidecars.items():  # indexed_binary's index objects
            out[k] = v
            await store.put(k, v)
    return out


def test_get_pooled_returns_get_bytes_and_reuses_buffers(tmp_path: Path) -> None:
    async def go() -> None:
        async with open_store(tmp_path.as_uri()) as store:
            big = np.random.default_rng(1).integers(0, 256, POOL_MIN + 12345, dtype=np.uint8).tobytes()
            await store.put("a/big", big)
            await store.put("a/big2", big[::-1])
            await store.put("a/small", b"xyz")
            for _ in range(4):
                for key, want in (("a/big", big), ("a/big2", big[::-1])):
                    got = await store.get_pooled(key)
                    assert bytes(got.data) == want == bytes(await store.get(key))
                    got.release()
                    got.release()  # idempotent: a buffer is handed back once
            small = await store.get_pooled("a/small")
            assert bytes(small.data) == b"xyz"
            small.release()
            assert store._buffers.allocated == 1  # one buffer served eight large reads
            with pytest.raises(NotFound):
                await store.get_pooled("a/missing")

    asyncio.run(go())


async def recycled_epochs(
    cfg: WorkloadConfig, store: ObjectStore, raw: dict[str, bytes], threads: int
) -> int:
    """Three epochs through a recycling loader, each batch checked before the next is asked for — the
    contract under which buffers are reused. Returns the samples seen."""
    files = dataset_files(cfg)
    want = {i: np.load(io.BytesIO(raw[f.key]))[..., 0] for i, f in enumerate(files)}
    pool = ThreadPoolExecutor(threads) if threads else None
    loader = Loader(cfg, store, files, Reads(), pool, np.random.default_rng(0), recycle=True)
    assert loader.pooled
    seen = 0
    for epoch in (1, 2, 3):
        order = epoch_order(cfg, epoch, 0, 1, shared_seed=0)
        pos = 0
        async for batch in loader.batches(order, 2):
            await asyncio.sleep(0.005)  # "compute": the readers run meanwhile, as in training
            for sample in batch:
                np.testing.assert_array_equal(sample, want[int(order[pos])])
                pos += 1
                seen += 1
    if pool is not None:
        pool.shutdown()
    return seen


@pytest.mark.parametrize("threads", [0, 1, 3])
def test_recycling_loader_delivers_the_stored_samples(tmp_path: Path, threads: int) -> None:
    cfg = config(files=9, threads=threads, record=POOL_MIN + 4096)

    async def go() -> int:
        async with open_store(tmp_path.as_uri()) as store:
            seen = await recycled_epochs(cfg, store, await fill(store, cfg), threads)
            assert store._buffers.allocated <= 2 * (max(2, threads) + 2)  # batches alive at once, not reads
            return seen

    assert asyncio.run(go()) == 3 * 8


class CountingBudget(RateBudget):
    """A real rate budget that also sums the bytes booked on it."""

    def __init__(self, bytes_per_s: float) -> None:
        super().__init__(bytes_per_s)
        self.booked = 0

    def claim(self, nbytes: int, started: float) -> float:
        self.booked += nbytes
        return super().claim(nbytes, started)


def test_a_wrapped_file_store_keeps_pooling_and_its_wrappers_see_every_read(tmp_path: Path) -> None:
    """Pooled reads are a store capability the wrappers pass through: a timed, throttled file store pools
    (buffers reused), and the throttle books and the timer records each pooled read's bytes."""
    cfg = config(files=5, threads=2, record=POOL_MIN + 4096)
    recorded = Reads()

    async def go() -> tuple[int, FileStore, CountingBudget, TimedStore]:
        async with open_store(tmp_path.as_uri()) as inner:
            budget = CountingBudget(1 << 40)
            timed = TimedStore(
                ThrottledStore(inner, Throttle(bandwidth_mib_s=1 << 20), budget=budget), recorded
            )
            raw = await fill(inner, cfg)
            seen = await recycled_epochs(cfg, timed, raw, 2)
            return seen, inner, budget, timed

    seen, inner, budget, timed = asyncio.run(go())
    file_bytes = sum(p.stat().st_size for p in tmp_path.rglob("*.npy"))
    assert seen == 3 * 4 and timed.calls["get"] == 3 * 4  # 4 files a rank-epoch (drop_last), once each
    assert inner._buffers is not None and inner._buffers.allocated < timed.calls["get"]  # reused
    assert budget.booked == sum(recorded.nbytes) and len(recorded.nbytes) == 3 * 4
    assert sum(recorded.nbytes) == 3 * 4 * (file_bytes // 5)  # the files are the same size


def test_loader_without_recycle_or_with_several_samples_a_file_does_not_pool(tmp_path: Path) -> None:
    cfg = config(files=2, threads=1, record=POOL_MIN + 1)
    store = open_store(tmp_path.as_uri())
    assert not Loader(cfg, store, dataset_files(cfg), Reads(), None, np.random.default_rng(0)).pooled
    multi = WorkloadConfig(
        framework="pytorch",
        dataset=Dataset(format="npy", num_files_train=2, num_samples_per_file=2, record_length_bytes=64),
    )
    assert not Loader(
        multi, store, dataset_files(multi), Reads(), None, np.random.default_rng(0), recycle=True
    ).pooled


def test_direct_store_pooled_read_is_its_aligned_read(tmp_path: Path) -> None:
    reason = probe(tmp_path)
    if reason:
        pytest.skip(f"O_DIRECT not supported here: {reason}")

    async def go() -> None:
        async with open_store(f"direct://{tmp_path}") as store:
            data = np.random.default_rng(2).integers(0, 256, POOL_MIN + 777, dtype=np.uint8).tobytes()
            await store.put("d", data)
            got = await store.get_pooled("d")
            assert bytes(got.data) == data
            got.release()

    asyncio.run(go())


def _npz(x: np.ndarray, compressed: bool = False) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, x=x, y=np.zeros(x.shape[-1], dtype=np.int64))
    return buf.getvalue()


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_decodes_numpys_own_files_as_a_view_or_through_numpy(compressed: bool) -> None:
    from pytest_dlio.formats.npz import FORMAT, stored_member

    x = np.random.default_rng(4).integers(0, 255, (6, 5, 3), dtype=np.uint8)
    raw = _npz(x, compressed)
    f = next(iter(dataset_files(WorkloadConfig(dataset=Dataset(format="npz", num_files_train=1)))))
    for data in (raw, memoryview(bytearray(raw))):  # bytes, and a writable view like a pooled buffer
        got = FORMAT.decode(data, f, Dataset(format="npz"))
        assert len(got) == 3
        for i in range(3):
            np.testing.assert_array_equal(got[i], x[..., i])
    assert (stored_member(raw, "x.npy") is None) is compressed  # stored members are viewed, not copied


def test_npz_view_path_still_checks_the_crc() -> None:
    from pytest_dlio.phases.loader import decode_sample

    x = np.arange(4096, dtype=np.uint8).reshape(64, 64, 1)
    raw = bytearray(_npz(x))
    raw[len(raw) // 3] ^= 0xFF  # inside x's payload
    f = next(iter(dataset_files(WorkloadConfig(dataset=Dataset(format="npz", num_files_train=1)))))
    with pytest.raises(DlioError, match="CRC"):
        decode_sample(f, Dataset(format="npz"), bytes(raw), 0)


def test_pooled_training_reports_the_bytes_on_disk(tmp_path: Path) -> None:
    """Through run_training (pooled reads): read_bytes is every file's size once per epoch."""
    from dataclasses import replace

    from pytest_dlio.phases.train import run_training
    from pytest_dlio.ranks import SingleComm

    cfg = config(files=4, threads=2, record=POOL_MIN + 100)
    cfg = replace(cfg, train=replace(cfg.train, epochs=2))

    async def go() -> int:
        async with open_store(tmp_path.as_uri()) as store:
            await fill(store, cfg)
            run = await run_training(cfg, store, comm=SingleComm())
            assert store._buffers is not None and store._buffers.allocated < run.metrics.read_count
            return run.metrics.read_bytes

    read = asyncio.run(go())
    on_disk = sum(p.stat().st_size for p in tmp_path.rglob("*.npy"))
    assert on_disk > 4 * POOL_MIN and read == 2 * on_disk


@pytest.mark.parametrize("threads", [0, 2])
def test_reader_thread_errors_reach_the_step_in_order_and_return_every_buffer(
    tmp_path: Path, threads: int
) -> None:
    """A file missing mid-epoch: the batches before it arrive intact, then the step gets ``get``'s
    NotFound naming the key (not an OSError from a reader thread), and no buffer stays taken."""
    cfg = config(files=8, threads=threads, record=POOL_MIN + 4096)
    files = dataset_files(cfg)

    async def go() -> tuple[int, str, str, int, int]:
        async with open_store(tmp_path.as_uri()) as store:
            await fill(store, cfg)
            order = epoch_order(cfg, 1, 0, 1, shared_seed=0)
            gone = files[int(order[5])].key  # in the third batch of two
            (tmp_path / gone).unlink()
            pool = ThreadPoolExecutor(threads) if threads else None
            loader = Loader(cfg, store, files, Reads(), pool, np.random.default_rng(0), recycle=True)
            assert loader.pooled
            got = 0
            with pytest.raises(NotFound) as err:
                async for batch in loader.batches(order, 2):
                    got += len(batch)
            if pool is not None:
                pool.shutdown(wait=True)
            buffers = store._buffers
            return got, gone, str(err.value), buffers.allocated, len(buffers._free)

    got, gone, msg, allocated, free = asyncio.run(go())
    assert got == 4
    assert gone in msg and "get" in msg
    assert free == allocated  # every buffer taken was handed back, including those of queued batches


def test_get_range_pooled_returns_get_range_bytes_and_reuses_buffers(tmp_path: Path) -> None:
    from pytest_dlio.errors import StorageError
    from pytest_dlio.storage.file import RANGE_BUFFERS

    async def go() -> None:
        async with open_store(tmp_path.as_uri()) as store:
            data = np.random.default_rng(2).integers(0, 256, 3 * POOL_MIN + 777, dtype=np.uint8).tobytes()
            await store.put("c/f", data)
            ranges = [(0, POOL_MIN), (POOL_MIN, POOL_MIN + 5), (2 * POOL_MIN, 2 * POOL_MIN), (5, 10)]
            ranges += [(len(data) - 3, 100), (len(data) + 1, POOL_MIN), (0, 0)]
            made = []
            for _ in range(3):
                for start, n in ranges:
                    got = await store.get_range_pooled("c/f", start, n)
                    want = data[start : start + n]
                    assert bytes(got.data) == want == bytes(await store.get_range("c/f", start, n))
                    got.release()
                made.append(RANGE_BUFFERS.allocated)
            assert made[0] == made[1] == made[2]  # after the first round, every range reused a buffer
            with pytest.raises(NotFound):
                await store.get_range_pooled("c/missing", 0, POOL_MIN)
            with pytest.raises(NotFound):
                await store.get_range_pooled("c/missing", 0, 0)
            with pytest.raises(StorageError, match="must be >= 0"):
                await store.get_range_pooled("c/f", -1, 10)
            # the same ranges, bytes, reuse and errors from the plain function a window thread calls
            read = store.blocking_get_range()
            assert read is not None
            for start, n in ranges:
                got = await asyncio.to_thread(read, "c/f", start, n)
                assert bytes(got.data) == data[start : start + n]
                got.release()
            assert RANGE_BUFFERS.allocated == made[0]
            for args, error in [
                (("c/missing", 0, POOL_MIN), NotFound),
                (("c/missing", 0, 0), NotFound),
                (("c/f", -1, 10), StorageError),
                (("../f", 0, 10), StorageError),
            ]:
                with pytest.raises(error):
                    read(*args)
            # the footer read a window thread calls: get_suffix's bytes and errors
            suffix = store.blocking_get_suffix()
            assert suffix is not None
            for n in (0, 1, 100, len(data), len(data) + 7):
                assert bytes(suffix("c/f", n)) == bytes(await store.get_suffix("c/f", n))
            assert bytes(suffix("c/f", 100)) == data[-100:]
            for args2, error in [
                (("c/missing", 8), NotFound),
                (("c/missing", 0), NotFound),
                (("c", 0), NotFound),  # a folder is no object, as get_suffix says
                (("c/f", -1), StorageError),
                (("../f", 8), StorageError),
            ]:
                with pytest.raises(error):
                    suffix(*args2)
            with pytest.raises(NotFound):
                await store.get_suffix("c", 0)
            with pytest.raises(NotFound):  # the same for the window's empty range
                read("c", 0, 0)
            with pytest.raises(NotFound):
                await store.get_range_pooled("c", 0, 0)

    asyncio.run(go())


def test_reader_threads_time_their_decoding(tmp_path: Path) -> None:
    """Batches read and decoded on the reader threads count their decode time too (the au verdict compares
    it with the time reads took)."""
    cfg = config(files=4, threads=2, record=POOL_MIN + 4096, fmt="npz")

    async def go() -> tuple[bool, float]:
        async with open_store(tmp_path.as_uri()) as store:
            await fill(store, cfg)
            pool = ThreadPoolExecutor(2)
            loader = Loader(
                cfg, store, dataset_files(cfg), Reads(), pool, np.random.default_rng(0), recycle=True
            )
            async for _ in loader.batches(epoch_order(cfg, 1, 0, 1, shared_seed=0), 2):
                pass
            pool.shutdown()
            return loader.blocking is not None, loader.stats.decode_seconds

    threaded, spent = asyncio.run(go())
    assert threaded and spent > 0


def test_reader_threads_start_the_next_batch_while_the_step_holds_this_one(tmp_path: Path) -> None:
    """DataLoader's rule: taking a batch frees its slot, so a reader starts the next batch during the step's
    compute, not when the step asks again. One thread, room for one batch ahead: every batch after the
    first is read while the consumer is still holding the one before it."""
    cfg = config(files=8, threads=1, record=POOL_MIN + 4096)
    cfg = dataclasses.replace(cfg, reader=dataclasses.replace(cfg.reader, prefetch_size=1))

    async def go() -> tuple[list[float], list[float]]:
        async with open_store(tmp_path.as_uri()) as store:
            await fill(store, cfg)
            pool = ThreadPoolExecutor(1)
            reads = Reads()
            loader = Loader(
                cfg, store, dataset_files(cfg), reads, pool, np.random.default_rng(0), recycle=True
            )
            released = []
            async for _ in loader.batches(epoch_order(cfg, 1, 0, 1, shared_seed=0), 2):
                await asyncio.sleep(0.05)  # the step's compute
                released.append(time.perf_counter())
            pool.shutdown()
            return list(reads.start), released

    starts, released = asyncio.run(go())
    assert len(starts) == 8 and len(released) == 4
    for b in range(1, 4):  # batch b's first read began before the step holding batch b - 1 let it go
        assert min(starts[2 * b : 2 * b + 2]) < released[b - 1], (b, starts, released)


def test_buffer_pool_keeps_as_many_as_were_out_at_once() -> None:
    """A loader with many batches ahead holds more buffers than the pool's base count; all of them come
    back and serve the next epoch, none is faulted in again (and never more than were out at once)."""
    from pytest_dlio.storage.file import BufferPool

    pool = BufferPool(keep=4)
    for _ in range(3):  # three epochs of 20 buffers out at once
        bufs = [pool.take(1 << 20) for _ in range(20)]
        for b in bufs:
            pool.give(b)
    assert pool.allocated == 20
    assert len(pool._free) == 20


def test_get_range_pooled_through_wrappers_and_on_stores_without_pools(tmp_path: Path) -> None:
    """``get_range_pooled`` is a store method: a timed, throttled file store still pools (its buffers come
    back and serve the next range) and its wrappers count, book and record each pooled range as a
    ``get_range``; a store without pools (mem://) returns ``get_range``'s bytes and errors."""
    from pytest_dlio.errors import StorageError
    from pytest_dlio.storage.file import RANGE_BUFFERS

    data = np.random.default_rng(5).integers(0, 256, 3 * POOL_MIN, dtype=np.uint8).tobytes()
    ranges = [(0, POOL_MIN), (POOL_MIN // 2, 2 * POOL_MIN), (3 * POOL_MIN - 9, POOL_MIN), (7, 70)]
    recorded = Reads()

    async def go() -> tuple[list[int], CountingBudget, TimedStore]:
        budget = CountingBudget(1 << 40)
        made = []
        async with open_store(tmp_path.as_uri()) as inner, open_store("mem://range-pooled") as mem:
            timed = TimedStore(
                ThrottledStore(inner, Throttle(bandwidth_mib_s=1 << 20), budget=budget), recorded
            )
            assert timed.pooled_reads and not mem.pooled_reads
            await inner.put("r/f", data)
            await mem.put("r/f", data)
            for _ in range(3):
                for start, n in ranges:
                    for store in (timed, mem):
                        got = await store.get_range_pooled("r/f", start, n)
                        assert bytes(got.data) == data[start : start + n]
                        got.release()
                made.append(RANGE_BUFFERS.allocated)
            for store in (timed, mem):
                with pytest.raises(NotFound):
                    await store.get_range_pooled("r/missing", 0, POOL_MIN)
                with pytest.raises(StorageError, match="must be >= 0"):
                    await store.get_range_pooled("r/f", 0, -1)
            return made, budget, timed

    made, budget, timed = asyncio.run(go())
    assert made[0] == made[1] == made[2]  # after the first round every range reused a buffer
    moved = 3 * sum(len(data[s : s + n]) for s, n in ranges)
    assert timed.calls["get_range"] == 3 * len(ranges) + 1  # and the missing key's attempt
    assert sum(recorded.nbytes) == moved == budget.booked


def _ranged_config(fmt: str, record: int, threads: int) -> WorkloadConfig:
    from pytest_dlio.config.model import Parquet

    ds = Dataset(
        format=fmt,
        num_files_train=2,
        num_samples_per_file=48,
        record_length_bytes=record,
        parquet=Parquet(row_group_size=16),
    )
    rd = Reader(batch_size=8, read_threads=threads, prefetch_size=2, sample_shuffle="off", file_shuffle="off")
    return WorkloadConfig(framework="pytorch", dataset=ds, reader=rd)


@pytest.mark.parametrize("threads", [0, 2])
def test_parquet_row_groups_are_read_into_reused_buffers_handed_back_after_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threads: int
) -> None:
    """Each row group (2 MiB here) is read into a pooled buffer and handed back once decode_span has
    counted it: two epochs make no more buffers than one epoch's reads (the row-group window keeps all
    six in flight), every buffer is free at the
    end, and each row's value is its row group's byte count, the bytes the loader reports reading."""
    from pytest_dlio.storage import file as file_store
    from pytest_dlio.storage.file import BufferPool

    pool_of_ranges = BufferPool(keep=4, fit=float("inf"))
    monkeypatch.setattr(file_store, "RANGE_BUFFERS", pool_of_ranges)  # this test's own, not the process's
    cfg = _ranged_config("parquet", 128 * 1024, threads)
    files = [f for f in dataset_files(cfg) if f.split == "train"]

    async def go() -> tuple[list[int], list[int], Reads, Loader]:
        async with open_store(tmp_path.as_uri(), StoreOptions(threads=2)) as store:
            await fill(store, cfg)
            reads = Reads()
            pool = ThreadPoolExecutor(threads) if threads else None
            loader = Loader(cfg, store, files, reads, pool, np.random.default_rng(0), recycle=True)
            made, values = [], []
            for epoch in (1, 2):
                order = epoch_order(cfg, epoch, 0, 1, shared_seed=0)
                async for batch in loader.batches(order, 8):
                    values.extend(int(v) for v in batch)  # type: ignore[call-overload]
                made.append(pool_of_ranges.allocated)
            if pool is not None:
                pool.shutdown()
            return made, values, reads, loader

    made, values, reads, loader = asyncio.run(go())
    spans = [n for f in files for _, n in loader._spans[f.key].spans]
    assert len(spans) == 2 * 3 and min(spans) >= 16 * 128 * 1024  # three 2 MiB row groups a file
    # buffers in flight at once, not one per read (12 over the two epochs): the window's reads, done or not
    # yet handed back by the event loop
    assert 1 <= made[0] <= made[1] <= 6
    assert len(pool_of_ranges._free) == pool_of_ranges.allocated  # every buffer was handed back
    assert values == [n for _ in range(2) for n in spans for _ in range(16)]
    footers = sum(n for n in reads.nbytes if n not in spans)
    assert sum(reads.nbytes) - footers == 2 * sum(spans)


def test_indexed_binary_ranges_stay_the_samples_while_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """indexed_binary's decode_span is a view of the bytes read: those ranges are never pooled, so samples
    kept past later reads stay the stored samples."""
    from pytest_dlio.storage import file as file_store
    from pytest_dlio.storage.file import BufferPool

    pool_of_ranges = BufferPool(keep=4, fit=float("inf"))
    monkeypatch.setattr(file_store, "RANGE_BUFFERS", pool_of_ranges)
    cfg = _ranged_config("indexed_binary", POOL_MIN + 512, 2)
    files = [f for f in dataset_files(cfg) if f.split == "train"]

    async def go() -> tuple[list[Any], dict[str, bytes]]:
        async with open_store(tmp_path.as_uri()) as store:
            raw = await fill(store, cfg)
            pool = ThreadPoolExecutor(2)
            loader = Loader(cfg, store, files, Reads(), pool, np.random.default_rng(0), recycle=True)
            kept: list[Any] = []
            async for batch in loader.batches(epoch_order(cfg, 1, 0, 1, shared_seed=0), 8):
                kept.extend(batch)
            pool.shutdown()
            return kept, raw

    kept, raw = asyncio.run(go())
    fmt = get_format("indexed_binary")
    want = [
        bytes(raw[f.key][off : off + n])
        for f in files
        for off, n in fmt.sample_spans(f, {k: raw[k] for k in f.sidecars}).spans
    ]
    assert len(kept) == len(want) == 96
    assert [bytes(s) for s in kept] == want
    assert pool_of_ranges.allocated == 0


def test_a_loader_reserves_its_read_ahead_buffers_before_the_clock_starts(tmp_path: Path) -> None:
    """The buffers a full read-ahead holds are made (and faulted in) by ``reserve`` before training: the
    reads of the first epoch take them and make none; O_DIRECT stores, whose reads bring their own
    buffers, reserve nothing."""
    cfg = config(files=8, threads=2, record=POOL_MIN + 4096)

    async def go() -> tuple[int, int, int]:
        async with open_store(tmp_path.as_uri()) as store:
            await fill(store, cfg)
            assert isinstance(store, FileStore)
            pool = ThreadPoolExecutor(2)
            loader = Loader(
                cfg, store, dataset_files(cfg), Reads(), pool, np.random.default_rng(0), recycle=True
            )
            await loader.reserve(2)
            reserved = store._buffers.allocated if store._buffers is not None else 0
            async for _ in loader.batches(epoch_order(cfg, 1, 0, 1, shared_seed=0), 2):
                await asyncio.sleep(0.01)
            pool.shutdown()
            after = store._buffers.allocated if store._buffers is not None else 0
        return reserved, after, loader.capacity

    reserved, after, capacity = asyncio.run(go())
    assert reserved == (capacity + 1) * 2  # the batches ahead and the one the step holds, 2 samples each
    assert after == reserved  # the epoch's reads made no buffer of their own


def test_direct_store_reserves_nothing(tmp_path: Path) -> None:
    if probe(tmp_path):
        pytest.skip(f"O_DIRECT unavailable here: {probe(tmp_path)}")
    store = open_store(f"direct://{tmp_path}")
    store.reserve_read_buffers(4, POOL_MIN + 4096)
    assert store._buffers.allocated == 0  # type: ignore[attr-defined]  # no buffer made: O_DIRECT brings its own
