"""Shipped workloads by name: the catalog (pytest-free) and --dlio-config / --dlio-list-configs through pytest."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pytest_dlio import __version__, workloads
from tests.conftest import CONFIGS, run

V3 = CONFIGS / "mlperf_storage_v3.0"


@pytest.mark.parametrize(
    "spec",
    [
        "mlperf-v3.0/unet3d_h100",
        "mlperf_storage_v3.0/unet3d_h100.yaml",
        "mlperf-v3/unet3d_h100",
        "MLPerf-Storage-v3.0/unet3d_h100.yml",
        "mlcommons_configs/mlperf_storage_v3.0/unet3d_h100",
    ],
)
def test_set_aliases_and_suffixes_name_one_file(spec: str) -> None:
    assert workloads.resolve(spec) == [V3 / "unet3d_h100.yaml"]


def test_dlio_sets_are_distinct() -> None:
    assert workloads.resolve("dlio/resnet50_h100") == [CONFIGS / "dlio" / "resnet50_h100.yaml"]
    assert workloads.resolve("dlio-2.0.0/resnet50_h100") == [CONFIGS / "dlio_2.0.0" / "resnet50_h100.yaml"]


def test_a_set_name_is_the_whole_folder() -> None:
    assert workloads.resolve("mlperf-v3.0") == sorted(V3.glob("*.yaml"))
    assert len(workloads.resolve("mlperf-v3.0")) == 23


def test_globs_over_names() -> None:
    assert workloads.resolve("mlperf-v3.0/unet3d_*") == [
        V3 / f"unet3d_{g}.yaml" for g in ("a100", "b200", "datagen", "h100")
    ]
    assert {p.parent.name for p in workloads.resolve("*/resnet50_h100")} == {
        "dlio",
        "dlio_2.0.0",
        "mlperf_storage_v2.0",
        "mlperf_storage_v3.0",
    }
    assert workloads.resolve("mlperf-v*") == sorted(V3.glob("*.yaml")) + sorted(
        (CONFIGS / "mlperf_storage_v2.0").glob("*.yaml")
    )


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("mlperf-v3.0/unet3d_h10", "did you mean mlperf-v3.0/unet3d_h100"),
        ("mlperf-v3.1/unet3d_h100", "no shipped workload set 'mlperf-v3.1'; did you mean mlperf-v3.0"),
        ("unet3d_h100", "name one: mlperf-v3.0/unet3d_h100, mlperf-v2.0/unet3d_h100, dlio/unet3d_h100"),
        ("dlrm_b200", "did you mean mlperf-v3.0/dlrm_b200?"),
        ("mlperf-v3.0/nothing_like_it_*", "no shipped workload 'nothing_like_it_*' in mlperf-v3.0"),
    ],
)
def test_unknown_names_say_what_exists(spec: str, says: str) -> None:
    with pytest.raises(workloads.UnknownWorkload) as exc:
        workloads.resolve(spec)
    assert says in str(exc.value) and "--dlio-list-configs" in str(exc.value)


def test_listing_names_every_shipped_file() -> None:
    text = "\n".join(workloads.listing())
    for path in CONFIGS.rglob("*.yaml"):
        assert path.stem in text and path.parent.name in text
    assert "mlperf-v3.0 (folder mlperf_storage_v3.0)" in text


def test_list_configs_prints_and_runs_nothing(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--dlio-list-configs")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "mlperf-v3.0 (folder mlperf_storage_v3.0): MLPerf Storage v3.0, 23 workloads",
            "*unet3d_h100*",
            "dlio-2.0.0 (folder dlio_2.0.0)*",
        ]
    )
    assert "collected" not in result.stdout.str() and not (pytester.path / ".dlio").exists()


def test_name_runs_the_shipped_file_with_readable_node_ids(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        "--dlio-config",
        "mlperf-v3.0/unet3d_h100",
        "--dlio-config",
        "dlio/unet3d_h100.yaml",
        "-k",
        "schema",
        "-rA",
    )
    result.assert_outcomes(passed=2, deselected=8)
    result.stdout.fnmatch_lines(
        ["PASSED dlio/unet3d_h100.yaml::schema", "PASSED mlperf_storage_v3.0/unet3d_h100.yaml::schema"]
    )
    result.stdout.fnmatch_lines([f"pytest-dlio {__version__}"])


def test_a_path_on_disk_wins_over_a_name(pytester: pytest.Pytester) -> None:
    # a local dlio/unet3d_h100.yaml shadows the shipped one: its (deliberate) mistake is what gets reported
    text = (CONFIGS / "dlio" / "unet3d_h100.yaml").read_text().replace("num_files_train:", "num_file_train:")
    pytester.mkdir("dlio")
    (pytester.path / "dlio" / "unet3d_h100.yaml").write_text(text)
    result = run(pytester, "--dlio-config", "dlio/unet3d_h100.yaml", "-k", "schema")
    result.assert_outcomes(failed=1)  # an invalid config has only its schema item
    result.stdout.fnmatch_lines(["*num_file_train: unknown key*"])


def test_unknown_name_is_a_usage_error_with_suggestions(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--dlio-config", "mlperf-v3.0/unet3d_h10")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*no shipped workload 'unet3d_h10' in mlperf-v3.0; did you mean mlperf-v3.0/unet3d_h100*"]
    )
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_module_entry_point_prints_the_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pytest_dlio", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == f"pytest-dlio {__version__}"
