"""--dlio-mlperf closed|open: an mlperf_rules item naming each broken rule, its value and the fix; the
MLPerf datasize line in --dlio-plan."""

from __future__ import annotations

import pytest

from pytest_dlio.config.load import load
from pytest_dlio.gating.datasize import required_files
from tests._junit import properties_by_name
from tests.conftest import CONFIGS, run

V3 = CONFIGS / "mlperf_storage_v3.0"
# unet3d's record is 146,600,628 B, one per file: 5 x 256 GiB = 1,374,389,534,720 B -> 9,375 whole files;
# 500 steps x batch 7 x 1 accelerator = 3,500 files.
MEM = ("--dlio-host-memory-gb", "256")
VALID_RUNS = ("--dlio-runs", "5", "--dlio-warmup")


def _plan(pytester: pytest.Pytester, config: str, *args: str) -> pytest.RunResult:
    return run(
        pytester,
        "--dlio-config",
        str(V3 / config),
        "--dlio-plan",
        "--dlio-mlperf",
        "closed",
        "--dlio-data-root",
        str(pytester.path / ".dlio"),
        *MEM,
        *args,
    )


def test_too_small_dataset_fails_the_memory_rule(pytester: pytest.Pytester) -> None:
    result = _plan(pytester, "unet3d_b200.yaml", "--dlio-set", "dataset.num_files_train=16", *VALID_RUNS)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*unet3d_b200::mlperf_rules*",
            "*not a valid MLPerf Storage CLOSED run (2 rule(s)):*",
            "*dataset >= 5 x client memory: dataset.num_files_train 16 < 9,375 files for 256.0 GiB of memory on 1 "
            "host(s) — fix: --dlio-set dataset.num_files_train=9375*",
            "*500 steps per epoch: dataset.num_files_train 16 < 3,500 files*",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_forbidden_override_is_named(pytester: pytest.Pytester) -> None:
    result = _plan(
        pytester,
        "unet3d_b200.yaml",
        "--dlio-set",
        "reader.batch_size=2",
        "--dlio-set",
        "++workload.dataset.num_files_train=9375",
        *VALID_RUNS,
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*CLOSED overrides: --dlio-set reader.batch_size may not change — fix: remove it*"]
    )
    assert "num_files_train may not change" not in result.stdout.str()


def test_a_valid_closed_plan_passes_and_prints_the_datasize(pytester: pytest.Pytester) -> None:
    result = _plan(
        pytester,
        "unet3d_b200.yaml",
        "--dlio-set",
        "dataset.num_files_train=9375",
        *VALID_RUNS,
        "--junitxml=r.xml",
    )
    result.assert_outcomes(passed=2)
    assert (
        properties_by_name(pytester.path / "r.xml")["mlperf_rules"]["mlperf_required_files_train"] == "9375"
    )
    result.stdout.fnmatch_lines(
        [
            "*MLPerf datasize: dataset.num_files_train >= 9,375 (1279.99 GiB) for 1 "
            "accelerator(s) on 1 host(s) with 256.0 GiB each — set by 5 x client memory*"
        ]
    )


def test_open_allows_the_format_but_whatif_workloads_are_refused(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        "--dlio-config",
        str(V3 / "unet3d_h100.yaml"),
        "--dlio-plan",
        "--dlio-mlperf",
        "open",
        "--dlio-set",
        "dataset.num_samples_per_file=1",
        "--dlio-set",
        "dataset.num_files_train=9375",
        *MEM,
        *VALID_RUNS,
        "--dlio-data-root",
        str(pytester.path / ".dlio"),
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*OPEN training workloads: unet3d on h100 is not admitted in v3.0 (whatif only)*"]
    )
    assert "overrides" not in result.stdout.str()


def test_checkpoint_rules(pytester: pytest.Pytester) -> None:
    ok = _plan(pytester, "llama3_8b.yaml", "--dlio-ranks", "8")
    ok.assert_outcomes(passed=2)
    bad = _plan(
        pytester,
        "llama3_8b.yaml",
        "--dlio-ranks",
        "4",
        "--dlio-set",
        "checkpoint.fsync=false",
        "--dlio-set",
        "checkpoint.num_checkpoints_read=5",
    )
    bad.assert_outcomes(passed=1, failed=1)
    bad.stdout.fnmatch_lines(
        [
            "*CLOSED process count: 4 rank(s) for llama_8b — fix: --dlio-ranks 8*",
            "*accelerators per host: 4 per host — fix: CLOSED needs more than 4 accelerators on each host*",
            "*10 writes then 10 reads: checkpoint.num_checkpoints_read 5*",
            "*fsync: checkpoint.fsync is false — fix: checkpoint.fsync: true (mandatory)*",
            "*checkpointing overrides: --dlio-set checkpoint.fsync may not change*",
        ]
    )


def test_small_checkpoints_need_the_cache_dropped(pytester: pytest.Pytester) -> None:
    # 8 ranks of llama3 8b write about 10 x 105 GiB: under 3 x 1024 GiB per host the reads may hit the cache
    result = _plan(pytester, "llama3_8b.yaml", "--dlio-ranks", "8", "--dlio-host-memory-gb", "1024")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*cache clearing: * GiB written per host < 3 x 1024.0 GiB memory*--dlio-drop-caches*"]
    )
    _plan(
        pytester, "llama3_8b.yaml", "--dlio-ranks", "8", "--dlio-host-memory-gb", "1024", "--dlio-drop-caches"
    ).assert_outcomes(passed=2)


def test_datasize_takes_hosts_and_accelerators() -> None:
    cfg = load(V3 / "unet3d_b200.yaml")
    one = required_files(cfg, accelerators=8, hosts=1, memory_gib_per_host=256)
    assert (one.by_memory, one.by_steps, one.files) == (9375, 28000, 28000)
    four = required_files(cfg, accelerators=32, hosts=4, memory_gib_per_host=256)
    assert (four.by_memory, four.by_steps) == (37500, 112000)


def test_datagen_workloads_are_judged_on_their_overrides_only(pytester: pytest.Pytester) -> None:
    _plan(pytester, "unet3d_datagen.yaml", "--dlio-set", "dataset.num_files_train=9375").assert_outcomes(
        passed=2
    )
    bad = _plan(pytester, "unet3d_datagen.yaml", "--dlio-set", "dataset.record_length_bytes=4096")
    bad.assert_outcomes(passed=1, failed=1)
    bad.stdout.fnmatch_lines(["*CLOSED overrides: --dlio-set dataset.record_length_bytes may not change*"])
