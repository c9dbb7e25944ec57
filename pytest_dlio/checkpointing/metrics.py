"""DLIO's checkpoint metrics (dlio.md §4.1) as pure functions: per-save GiB/s, mean/stdev, latency percentiles."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def throughput_gib_s(size_gib: float, duration_s: float) -> float:
    """One save's or load's rate: ``checkpoint_size_GB / duration`` (GiB/s, 0 for a zero duration)."""
    return size_gib / duration_s if duration_s > 0 else 0.0


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    if not values:
        return 0.0, 0.0
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std())  # population stdev, as DLIO's np.std


def summary(kind: str, durations: Sequence[float], size_gib: float) -> dict[str, float]:
    """DLIO summary keys for ``kind`` ``save`` or ``load``: I/O GB/s and duration, each mean and stdev."""
    rates = [throughput_gib_s(size_gib, d) for d in durations]
    io_mean, io_std = _mean_std(rates)
    d_mean, d_std = _mean_std(durations)
    return {
        f"{kind}_checkpoint_io_mean_GB_per_second": io_mean,
        f"{kind}_checkpoint_io_stdev_GB_per_second": io_std,
        f"{kind}_checkpoint_duration_mean_seconds": d_mean,
        f"{kind}_checkpoint_duration_stdev_seconds": d_std,
    }


def latency_ms(kind: str, latencies_s: Sequence[float]) -> dict[str, float]:
    """Per-file latency percentiles (p50, p99) in milliseconds."""
    if not latencies_s:
        return {f"{kind}_checkpoint_file_latency_p50_ms": 0.0, f"{kind}_checkpoint_file_latency_p99_ms": 0.0}
    p50, p99 = np.percentile(np.asarray(latencies_s, dtype=float) * 1000.0, [50, 99])
    return {
        f"{kind}_checkpoint_file_latency_p50_ms": float(p50),
        f"{kind}_checkpoint_file_latency_p99_ms": float(p99),
    }


def bytes_rate_gib_s(nbytes: int, duration_s: float) -> float:
    """Measured bytes per second in GiB/s (this rank's actual bytes, beside DLIO's nominal figure)."""
    return nbytes / 1024**3 / duration_s if duration_s > 0 else 0.0
