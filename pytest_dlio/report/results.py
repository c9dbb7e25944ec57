"""What a user reads about one phase: DLIO-named properties, short lines, and the verdict.

Phases return data (``DatagenStats``, ``TrainMetrics``, ``CheckpointStats``); these builders turn it into a
:class:`PhaseResult`, which items record (JUnit ``<property>``, terminal) and the engine hands back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from pytest_dlio.metrics import ReaderCosts, TrainMetrics, au_verdict
from pytest_dlio.report.table import metric_lines

if TYPE_CHECKING:
    from pytest_dlio.phases.checkpoint import CheckpointStats
    from pytest_dlio.phases.datagen import DatagenStats
    from pytest_dlio.storage.stats import Retries

Property = tuple[str, int | float | str]


@dataclass
class PhaseResult:
    """One phase's outcome as the user sees it.

    ``properties`` become the item's ``user_properties`` (JUnit ``<property>``): plain int/float/str only,
    DLIO's metric names where DLIO has one. ``lines`` are short human lines for the item's report section.
    ``failure`` set means the item fails with that message (e.g. AU below threshold).
    """

    phase: str
    properties: list[Property] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None

    def value(self, name: str) -> int | float | str | None:
        """The property ``name`` (None when absent)."""
        return dict(self.properties).get(name)


def datagen_result(stats: DatagenStats) -> PhaseResult:
    lat_ms = np.asarray(stats.write_latencies) * 1000.0 if stats.write_latencies else np.zeros(1)
    mib_s = stats.mib_per_second
    props: list[Property] = [
        ("datagen_files_planned", stats.files_planned),
        ("datagen_files_written", stats.files_written),
        ("datagen_files_skipped", stats.files_skipped),
        ("datagen_files_damaged", stats.files_damaged),
        ("datagen_bytes", stats.bytes_written),
        ("datagen_MiB_per_s", round(float(mib_s), 3)),
        ("datagen_write_latency_p50_ms", round(float(np.percentile(lat_ms, 50)), 3)),
        ("datagen_write_latency_p99_ms", round(float(np.percentile(lat_ms, 99)), 3)),
        ("datagen_wall_seconds", round(float(stats.wall_seconds), 6)),  # µs: MiB/s = bytes / this, as shown
        ("datagen_flush_seconds", round(float(stats.flush_seconds), 6)),
    ]
    lines = [
        f"datagen ({stats.format}): {stats.files_written} files written, {stats.files_skipped} already "
        f"complete, {stats.bytes_written / 2**20:.1f} MiB at {mib_s:.1f} MiB/s in {stats.wall_seconds:.2f} s"
    ]
    if stats.flush_seconds > 0:
        lines.append(
            f"datagen: the files written made durable (fsync) in {stats.flush_seconds:.2f} s after the writes, "
            "before training reads them (not in the MiB/s)"
        )
    if stats.files_damaged:
        lines.append(
            f"datagen: {stats.files_damaged} complete-sized files had damaged content and were rewritten"
        )
    return PhaseResult("datagen", props, lines)


def train_result(m: TrainMetrics) -> PhaseResult:
    lines = metric_lines(m)
    if not m.throughput_meaningful:
        lines.append(
            f"note: a training block had {m.shortest_block_steps} step(s); DLIO's throughput formula "
            "counts steps - 2 per block, so train_throughput_* and train_io_* are 0 or understated "
            "(train_throughput_meaningful = 0); read_MB_per_second_actual is the measured rate"
        )
    return PhaseResult("train", m.properties(), lines)


def au_result(
    m: TrainMetrics, threshold: float, retries: Retries | None = None, costs: ReaderCosts | None = None
) -> PhaseResult:
    """The AU gate: mean train AU against ``metric.au`` (a fraction), failing with where the time went
    (``retries``: the storage retries made during training, blamed when there were any; ``costs``: the
    readers' measured decode time, from which the failure names the probable cause)."""
    props: list[Property] = [
        ("train_au_mean_percentage", float(m.train_au_mean_percentage)),
        ("au_threshold_percentage", float(threshold * 100)),
        ("train_au_meet_expectation", "success" if m.train_au_mean_percentage >= threshold * 100 else "fail"),
    ]
    return PhaseResult("au", props, failure=au_verdict(m, threshold, retries, costs))


def au_runs_result(runs: list[TrainMetrics], threshold: float) -> PhaseResult:
    """The AU gate over repeated runs: every scored run must reach ``metric.au`` (as MLPerf requires)."""
    need = threshold * 100
    mean = float(np.mean([m.train_au_mean_percentage for m in runs]))
    below = [(i, v) for i, m in enumerate(runs, 1) if (v := au_verdict(m, threshold)) is not None]
    props: list[Property] = [
        ("train_au_mean_percentage", mean),
        ("au_threshold_percentage", float(need)),
        ("train_au_meet_expectation", "fail" if below else "success"),
        ("runs_below_au", len(below)),
    ]
    lines = [f"run {i}: AU {m.train_au_mean_percentage:.2f} %" for i, m in enumerate(runs, 1)]
    failure = "; ".join(f"run {i} of {len(runs)}: {v}" for i, v in below) or None
    return PhaseResult("au", props, lines, failure)


def checkpoint_result(phase: str, stats: CheckpointStats, notes: tuple[str, ...] = ()) -> PhaseResult:
    """DLIO's checkpoint figures for ``checkpoint_write`` / ``checkpoint_read``."""
    metric = stats.metric
    lines: list[str] = []
    size = metric.get("checkpoint_size_GB", 0.0)
    for kind in ("save", "load"):
        if kind not in stats.counts:
            continue
        lines.append(
            f"checkpoint {kind}: {stats.counts[kind]} x {size:.4f} GB, "
            f"{metric[f'{kind}_checkpoint_duration_mean_seconds']:.4f} s "
            f"({metric[f'{kind}_checkpoint_duration_stdev_seconds']:.4f}), "
            f"{metric[f'{kind}_checkpoint_io_mean_GB_per_second']:.4f} GB/s"
        )
    props: list[Property] = [(k, float(v)) for k, v in metric.items()]
    props.append(("checkpoint_fsync", int(stats.fsync)))
    if stats.potential_caching is not None:
        props.append(("potential_caching", int(stats.potential_caching)))
    return PhaseResult(phase, props, [*lines, *stats.notes, *notes], stats.failure)


def with_retries(result: PhaseResult, retries: Retries) -> PhaseResult:
    """``result`` with the phase's storage retries: the ``storage_retries`` property (0 included), one
    ``storage_retries_<cause>`` property per cause, and a line when there were any."""
    result.properties.append(("storage_retries", retries.total))
    result.properties += [(f"storage_retries_{cause}", n) for cause, n in retries.by_cause]
    if retries:
        result.lines.append(f"storage retries: {retries.describe()} — survived, but each one cost time")
    return result


def retries_json(retries: Retries) -> dict[str, int | dict[str, int]]:
    """A phase's retries for summary.json: ``{"total": n, "by_cause": {cause: n}}``."""
    return {"total": retries.total, "by_cause": dict(retries.by_cause)}
