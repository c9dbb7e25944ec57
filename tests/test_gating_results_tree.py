"""--dlio-results-dir: mlpstorage's results tree, with what its DLIO result parser reads in each run folder
(summary.json, per-rank files, dlio_config/config.yaml under 'workload:', overrides.yaml)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import CONFIGS, run
from tests.test_e2e_items import SMALL

STAMP = re.compile(r"^\d{8}_\d{6}$")
TRAIN = SMALL.replace("checkpoint: true", "checkpoint: false").replace(
    "evaluation: true", "evaluation: false"
)


def _run_folder(folder: Path) -> dict:
    """What mlpstorage reads from one run folder, checked as it reads it."""
    assert STAMP.match(folder.name), folder.name
    summary = json.loads((folder / "summary.json").read_text())
    config = yaml.safe_load((folder / "dlio_config" / "config.yaml").read_text())["workload"]
    overrides = yaml.safe_load((folder / "dlio_config" / "overrides.yaml").read_text())
    assert isinstance(overrides, list) and overrides[0].startswith("workload=")
    assert summary["start"] and summary["num_accelerators"] >= 1 and "metric" in summary
    assert len(summary["host_memory_GB"]) == len(summary["host_cpu_count"]) == summary["num_hosts"]
    (meta,) = folder.glob("*_metadata.json")  # mlpstorage 2.x finds runs by it: exactly one per folder
    metadata = json.loads(meta.read_text())
    assert meta.name == f"{metadata['benchmark_type']}_{folder.name}_metadata.json"
    assert metadata["run_datetime"] == folder.name and "parameters" not in metadata
    return {"summary": summary, "config": config, "overrides": overrides, "metadata": metadata}


def test_training_runs_land_in_training_model_run_stamp(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", tiny_b200=TRAIN)
    result = run(
        pytester,
        "--dlio-config",
        "tiny_b200.yaml",
        "--dlio-results-dir",
        "results",
        "--dlio-runs",
        "2",
        "--dlio-warmup",
        "--dlio-set",
        "reader.read_threads=1",
    )
    # schema, datagen, train and au pass; stability (CoV of two short runs on a shared machine) may go either way
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == 5, result.stdout.str()
    assert outcomes.get("passed", 0) >= 4 and "::stability" in result.stdout.str(), result.stdout.str()
    if outcomes.get("failed"):
        result.stdout.fnmatch_lines(["*FAILED*::stability*"])
    runs = sorted((pytester.path / "results" / "training" / "tiny" / "run").iterdir())
    assert len(runs) == 3  # the warm-up and two scored runs, one timestamp each
    seen = [_run_folder(r) for r in runs]
    for one, folder in zip(seen, runs, strict=True):
        # the training run as mlpstorage invokes it: the datagen item made the data before
        assert (
            one["config"]["workflow"]["train"] is True and one["config"]["workflow"]["generate_data"] is False
        )
        assert one["config"]["model"]["name"] == "tiny" and one["config"]["reader"]["read_threads"] == 1
        assert one["overrides"] == [
            "workload=tiny_b200",
            "++workload.workflow.generate_data=False",
            "++workload.workflow.train=True",
            "++workload.reader.read_threads=1",
        ]
        assert (one["metadata"]["benchmark_type"], one["metadata"]["command"]) == ("training", "run")
        assert one["metadata"]["model"] == "tiny" and one["metadata"]["accelerator"] == "b200"
        assert one["overrides"][0].split("_")[1] == "b200"  # how mlpstorage reads the accelerator
        assert (folder / "0_output.json").exists() and (folder / "0_per_epoch_stats.json").exists()
        assert one["summary"]["metric"]["train_au_mean_percentage"] > 0
    assert len({one["config"]["train"]["seed"] for one in seen}) == 3  # a new seed per run
    assert sorted(p.name for p in (pytester.path / "results").iterdir()) == ["training"]


def test_checkpoint_runs_land_in_checkpointing_model_stamp(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        "--dlio-config",
        str(CONFIGS / "mlperf_storage_v3.0" / "llama3_8b.yaml"),
        "--dlio-scale",
        "smoke",
        "--dlio-results-dir",
        str(pytester.path / "results"),
        "--dlio-data-root",
        str(pytester.path / ".dlio"),
    )
    result.assert_outcomes(passed=3)
    (folder,) = (pytester.path / "results" / "checkpointing" / "llama3-8b").iterdir()
    one = _run_folder(folder)
    assert one["config"]["workflow"]["checkpoint"] is True and one["config"]["model"]["name"] == "llama_8b"
    assert one["overrides"] == ["workload=llama3_8b"]
    assert (one["metadata"]["benchmark_type"], one["metadata"]["model"]) == ("checkpointing", "llama3-8b")
    metric = one["summary"]["metric"]
    assert (
        metric["save_checkpoint_io_mean_GB_per_second"] > 0
        and metric["load_checkpoint_io_mean_GB_per_second"] > 0
    )


def test_secrets_stay_out_of_the_results_tree(pytester: pytest.Pytester) -> None:
    secret = "NotARealSecretButSecret42"
    pytester.makefile(".yaml", tiny=TRAIN)
    result = run(
        pytester,
        "--dlio-config",
        "tiny.yaml",
        "--dlio-results-dir",
        "results",
        "-k",
        "schema or train or datagen",
        "--dlio-set",
        f"storage.storage_options.secret_access_key={secret}",
    )
    result.assert_outcomes(passed=3, deselected=1)
    assert secret not in result.stdout.str()
    texts = [p.read_text() for p in (pytester.path / "results").rglob("*") if p.is_file()]
    assert texts and not any(secret in t for t in texts)
    assert any("secret_access_key=***" in t for t in texts)


def test_two_workloads_of_one_model_get_two_timestamps(pytester: pytest.Pytester) -> None:
    for folder in ("a", "b"):
        (pytester.path / folder).mkdir()
        (pytester.path / folder / "tiny_b200.yaml").write_text(TRAIN.replace("data/tiny", f"data/{folder}"))
    result = run(pytester, "--dlio-config", "a", "--dlio-config", "b", "--dlio-results-dir", "results")
    result.assert_outcomes(passed=8)
    runs = sorted((pytester.path / "results" / "training" / "tiny" / "run").iterdir())
    assert len(runs) == 2 and all(STAMP.match(r.name) for r in runs)
    assert {_run_folder(r)["config"]["dataset"]["data_folder"] for r in runs} == {"data/a", "data/b"}
