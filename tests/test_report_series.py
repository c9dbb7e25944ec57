"""Per-second time series and HDR latency histograms: built from recorded reads, written beside DLIO's files."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_dlio.report.series import (
    HDR_DIGITS,
    HDR_HIGHEST_US,
    HDR_LOWEST_US,
    LOG_BASE,
    latency_histogram,
    time_series,
)
from pytest_dlio.timeline import Reads
from tests.conftest import run
from tests.test_e2e_items import SMALL


def test_reads_fall_in_the_second_they_complete() -> None:
    r = Reads()
    for start, lat, n in ((100.0, 0.1, 10), (100.5, 0.2, 20), (100.95, 0.1, 40), (102.5, 0.5, 80)):
        r.add(n, lat, start)
    ts = time_series(r)
    assert ts["t"] == [0.0, 1.0, 2.0, 3.0]
    assert ts["reads"] == [2, 1, 0, 1] and ts["bytes"] == [30, 40, 0, 80]
    assert ts["latency_max_ms"] == [pytest.approx(200.0), pytest.approx(100.0), 0.0, pytest.approx(500.0)]
    assert ts["t0"] == pytest.approx(100.0 + r.wall_offset)


def test_reads_without_start_times_give_an_empty_series() -> None:
    r = Reads()
    r.add(10, 0.1)
    assert time_series(r)["t"] == []


def test_histogram_percentiles_and_buckets() -> None:
    lat = [0.001] * 90 + [0.010] * 9 + [0.100]
    h = latency_histogram(lat)
    assert h["count"] == 100 == sum(b[2] for b in h["buckets"])
    assert h["p50_ms"] == pytest.approx(1.0, rel=1e-3) and h["p99_ms"] == pytest.approx(10.0, rel=1e-3)
    assert h["max_ms"] == pytest.approx(100.0, rel=1e-3)
    assert all(lo < hi for lo, hi, _ in h["buckets"])
    assert any(lo < 1000 <= hi and c == 90 for lo, hi, c in h["buckets"])  # 1 ms = 1000 us
    decoded = HdrHistogram.decode(h["hdr"])  # HdrHistogram's own encoding: loads anywhere
    assert decoded.get_total_count() == 100


def hdrh_reference(seconds: list[float]) -> dict[str, object]:
    """The same figures from hdrh's own (pure-Python, slow) methods over a histogram filled by record_value."""
    h = HdrHistogram(HDR_LOWEST_US, HDR_HIGHEST_US, HDR_DIGITS)
    for s in seconds:
        h.record_value(int(min(max(round(s * 1e6), HDR_LOWEST_US), HDR_HIGHEST_US)))
    buckets, low = [], 0.0
    for step in h.get_log_iterator(HDR_LOWEST_US, LOG_BASE):
        if step.count_added_in_this_iter_step:
            buckets.append(
                [round(low, 3), round(float(step.value_iterated_to), 3), step.count_added_in_this_iter_step]
            )
        low = float(step.value_iterated_to)
    return {
        "unit": "us",
        "count": h.get_total_count(),
        "min_ms": h.get_min_value() / 1000.0,
        "mean_ms": h.get_mean_value() / 1000.0,
        "max_ms": h.get_max_value() / 1000.0,
        **{
            f"p{p:g}_ms".replace(".", "_"): h.get_value_at_percentile(p) / 1000.0
            for p in (50.0, 90.0, 99.0, 99.9)
        },
        "buckets": buckets,
        "hdr": h.encode().decode("ascii"),
    }


#: Latencies in seconds: sub-microsecond (clipped to 1 us) to past the 1 h ceiling (clipped), with repeats.
LATENCIES = st.lists(
    st.one_of(
        st.floats(0.0, 2e-3),
        st.floats(1e-6, 10.0),
        st.floats(1.0, 5000.0),
        st.sampled_from([1e-6, 1.0235e-3, 2.048e-3, 0.5, 3600.0]),
    ),
    min_size=1,
    max_size=400,
)


@settings(max_examples=60, deadline=None)
@given(LATENCIES)
def test_histogram_equals_hdrh_own_methods(seconds: list[float]) -> None:
    assert latency_histogram(seconds) == hdrh_reference(seconds)


def test_histogram_equals_hdrh_on_a_large_spread_set() -> None:
    seconds = np.random.default_rng(7).lognormal(np.log(2e-3), 2.0, 20_000).tolist()
    assert latency_histogram(seconds) == hdrh_reference(seconds)


def test_empty_histogram() -> None:
    assert latency_histogram([]) == {"unit": "us", "count": 0, "buckets": []}


def test_non_finite_values_are_no_latencies() -> None:
    # they were cast to int64's minimum and landed in a garbage bucket, shifting every percentile
    seconds = [0.001, 0.002, 0.004]
    assert latency_histogram([float("nan"), *seconds, float("inf")]) == hdrh_reference(seconds)
    assert latency_histogram([float("nan")]) == {"unit": "us", "count": 0, "buckets": []}


def test_run_writes_series_beside_dlio_files(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", tiny=SMALL)
    run(pytester, "--dlio-config", "tiny.yaml", "--dlio-output", "out", "--junitxml=out.xml").assert_outcomes(
        passed=6
    )
    out = pytester.path / "out" / "tiny"
    ts = json.loads((out / "0_timeseries.json").read_text())
    hist = json.loads((out / "0_latency_histograms.json").read_text())
    cases = {
        case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
        for case in ET.parse(pytester.path / "out.xml").iter("testcase")
    }
    props = cases["train"]
    # what the series count is what was read, as the user reads it in the item's properties
    assert sum(ts["train_read"]["bytes"]) == int(props["read_bytes"])
    assert sum(ts["train_read"]["reads"]) == int(props["read_count"]) == hist["train_read"]["count"]
    assert ts["rank"] == hist["rank"] == 0 and sum(ts["eval_read"]["reads"]) > 0
    assert set(hist) >= {
        "datagen_write",
        "train_read",
        "eval_read",
        "checkpoint_save_file",
        "checkpoint_load_file",
    }
    assert hist["datagen_write"]["count"] == 20  # one latency per file written
    assert sum(ts["datagen_write"]["reads"]) == int(cases["datagen"]["datagen_files_written"]) == 20
    assert sum(ts["datagen_write"]["bytes"]) == int(cases["datagen"]["datagen_bytes"])
    assert hist["checkpoint_load_file"]["count"] == 2  # two checkpoints of one file each
