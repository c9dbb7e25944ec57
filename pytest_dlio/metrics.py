"""Pure functions: a recorded :class:`~pytest_dlio.timeline.Timeline` in, DLIO's numbers out. No I/O.

Formulas are DLIO HEAD's ``utils/statscounter.py`` (``shared/reference/dlio.md`` §4.1), including its
quirks, so our numbers compare with DLIO's: the hard-coded ``- 2`` in block throughput, the exclusion
indices computed from the epoch's step count ``S`` (not the block's), per-epoch averages weighted by
steps per block, AU as the mean over ranks, throughput as the sum over ranks, and ``np.std``
(population) over epochs. We add what DLIO lacks: bytes actually read, actual MB/s, read latency
percentiles and I/O wait per step. Every value leaving this module is a plain ``int``/``float``/``str``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from pytest_dlio.timeline import Block, EvalRun, Timeline

if TYPE_CHECKING:
    from pytest_dlio.storage.stats import Retries

MIB = 1024 * 1024


@dataclass(frozen=True)
class BlockMetrics:
    au: float  # percent
    throughput: float  # samples/s of this rank
    steps: int


@dataclass(frozen=True)
class EpochMetrics:
    """One rank, one epoch: step-weighted train AU/throughput over blocks, and eval if it ran."""

    epoch: int
    au: float
    throughput: float
    blocks: tuple[BlockMetrics, ...]
    eval_au: float | None = None
    eval_throughput: float | None = None


@dataclass(frozen=True)
class RankMetrics:
    """One rank's per-epoch metrics and its raw I/O figures (what ranks exchange)."""

    rank: int
    epochs: tuple[EpochMetrics, ...]
    read_bytes: int
    read_count: int
    train_seconds: float  # sum of block durations
    compute_seconds: float
    io_wait_seconds: float
    steps: int
    io_wait_max: float
    latencies: tuple[float, ...] = ()
    compute_overrun_seconds: float = 0.0


def _f(x: float) -> float:
    return float(x)


def block_metrics(
    compute: Sequence[float],
    proc: Sequence[float],
    t_start: float,
    t_end: float,
    *,
    steps_per_epoch: int,
    batch_size: int,
    exclude_start: int = 1,
    exclude_end: int = 0,
) -> BlockMetrics:
    """DLIO's per-block AU (%) and samples/s for one rank (dlio.md §4.1, exactly)."""
    start = exclude_start
    end = steps_per_epoch - 1 - exclude_end
    total_compute = float(np.sum(np.asarray(compute[start : end + 1], dtype=np.float64)))
    proc_arr = np.asarray(proc, dtype=np.float64)
    total_time = (t_end - t_start) - float(np.sum(proc_arr[:start])) - float(np.sum(proc_arr[end + 1 :]))
    au = 0.0 if total_compute == 0 or total_time <= 0 else 100.0 * total_compute / total_time
    thr = 0.0 if total_time <= 0 else (len(compute) - 2) / total_time * batch_size
    return BlockMetrics(au=_f(au), throughput=_f(thr), steps=len(compute))


def _block(b: Block | EvalRun, tl: Timeline, s: int, bs: int) -> BlockMetrics:
    return block_metrics(
        [st.compute for st in b.steps],
        [st.proc for st in b.steps],
        b.t_start,
        b.t_end,
        steps_per_epoch=s,
        batch_size=bs,
        exclude_start=tl.exclude_start_steps,
        exclude_end=tl.exclude_end_steps,
    )


def eval_throughput(run: EvalRun, batch_size_eval: int) -> float:
    """DLIO's eval samples/s: ``len(compute) / (t_end - t_start) * batch_size_eval``, no exclusion."""
    span = run.t_end - run.t_start
    return 0.0 if span <= 0 else float(len(run.steps) / span * batch_size_eval)


def weighted(blocks: Sequence[BlockMetrics]) -> tuple[float, float]:
    """Per-epoch AU and throughput: averages over blocks weighted by their step counts."""
    total = sum(b.steps for b in blocks)
    if total == 0:
        return 0.0, 0.0
    au = sum(b.au * b.steps for b in blocks) / total
    thr = sum(b.throughput * b.steps for b in blocks) / total
    return float(au), float(thr)


def rank_metrics(tl: Timeline) -> RankMetrics:
    """Everything one rank contributes: per-epoch DLIO metrics plus its I/O figures."""
    epochs = []
    train_seconds = compute = io_wait = 0.0
    io_wait_max = overrun = 0.0
    steps = 0
    for ep in tl.epochs:
        blocks = tuple(_block(b, tl, tl.steps_per_epoch, tl.batch_size) for b in ep.blocks)
        au, thr = weighted(blocks)
        e_au = e_thr = None
        if ep.eval is not None:
            e_au = _block(ep.eval, tl, tl.eval_steps, tl.batch_size_eval).au
            e_thr = eval_throughput(ep.eval, tl.batch_size_eval)
        epochs.append(EpochMetrics(ep.epoch, au, thr, blocks, e_au, e_thr))
        for b in ep.blocks:
            train_seconds += b.t_end - b.t_start
            for st in b.steps:
                compute += st.compute
                overrun += st.overrun
                io_wait += st.load
                io_wait_max = max(io_wait_max, st.load)
                steps += 1
    return RankMetrics(
        rank=tl.rank,
        epochs=tuple(epochs),
        read_bytes=int(sum(tl.reads.nbytes)),
        read_count=len(tl.reads.nbytes),
        train_seconds=float(train_seconds),
        compute_seconds=float(compute),
        io_wait_seconds=float(io_wait),
        steps=steps,
        io_wait_max=float(io_wait_max),
        latencies=tuple(tl.reads.latency),
        compute_overrun_seconds=float(overrun),
    )


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    if not values:
        return 0.0, 0.0
    arr = np.asarray(values, dtype=np.float64)
    return float(np.mean(arr)), float(np.std(arr))


@dataclass(frozen=True)
class TrainMetrics:
    """The run's figures: DLIO's summary ``metric`` names first, then ours."""

    num_accelerators: int
    train_au_percentage: tuple[float, ...]
    train_au_mean_percentage: float
    train_au_stdev_percentage: float
    train_au_meet_expectation: str
    train_throughput_samples_per_second: tuple[float, ...]
    train_throughput_mean_samples_per_second: float
    train_throughput_stdev_samples_per_second: float
    train_io_mean_MB_per_second: float
    train_io_stdev_MB_per_second: float
    au_threshold_percentage: float
    eval_au_percentage: tuple[float, ...] = ()
    eval_au_mean_percentage: float | None = None
    eval_au_stdev_percentage: float | None = None
    eval_au_meet_expectation: str | None = None
    eval_throughput_samples_per_second: tuple[float, ...] = ()
    eval_throughput_mean_samples_per_second: float | None = None
    eval_throughput_stdev_samples_per_second: float | None = None
    eval_io_mean_MB_per_second: float | None = None
    eval_io_stdev_MB_per_second: float | None = None
    # ---- ours (DLIO has none of these) ----
    read_bytes: int = 0
    read_count: int = 0
    read_MB_per_second_actual: float = 0.0
    read_latency_p50_ms: float = 0.0
    read_latency_p90_ms: float = 0.0
    read_latency_p99_ms: float = 0.0
    read_latency_max_ms: float = 0.0
    io_wait_mean_ms: float = 0.0
    io_wait_max_ms: float = 0.0
    io_wait_seconds: float = 0.0
    compute_seconds: float = 0.0
    #: seconds emulated compute ran past its draws (the harness's own work on the event loop; not compute)
    compute_overrun_seconds: float = 0.0
    train_seconds: float = 0.0
    steps: int = 0
    epochs: int = 0
    shortest_block_steps: int = 0  # fewest steps in any rank's training block (checkpoints split epochs)
    per_rank: tuple[RankMetrics, ...] = field(default=(), repr=False, compare=False)

    @property
    def has_eval(self) -> bool:
        return bool(self.eval_au_percentage)

    @property
    def throughput_meaningful(self) -> bool:
        """False when some block had <= 2 steps: DLIO's ``(steps - 2) / time`` then gives 0 (or a negative
        rate) for it, so ``train_throughput_*`` and ``train_io_*`` understate what was read."""
        return self.shortest_block_steps > 2

    def dlio_metric(self) -> dict[str, object]:
        """summary.json's ``metric`` dict with DLIO HEAD's keys (eval keys only when eval ran)."""
        out: dict[str, object] = {
            "train_au_percentage": list(self.train_au_percentage),
            "train_au_mean_percentage": self.train_au_mean_percentage,
            "train_au_stdev_percentage": self.train_au_stdev_percentage,
            "train_au_meet_expectation": self.train_au_meet_expectation,
            "train_throughput_samples_per_second": list(self.train_throughput_samples_per_second),
            "train_throughput_mean_samples_per_second": self.train_throughput_mean_samples_per_second,
            "train_throughput_stdev_samples_per_second": self.train_throughput_stdev_samples_per_second,
            "train_io_mean_MB_per_second": self.train_io_mean_MB_per_second,
            "train_io_stdev_MB_per_second": self.train_io_stdev_MB_per_second,
        }
        if self.has_eval:
            out.update(
                {
                    "eval_au_percentage": list(self.eval_au_percentage),
                    "eval_au_mean_percentage": self.eval_au_mean_percentage,
                    "eval_au_stdev_percentage": self.eval_au_stdev_percentage,
                    "eval_au_meet_expectation": self.eval_au_meet_expectation,
                    "eval_throughput_samples_per_second": list(self.eval_throughput_samples_per_second),
                    "eval_throughput_mean_samples_per_second": self.eval_throughput_mean_samples_per_second,
                    "eval_throughput_stdev_samples_per_second": self.eval_throughput_stdev_samples_per_second,
                    "eval_io_mean_MB_per_second": self.eval_io_mean_MB_per_second,
                    "eval_io_stdev_MB_per_second": self.eval_io_stdev_MB_per_second,
                }
            )
        return out

    def extra(self) -> dict[str, object]:
        """Our measured figures (summary.json ``pytest_dlio_metric``; JUnit properties)."""
        return {
            "read_bytes": self.read_bytes,
            "read_count": self.read_count,
            "read_MB_per_second_actual": self.read_MB_per_second_actual,
            "read_latency_p50_ms": self.read_latency_p50_ms,
            "read_latency_p90_ms": self.read_latency_p90_ms,
            "read_latency_p99_ms": self.read_latency_p99_ms,
            "read_latency_max_ms": self.read_latency_max_ms,
            "io_wait_mean_ms": self.io_wait_mean_ms,
            "io_wait_max_ms": self.io_wait_max_ms,
            "io_wait_seconds": self.io_wait_seconds,
            "compute_seconds": self.compute_seconds,
            "compute_overrun_seconds": self.compute_overrun_seconds,
            "train_seconds": self.train_seconds,
            "steps": self.steps,
            "train_throughput_meaningful": int(self.throughput_meaningful),
            "au_threshold_percentage": self.au_threshold_percentage,
        }

    def properties(self) -> list[tuple[str, int | float | str]]:
        """Scalar figures for JUnit ``<property>`` elements (lists are left to summary.json)."""
        props: list[tuple[str, int | float | str]] = [("num_accelerators", self.num_accelerators)]
        for k, v in {**self.dlio_metric(), **self.extra()}.items():
            if isinstance(v, int | float | str) and v is not None:
                props.append((k, v))
        return props


def _percentile_ms(lat: np.ndarray, q: float) -> float:
    return float(np.percentile(lat, q) * 1000.0) if lat.size else 0.0


def combine(ranks: Sequence[RankMetrics], *, record_size: float, au_threshold: float) -> TrainMetrics:
    """Across ranks and epochs: AU = mean over ranks, samples/s = sum over ranks; mean/np.std over epochs.

    ``au_threshold`` is DLIO's ``metric.au`` (a fraction, 0.90); ``record_size`` the nominal
    ``record_length_bytes``.
    """
    p = len(ranks)
    n_epochs = min((len(r.epochs) for r in ranks), default=0)
    au = tuple(float(sum(r.epochs[e].au for r in ranks) / p) for e in range(n_epochs))
    thr = tuple(float(sum(r.epochs[e].throughput for r in ranks)) for e in range(n_epochs))
    au_mean, au_std = _mean_std(au)
    thr_mean, thr_std = _mean_std(thr)
    threshold_pct = float(au_threshold * 100)
    kw: dict[str, object] = {}
    eval_epochs = [e for e in range(n_epochs) if all(r.epochs[e].eval_au is not None for r in ranks)]
    if eval_epochs:
        e_au = tuple(float(sum(r.epochs[e].eval_au or 0.0 for r in ranks) / p) for e in eval_epochs)
        e_thr = tuple(float(sum(r.epochs[e].eval_throughput or 0.0 for r in ranks)) for e in eval_epochs)
        e_au_mean, e_au_std = _mean_std(e_au)
        e_thr_mean, e_thr_std = _mean_std(e_thr)
        kw = dict(
            eval_au_percentage=e_au,
            eval_au_mean_percentage=e_au_mean,
            eval_au_stdev_percentage=e_au_std,
            eval_au_meet_expectation="success" if e_au_mean >= threshold_pct else "fail",
            eval_throughput_samples_per_second=e_thr,
            eval_throughput_mean_samples_per_second=e_thr_mean,
            eval_throughput_stdev_samples_per_second=e_thr_std,
            eval_io_mean_MB_per_second=float(e_thr_mean * record_size / 1024 / 1024),
            eval_io_stdev_MB_per_second=float(e_thr_std * record_size / 1024 / 1024),
        )
    lat = np.concatenate([np.asarray(r.latencies, dtype=np.float64) for r in ranks]) if ranks else np.empty(0)
    steps = sum(r.steps for r in ranks)
    io_wait = sum(r.io_wait_seconds for r in ranks)
    actual = sum(r.read_bytes / MIB / r.train_seconds for r in ranks if r.train_seconds > 0)
    return TrainMetrics(
        num_accelerators=p,
        train_au_percentage=au,
        train_au_mean_percentage=au_mean,
        train_au_stdev_percentage=au_std,
        train_au_meet_expectation="success" if au_mean >= threshold_pct else "fail",
        train_throughput_samples_per_second=thr,
        train_throughput_mean_samples_per_second=thr_mean,
        train_throughput_stdev_samples_per_second=thr_std,
        train_io_mean_MB_per_second=float(thr_mean * record_size / 1024 / 1024),
        train_io_stdev_MB_per_second=float(thr_std * record_size / 1024 / 1024),
        au_threshold_percentage=threshold_pct,
        read_bytes=int(sum(r.read_bytes for r in ranks)),
        read_count=int(sum(r.read_count for r in ranks)),
        read_MB_per_second_actual=float(actual),
        read_latency_p50_ms=_percentile_ms(lat, 50),
        read_latency_p90_ms=_percentile_ms(lat, 90),
        read_latency_p99_ms=_percentile_ms(lat, 99),
        read_latency_max_ms=float(lat.max() * 1000.0) if lat.size else 0.0,
        io_wait_mean_ms=float(io_wait / steps * 1000.0) if steps else 0.0,
        io_wait_max_ms=float(max((r.io_wait_max for r in ranks), default=0.0) * 1000.0),
        io_wait_seconds=float(io_wait),
        compute_seconds=float(sum(r.compute_seconds for r in ranks)),
        compute_overrun_seconds=float(sum(r.compute_overrun_seconds for r in ranks)),
        train_seconds=float(max((r.train_seconds for r in ranks), default=0.0)),
        steps=int(steps),
        epochs=n_epochs,
        per_rank=tuple(ranks),
        shortest_block_steps=min((b.steps for r in ranks for e in r.epochs for b in e.blocks), default=0),
        **kw,  # type: ignore[arg-type]
    )


def compute_metrics(timelines: Sequence[Timeline], au_threshold: float) -> TrainMetrics:
    """Shortcut: every rank's timeline → the run's :class:`TrainMetrics`."""
    record_size = timelines[0].record_size if timelines else 0.0
    return combine([rank_metrics(t) for t in timelines], record_size=record_size, au_threshold=au_threshold)


@dataclass(frozen=True)
class ReaderCosts:
    """What the training readers spent, measured by the loader: the AU verdict names the cause from it."""

    read_threads: int  # reader tasks (0: reads on the step's own path)
    decode_seconds: float  # summed time decoding read units (in the pool, or inline on the event loop)
    decode_inline: bool  # decoding ran on the event loop (a light format, or read_threads 0)
    format: str
    cores: int
    #: row-group reads kept in flight ahead of the step (parquet's window; 0: none)
    window: int = 0
    #: threads the window's reads run on
    window_threads: int = 0


def _needed(m: TrainMetrics) -> str:
    """What the AU target asks of the reads, beside what they delivered: with reads fully overlapping the
    compute, a step's bytes must arrive within its compute time / the target."""
    if m.compute_seconds <= 0 or m.steps <= 0 or m.read_bytes <= 0:
        return ""
    need = m.au_threshold_percentage / 100 * m.read_bytes / MIB / m.compute_seconds
    return (
        f"; {m.au_threshold_percentage:.0f} % AU needs reads of at least {need:,.0f} MB/s per accelerator "
        f"({m.read_bytes / MIB / m.steps:,.1f} MB a step in {m.compute_seconds / m.steps * 1000:.3g} ms of "
        f"compute), they delivered {m.read_MB_per_second_actual:,.0f} MB/s"
    )


def _cause(m: TrainMetrics, costs: ReaderCosts | None) -> str:
    """The probable cause of a low AU, from the measured figures only (no guess beyond them)."""
    read_s = float(sum(sum(r.latencies) for r in m.per_rank))
    over = m.compute_overrun_seconds
    figures = f"reads took {read_s:.3f} s in total"
    if costs is None:
        return (
            f"{figures}{_needed(m)}: storage is too slow for this workload (raise reader.read_threads / "
            "prefetch_size, or use faster storage)"
        )
    dec = costs.decode_seconds
    readers = f"{max(1, costs.read_threads)} reader(s)"
    if costs.window > 0:
        readers += f" with {costs.window} row-group reads in flight on {costs.window_threads} thread(s)"
    figures += (
        f", decoding ({costs.format}) {dec:.3f} s, over {readers} on "
        f"{costs.cores} core(s); emulated compute overran its draws by {over:.3f} s"
    )
    if costs.read_threads <= 0 and costs.window <= 0:
        return (
            f"{figures} — reader.read_threads: 0: every batch is read (and decoded) on the step's own path, "
            f"none while the accelerator computes; raise reader.read_threads to read ahead{_needed(m)}"
        )
    if over > 0.1 * max(m.compute_seconds, 1e-9) and over >= 0.5 * m.io_wait_seconds:
        return (
            f"{figures} — the harness's own work on the event loop (batch assembly"
            + (", inline decoding" if costs.decode_inline else "")
            + ") held it past the compute draws: the harness, not the storage, is the bottleneck here"
        )
    if read_s + dec < 0.5 * m.io_wait_seconds:
        return (
            f"{figures} — reads and decoding together took less than half the {m.io_wait_seconds:.3f} s "
            "the accelerator waited: the rest is the harness's own work between them (locating read units, "
            "such as parsing parquet footers; assembling batches; hand-offs between reader tasks), not the "
            "storage"
        )
    if dec > read_s:
        return (
            f"{figures} — decoding took longer than reading: CPU-bound ({costs.format} decoding on "
            f"{costs.cores} core(s)), not storage-bound; more cores or a lighter format would help, "
            "faster storage would not"
        )
    more = (
        "storage.storage_options.prefetch_window / prefetch_workers"
        if costs.window > 0
        else "reader.read_threads / prefetch_size"
    )
    return (
        f"{figures} — reading took longer than decoding: storage is too slow for this workload{_needed(m)} "
        f"(raise {more}, or use faster storage)"
    )


def au_verdict(
    metrics: TrainMetrics,
    threshold: float,
    retries: Retries | None = None,
    costs: ReaderCosts | None = None,
) -> str | None:
    """None when mean training AU meets ``threshold`` (a fraction like DLIO's ``metric.au``), else why not.

    ``retries``: the storage retries made during training; when there were any, the verdict blames them
    (the storage was failing) rather than bandwidth. ``costs``: the readers' measured decode time and
    setup, from which the verdict names the probable cause (reading, decoding, the harness's own work on
    the event loop, reads on the step's path).
    """
    need = threshold * 100.0
    got = metrics.train_au_mean_percentage
    if got >= need:
        return None
    total = metrics.io_wait_seconds + metrics.compute_seconds
    share = (lambda x: 100.0 * x / total) if total > 0 else (lambda x: 0.0)
    return (
        f"training AU {got:.2f} % is below the required {need:.2f} % (metric.au={threshold:g}): "
        f"over {metrics.steps} steps the accelerator waited {metrics.io_wait_seconds:.3f} s for data "
        f"({share(metrics.io_wait_seconds):.1f} %, mean {metrics.io_wait_mean_ms:.2f} ms/step, "
        f"max {metrics.io_wait_max_ms:.2f} ms) against {metrics.compute_seconds:.3f} s of compute "
        f"({share(metrics.compute_seconds):.1f} %); reads p99 {metrics.read_latency_p99_ms:.2f} ms, "
        f"{metrics.read_MB_per_second_actual:.1f} MB/s actual; "
        + (
            f"{retries.describe()} storage retries during training: the storage was failing, not just slow "
            "(see storage_retries on the train item; fix the storage or its endpoint before tuning reads)"
            if retries
            else _cause(metrics, costs)
        )
    )
