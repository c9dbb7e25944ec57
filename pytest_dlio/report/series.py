"""Per-interval throughput and latency (warp/fio style) and HDR latency histograms, as plain JSON-able data.

Pure builders: recorded reads (or per-file/per-checkpoint latencies) in, dicts out. The engine writes them
beside DLIO's files (``{rank}_timeseries.json``, ``{rank}_latency_histograms.json``) and hands them to the
reports (terminal, ``--dlio-json``, ``--dlio-html``).

Histograms are HdrHistogram's (the ``hdrhistogram`` package: microsecond values at 3 significant digits,
1 µs .. 1 h), so percentiles are exact to 0.1 % and the encoded form (``hdr``, HdrHistogram's base64
compressed format) loads in any HdrHistogram implementation. For charts they are cut into log buckets,
``2 ** (1/4)`` apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pytest_dlio.metrics import MIB
from pytest_dlio.timeline import Reads

#: HdrHistogram range and precision (microseconds).
HDR_LOWEST_US, HDR_HIGHEST_US, HDR_DIGITS = 1, 3_600_000_000, 3
#: Ratio between consecutive chart buckets of a histogram.
LOG_BASE = 2**0.25
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def latency_histogram(seconds: Sequence[float]) -> dict[str, Any]:
    """An HDR histogram of latencies (in seconds) as data: count, percentiles (ms), chart buckets (µs)."""
    from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

    h = HdrHistogram(HDR_LOWEST_US, HDR_HIGHEST_US, HDR_DIGITS)
    us = np.clip(np.rint(np.asarray(seconds, dtype=np.float64) * 1e6), HDR_LOWEST_US, HDR_HIGHEST_US)
    values, counts = np.unique(us.astype(np.int64), return_counts=True)
    for v, c in zip(values.tolist(), counts.tolist(), strict=True):
        h.record_value(v, c)
    doc: dict[str, Any] = {"unit": "us", "count": int(h.get_total_count())}
    if not doc["count"]:
        return {**doc, "buckets": []}
    doc.update(
        {
            "min_ms": h.get_min_value() / 1000.0,
            "mean_ms": h.get_mean_value() / 1000.0,
            "max_ms": h.get_max_value() / 1000.0,
            **{f"p{p:g}_ms".replace(".", "_"): h.get_value_at_percentile(p) / 1000.0 for p in PERCENTILES},
        }
    )
    buckets, low = [], 0.0
    for step in h.get_log_iterator(HDR_LOWEST_US, LOG_BASE):
        high = float(step.value_iterated_to)
        if step.count_added_in_this_iter_step:
            buckets.append([round(low, 3), round(high, 3), int(step.count_added_in_this_iter_step)])
        low = high
    doc["buckets"] = buckets  # [low_us, high_us, count]: values in (low, high]
    doc["hdr"] = h.encode().decode("ascii")
    return doc


def time_series(reads: Reads, t_end: float | None = None, bucket: float = 1.0) -> dict[str, Any]:
    """Operations per ``bucket`` seconds by completion time: count, bytes, MB/s, latency mean/p99/max (ms).

    ``reads`` holds storage reads (training) or, in the same shape, datagen's file writes (counted under
    ``reads`` too). MB is DLIO's (2**20 bytes), as in ``train_io_mean_MB_per_second`` and ``read_MB_per_second_actual``.
    ``t`` is each bucket's start in seconds after the first read began; ``t0`` that moment as wall-clock
    time. MB/s divides by the bucket's width (the last one's width ends at ``t_end``, a wall-clock time,
    or at the last completion).
    """
    start = np.asarray(reads.start, dtype=np.float64)
    lat = np.asarray(reads.latency, dtype=np.float64)
    nbytes = np.asarray(reads.nbytes, dtype=np.float64)
    empty: dict[str, Any] = {
        "bucket_seconds": bucket,
        "t0": None,
        "t": [],
        "reads": [],
        "bytes": [],
        "MB_per_second": [],
        "latency_mean_ms": [],
        "latency_p99_ms": [],
        "latency_max_ms": [],
    }
    if start.size == 0 or not start.any():  # no reads, or reads recorded without start times
        return empty
    t0 = float(start.min())
    done = start + lat - t0
    idx = np.floor(done / bucket).astype(np.int64)
    n = int(idx.max()) + 1
    last_end = float(done.max()) if t_end is None else max(float(done.max()), t_end - reads.wall_offset - t0)
    width = np.full(n, bucket)
    width[-1] = max(1e-9, min(bucket, last_end - (n - 1) * bucket))
    count = np.bincount(idx, minlength=n)
    total = np.bincount(idx, weights=nbytes, minlength=n)
    lat_sum = np.bincount(idx, weights=lat, minlength=n)
    order = np.argsort(idx, kind="stable")
    groups = np.split(lat[order], np.cumsum(count)[:-1])
    p99 = [float(np.percentile(g, 99)) * 1000 if g.size else 0.0 for g in groups]
    mx = [float(g.max()) * 1000 if g.size else 0.0 for g in groups]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, lat_sum / np.maximum(count, 1), 0.0) * 1000
    return {
        "bucket_seconds": bucket,
        "t0": t0 + reads.wall_offset,
        "t": [round(i * bucket, 6) for i in range(n)],
        "reads": count.tolist(),
        "bytes": [int(b) for b in total.tolist()],
        "MB_per_second": [round(float(b) / MIB / float(w), 6) for b, w in zip(total, width, strict=True)],
        "latency_mean_ms": [round(float(v), 6) for v in mean],
        "latency_p99_ms": [round(v, 6) for v in p99],
        "latency_max_ms": [round(v, 6) for v in mx],
    }


__all__ = ["latency_histogram", "time_series"]
