"""Repeated runs: each figure's mean, standard deviation and coefficient of variation, and MLPerf's
stability limit (results must replicate within 5 %).

``summarise`` turns N runs' properties into ``NAME`` (the mean), ``NAME_stdev`` (sample standard deviation)
and ``NAME_cov`` (stdev / |mean| in percent) for every numeric figure, plus ``NAME_runs`` (each run's value,
comma-separated) for the headline figures.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_dlio.report.results import PhaseResult

#: MLPerf Storage: "results must replicate within 5 %" (Rules §2.1.17; peers.md §3.2).
STABILITY_LIMIT_PERCENT = 5.0
#: The figures the stability item checks and whose per-run values are kept.
HEADLINE = (
    "train_au_mean_percentage",
    "train_throughput_mean_samples_per_second",
    "train_io_mean_MB_per_second",
    "save_checkpoint_io_mean_GB_per_second",
    "load_checkpoint_io_mean_GB_per_second",
)
#: Counts and settings that are the same in every run: reported once, not as statistics.
_CONSTANT_SUFFIXES = ("num_accelerators", "checkpoint_fsync", "_files_planned", "checkpoint_size_GB")


def _numeric(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(float(value)) else None


def summarise(runs: Sequence[Mapping[str, Any]]) -> list[tuple[str, int | float | str]]:
    """Properties for ``runs`` (each a run's properties, in order): mean, stdev and CoV per numeric figure.

    Non-numeric properties and figures that are the same in every run keep the last run's value.
    """
    if not runs:
        return []
    out: list[tuple[str, int | float | str]] = [("runs", len(runs))]
    names = list(dict.fromkeys(k for r in runs for k in r))
    for name in names:
        values = [_numeric(r.get(name)) for r in runs]
        if any(v is None for v in values) or name.endswith(_CONSTANT_SUFFIXES) or len(set(values)) == 1:
            out.append((name, next(r[name] for r in reversed(runs) if name in r)))
            continue
        xs = [v for v in values if v is not None]
        mean = statistics.fmean(xs)
        stdev = statistics.stdev(xs) if len(xs) > 1 else 0.0
        out += [
            (name, mean),
            (f"{name}_stdev", stdev),
            (f"{name}_cov", 100 * stdev / abs(mean) if mean else 0.0),
        ]
        if name in HEADLINE:
            out.append((f"{name}_runs", ",".join(f"{x:.6g}" for x in xs)))
    return out


def unstable(props: Mapping[str, Any], limit: float = STABILITY_LIMIT_PERCENT) -> list[str]:
    """The headline figures whose coefficient of variation exceeds ``limit`` percent, each as a sentence."""
    out = []
    for name in HEADLINE:
        cov = _numeric(props.get(f"{name}_cov"))
        if cov is not None and cov > limit:
            out.append(
                f"{name} varies {cov:.2f} % across {props.get('runs')} runs (mean {props.get(name):.6g}, "
                f"stdev {props.get(f'{name}_stdev'):.6g}; each run: {props.get(f'{name}_runs')}); MLPerf "
                f"allows {limit:g} %: quiet the storage and the clients, or run more (--dlio-runs)"
            )
    return out


def repeated_result(phase: str, done: Sequence[tuple[str, PhaseResult]]) -> PhaseResult:
    """One phase's result over its runs (``(label, result)`` in order; ``warmup`` is not scored): the
    statistics as properties, a line per run and per headline figure, the first run's failure."""
    props = summarise([dict(r.properties) for label, r in done if label != "warmup"])
    lines = []
    for label, r in done:
        heads = [f"{k} {r.value(k):.6g}" for k in HEADLINE if isinstance(r.value(k), int | float)]
        lines.append(f"{label}{' (not scored)' if label == 'warmup' else ''}: {', '.join(heads) or 'done'}")
    stats = dict(props)
    for k in HEADLINE:
        if f"{k}_cov" in stats:
            lines.append(
                f"{k}: mean {stats[k]:.6g}, stdev {stats[f'{k}_stdev']:.6g}, CoV {stats[f'{k}_cov']:.2f} %"
            )
    failure = next((f"{label}: {r.failure}" for label, r in done if r.failure), None)
    return PhaseResult(phase, props, lines, failure)
