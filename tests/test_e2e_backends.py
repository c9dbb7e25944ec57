"""Shipped MLCommons workloads, shrunk, run end to end on every backend (real moto, real Azurite, O_DIRECT)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_dlio.storage.emulators import find_azurite
from tests._junit import not_passed, read_cases
from tests.conftest import CONFIGS, run, use_embedded_emulators

#: One workload per format and checkpoint style; --dlio-scale 1e-9 shrinks each to its minimum
#: (≥ 4 steps per epoch, 64-byte records at least).
WORKLOADS = [
    "dlio/default.yaml",  # npz, eval, subfolders
    "dlio/unet3d_h100.yaml",  # npz, epoch-end checkpoint
    "dlio/resnet50_h100.yaml",  # tfrecord
    "dlio/bert_v100.yaml",  # tfrecord, step checkpoints, total_training_steps
    "dlio/dlrm.yaml",  # indexed_binary
    "dlio/megatron_deepspeed_LLNL.yaml",  # mmap_indexed_binary, PP8 x TP4 checkpoints
    "mlperf_storage_v3.0/retinanet_b200.yaml",  # jpeg
    "mlperf_storage_v3.0/flux_b200.yaml",  # parquet, 5 wide columns
    "mlperf_storage_v3.0/dlrm_b200.yaml",  # parquet, 200 typed columns
    "mlperf_storage_v3.0/llama3_8b.yaml",  # checkpoint only
]


def _storage(kind: str, tmp: Path) -> str:
    if kind == "az" and find_azurite() is None:
        pytest.fail("Azurite is not installed: run `bash .ci/install_azurite.sh` (CI does)")
    return {
        "file": f"file://{tmp}/store",
        "direct": f"direct://{tmp}/store",
        "mem": "mem://e2e/store",
        "s3": "s3://dlio-e2e/run",
        "az": "az://dlio-e2e/run",
    }[kind]


@pytest.mark.parametrize("kind", ["file", "direct", "mem", "s3", "az"])
def test_workloads_run_on_backend(
    pytester: pytest.Pytester, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_embedded_emulators(monkeypatch)
    # dlio/dlrm reads 8192 single-record ranges an epoch (batch 2048, even at its smallest): fine on local
    # stores, minutes of per-request overhead on the emulators; megatron covers indexed reads there.
    chosen = [w for w in WORKLOADS if kind in ("file", "direct", "mem") or w != "dlio/dlrm.yaml"]
    args = [a for w in chosen for a in ("--dlio-config", str(CONFIGS / w))]
    result = run(
        pytester,
        *args,
        "--dlio-scale",
        "1e-9",
        "--dlio-storage",
        _storage(kind, pytester.path),
        "--dlio-data-root",
        str(pytester.path / ".dlio"),
        "--junitxml=out.xml",
    )
    outcomes = [c.nodeid for c in read_cases(pytester.path / "out.xml")]
    bad = not_passed(pytester.path / "out.xml")
    assert not bad, f"{bad}\n{result.stdout.str()[-6000:]}"
    assert sum(1 for k in outcomes if k.endswith("::train")) == len(chosen) - 1
    assert sum(1 for k in outcomes if k.endswith("::checkpoint_read")) == 4
    assert "Traceback" not in result.stdout.str()


def test_every_shipped_workload_generates_on_local_files(pytester: pytest.Pytester) -> None:
    # training of each format and checkpoint style is covered above on every backend; here every shipped
    # workload's dataset is generated (and its schema checked) at its smallest scale
    result = run(
        pytester,
        "--dlio-config",
        str(CONFIGS),
        "--dlio-scale",
        "1e-9",
        "-k",
        "schema or datagen",
        "--dlio-data-root",
        str(pytester.path / ".dlio"),
        "--junitxml=out.xml",
    )
    outcomes = [c.nodeid for c in read_cases(pytester.path / "out.xml")]
    bad = not_passed(pytester.path / "out.xml", au_gate_may_fail=False)
    assert not bad, f"{bad}\n{result.stdout.str()[-6000:]}"
    assert len([k for k in outcomes if k.endswith("::schema")]) == len(list(CONFIGS.rglob("*.yaml")))
