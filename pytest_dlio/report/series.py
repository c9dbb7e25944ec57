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

import operator
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
    """An HDR histogram of latencies (in seconds) as data: count, percentiles (ms), chart buckets (µs).

    The counts go into an ``hdrh`` histogram (for its ``hdr`` encoding); the figures are computed here with
    numpy over the recorded counts, with hdrh's own semantics (percentiles report the highest value
    equivalent to the bucket they fall in, the mean weighs each bucket by its median-equivalent value, the
    log buckets are those of ``get_log_iterator``). hdrh's pure-Python methods walk its whole ~24k-entry
    counts array once per figure: ~50 ms per histogram, several per phase; this takes 0.4 ms (16 values)
    to 8 ms (100k values).
    """
    from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

    h = HdrHistogram(HDR_LOWEST_US, HDR_HIGHEST_US, HDR_DIGITS)
    raw = np.asarray(seconds, dtype=np.float64)
    raw = raw[np.isfinite(raw)]  # a NaN or inf is no latency (cast to int64 it became -2**63, bucket garbage)
    us = np.clip(np.rint(raw * 1e6), HDR_LOWEST_US, HDR_HIGHEST_US)
    index, counts = np.unique(_counts_index(h, us.astype(np.int64)), return_counts=True)
    doc: dict[str, Any] = {"unit": "us", "count": int(counts.sum())}
    if not doc["count"]:
        return {**doc, "buckets": []}
    # Fill hdrh's counts array in place and set its tracking values as its own decoder does.
    np.ctypeslib.as_array(h.counts)[index] = counts
    total = doc["count"]
    h.set_internal_tacking_values(int(index[0]), int(index[-1]), total)
    low, size = _equivalent_range(h, index)
    high = low + size - 1
    cum = np.cumsum(counts)
    # Exact integer sum, as hdrh's get_mean_value (Python ints: no int64 overflow at any count).
    weighted = sum(map(operator.mul, counts.tolist(), (low + (size >> 1)).tolist()))

    def percentile(p: float) -> int:  # hdrh's get_value_at_percentile
        target = max(int((min(p, 100.0) * total / 100) + 0.5), 1)
        i = int(np.searchsorted(cum, target, side="left"))
        return int(high[i] if p else low[i])

    doc.update(
        {
            "min_ms": int(low[0]) / 1000.0,
            "mean_ms": float(weighted) / total / 1000.0,
            "max_ms": int(high[-1]) / 1000.0,
            **{f"p{p:g}_ms".replace(".", "_"): percentile(p) / 1000.0 for p in PERCENTILES},
        }
    )
    doc["buckets"] = _log_buckets(
        h, index, cum, int(low[-1])
    )  # [low_us, high_us, count]: values in (low, high]
    doc["hdr"] = h.encode().decode("ascii")
    return doc


def _counts_index(h: Any, values: np.ndarray) -> np.ndarray:
    """hdrh's ``_counts_index_for`` over an array of non-negative int64 values."""
    _, bit_length = np.frexp((values | h.sub_bucket_mask).astype(np.float64))  # exact below 2**53
    bucket = bit_length.astype(np.int64) - h.unit_magnitude - (h.sub_bucket_half_count_magnitude + 1)
    sub_bucket = values >> (bucket + h.unit_magnitude)
    return ((bucket + 1) << h.sub_bucket_half_count_magnitude) + sub_bucket - h.sub_bucket_half_count


def _equivalent_range(h: Any, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lowest value and size of the equivalence range of each counts index (hdrh's get_value_from_index)."""
    bucket = (index >> h.sub_bucket_half_count_magnitude) - 1
    sub_bucket = (index & (h.sub_bucket_half_count - 1)) + h.sub_bucket_half_count
    first = bucket < 0
    sub_bucket = np.where(first, sub_bucket - h.sub_bucket_half_count, sub_bucket)
    bucket = np.where(first, 0, bucket)
    return sub_bucket << (bucket + h.unit_magnitude), np.left_shift(1, bucket + h.unit_magnitude)


def _log_buckets(h: Any, index: np.ndarray, cum: np.ndarray, last_low: int) -> list[list[Any]]:
    """hdrh's ``get_log_iterator(HDR_LOWEST_US, LOG_BASE)`` steps with a count, as ``[low, high, count]``.

    Its step at level ``l`` (levels ``1, 1*b, 1*b*b, ...`` by repeated float multiplication) holds every
    count up to and including the equivalence range of ``int(l)``; iteration ends with the first level at
    or past the last recorded range (lowest value ``last_low``).
    """
    levels: list[float] = [HDR_LOWEST_US]
    while int(levels[-1]) < last_low:
        levels.append(levels[-1] * LOG_BASE)
    at = _counts_index(h, np.array([int(v) for v in levels], dtype=np.int64))
    upto = np.searchsorted(index, at, side="right")  # recorded ranges at or below each level's
    counts_to = np.where(upto > 0, cum[np.maximum(upto - 1, 0)], 0)
    added = np.diff(counts_to, prepend=0)
    lows = [0.0, *map(float, levels[:-1])]
    return [
        [round(lows[k], 3), round(float(levels[k]), 3), int(added[k])] for k in np.flatnonzero(added).tolist()
    ]


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
