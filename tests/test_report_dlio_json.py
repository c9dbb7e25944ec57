"""DLIO-compatible output files: key sets as DLIO HEAD writes them (dlio.md §4.3), merging, the table."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from pytest_dlio.config.model import Dataset, WorkloadConfig
from pytest_dlio.metrics import compute_metrics
from pytest_dlio.report.dlio_json import (
    TIME_FORMAT,
    deep_merge,
    summary_dict,
    write_rank_files,
    write_summary,
)
from pytest_dlio.report.table import LEGEND, metric_lines, render_table, short_ids
from pytest_dlio.timeline import from_dict
from tests.test_metrics_golden import AU_E1, AU_E2_R0, AU_E2_R1

GOLDEN = Path(__file__).parent.parent / "fixtures" / "golden" / "train_timeline.json"
DLIO_SUMMARY_KEYS = {
    "start",
    "end",
    "num_accelerators",
    "num_hosts",
    "hostname",
    "num_files_train",
    "num_files_eval",
    "num_samples_per_file",
    "host_cpu_count",
    "host_processor_name",
    "host_memory_GB",
    "data_size_per_host_GB",
    "potential_caching",
    "epochs",
    "metric",
}
TRAIN_METRIC_KEYS = {
    "train_au_percentage",
    "train_au_mean_percentage",
    "train_au_stdev_percentage",
    "train_au_meet_expectation",
    "train_throughput_samples_per_second",
    "train_throughput_mean_samples_per_second",
    "train_throughput_stdev_samples_per_second",
    "train_io_mean_MB_per_second",
    "train_io_stdev_MB_per_second",
}
EVAL_METRIC_KEYS = {k.replace("train_", "eval_", 1) for k in TRAIN_METRIC_KEYS}


def golden():
    doc = json.loads(GOLDEN.read_text())
    tls = [from_dict(r) for r in doc["ranks"]]
    return tls, compute_metrics(tls, doc["au_threshold"])


def cfg() -> WorkloadConfig:
    return WorkloadConfig(
        dataset=Dataset(
            num_files_train=8, num_files_eval=2, num_samples_per_file=3, record_length_bytes=1048576
        )
    )


def test_summary_key_set_and_values(tmp_path):
    tls, m = golden()
    path = write_summary(tmp_path, summary_dict(cfg(), m, 100.0, 206.5))
    doc = json.loads(path.read_text())
    assert set(doc) == DLIO_SUMMARY_KEYS | {"pytest_dlio"}
    assert set(doc["metric"]) == TRAIN_METRIC_KEYS | EVAL_METRIC_KEYS
    assert (
        datetime.strptime(doc["end"], TIME_FORMAT).timestamp()
        - datetime.strptime(doc["start"], TIME_FORMAT).timestamp()
        == 106.5
    )
    assert doc["num_accelerators"] == 2 and doc["epochs"] == 2 and doc["num_samples_per_file"] == 3
    # DLIO: ppn x spf x N_train // P x record_length / 1024^3 = 2 x 3 x 8 // 2 x 1 MiB = 24 MiB
    assert doc["data_size_per_host_GB"] == 0.0234375
    assert doc["host_memory_GB"][0] > 1 and doc["potential_caching"] == [1]  # 24 MiB fits in this host's RAM
    # the golden timeline's AU per epoch, worked by hand in test_metrics_golden
    assert doc["metric"]["train_au_percentage"] == pytest.approx([AU_E1, (AU_E2_R0 + AU_E2_R1) / 2], abs=1e-9)
    assert doc["pytest_dlio"]["metric"]["read_bytes"] == 1500


def test_dataset_larger_than_memory_is_not_flagged_as_cached(tmp_path):
    _, m = golden()
    big = WorkloadConfig(
        dataset=Dataset(num_files_train=8, num_samples_per_file=3, record_length_bytes=2**40)
    )
    doc = json.loads(write_summary(tmp_path, summary_dict(big, m, 100.0, 206.5)).read_text())
    assert doc["data_size_per_host_GB"] == 24576.0  # 24 records of 1 TiB
    assert doc["potential_caching"] == [0]


def test_checkpoint_metrics_merge_without_losing_train(tmp_path):
    _, m = golden()
    doc = summary_dict(cfg(), m, 100.0, 206.5)
    deep_merge(doc, {"metric": {"save_checkpoint_duration_mean_seconds": 1.5, "checkpoint_size_GB": 2.0}})
    doc = json.loads(write_summary(tmp_path, doc).read_text())
    assert doc["metric"]["save_checkpoint_duration_mean_seconds"] == 1.5
    assert doc["metric"]["train_au_mean_percentage"] == m.train_au_mean_percentage
    assert set(doc) == DLIO_SUMMARY_KEYS | {"pytest_dlio"}


def test_per_epoch_stats_like_dlio(tmp_path):
    tls, m = golden()
    tls[0].epochs[0].extra["save_ckpt1"] = {"start": "x", "end": "y", "duration": 1.23, "throughput": 0.45}
    stats, _ = write_rank_files(tmp_path, tls[0])
    assert stats.name == "0_per_epoch_stats.json"
    doc = json.loads(stats.read_text())
    assert set(doc) == {"1", "2"}
    assert set(doc["1"]) == {"start", "block1", "block2", "save_ckpt1", "end", "duration"}
    assert set(doc["2"]) == {"start", "block1", "eval", "end", "duration"}
    assert doc["1"]["block1"]["duration"] == "3.00" and doc["1"]["block2"]["duration"] == "1.50"
    assert doc["2"]["eval"]["duration"] == "2.00" and doc["1"]["duration"] == "5.50"
    assert doc["1"]["save_ckpt1"]["duration"] == 1.23  # checkpoint durations stay floats


def test_output_json_arrays(tmp_path):
    tls, m = golden()
    _, raw = write_rank_files(tmp_path, tls[1])
    assert raw.name == "1_output.json"
    doc = json.loads(raw.read_text())
    assert {
        "hostname",
        "host_cpu_count",
        "host_memory_GB",
        "host_processor_name",
        "potential_caching",
    } <= set(doc)
    e1, e2 = doc["1"], doc["2"]
    assert set(e1) == {"load", "proc", "compute", "au", "throughput"}
    assert e1["load"]["block1"] == [0.2, 0.1, 0.3]
    assert e1["compute"]["block2"] == [0.4, 0.6]
    assert e2["proc"]["eval"] == [0.5, 0.6, 0.7]
    assert abs(e2["au"]["block1"] - 100 * 2.1 / 3.4) < 1e-9
    assert e2["throughput"]["eval"] == 6.0


def test_render_table_aligns_rows():
    _, m = golden()
    rows = [
        {
            "nodeid": "configs/unet3d.yaml::train",
            "outcome": "passed",
            "phase": "train",
            **dict(m.properties()),
        },
        {
            "nodeid": "llama.yaml::checkpoint_write",
            "outcome": "passed",
            "phase": "checkpoint_write",
            "save_checkpoint_io_mean_GB_per_second": 1.5,
            "save_checkpoint_file_latency_p99_ms": 12.25,
        },
        {
            "nodeid": "a.yaml::datagen",
            "outcome": "passed",
            "phase": "datagen",
            "datagen_files_written": 3,
            "datagen_MiB_per_s": 42.25,
            "datagen_write_latency_p99_ms": 3.5,
        },
        {
            "nodeid": "b.yaml::datagen",
            "outcome": "passed",
            "phase": "datagen",
            "datagen_files_written": 0,
            "datagen_MiB_per_s": 0.0,
            "datagen_write_latency_p99_ms": 0.0,
        },
        {
            "nodeid": "a.yaml::au",
            "outcome": "failed",
            "phase": "au",
            "train_au_mean_percentage": 12.5,
            "au_threshold_percentage": 90.0,
        },
    ]
    lines = render_table(rows)
    assert len(lines) == 2 + len(rows) + len(LEGEND) and set(lines[1]) == {"-", " "}
    assert all(len(line) <= 100 for line in lines)
    au = "62.4"  # the golden run's mean AU (62.3597 %, worked by hand in test_metrics_golden)
    assert lines[0].index("AU %") + len("AU %") == lines[2].index(au) + len(au)  # right-aligned column
    assert lines[2].startswith("unet3d::train ") and "9.76" in lines[2]  # p99 of reads [1, 2, 3, 10, 4] ms
    assert (
        f"{m.train_io_mean_MB_per_second:.1f}" in lines[2]
        and f"{m.read_MB_per_second_actual:.1f}" in lines[2]
    )
    assert lines[3].split()[-3:] == ["save", "1.50", "GB/s"] and "12.25" in lines[3]
    assert lines[4].split()[-2:] == ["42.2", "MiB/s"] or lines[4].split()[-2:] == ["42.3", "MiB/s"]
    # a workload's items stay together (under xdist reports of several workloads interleave)
    assert lines[5].split() == ["a::au", "failed", "12.5", "need", "90", "%"]
    assert lines[6].split() == ["b::datagen", "passed", "reused"]
    assert any("nominal" in line and "record_length_bytes" in line for line in lines[-3:])


def test_render_table_fits_100_columns_with_long_ids():
    rows = [
        {
            "nodeid": f"mlcommons_configs/mlperf_storage_v3.0/{'x' * 60}_{i}.yaml::checkpoint_write",
            "outcome": "passed",
            "save_checkpoint_io_mean_GB_per_second": 123.456,
        }
        for i in range(2)
    ]
    lines = render_table(rows)
    assert all(len(line) <= 100 for line in lines)
    names = [line.split()[0] for line in lines[2:4]]
    assert names[0] != names[1] and all(n.endswith("::checkpoint_write") and "…" in n for n in names)
    assert all("save 123.46 GB/s" in line for line in lines[2:4])


def test_short_ids_keep_the_folder_when_names_collide():
    assert short_ids(["a/x.yaml::au", "b/x.yaml::au", "c/y.yaml::au"]) == ["a/x::au", "b/x::au", "y::au"]


def test_metric_lines_name_dlio_metrics():
    _, m = golden()
    text = "\n".join(metric_lines(m))
    assert "Training Accelerator Utilization [AU] (%)" in text and "Eval Throughput" in text
    assert "p50/p90/p99/max" in text
