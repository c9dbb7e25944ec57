"""The workload engine from code, with no pytest: what a script, a rank worker or an item drives."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from pytest_dlio.config.load import load_text
from pytest_dlio.engine import plan
from tests.test_e2e_items import SMALL

SCRIPT = """
import asyncio, json, sys
from pytest_dlio.engine import RunSettings, Workload
from pytest_dlio.storage.session import StorageSession

settings = RunSettings(data_root="root", output_root="out")
storage = StorageSession(settings.data_root)
wl = Workload.load("tiny.yaml", settings, storage)
results = asyncio.run(wl.run_all())
storage.close()
print(json.dumps({
    "outcomes": {k: (v if isinstance(v, str) else (v.failure or "passed")) for k, v in results.items()},
    "train": dict(results["train"].properties),
    "pytest_imported": "pytest" in sys.modules or "_pytest" in sys.modules,
    "output": str(wl.output_dir),
}))
"""


def test_a_workload_runs_from_a_script_without_pytest(tmp_path: Path) -> None:
    (tmp_path / "tiny.yaml").write_text(SMALL)
    (tmp_path / "run.py").write_text(textwrap.dedent(SCRIPT))
    proc = subprocess.run(
        [sys.executable, "run.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    assert doc["outcomes"] == {
        p: "passed" for p in ("datagen", "train", "au", "checkpoint_write", "checkpoint_read")
    }
    assert doc["pytest_imported"] is False
    summary = json.loads((Path(doc["output"]) / "summary.json").read_text())
    # the file DLIO users read holds the same figures the result reports, train and checkpoint both
    assert summary["metric"]["train_au_mean_percentage"] == doc["train"]["train_au_mean_percentage"]
    assert (
        summary["metric"]["load_checkpoint_count"] == 2.0
        and summary["metric"]["save_checkpoint_count"] == 2.0
    )
    assert (Path(doc["output"]) / "0_output.json").exists()
    assert sorted(p.name for p in (tmp_path / "root" / "checkpoints" / "tiny").iterdir()) == [
        "global_epoch1_step9",
        "global_epoch2_step9",
    ]


def _cfg(text: str):
    return load_text(text, "w.yaml")


def test_plan_orders_phases_and_their_prerequisites() -> None:
    names = [(p.name, p.needs) for p in plan(_cfg(SMALL))]
    assert names == [
        ("datagen", ()),
        ("train", ("datagen",)),
        ("au", ("datagen", "train")),
        ("checkpoint_write", ("datagen", "train")),
        ("checkpoint_read", ("datagen", "train", "checkpoint_write")),
    ]
    no_ckpt = SMALL.replace("checkpoint: true", "checkpoint: false")
    assert [p.name for p in plan(_cfg(no_ckpt))] == ["datagen", "train", "au"]
    gen_only = no_ckpt.replace("train: true", "train: false")
    assert [p.name for p in plan(_cfg(gen_only))] == ["datagen"]


def test_checkpoint_only_workloads_plan_writes_then_reads() -> None:
    from pytest_dlio.config.load import load
    from tests.conftest import CONFIGS

    cfg = load(CONFIGS / "mlperf_storage_v3.0" / "llama3_8b.yaml")
    assert [(p.name, p.needs) for p in plan(cfg)] == [("checkpoint_write", ()), ("checkpoint_read", ())]
