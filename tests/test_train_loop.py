"""The training loop against a real in-process store (mem://) and real files: steps, shards, shuffles, eval,
read-ahead bound, read_type, checkpoint blocks, missing data."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import replace

import numpy as np
import pytest

from pytest_dlio import layout
from pytest_dlio.config.model import (
    Checkpoint,
    Dataset,
    Evaluation,
    Reader,
    TimeSpec,
    Train,
    Workflow,
    WorkloadConfig,
)
from pytest_dlio.engine import RunSettings, Workload
from pytest_dlio.errors import DlioError
from pytest_dlio.formats import get_format
from pytest_dlio.phases.loader import dataset_keys
from pytest_dlio.phases.sampler import epoch_order
from pytest_dlio.phases.train import run_training, timed_compute
from pytest_dlio.ranks import SingleComm
from pytest_dlio.storage import open_store
from pytest_dlio.storage.session import StorageSession
from pytest_dlio.timeline import Clock

_names = itertools.count()


def make_cfg(**kw) -> WorkloadConfig:
    ds = Dataset(
        format="npy",
        num_files_train=kw.pop("files", 8),
        num_files_eval=kw.pop("eval_files", 0),
        num_samples_per_file=kw.pop("spf", 2),
        record_length_bytes=64,
    )
    rd = Reader(
        data_loader="pytorch",
        batch_size=kw.pop("bs", 2),
        batch_size_eval=kw.pop("bs_eval", 1),
        read_threads=kw.pop("threads", 2),
        prefetch_size=kw.pop("prefetch", 2),
        file_shuffle=kw.pop("file_shuffle", "off"),
        sample_shuffle=kw.pop("sample_shuffle", "off"),
        read_type=kw.pop("read_type", "on_demand"),
    )
    tr = Train(
        epochs=kw.pop("epochs", 1),
        computation_time=TimeSpec(mean=kw.pop("compute", 0.0)),
        total_training_steps=kw.pop("total_steps", -1),
        seed_change_epoch=kw.pop("change", True),
    )
    wf = Workflow(train=True, evaluation=kw.pop("evaluation", False))
    ev = Evaluation(eval_after_epoch=kw.pop("eval_after", 1), epochs_between_evals=kw.pop("eval_every", 1))
    ck = Checkpoint(steps_between_checkpoints=kw.pop("ckpt_steps", -1))
    assert not kw, kw
    return WorkloadConfig(
        framework="pytorch", dataset=ds, reader=rd, train=tr, workflow=wf, evaluation=ev, checkpoint=ck
    )


async def fill(store, cfg: WorkloadConfig) -> None:
    """Write the dataset with the real format encoders (what the datagen phase writes)."""
    rng = np.random.default_rng(0)
    for f in layout.dataset_files(cfg):
        enc = get_format(cfg.dataset.format).encode(f, cfg.dataset, rng)
        await store.put(f.key, bytes(enc.data()))
        for k, v in enc.sidecars.items():
            await store.put(k, v)
        enc.release()


class Recording:
    """A real MemoryStore that also remembers the order of ``get``, ``get_range`` (and ``get_range_pooled``)
    and ``get_suffix`` calls."""

    def __init__(self, store) -> None:
        self._s, self.gets, self.ranges, self.suffixes = store, [], [], []
        self.supports_listing = store.supports_listing

    def __getattr__(self, name):
        return getattr(self._s, name)

    def __str__(self) -> str:
        return str(self._s)

    async def get(self, key):
        self.gets.append(key)
        return await self._s.get(key)

    async def get_range(self, key, start, length):
        self.ranges.append((key, start, length))
        return await self._s.get_range(key, start, length)

    async def get_range_pooled(self, key, start, length):  # a range too (parquet row groups read so)
        self.ranges.append((key, start, length))
        return await self._s.get_range_pooled(key, start, length)

    async def get_suffix(self, key, n):
        self.suffixes.append((key, n))
        return await self._s.get_suffix(key, n)


def train_through_engine(cfg: WorkloadConfig, storage_uri: str, root, emulators=None):
    """Fill the dataset, then run the engine's train phase; returns (its PhaseResult, the Workload)."""
    settings = RunSettings(data_root=root / "root", output_root=root / "out")
    wl = Workload(cfg, settings, StorageSession(settings.data_root, storage_uri, emulators), name="w")

    async def go():
        async with await wl.open_data() as s:
            try:
                await fill(s, cfg)
                return await wl.run("train")
            finally:
                if not storage_uri.startswith(("file:", "direct:")):
                    await s.delete_prefix("")

    return asyncio.run(go()), wl


def run(cfg, store=None, **kw):
    async def go():
        s = store or open_store(f"mem://train{next(_names)}")
        await fill(getattr(s, "_s", s), cfg)
        return await run_training(cfg, s, comm=SingleComm(), **kw)

    return asyncio.run(go())


def test_steps_per_epoch_and_reads():
    cfg = make_cfg(files=8, spf=2, bs=2, epochs=2)
    r = run(cfg)
    assert [len(b.steps) for e in r.timeline.epochs for b in e.blocks] == [8, 8]
    # on_demand: a file is fetched once while consecutive samples come from it (in order here)
    assert r.metrics.read_count == 2 * 8
    assert r.metrics.read_bytes == 2 * 8 * (128 + 64 * 2)  # npy: 128-byte header + 2 samples of 8x8
    assert r.metrics.epochs == 2


def test_total_training_steps_caps_each_epoch():
    r = run(make_cfg(files=8, spf=2, bs=2, epochs=2, total_steps=3))
    assert [len(e.blocks[0].steps) for e in r.timeline.epochs] == [3, 3]


def test_rank_shards_are_contiguous_disjoint_and_complete():
    cfg = make_cfg(files=10, spf=1, bs=1)
    a = epoch_order(cfg, 1, 0, 2, shared_seed=0)
    b = epoch_order(cfg, 1, 1, 2, shared_seed=0)
    assert a.tolist() == [0, 1, 2, 3, 4] and b.tolist() == [5, 6, 7, 8, 9]


def test_uneven_shard_floors_so_every_rank_has_the_same_steps():
    cfg = make_cfg(files=10, spf=1, bs=1)  # 10 samples over 3 ranks: 3 each (storage #455), sample 9 unread
    orders = [epoch_order(cfg, 1, r, 3, shared_seed=0).tolist() for r in range(3)]
    assert orders == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]


def test_shuffle_off_seed_and_random():
    off = make_cfg(files=16, spf=4, bs=4)
    seed = make_cfg(files=16, spf=4, bs=4, sample_shuffle="seed", file_shuffle="seed")
    assert epoch_order(off, 1, 0, 1, shared_seed=0).tolist() == list(range(64))
    s1 = epoch_order(seed, 1, 0, 1, shared_seed=0)
    assert s1.tolist() != list(range(64)) and sorted(s1.tolist()) == list(range(64))
    assert epoch_order(seed, 1, 0, 1, shared_seed=99).tolist() == s1.tolist()  # seeded: reproducible
    assert epoch_order(seed, 2, 0, 1, shared_seed=0).tolist() != s1.tolist()  # seed + epoch
    fixed = replace(seed, train=replace(seed.train, seed_change_epoch=False))
    assert (
        epoch_order(fixed, 2, 0, 1, shared_seed=0).tolist()
        == epoch_order(fixed, 1, 0, 1, shared_seed=0).tolist()
    )
    rnd = make_cfg(files=16, spf=4, bs=4, sample_shuffle="random")
    assert (
        epoch_order(rnd, 1, 0, 1, shared_seed=0).tolist() != epoch_order(rnd, 1, 0, 1, shared_seed=0).tolist()
    )


def test_file_shuffle_keeps_samples_of_a_file_together_and_ranks_disjoint():
    cfg = make_cfg(files=8, spf=2, bs=1, file_shuffle="seed")
    a = epoch_order(cfg, 1, 0, 2, shared_seed=0).tolist()
    b = epoch_order(cfg, 1, 1, 2, shared_seed=0).tolist()
    assert sorted(a + b) == list(range(16))
    assert all(a[i] // 2 == a[i + 1] // 2 for i in range(0, 8, 2))
    assert a != list(range(8))


def test_sample_shuffle_really_changes_read_order():
    async def gets(cfg):
        s = Recording(open_store(f"mem://order{next(_names)}"))
        await fill(s._s, cfg)
        await run_training(cfg, s, comm=SingleComm())
        return s.gets

    off = asyncio.run(gets(make_cfg(files=8, spf=1, bs=1, threads=0)))
    on = asyncio.run(gets(make_cfg(files=8, spf=1, bs=1, threads=0, sample_shuffle="seed")))
    assert off == dataset_keys(make_cfg(files=8, spf=1))
    assert on != off and sorted(on) == sorted(off)


def test_memory_read_type_reads_each_file_once_per_epoch():
    r = run(make_cfg(files=4, spf=4, bs=4, read_type="memory", epochs=2))
    assert r.metrics.read_count == 2 * 4
    r2 = run(make_cfg(files=16, spf=4, bs=4, read_type="on_demand", epochs=1, sample_shuffle="seed"))
    assert (
        r2.metrics.read_count > 16
    )  # shuffled samples jump between files: on_demand refetches, memory does not


@pytest.mark.parametrize("prefetch,threads", [(1, 1), (4, 2), (2, 4)])
def test_read_ahead_is_bounded(prefetch, threads):
    r = run(make_cfg(files=16, spf=1, bs=1, threads=threads, prefetch=prefetch, compute=0.003))
    cap = max(prefetch, threads)
    assert 1 <= r.loader.max_ahead <= cap
    assert r.loader.max_ahead == cap  # with compute to hide behind, the readers do run ahead to the bound


def test_zero_read_threads_reads_inline():
    r = run(make_cfg(files=8, spf=1, bs=2, threads=0))
    assert r.loader.max_ahead == 0 and r.loader.batches == 4


def test_eval_after_and_between_epochs():
    cfg = make_cfg(
        files=4, spf=1, bs=1, eval_files=2, bs_eval=1, evaluation=True, epochs=4, eval_after=2, eval_every=2
    )
    r = run(cfg)
    assert [e.eval is not None for e in r.timeline.epochs] == [False, True, False, True]
    assert [len(e.eval.steps) for e in r.timeline.epochs if e.eval] == [2, 2]
    assert len(r.metrics.eval_au_percentage) == 2
    assert len(r.timeline.eval_reads.nbytes) == 4


def test_checkpoint_hook_splits_blocks():
    calls = []

    async def ckpt(epoch, step):
        calls.append((epoch, step))

    r = run(make_cfg(files=10, spf=1, bs=1, epochs=2, ckpt_steps=4), on_checkpoint=ckpt)
    assert calls == [(1, 4), (1, 8), (2, 12), (2, 16), (2, 20)]
    assert [[len(b.steps) for b in e.blocks] for e in r.timeline.epochs] == [[4, 4, 2], [2, 4, 4]]


def test_loop_held_past_the_draw_is_overrun_not_compute():
    """A reader task that holds the event loop when the emulated compute should end (inline decoding,
    batch assembly) stretches the measured sleep; the accelerator computed only its draw, and the rest is
    kept as overrun, so AU does not count the harness's own work as compute (DLIO's readers are other
    processes: its measured sleep is its draw)."""

    async def go() -> tuple[float, float]:
        async def hog() -> None:
            await asyncio.sleep(0.001)
            time.sleep(0.03)  # holds the loop across the 10 ms compute's end

        task = asyncio.create_task(hog())
        got = await timed_compute(0.010, Clock())
        await task
        return got

    compute, overrun = asyncio.run(go())
    assert compute == 0.010 and overrun >= 0.02


@pytest.mark.parametrize("seconds", [0.0004, 0.010])
def test_emulated_compute_leaves_the_core_to_the_readers(seconds: float):
    """An accelerator's host idles while it computes: the emulated compute ends on time (never early, a
    few tenths of a millisecond late at most in the median) yet spends well under half its length on the
    CPU. A busy wait spent all of it: dlrm's 0.375 ms steps were one long spin, holding the GIL and a
    core from the reader threads (2 cores here)."""
    from pytest_dlio.phases.train import emulate, fine_timer_slack

    async def go() -> tuple[list[float], float]:
        took = []
        cpu = time.thread_time()
        with fine_timer_slack():
            for _ in range(int(0.3 / seconds)):
                t = time.perf_counter()
                await emulate(seconds)
                took.append(time.perf_counter() - t)
        return took, time.thread_time() - cpu

    took, cpu = asyncio.run(go())
    assert min(took) >= seconds and float(np.median(took)) <= seconds + 0.0003
    assert cpu <= 0.5 * sum(took), (cpu, sum(took))


def test_a_short_compute_turns_the_event_loop_once_for_the_reader_tasks():
    """A compute too short for the yield-spin (``LAST`` or less) still lets a reader task that is ready
    run inside it: the window's reads on ``mem://`` and object stores are tasks, and dlrm_b200's 0.375 ms
    steps otherwise ran them in the next step's wait (AU 81 % on ``mem://``, 92 % with the turn)."""
    from pytest_dlio.phases.train import LAST, emulate

    async def go() -> int:
        inside = 0
        for _ in range(20):
            ran: list[bool] = []

            async def reader(ran: list[bool] = ran) -> None:
                ran.append(True)

            task = asyncio.ensure_future(reader())
            await emulate(LAST)
            inside += bool(ran)  # it ran before the compute ended
            await task
        return inside

    assert asyncio.run(go()) >= 15  # a preempted process may find less than YIELD_MIN left now and then


def test_the_heap_built_before_training_is_frozen_while_it_runs():
    """A full garbage collection walks every tracked object (pytest's, pyarrow's, the config's) and
    stalled 0.375 ms dlrm steps by 10-20 ms: while training runs, what existed before is frozen out of
    collection, and after it everything is collectable again."""
    import gc

    seen: list[int] = []

    async def epoch_end(epoch: int) -> None:
        seen.append(gc.get_freeze_count())

    before = gc.get_freeze_count()
    run(make_cfg(files=4, spf=1, bs=1, epochs=2), on_epoch_end=epoch_end)
    assert before == 0 and len(seen) == 2 and min(seen) > 1000 and gc.get_freeze_count() == 0


def test_the_gil_changes_hands_quickly_while_training_runs():
    """While training runs, a thread waiting for the GIL gets it within 0.1 ms instead of Python's 5 ms (the
    step loop's own numpy calls waited behind the reader threads); after it, the interval is the user's."""
    import sys

    from pytest_dlio.phases.train import GIL_SWITCH

    seen: list[float] = []

    async def epoch_end(epoch: int) -> None:
        seen.append(sys.getswitchinterval())

    before = sys.getswitchinterval()
    run(make_cfg(files=4, spf=1, bs=1, epochs=2), on_epoch_end=epoch_end)
    assert len(seen) == 2 and all(x == pytest.approx(GIL_SWITCH) for x in seen)
    assert GIL_SWITCH < before and sys.getswitchinterval() == before


def test_a_switch_interval_below_a_microsecond_does_not_stop_training():
    """``sys.setswitchinterval(1e-7)`` reads back as 0.0, which setswitchinterval refuses: training still
    runs, and leaves the interval at the smallest one Python takes."""
    import sys

    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(1e-7)
        r = run(make_cfg(files=2, spf=1, bs=1, epochs=1))
        assert len(r.timeline.epochs) == 1 and sys.getswitchinterval() <= 1e-6
    finally:
        sys.setswitchinterval(before)


def test_compute_is_measured_not_assumed():
    r = run(make_cfg(files=6, spf=1, bs=1, compute=0.005))
    comp = [s.compute for b in r.timeline.epochs[0].blocks for s in b.steps]
    assert all(c >= 0.005 for c in comp)
    assert (
        r.metrics.compute_seconds == pytest.approx(sum(comp), abs=1e-12) and r.metrics.compute_seconds >= 0.03
    )


def test_missing_file_names_the_first_missing_key():
    cfg = make_cfg(files=4, spf=1, bs=1)

    async def go():
        s = open_store(f"mem://missing{next(_names)}")
        await fill(s, cfg)
        await s.delete(dataset_keys(cfg)[2])
        await s.delete(dataset_keys(cfg)[3])
        await run_training(cfg, s, comm=SingleComm())

    with pytest.raises(DlioError, match=r"2 of 4 files missing .* first train/img_2_of_4\.npy"):
        asyncio.run(go())


def test_wrong_size_is_refused():
    cfg = make_cfg(files=2, spf=1, bs=1)

    async def go():
        s = open_store(f"mem://size{next(_names)}")
        await fill(s, cfg)
        await s.put(dataset_keys(cfg)[0], b"x" * 10)
        await run_training(cfg, s, comm=SingleComm())

    with pytest.raises(DlioError, match=r"first train/img_0_of_2\.npy has 10 bytes, expected 192"):
        asyncio.run(go())


@pytest.mark.parametrize("fmt", ["tfrecord", "indexed_binary", "hdf5", "csv", "png", "synthetic"])
def test_every_format_reads_through_the_format_readers(fmt):
    cfg = make_cfg(files=4, spf=2, bs=2, threads=2)
    cfg = replace(cfg, dataset=replace(cfg.dataset, format=fmt))
    store = open_store(f"mem://formats{next(_names)}")
    r = run(cfg, store)

    async def stored() -> dict[str, int]:
        return {k: n async for k, n in store.list("")}

    objects = asyncio.run(stored())
    assert r.loader.batches == 4
    # in order, each sample once: every stored byte (files and their index sidecars) is read exactly once
    assert r.metrics.read_bytes == sum(objects.values())
    # one get per file and per sidecar; indexed_binary reads each of its 8 samples as its own range
    data_reads = {"indexed_binary": 8}.get(fmt, 4)
    assert r.metrics.read_count == data_reads + sum(1 for k in objects if k not in dataset_keys(cfg))


def test_empty_file_is_refused():
    cfg = make_cfg(files=2, spf=1, bs=1)

    async def go():
        s = open_store(f"mem://empty{next(_names)}")
        await fill(s, cfg)
        await s.put(dataset_keys(cfg)[1], b"")
        await run_training(cfg, s, comm=SingleComm())

    with pytest.raises(DlioError, match=r"empty .* first train/img_1_of_2\.npy"):
        asyncio.run(go())


def test_on_local_files_with_subfolders(tmp_path):
    cfg = make_cfg(files=6, spf=1, bs=2)
    cfg = replace(cfg, dataset=replace(cfg.dataset, num_subfolders_train=3))
    assert dataset_keys(cfg)[:2] == ["train/0/img_0_of_6.npy", "train/1/img_1_of_6.npy"]
    res, wl = train_through_engine(cfg, (tmp_path / "data").as_uri(), tmp_path)
    assert res.value("steps") == 3 and res.value("read_count") == 6
    assert sorted(p.name for p in (tmp_path / "data" / "data" / "train").iterdir()) == ["0", "1", "2"]
    doc = json.loads((wl.output_dir / "summary.json").read_text())
    # the file users read and the item's properties are one figure
    assert doc["metric"]["train_au_mean_percentage"] == res.value("train_au_mean_percentage")
    assert doc["pytest_dlio"]["metric"]["read_count"] == 6
    assert any(line.startswith("Training Accelerator Utilization") for line in res.lines)


def test_npz_is_decoded_in_the_pool_and_a_corrupt_file_names_its_key():
    cfg = make_cfg(files=4, spf=2, bs=2, threads=2)
    cfg = replace(cfg, dataset=replace(cfg.dataset, format="npz"))

    async def go(corrupt: bool):
        s = open_store(f"mem://npz{next(_names)}")
        await fill(s, cfg)
        if corrupt:  # right size, garbage content: passes the size check, fails the reader
            key = dataset_keys(cfg)[1]
            await s.put(key, b"\0" * await s.size(key))
        return await run_training(cfg, s, comm=SingleComm())

    assert asyncio.run(go(False)).metrics.read_count == 4  # each 2-sample file fetched once
    with pytest.raises(DlioError, match=r"train/img_1_of_4\.npz: cannot decode sample 0 as npz"):
        asyncio.run(go(True))
