"""Results that say what they are (version, config hash, scale, ranks, hosts, storage, emulator) and output
folders that never collide."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_dlio.config.load import load_text
from pytest_dlio.engine.naming import workload_name
from pytest_dlio.report.identity import config_hash, public_uri
from tests._junit import properties_by_name
from tests.conftest import CONFIGS, run
from tests.test_e2e_items import SMALL

TRAIN_ONLY = SMALL.replace("checkpoint: true", "checkpoint: false").replace(
    "evaluation: true", "evaluation: false"
)


def _junit(xml: Path) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """The ``<testsuite>``'s own properties (session level), and each item's."""
    suite = ET.parse(xml).getroot().find("testsuite")
    props = suite.find("properties") if suite is not None else None
    session = {p.get("name", ""): p.get("value", "") for p in (props if props is not None else [])}
    return session, properties_by_name(xml)


def test_same_file_name_in_two_folders_keeps_two_summaries(pytester: pytest.Pytester) -> None:
    for folder, epochs in (("a", 1), ("b", 2)):
        (pytester.path / folder).mkdir()
        (pytester.path / folder / "tiny.yaml").write_text(
            TRAIN_ONLY.replace("epochs: 2", f"epochs: {epochs}").replace("data/tiny", f"data/{folder}")
        )
    run(pytester, "--dlio-config", "a", "--dlio-config", "b", "--dlio-output", "out").assert_outcomes(
        passed=8
    )
    a = json.loads((pytester.path / "out" / "a__tiny" / "summary.json").read_text())
    b = json.loads((pytester.path / "out" / "b__tiny" / "summary.json").read_text())
    assert (a["epochs"], b["epochs"]) == (1, 2)
    assert a["pytest_dlio"]["run"]["config_hash"] != b["pytest_dlio"]["run"]["config_hash"]
    assert not (pytester.path / "out" / "tiny").exists()


def test_names_outside_the_root_carry_a_path_digest(tmp_path: Path) -> None:
    one, two = tmp_path / "x" / "unet3d_h100.yaml", tmp_path / "y" / "unet3d_h100.yaml"
    root = tmp_path / "elsewhere"
    assert workload_name(one, tmp_path) == "x__unet3d_h100"
    assert workload_name(one, root).startswith("unet3d_h100-")
    assert workload_name(one, root) != workload_name(two, root)
    assert workload_name(one, root) == workload_name(one, root)


def test_summary_and_junit_say_what_the_result_is(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", tiny=TRAIN_ONLY)
    result = run(
        pytester,
        "--dlio-config",
        "tiny.yaml",
        "--dlio-output",
        "out",
        "--junitxml=r.xml",
        "--dlio-storage",
        "mem://identity",
    )
    result.assert_outcomes(passed=4)
    run_info = json.loads((pytester.path / "out" / "tiny" / "summary.json").read_text())["pytest_dlio"]["run"]
    session, cases = _junit(pytester.path / "r.xml")
    schema = cases["schema"]
    from pytest_dlio import __version__

    assert session["pytest_dlio_version"] == __version__ == run_info["pytest_dlio_version"]
    assert schema["config_hash"] == run_info["config_hash"] and len(run_info["config_hash"]) == 16
    assert run_info["storage_uri"] == schema["storage_uri"] == "mem://identity/data/tiny"
    assert run_info["storage_emulator"] == schema["storage_emulator"] == "mem"
    assert (run_info["scale_factor"], run_info["ranks"], run_info["hosts"]) == (1.0, 1, 1)
    assert schema["workload"] == "tiny"


def test_checkpoint_only_summary_says_it_is_shrunk(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        "--dlio-config",
        str(CONFIGS / "mlperf_storage_v3.0" / "llama3_8b.yaml"),
        "--dlio-scale",
        "smoke",
        "--dlio-output",
        "out",
        "--dlio-data-root",
        str(pytester.path / ".dlio"),
    )
    result.assert_outcomes(passed=3)
    (folder,) = (pytester.path / "out").iterdir()
    assert folder.name == "mlperf_storage_v3.0__llama3_8b"  # a shipped workload: its catalog name
    summary = json.loads((folder / "summary.json").read_text())
    run_info = summary["pytest_dlio"]["run"]
    assert 0 < run_info["scale_factor"] < 1e-3
    assert run_info["storage_uri"].startswith("file://") and run_info["storage_emulator"] == "none"
    assert summary["num_accelerators"] == 1 and summary["num_hosts"] == 1
    assert summary["host_memory_GB"][0] > 0 and summary["start"] <= summary["end"]
    assert "save_checkpoint_io_mean_GB_per_second" in summary["metric"]


def test_s3_result_names_the_moto_emulator(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", tiny=TRAIN_ONLY)
    result = run(
        pytester,
        "--dlio-config",
        "tiny.yaml",
        "--dlio-output",
        "out",
        "--dlio-storage",
        "s3://gating-ident/run",
        "-k",
        "schema or datagen",
        "--junitxml=r.xml",
    )
    result.assert_outcomes(passed=2, deselected=2)
    _, cases = _junit(pytester.path / "r.xml")
    assert cases["schema"]["storage_emulator"] == "moto"
    assert cases["schema"]["storage_uri"] == "s3://gating-ident/run/data/tiny"


def test_config_hash_covers_what_not_where() -> None:
    base = load_text(TRAIN_ONLY, "a.yaml")
    moved = load_text(
        TRAIN_ONLY.replace("data/tiny", "elsewhere/tiny").replace("checkpoints/tiny", "c/t"), "b.yaml"
    )
    bigger = load_text(TRAIN_ONLY.replace("batch_size: 2", "batch_size: 4"), "a.yaml")
    assert config_hash(base) == config_hash(moved)
    assert config_hash(base) != config_hash(bigger)


def test_public_uri_hides_credentials() -> None:
    shown = public_uri("s3://AKIAUSER:hunter2secret@bucket/p?secret_access_key=abcd1234&bandwidth_mib_s=5")
    assert "hunter2secret" not in shown and "abcd1234" not in shown and "AKIAUSER" not in shown
    assert shown.startswith("s3://bucket/p?") and "bandwidth_mib_s=5" in shown
    sas = public_uri("az://acct/cont/p?sv=2024-01-01&sig=c2VjcmV0c2lnbmF0dXJl&sas_token=tok123456")
    assert "c2VjcmV0c2lnbmF0dXJl" not in sas and "tok123456" not in sas and "sv=2024-01-01" in sas
