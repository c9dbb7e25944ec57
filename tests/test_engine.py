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


def _blocks_yaml(tmp_path: Path, every: int) -> Path:
    path = tmp_path / f"wl{every}.yaml"
    path.write_text(
        "framework: pytorch\nworkflow:\n  generate_data: true\n  train: true\n  checkpoint: true\n"
        "dataset:\n  format: npy\n  num_files_train: 10\n  record_length_bytes: 64\n"
        "reader:\n  data_loader: pytorch\n  batch_size: 1\n"
        f"train:\n  epochs: 2\ncheckpoint:\n  steps_between_checkpoints: {every}\n"
    )
    return path


def test_config_notes_say_when_dlio_throughput_will_be_meaningless(tmp_path: Path) -> None:
    """Step-based checkpoints every 4 of 10 steps leave 2-step blocks ([4, 4, 2], [2, 4, 4]): DLIO's
    ``steps - 2`` numerator gives them 0 samples/s, and the schema item's notes say so before the run."""
    from pytest_dlio.engine import RunSettings
    from pytest_dlio.engine.load import load_workload, shortest_block

    settings = RunSettings(data_root=tmp_path)
    cfg = load_workload(_blocks_yaml(tmp_path, 4), settings)
    assert shortest_block(cfg) == 2
    assert any("a training block will have 2 step(s)" in n and "steps - 2" in n for n in cfg.source.notes)
    fine = load_workload(_blocks_yaml(tmp_path, 5), settings)  # [5, 5], [5, 5]
    assert shortest_block(fine) == 5 and not any("steps - 2" in n for n in fine.source.notes)
