"""The terminal table per workload item (AU, samples/s, MB/s, p99 read latency, verdict) and metric lines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # a plain pytest session renders no table: keep numpy (via metrics) out of it
    from pytest_dlio.metrics import TrainMetrics

COLUMNS = ("item", "AU %", "need %", "samples/s", "MB/s", "MB/s actual", "p99 ms", "verdict")


def _num(v: Any, fmt: str) -> str:
    return format(v, fmt) if isinstance(v, int | float) and not isinstance(v, bool) else "-"


def _row(r: Mapping[str, Any]) -> list[str]:
    verdict = str(r.get("outcome", "?"))
    if "train_au_meet_expectation" in r:
        verdict = f"{verdict} (AU {r['train_au_meet_expectation']})"
    return [
        str(r.get("nodeid", "?")),
        _num(r.get("train_au_mean_percentage"), ".2f"),
        _num(r.get("au_threshold_percentage"), ".0f"),
        _num(r.get("train_throughput_mean_samples_per_second"), ".1f"),
        _num(r.get("train_io_mean_MB_per_second"), ".1f"),
        _num(r.get("read_MB_per_second_actual"), ".1f"),
        _num(r.get("read_latency_p99_ms"), ".2f"),
        verdict,
    ]


def render_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Aligned text lines: a header, then one line per item row (keys are the item's properties)."""
    body = [_row(r) for r in rows]
    table = [list(COLUMNS), *body]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    out = []
    for n, line in enumerate(table):
        cells = [c.ljust(w) if i in (0, len(COLUMNS) - 1) else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True))]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


def metric_lines(m: TrainMetrics) -> list[str]:
    """DLIO's [METRIC] console lines plus ours, for one training run."""
    lines = [
        f"Number of Simulated Accelerators: {m.num_accelerators}",
        f"Training Accelerator Utilization [AU] (%): {m.train_au_mean_percentage:.4f} ({m.train_au_stdev_percentage:.4f})",
        f"Training Throughput (samples/second): {m.train_throughput_mean_samples_per_second:.4f} "
        f"({m.train_throughput_stdev_samples_per_second:.4f})",
        f"Training I/O Throughput (MB/second): {m.train_io_mean_MB_per_second:.4f} ({m.train_io_stdev_MB_per_second:.4f})",
        f"train_au_meet_expectation: {m.train_au_meet_expectation}",
    ]
    if m.has_eval:
        lines += [
            f"Eval Accelerator Utilization [AU] (%): {m.eval_au_mean_percentage:.4f} ({m.eval_au_stdev_percentage:.4f})",
            f"Eval Throughput (samples/second): {m.eval_throughput_mean_samples_per_second:.4f} "
            f"({m.eval_throughput_stdev_samples_per_second:.4f})",
            f"eval_au_meet_expectation: {m.eval_au_meet_expectation}",
        ]
    lines.append(
        f"Read: {m.read_bytes} bytes in {m.read_count} reads, {m.read_MB_per_second_actual:.1f} MB/s actual, "
        f"latency p50/p90/p99/max {m.read_latency_p50_ms:.2f}/{m.read_latency_p90_ms:.2f}/"
        f"{m.read_latency_p99_ms:.2f}/{m.read_latency_max_ms:.2f} ms; I/O wait per step mean "
        f"{m.io_wait_mean_ms:.2f} ms, max {m.io_wait_max_ms:.2f} ms"
    )
    return lines
