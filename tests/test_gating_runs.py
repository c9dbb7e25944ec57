"""Repeated runs: --dlio-runs N runs the measured phases N times with a new seed each, reports mean, stdev
and CoV, and a stability item judges MLPerf's 5 % limit."""

from __future__ import annotations

import json

import pytest

from pytest_dlio.config.load import load_text
from pytest_dlio.engine.workload import with_seed
from pytest_dlio.gating.stats import summarise, unstable
from pytest_dlio.phases.sampler import epoch_order
from tests._junit import properties_by_name
from tests.conftest import CONFIGS, run
from tests.test_e2e_items import SMALL

SHUFFLED = SMALL.replace(
    "  read_threads: 2", "  read_threads: 2\n  file_shuffle: seed\n  sample_shuffle: seed"
)


def test_three_runs_report_mean_and_cov(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", tiny=SHUFFLED)
    result = run(
        pytester,
        "--dlio-config",
        "tiny.yaml",
        "--dlio-runs",
        "3",
        "--dlio-warmup",
        "--dlio-output",
        "out",
        "--junitxml=r.xml",
        "-rA",
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) == 6, result.stdout.str()  # stability: pass or fail on this machine
    cases = properties_by_name(pytester.path / "r.xml")
    train = cases["train"]
    assert train["runs"] == "3"
    runs = [float(x) for x in train["train_throughput_mean_samples_per_second_runs"].split(",")]
    assert len(runs) == 3 and all(x > 0 for x in runs)
    assert min(runs) <= float(train["train_throughput_mean_samples_per_second"]) <= max(runs)
    assert float(train["train_throughput_mean_samples_per_second_cov"]) >= 0
    assert "train_au_mean_percentage_cov" in cases["stability"]
    assert cases["checkpoint_write"]["runs"] == "3"  # training's saves: scored runs only
    out = pytester.path / "out" / "tiny"
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["run1", "run2", "run3", "warmup"]
    for label in ("warmup", "run1", "run2", "run3"):
        assert "1" in json.loads((out / label / "0_output.json").read_text())  # each run's own DLIO files
        assert json.loads((out / label / "summary.json").read_text())["epochs"] == 2
    top = json.loads((out / "summary.json").read_text())
    assert top["pytest_dlio"]["runs"]["train"]["runs"] == 3
    result.stdout.fnmatch_lines(
        [
            "*warmup (not scored): train_au_mean_percentage*",
            "*train_throughput_mean_samples_per_second: mean *, stdev *, CoV * %*",
        ]
    )


def test_each_run_gets_its_own_seed() -> None:
    cfg = load_text(SHUFFLED, "tiny.yaml")
    orders = [tuple(epoch_order(with_seed(cfg, i), e, 0, 1, shared_seed=0)) for i in range(3) for e in (1, 2)]
    assert len(set(orders)) == 6  # no run replays another run's epoch


def test_checkpoint_only_runs_repeat_write_and_read(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        "--dlio-config",
        str(CONFIGS / "mlperf_storage_v3.0" / "llama3_8b.yaml"),
        "--dlio-scale",
        "smoke",
        "--dlio-runs",
        "2",
        "--junitxml=r.xml",
        "--dlio-data-root",
        str(pytester.path / ".dlio"),
    )
    assert result.parseoutcomes().get("passed", 0) >= 3, result.stdout.str()
    cases = properties_by_name(pytester.path / "r.xml")
    assert cases["checkpoint_write"]["runs"] == "2" and cases["checkpoint_read"]["runs"] == "2"
    assert "save_checkpoint_io_mean_GB_per_second_cov" in cases["checkpoint_write"]


def test_summarise_and_stability_limit() -> None:
    props = dict(
        summarise(
            [
                {"train_throughput_mean_samples_per_second": 100.0, "num_accelerators": 1},
                {"train_throughput_mean_samples_per_second": 110.0, "num_accelerators": 1},
                {"train_throughput_mean_samples_per_second": 90.0, "num_accelerators": 1},
            ]
        )
    )
    assert props["runs"] == 3 and props["num_accelerators"] == 1
    assert props["train_throughput_mean_samples_per_second"] == pytest.approx(100.0)
    assert props["train_throughput_mean_samples_per_second_stdev"] == pytest.approx(10.0)
    assert props["train_throughput_mean_samples_per_second_cov"] == pytest.approx(10.0)
    (problem,) = unstable(props)
    assert problem.startswith("train_throughput_mean_samples_per_second varies 10.00 % across 3 runs")
    assert "100,110,90" in problem and "MLPerf allows 5 %" in problem
    steady = dict(summarise([{"train_au_mean_percentage": 99.0}, {"train_au_mean_percentage": 99.5}]))
    assert unstable(steady) == []


def test_repeated_result_scores_all_but_the_warmup() -> None:
    from pytest_dlio.gating.stats import repeated_result
    from pytest_dlio.report.results import PhaseResult

    k = "train_throughput_mean_samples_per_second"
    done = [
        ("warmup", PhaseResult("train", [(k, 1000.0)])),
        ("run1", PhaseResult("train", [(k, 100.0)])),
        ("run2", PhaseResult("train", [(k, 50.0)], failure="AU too low")),
    ]
    result = repeated_result("train", done)
    assert result.value("runs") == 2 and result.value(k) == pytest.approx(75.0)  # the warm-up's 1000 left out
    assert result.failure == "run2: AU too low"
    assert result.lines[0] == f"warmup (not scored): {k} 1000"
