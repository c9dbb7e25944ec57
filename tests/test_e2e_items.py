"""End to end through pytest: a workload YAML becomes items that generate, train, gate AU and checkpoint."""

from __future__ import annotations

import json

import pytest

from tests._junit import not_passed, properties_by_name, read_cases
from tests.conftest import CONFIGS, FAST, run

SMALL = """
model:
  name: tiny
  model_size_bytes: 65536
framework: pytorch
workflow:
  generate_data: true
  train: true
  checkpoint: true
  evaluation: true
dataset:
  data_folder: data/tiny
  format: npz
  num_files_train: 16
  num_files_eval: 4
  record_length_bytes: 16384
reader:
  data_loader: pytorch
  batch_size: 2
  read_threads: 2
train:
  epochs: 2
  computation_time: 0.002
checkpoint:
  checkpoint_folder: checkpoints/tiny
  checkpoint_after_epoch: 1
  epochs_between_checkpoints: 1
metric:
  au: 0.0
"""


def small_named(name: str) -> str:
    """SMALL with data and checkpoint folders of its own, for a second workload in the same session."""
    return SMALL.replace("data/tiny", f"data/{name}").replace("checkpoints/tiny", f"checkpoints/{name}")


def run_two_on_xdist(pytester: pytest.Pytester, one: str, two: str, *args: str) -> pytest.RunResult:
    """Workloads ``one`` and ``two`` (SMALL under those names) in a pytest subprocess on two xdist workers."""
    pytester.makefile(".yaml", **{one: small_named(one), two: small_named(two)})
    return pytester.runpytest_subprocess(
        *FAST, "-n", "2", "--dlio-config", f"{one}.yaml", "--dlio-config", f"{two}.yaml", *args
    )


def test_small_workload_all_items_pass(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", tiny=SMALL)
    result = run(pytester, "--dlio-config", "tiny.yaml", "--junitxml=out.xml", "--dlio-output", "out")
    result.assert_outcomes(passed=6)
    props = properties_by_name(pytester.path / "out.xml")
    assert set(props) == {"schema", "datagen", "train", "au", "checkpoint_write", "checkpoint_read"}
    assert int(props["datagen"]["datagen_files_written"]) == 20
    train = props["train"]
    summary = json.loads((pytester.path / "out" / "tiny" / "summary.json").read_text())
    # the AU users read is one figure: train item, au item and summary.json agree exactly
    au = summary["metric"]["train_au_mean_percentage"]
    assert float(train["train_au_mean_percentage"]) == au == float(props["au"]["train_au_mean_percentage"])
    assert (
        props["au"]["au_threshold_percentage"] == "0.0"
        and props["au"]["train_au_meet_expectation"] == "success"
    )
    assert summary["metric"]["train_au_meet_expectation"] == "success"  # metric.au 0.0: any AU meets it
    thr = summary["metric"]["train_throughput_mean_samples_per_second"]
    assert float(train["train_throughput_mean_samples_per_second"]) == thr > 0
    # reported bytes are bytes moved: each of the 16 one-sample training files is read whole once an epoch
    files = sorted((pytester.path / ".dlio" / "data" / "tiny" / "train").rglob("*.npz"))
    assert len(files) == 16
    assert (
        int(train["read_bytes"])
        == 2 * sum(f.stat().st_size for f in files)
        == summary["pytest_dlio"]["metric"]["read_bytes"]
    )
    assert int(train["read_count"]) == 2 * 16
    assert float(train["read_latency_p99_ms"]) >= float(train["read_latency_p50_ms"]) > 0
    assert float(props["checkpoint_write"]["save_checkpoint_io_mean_GB_per_second"]) > 0
    assert float(props["checkpoint_read"]["load_checkpoint_io_mean_GB_per_second"]) > 0
    for key in (
        "train_au_percentage",
        "train_au_mean_percentage",
        "train_throughput_mean_samples_per_second",
        "train_io_mean_MB_per_second",
        "save_checkpoint_io_mean_GB_per_second",
        "load_checkpoint_duration_mean_seconds",
        "checkpoint_size_GB",
    ):
        assert key in summary["metric"], key
    assert summary["num_files_train"] == 16 and summary["epochs"] == 2
    assert (pytester.path / "out" / "tiny" / "0_per_epoch_stats.json").exists()
    assert (pytester.path / "out" / "tiny" / "0_output.json").exists()
    # DLIO's checkpoint layout: one model_states file per save, epoch-end step = steps per epoch + 1
    assert (
        pytester.path / ".dlio" / "checkpoints" / "tiny" / "global_epoch2_step9" / "model_states-0.pt"
    ).exists()
    result.stdout.fnmatch_lines(["*= dlio =*", "tiny::train *passed*"])


#: metric.au 0.5, no checkpoints or eval: items schema, datagen, train, au.
GATED = (
    SMALL.replace("au: 0.0", "au: 0.5")
    .replace("checkpoint: true", "checkpoint: false")
    .replace("evaluation: true", "evaluation: false")
)


@pytest.mark.parametrize("compute", [0.05, 0.0], ids=["compute-bound", "no-compute"])
def test_au_follows_compute_and_the_verdict_follows_au(pytester: pytest.Pytester, compute: float) -> None:
    # 16 KiB local files read ahead by 2 readers take well under a millisecond, so 50 ms of emulated compute
    # a step leaves the accelerator busy nearly all the time (measured ~99.9 % under load 7 on 2 cores),
    # and no compute leaves it idle (measured ~0.1 %); the bounds below leave room for a loaded machine.
    pytester.makefile(".yaml", tiny=GATED.replace("computation_time: 0.002", f"computation_time: {compute}"))
    result = run(pytester, "--dlio-config", "tiny.yaml", "--junitxml=out.xml", "--dlio-output", "out")
    cases = {c.name: c for c in read_cases(pytester.path / "out.xml")}
    assert set(cases) == {"schema", "datagen", "train", "au"}, result.stdout.str()
    assert all(cases[n].outcome == "passed" for n in ("schema", "datagen", "train")), result.stdout.str()
    summary = json.loads((pytester.path / "out" / "tiny" / "summary.json").read_text())["metric"]
    au = summary["train_au_mean_percentage"]
    gate = cases["au"]
    assert float(gate.properties["train_au_mean_percentage"]) == au
    assert float(cases["train"].properties["train_au_mean_percentage"]) == au
    assert gate.properties["au_threshold_percentage"] == "50.0"
    if compute:
        assert au > 50, au
        assert gate.outcome == "passed", gate.message
        verdict = "success"
    else:
        assert au < 25, au
        assert gate.outcome == "failed"
        assert f"training AU {au:.2f} % is below the required 50.00 % (metric.au=0.5)" in gate.message
        verdict = "fail"
    assert gate.properties["train_au_meet_expectation"] == summary["train_au_meet_expectation"] == verdict
    assert cases["train"].properties["train_au_meet_expectation"] == verdict


def test_second_run_reuses_the_dataset(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", tiny=SMALL)
    run(pytester, "--dlio-config", "tiny.yaml", "-k", "datagen").assert_outcomes(passed=1, deselected=5)
    result = run(pytester, "--dlio-config", "tiny.yaml", "-k", "datagen", "--junitxml=out.xml")
    result.assert_outcomes(passed=1, deselected=5)
    props = properties_by_name(pytester.path / "out.xml")["datagen"]
    assert props["datagen_files_written"] == "0" and props["datagen_files_skipped"] == "20"


def test_generate_never_fails_without_data(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", tiny=SMALL)
    result = run(pytester, "--dlio-config", "tiny.yaml", "--dlio-generate", "never")
    result.assert_outcomes(passed=1, failed=1, skipped=4)
    result.stdout.fnmatch_lines(["*Not enough training dataset is found*--dlio-generate auto*"])
    assert "Traceback" not in result.stdout.str()


def test_au_gate_fails_with_the_reason(pytester: pytest.Pytester) -> None:
    pytester.makefile(
        ".yaml", tiny=SMALL.replace("au: 0.0", "au: 1.0").replace("checkpoint: true", "checkpoint: false")
    )
    result = run(pytester, "--dlio-config", "tiny.yaml")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*::au*", "*training AU * % is below the required 100.00 %*waited*"])


def test_keep_files_false_removes_the_dataset(pytester: pytest.Pytester) -> None:
    pytester.makefile(
        ".yaml",
        tiny=SMALL.replace(
            "  record_length_bytes: 16384", "  record_length_bytes: 16384\n  keep_files: false"
        ),
    )
    (pytester.path / ".dlio" / "data" / "tiny").mkdir(parents=True)
    (pytester.path / ".dlio" / "data" / "tiny" / "mine.txt").write_text("not generated")
    run(pytester, "--dlio-config", "tiny.yaml").assert_outcomes(passed=6)
    left = sorted(p.name for p in (pytester.path / ".dlio" / "data" / "tiny").rglob("*") if p.is_file())
    assert left == ["mine.txt"]


def test_unet3d_smoke_checkpoint_names(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        "--dlio-config",
        str(CONFIGS / "dlio" / "unet3d_h100.yaml"),
        "--dlio-scale",
        "smoke",
        "--junitxml=out.xml",
        "--dlio-data-root",
        str(pytester.path / ".dlio"),
    )
    # schema datagen train checkpoint_write/read pass; au may fail its gate at this scale, and nothing else
    props = properties_by_name(pytester.path / "out.xml")
    assert set(props) == {"schema", "datagen", "train", "au", "checkpoint_write", "checkpoint_read"}
    assert not not_passed(pytester.path / "out.xml"), result.stdout.str()
    assert float(props["schema"]["scale"]) < 1e-3
    assert "scaled by" in props["schema"]["config_notes"]
    # unet3d checkpoints once, after epoch 5 of 5 → smoke caps epochs at 2 and moves the trigger inside them
    ckpts = list(
        (pytester.path / ".dlio" / "checkpoints" / "unet3d").glob("global_epoch2_step*/model_states-0.pt")
    )
    assert len(ckpts) == 1


def test_llama_plan_prints_mlperf_sizes(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        "--dlio-plan",
        "--dlio-ranks",
        "64",
        "--dlio-data-root",
        str(pytester.path / ".dlio"),
        "--dlio-config",
        str(CONFIGS / "mlperf_storage_v3.0" / "llama3_70b.yaml"),
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*dlio plan*llama3_70b.yaml*", "*69,882,617,856 parameters*", "*911.21 GiB*"]
    )
    assert not (pytester.path / ".dlio").exists()  # the plan touches no storage


def test_llama_smoke_writes_and_reads_rank0(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        "--dlio-config",
        str(CONFIGS / "mlperf_storage_v3.0" / "llama3_70b.yaml"),
        "--dlio-scale",
        "smoke",
        "-rA",
        "--dlio-data-root",
        str(pytester.path / ".dlio"),
    )
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*emulates rank 0 of 8*"])
    step1 = pytester.path / ".dlio" / "checkpoints" / "llama_70b" / "global_epoch1_step1"
    names = sorted(p.name for p in step1.iterdir() if not p.name.startswith("."))
    assert names == ["zero_pp_rank_0_mp_rank_0_model_states.pt", "zero_pp_rank_0_mp_rank_0_optim_states.pt"]
