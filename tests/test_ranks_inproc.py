"""Multi-rank phase logic with every rank a coroutine of one loop (InProcessWorld) on a real mem:// store:
one rank lists, the coverage check catches overlapping or short shards, the shard maths never deadlocks."""

from __future__ import annotations

import asyncio
import itertools

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pytest_dlio.errors import DlioError
from pytest_dlio.phases import sampler
from pytest_dlio.phases import train as train_mod
from pytest_dlio.phases.datagen import generate
from pytest_dlio.phases.sampler import SampleRuns, coverage_problem, epoch_order
from pytest_dlio.phases.train import run_training
from pytest_dlio.ranks import resolve
from pytest_dlio.ranks.inproc import InProcessWorld
from pytest_dlio.storage import open_store
from tests.test_train_loop import make_cfg

_names = itertools.count()


class Listing:
    """A real MemoryStore that counts LIST calls per prefix."""

    def __init__(self, store) -> None:
        self._s, self.lists = store, []
        self.supports_listing = store.supports_listing

    def __getattr__(self, name):
        return getattr(self._s, name)

    def __str__(self) -> str:
        return str(self._s)

    def list(self, prefix: str = ""):
        self.lists.append(prefix)
        return self._s.list(prefix)


def test_only_rank_zero_lists_for_datagen_and_the_dataset_check():
    cfg = make_cfg(files=12, spf=1, bs=1)

    async def go():
        store = Listing(open_store(f"mem://ranks{next(_names)}"))
        world = InProcessWorld(4)
        stats = await asyncio.gather(*(generate(cfg, store, comm=c) for c in world.comms))
        after_gen = list(store.lists)
        runs = await asyncio.gather(*(run_training(cfg, store, comm=c) for c in world.comms))
        return stats, after_gen, store.lists[len(after_gen) :], runs

    stats, gen_lists, train_lists, runs = asyncio.run(go())
    assert sum(s.files_written for s in stats) == 12
    assert sorted(gen_lists) == sorted(set(gen_lists))  # one LIST per prefix, not one per rank
    assert "train/" in train_lists and len(train_lists) == len(
        set(train_lists)
    )  # 4 ranks, one LIST each prefix
    assert runs[0].metrics.num_accelerators == 4
    assert all(r.metrics == runs[0].metrics for r in runs)  # every rank holds the run's metrics


@settings(max_examples=60, deadline=None)
@given(
    files=st.integers(1, 40),
    spf=st.integers(1, 4),
    bs=st.integers(1, 5),
    size=st.integers(1, 7),
    shuffle=st.sampled_from(["off", "seed"]),
)
def test_floor_shards_pass_the_coverage_check(files, spf, bs, size, shuffle):
    cfg = make_cfg(files=files, spf=spf, bs=bs, file_shuffle=shuffle, sample_shuffle=shuffle)
    steps = cfg.steps_per_epoch(size)
    orders = [epoch_order(cfg, 1, r, size, shared_seed=7) for r in range(size)]
    assert {len(o) for o in orders} == {steps * bs}  # no rank has fewer steps (mlcommons/storage #455)
    assert coverage_problem(orders, files * spf, steps, bs, 1) is None


@settings(max_examples=60, deadline=None)
@given(
    files=st.integers(1, 40),
    spf=st.integers(1, 5),
    size=st.integers(1, 7),
    shuffle=st.sampled_from(["off", "seed"]),
    epoch=st.integers(1, 3),
)
def test_a_rank_builds_only_its_block_of_the_sample_list(files, spf, size, shuffle, epoch):
    """Each rank's order is its floor(N/P) block of the file-shuffled list of every sample (then shuffled
    within): the list written out whole, as DLIO's sampler defines it, gives the same orders."""
    cfg = make_cfg(files=files, spf=spf, bs=1, file_shuffle=shuffle, sample_shuffle=shuffle)
    if cfg.steps_per_epoch(size) < 1:
        return
    seed = cfg.train.seed + epoch  # seed_change_epoch
    assert cfg.train.seed_change_epoch
    permuted = np.arange(files)
    if shuffle == "seed":
        permuted = np.random.default_rng([seed, 1]).permutation(permuted)
    every = np.concatenate([np.arange(f * spf, (f + 1) * spf) for f in permuted])
    spp = every.size // size
    for r in range(size):
        block = every[r * spp : (r + 1) * spp]
        if shuffle == "seed":
            block = np.random.default_rng([seed, r, 2]).permutation(block)
        got = epoch_order(cfg, epoch, r, size, shared_seed=7)
        assert got.tolist() == block[: got.size].tolist()


def test_a_rank_holds_its_block_not_the_epoch():
    """8 ranks over 640,000 samples: a rank's order costs about its 80,000 samples (8 bytes each), not the
    epoch's 640,000 (which full-size dlrm_b200 made 12.6 GB on every rank)."""
    import tracemalloc

    cfg = make_cfg(files=64, spf=10_000, bs=1000, file_shuffle="seed")
    tracemalloc.start()
    try:
        order = epoch_order(cfg, 1, 7, 8, shared_seed=7)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert order.size == 80_000
    assert peak < 3 * 80_000 * 8 < 640_000 * 8, peak


def test_the_coverage_check_catches_the_old_wrapping_shards():
    # 10 samples, 3 ranks, batch 1, 3 steps: ceil(10/3)=4 per rank left rank 2 with [8, 9] wrapped to [8, 9, 8]
    wrapped = [np.array([0, 1, 2]), np.array([4, 5, 6]), np.array([8, 9, 8])]
    msg = coverage_problem(wrapped, 10, 3, 1, 2)
    assert msg is not None and "epoch 2" in msg and "sample 8 2 times" in msg and "ranks [2]" in msg
    short = coverage_problem([np.array([0, 1, 2]), np.array([3, 4])], 10, 3, 1, 1)
    assert short is not None and "rank 1 read 2 samples, expected 3 steps x batch 1 = 3" in short


def test_overlapping_shards_fail_training_on_every_rank(monkeypatch):
    cfg = make_cfg(files=8, spf=1, bs=1)
    real = epoch_order

    def overlapping(cfg, epoch, rank, size, **kw):  # every rank reads rank 0's block
        return real(cfg, epoch, 0, size, **kw)

    monkeypatch.setattr(train_mod, "epoch_order", overlapping)

    async def go():
        store = open_store(f"mem://ranks{next(_names)}")
        world = InProcessWorld(2)
        await asyncio.gather(*(generate(cfg, store, comm=c) for c in world.comms))
        return await asyncio.gather(
            *(run_training(cfg, store, comm=c) for c in world.comms), return_exceptions=True
        )

    outcomes = asyncio.run(go())
    assert all(isinstance(o, DlioError) and "coverage check, epoch 1" in str(o) for o in outcomes)


def test_collectives_resolve_as_dlio_uses_them():
    assert resolve("allreduce", [1.5, 2.0, 0.5]) == [4.0, 4.0, 4.0]
    assert resolve("gather", ["a", "b"]) == [["a", "b"], None]
    assert resolve("broadcast", ["x", None, None]) == ["x", "x", "x"]
    with pytest.raises(DlioError, match="unknown collective 'scatter'"):
        resolve("scatter", [1])


def test_page_cache_is_dropped_once_per_host(tmp_path, monkeypatch):
    from pytest_dlio.phases import checkpoint as ck
    from tests.test_checkpoint_phase import tiny

    drops = []
    monkeypatch.setattr(ck, "drop_page_cache", lambda: drops.append(1) or True)  # the real one needs root
    cfg = tiny()

    async def go():
        store = open_store(f"file://{tmp_path}")
        world = InProcessWorld(3)
        await asyncio.gather(*(ck.write_checkpoints(cfg, store, comm=c) for c in world.comms))
        return await asyncio.gather(
            *(ck.read_checkpoints(cfg, store, comm=c, drop_caches=True) for c in world.comms)
        )

    stats = asyncio.run(go())
    assert len(drops) == 1  # three ranks on one host, one drop
    assert all("page cache dropped before reading" in s.notes for s in stats)


def test_summary_has_one_entry_per_host_however_many_ranks():
    from pytest_dlio.report.dlio_json import merge_hosts

    def host(name, mem):
        return {
            "hostname": name,
            "host_cpu_count": [8],
            "host_processor_name": ["x"],
            "host_memory_GB": [mem],
        }

    merged = merge_hosts([host("a", 64.0), host("a", 64.0), host("b", 128.0), host("b", 128.0)])
    assert (
        merged["num_hosts"] == 2 and merged["host_memory_GB"] == [64.0, 128.0] and merged["hostname"] == "a"
    )


def test_compose_names_root_causes_and_counts_the_ranks_they_stopped():
    from pytest_dlio.engine.runner import compose
    from pytest_dlio.ranks.local import RankOutcome
    from pytest_dlio.report.results import PhaseResult

    ok = PhaseResult("train", [("num_accelerators", 3)], ["fine"])
    assert compose("train", [RankOutcome(0, ok), RankOutcome(1, ok), RankOutcome(2, ok)]) is ok
    mixed = compose(
        "train",
        [
            RankOutcome(0, error="rank 2 failed: disk full", aborted=True),
            RankOutcome(1, error="rank 2 failed: disk full", aborted=True),
            RankOutcome(2, error="disk full"),
        ],
    )
    assert mixed.failure == "rank 2: disk full (2 other rank(s) stopped because of it)"
    gate = PhaseResult("au", [], [], "training AU 50 % is below 90 %")
    # the AU gate over shared metrics fails alike on every rank: rank 0's verdict, said once
    assert compose("au", [RankOutcome(r, gate) for r in range(3)]).failure == gate.failure


@settings(max_examples=150, deadline=None)
@given(
    stretches=st.lists(st.tuples(st.integers(0, 60), st.integers(1, 12)), min_size=1, max_size=12),
    shuffled=st.booleans(),
    chunk=st.integers(1, 16),
)
def test_a_ranks_reads_summed_up_as_runs_are_its_reads(stretches, shuffled, chunk):
    """A rank's reads handed to the coverage check as runs of consecutive samples, found a chunk at a
    time (runs across chunk edges), write out to exactly its reads; too many runs: the reads themselves."""
    idx = np.concatenate([np.arange(lo, lo + n) for lo, n in stretches]).astype(np.int64)
    if shuffled:
        idx = np.random.default_rng(len(idx)).permutation(idx)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sampler, "SUMMARY_CHUNK", chunk)
        got = sampler.read_summary(idx)
        mp.setattr(sampler, "MAX_RUNS", 1)
        few = sampler.read_summary(idx)
    assert isinstance(got, SampleRuns) and got.size == idx.size
    assert got.samples().tolist() == idx.tolist()
    assert bool(np.all(got.lengths >= 1))
    runs = 1 + int(np.count_nonzero(np.diff(idx) != 1))
    assert len(got.starts) == runs  # maximal runs: none split at a chunk's edge
    assert isinstance(few, SampleRuns) if runs == 1 else few is idx or np.array_equal(few, idx)


@settings(max_examples=200, deadline=None)
@given(
    blocks=st.lists(
        st.lists(st.tuples(st.integers(-2, 70), st.integers(1, 8)), min_size=1, max_size=4),
        min_size=1,
        max_size=4,
    ),
    as_runs=st.lists(st.booleans(), min_size=4, max_size=4),
)
@example(blocks=[[(4, 4)], [(0, 4)], [(8, 2), (62, 2)]], as_runs=[True] * 4)  # ranks' runs edge to edge
@example(blocks=[[(2**63 - 1, 1), (-(2**63), 1)]], as_runs=[True] * 4)  # consecutive only where int64 wraps
def test_the_coverage_check_says_the_same_of_runs_as_of_samples(blocks, as_runs):
    """Whatever the ranks read (overlapping, outside the dataset, of unequal sizes), the check's verdict
    and message are the same whether each rank sends its samples or its runs, or some of each; and when
    every rank sends runs, a pass is decided and a repeated sample named on the runs alone, without
    writing them out (full-size dlrm: 1.57 billion samples)."""
    total = 64
    reads = [np.array([lo + i for lo, n in b for i in range(n)], dtype=np.int64) for b in blocks]
    size = reads[0].size
    want = coverage_problem(reads, total, size, 1, 3)
    mixed = [sampler.read_summary(r) if as_runs[i] else r for i, r in enumerate(reads)]
    assert coverage_problem(mixed, total, size, 1, 3) == want
    runs = [sampler.read_summary(r) for r in reads]
    with pytest.MonkeyPatch.context() as mp:  # runs are judged, and named, as runs: never written out
        mp.setattr(SampleRuns, "samples", lambda self: pytest.fail("runs written out"))
        if want is None:
            mp.setattr(np, "zeros", lambda *a, **k: pytest.fail("a byte per sample allocated"))
        assert coverage_problem(runs, total, size, 1, 3) == want
