"""DLIO's formulas (dlio.md §4.1) on a hand-recorded two-rank timeline; expected values worked by hand."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_dlio.metrics import (
    BlockMetrics,
    ReaderCosts,
    au_verdict,
    block_metrics,
    combine,
    compute_metrics,
    rank_metrics,
    weighted,
)
from pytest_dlio.timeline import from_dict, to_dict

GOLDEN = Path(__file__).parent.parent / "fixtures" / "golden" / "train_timeline.json"
TOL = 1e-9
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def golden():
    doc = json.loads(GOLDEN.read_text())
    return [from_dict(r) for r in doc["ranks"]], doc["au_threshold"]


# S=5, exclude_start=1, exclude_end=1 → start=1, end=5-1-1=3: compute[1:4]; proc[:1] and proc[4:] removed.
AU_E1_B1 = 100 * (0.5 + 0.5) / (3.0 - 0.7)
THR_E1_B1 = (3 - 2) / (3.0 - 0.7) * 2
AU_E1_B2 = 100 * 0.6 / (1.5 - 0.5)
THR_E1_B2 = (2 - 2) / (1.5 - 0.5) * 2  # DLIO's hard-coded "-2": a 2-step block has throughput 0
AU_E1 = (AU_E1_B1 * 3 + AU_E1_B2 * 2) / 5
THR_E1 = (THR_E1_B1 * 3 + THR_E1_B2 * 2) / 5
AU_E2_R0 = 100 * (0.6 + 0.7 + 0.8) / (4.0 - 1.0 - 0.6)
THR_E2_R0 = (5 - 2) / (4.0 - 1.0 - 0.6) * 2
AU_E2_R1 = 100 * (0.6 + 0.7 + 0.8) / (5.0 - 1.0 - 0.6)
THR_E2_R1 = (5 - 2) / (5.0 - 1.0 - 0.6) * 2
# eval: S_eval=3 → end=1: compute[1:2]; eval throughput has no exclusion
EVAL_AU = 100 * 0.5 / (2.0 - 0.5 - 0.7)
EVAL_THR = 3 / 2.0 * 4


def test_block_formula_matches_hand_arithmetic():
    b = block_metrics(
        [0.5, 0.5, 0.5],
        [0.7, 0.6, 0.8],
        100.0,
        103.0,
        steps_per_epoch=5,
        batch_size=2,
        exclude_start=1,
        exclude_end=1,
    )
    assert b.au == pytest.approx(AU_E1_B1, abs=TOL)
    assert b.throughput == pytest.approx(THR_E1_B1, abs=TOL)
    assert b.steps == 3


def test_zero_compute_gives_zero_au_not_nan():
    b = block_metrics([0.0, 0.0, 0.0], [0.1, 0.1, 0.1], 0.0, 1.0, steps_per_epoch=3, batch_size=1)
    assert b.au == 0.0


def _steps(t0: float, rows: list[tuple[float, float]]) -> list[dict[str, float]]:
    """Steps from (load, compute) pairs laid end to end from ``t0``; proc = load + compute."""
    out = []
    for load, comp in rows:
        out.append({"t_start_load": t0, "load": load, "compute": comp, "proc": load + comp})
        t0 += load + comp
    return out


#: One rank, one epoch of S=10 steps split by a checkpoint after step 6 into blocks of 6 and 4 steps;
#: batch_size 5, exclude_start_steps 1, exclude_end_steps 0 → start=1, end=10-1-0=9 in every block.
#: Every number below is exact in binary floating point.
SPLIT_EPOCH = {
    "rank": 0,
    "steps_per_epoch": 10,
    "eval_steps": 0,
    "batch_size": 5,
    "batch_size_eval": 1,
    "record_size": 1048576.0,
    "exclude_start_steps": 1,
    "exclude_end_steps": 0,
    "t_start": 0.0,
    "t_end": 10.5,
    "epochs": [
        {
            "epoch": 1,
            "t_start": 0.0,
            "t_end": 10.5,
            "eval": None,
            "extra": {},
            "blocks": [
                # block 1: 6 steps of 1.0 s each over [0, 6]; checkpoint over [6, 7]
                {"index": 1, "t_start": 0.0, "t_end": 6.0, "steps": _steps(0.0, [(0.5, 0.5)] * 6)},
                # block 2: a slow first step after the checkpoint, then 3 steps; [7, 10.5]
                {
                    "index": 2,
                    "t_start": 7.0,
                    "t_end": 10.5,
                    "steps": _steps(7.0, [(1.0, 0.5), (0.25, 0.5), (0.0, 0.5), (0.25, 0.5)]),
                },
            ],
        }
    ],
}
# By hand, DLIO's block formula (dlio.md §4.1):
#   block 1: total_compute = sum(compute[1:10]) = 5 x 0.5 = 2.5; total_time = 6.0 - proc[0] (1.0) = 5.0
#            AU = 100 x 2.5 / 5.0 = 50.0 %;  throughput = (6 - 2) / 5.0 x 5 = 4.0 samples/s
#   block 2: total_compute = 3 x 0.5 = 1.5;  total_time = 3.5 - proc[0] (1.5) = 2.0
#            AU = 100 x 1.5 / 2.0 = 75.0 %;  throughput = (4 - 2) / 2.0 x 5 = 5.0 samples/s
#   epoch (weighted by steps 6 and 4): AU = (50 x 6 + 75 x 4) / 10 = 60.0 %   (plain mean: 62.5)
#                                      throughput = (4 x 6 + 5 x 4) / 10 = 4.4   (plain mean: 4.5)


def test_weighted_average_by_steps():
    assert weighted([]) == (0.0, 0.0)
    blocks = [BlockMetrics(au=50.0, throughput=4.0, steps=6), BlockMetrics(au=75.0, throughput=5.0, steps=4)]
    au, thr = weighted(blocks)
    assert au == pytest.approx(60.0, abs=TOL) and thr == pytest.approx(4.4, abs=TOL)


def test_epoch_split_by_a_checkpoint_is_step_weighted():
    (epoch,) = rank_metrics(from_dict(SPLIT_EPOCH)).epochs
    assert [(b.au, b.throughput, b.steps) for b in epoch.blocks] == pytest.approx(
        [(50.0, 4.0, 6), (75.0, 5.0, 4)], abs=TOL
    )
    assert epoch.au == pytest.approx(60.0, abs=TOL)
    assert epoch.throughput == pytest.approx(4.4, abs=TOL)
    m = compute_metrics([from_dict(SPLIT_EPOCH)], 0.6)
    assert list(m.train_au_percentage) == pytest.approx([60.0], abs=TOL)
    assert list(m.train_throughput_samples_per_second) == pytest.approx([4.4], abs=TOL)
    assert m.train_io_mean_MB_per_second == pytest.approx(4.4, abs=TOL)  # 4.4 samples/s x 1 MiB records
    assert m.train_au_meet_expectation == "success"  # 60.0 >= 0.6 x 100
    assert compute_metrics([from_dict(SPLIT_EPOCH)], 0.61).train_au_meet_expectation == "fail"


def test_per_rank_epochs(golden):
    tls, _ = golden
    r0 = rank_metrics(tls[0])
    e1, e2 = r0.epochs
    assert [b.au for b in e1.blocks] == pytest.approx([AU_E1_B1, AU_E1_B2], abs=TOL)
    assert e1.au == pytest.approx(AU_E1, abs=TOL)
    assert e1.throughput == pytest.approx(THR_E1, abs=TOL)
    assert e1.eval_au is None
    assert e2.au == pytest.approx(AU_E2_R0, abs=TOL)
    assert e2.throughput == pytest.approx(THR_E2_R0, abs=TOL)
    assert e2.eval_au == pytest.approx(EVAL_AU, abs=TOL)
    assert e2.eval_throughput == pytest.approx(EVAL_THR, abs=TOL)
    assert r0.train_seconds == pytest.approx(3.0 + 1.5 + 4.0, abs=TOL)


def test_across_ranks_and_epochs(golden):
    tls, thr = golden
    m = compute_metrics(tls, thr)
    au = [AU_E1, (AU_E2_R0 + AU_E2_R1) / 2]  # mean over ranks
    tp = [2 * THR_E1, THR_E2_R0 + THR_E2_R1]  # sum over ranks
    assert m.num_accelerators == 2
    assert list(m.train_au_percentage) == pytest.approx(au, abs=TOL)
    assert list(m.train_throughput_samples_per_second) == pytest.approx(tp, abs=TOL)
    assert m.train_au_mean_percentage == pytest.approx((au[0] + au[1]) / 2, abs=TOL)
    assert m.train_au_stdev_percentage == pytest.approx(abs(au[0] - au[1]) / 2, abs=TOL)  # population std
    mean_tp = (tp[0] + tp[1]) / 2
    assert m.train_throughput_mean_samples_per_second == pytest.approx(mean_tp, abs=TOL)
    assert m.train_throughput_stdev_samples_per_second == pytest.approx(abs(tp[0] - tp[1]) / 2, abs=TOL)
    assert m.train_io_mean_MB_per_second == pytest.approx(mean_tp * 1048576 / 1024 / 1024, abs=TOL)
    assert m.train_au_meet_expectation == "fail"
    assert list(m.eval_au_percentage) == pytest.approx([EVAL_AU], abs=TOL)
    assert list(m.eval_throughput_samples_per_second) == pytest.approx([2 * EVAL_THR], abs=TOL)
    assert m.eval_au_meet_expectation == "fail"
    assert m.eval_au_stdev_percentage == 0.0


def test_our_io_figures(golden):
    tls, thr = golden
    m = compute_metrics(tls, thr)
    assert m.read_bytes == 1500 and m.read_count == 5
    assert m.read_MB_per_second_actual == pytest.approx(1000 / MIB / 8.5 + 500 / MIB / 9.5, abs=TOL)
    # latencies [1, 2, 3, 10, 4] ms, linear interpolation as numpy's default percentile
    assert m.read_latency_p50_ms == pytest.approx(3.0, abs=TOL)
    assert m.read_latency_p90_ms == pytest.approx(4 + 0.6 * 6, abs=TOL)
    assert m.read_latency_p99_ms == pytest.approx(4 + 0.96 * 6, abs=TOL)
    assert m.read_latency_max_ms == pytest.approx(10.0, abs=TOL)
    assert m.io_wait_seconds == pytest.approx(2 * 1.7, abs=TOL)
    assert m.io_wait_mean_ms == pytest.approx(2 * 1.7 / 20 * 1000, abs=TOL)
    assert m.io_wait_max_ms == pytest.approx(500.0, abs=TOL)
    assert m.compute_seconds == pytest.approx(2 * 6.0, abs=TOL)
    assert m.steps == 20 and m.epochs == 2


def test_outputs_are_plain_python(golden):
    tls, thr = golden
    m = compute_metrics(tls, thr)
    for _, v in m.properties():
        assert type(v) in (int, float, str), v
    for v in m.dlio_metric().values():
        assert type(v) in (int, float, str, list)
        if isinstance(v, list):
            assert all(type(x) is float for x in v)


def test_meet_expectation_at_threshold(golden):
    tls, _ = golden
    ranks = [rank_metrics(t) for t in tls]
    m = combine(ranks, record_size=1.0, au_threshold=0.5)
    assert m.train_au_meet_expectation == "success"
    assert au_verdict(m, 0.5) is None


def test_au_verdict_says_where_time_went(golden):
    tls, thr = golden
    m = compute_metrics(tls, thr)
    msg = au_verdict(m, thr)
    assert msg is not None
    au_mean = (AU_E1 + (AU_E2_R0 + AU_E2_R1) / 2) / 2  # by hand, as in test_across_ranks_and_epochs
    assert f"training AU {au_mean:.2f} % is below the required 90.00 %" in msg
    assert "3.400 s for data" in msg and "12.000 s of compute" in msg


def test_timeline_round_trip(golden):
    tls, _ = golden
    assert from_dict(to_dict(tls[0])) == tls[0]


def _costs(threads: int = 4, decode: float = 0.0, inline: bool = False, window: int = 0) -> ReaderCosts:
    return ReaderCosts(
        read_threads=threads,
        decode_seconds=decode,
        decode_inline=inline,
        format="jpeg",
        cores=2,
        window=window,
        window_threads=window,
    )


def test_au_verdict_names_the_probable_cause_from_the_figures(golden):
    """The failure says which measured cost dominated — reads, decoding, the harness's own work on the
    event loop, or reads on the step's path — instead of always blaming the storage."""
    tls, thr = golden
    m = compute_metrics(tls, thr)
    read_s = sum(sum(r.latencies) for r in m.per_rank)
    assert read_s > 0
    # the hand-recorded reads took 0.02 s against 3.4 s of waiting: reads and decoding explain little of it
    between = au_verdict(m, thr, costs=_costs(decode=read_s / 2))
    assert between is not None and "less than half the 3.400 s the accelerator waited" in between
    assert "the harness's own work" in between and "too slow" not in between
    slow = replace(m, io_wait_seconds=read_s * 1.5)  # reads that explain the waiting
    storage = au_verdict(slow, thr, costs=_costs(decode=read_s / 2))
    assert storage is not None and "storage is too slow" in storage and "CPU-bound" not in storage
    assert f"reads took {read_s:.3f} s" in storage
    # what the target asks of the reads, beside what they delivered (the figure the train item reports)
    need = re.search(r"90 % AU needs reads of at least ([\d,]+) MB/s per accelerator", storage)
    assert need is not None and f"they delivered {slow.read_MB_per_second_actual:,.0f} MB/s" in storage
    step_mb = slow.read_bytes / 2**20 / slow.steps
    assert f"({step_mb:,.1f} MB a step in {12.0 / slow.steps * 1000:.3g} ms of compute)" in storage
    assert abs(float(need.group(1).replace(",", "")) - 0.9 * step_mb / (12.0 / slow.steps)) <= 1
    cpu = au_verdict(slow, thr, costs=_costs(decode=read_s * 2))
    assert cpu is not None and "CPU-bound (jpeg decoding on 2 core(s))" in cpu and "too slow" not in cpu
    path = au_verdict(slow, thr, costs=_costs(threads=0, decode=read_s * 2))
    assert path is not None and "reader.read_threads: 0" in path
    # parquet's row-group window reads ahead with 0 reader workers too: storage is the verdict, and the
    # knobs it names are the window's
    window = au_verdict(slow, thr, costs=_costs(threads=0, decode=read_s / 2, window=7))
    assert window is not None and "reader.read_threads: 0" not in window and "storage is too slow" in window
    assert "with 7 row-group reads in flight on 7 thread(s)" in window
    assert "raise storage.storage_options.prefetch_window / prefetch_workers" in window
    held = replace(m, compute_overrun_seconds=m.io_wait_seconds)  # the loop was held as long as it waited
    harness = au_verdict(held, thr, costs=_costs(decode=read_s * 2, inline=True))
    assert harness is not None and "the harness, not the storage" in harness and "inline decoding" in harness
    assert au_verdict(m, thr) is not None and "storage is too slow" in au_verdict(
        m, thr
    )  # no costs: as before
