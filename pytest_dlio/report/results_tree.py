"""mlpstorage's results tree (``--dlio-results-dir DIR``), so its report and submission tools read our runs:

    DIR/training/<model>/run/<YYYYMMDD_HHMMSS>/        a training run (datagen/ for datagen-only workloads)
    DIR/checkpointing/<model>/<YYYYMMDD_HHMMSS>/       a checkpointing run

Each run folder holds what DLIO writes there — ``summary.json``, ``{rank}_output.json``,
``{rank}_per_epoch_stats.json`` — and Hydra's ``dlio_config/config.yaml`` (the run's full config under
``workload:``) and ``dlio_config/overrides.yaml`` (``workload=<config stem>`` then ``++workload.KEY=VALUE``
per override), which mlpstorage reads to tell the benchmark, command, model and accelerator apart
(mlpstorage ``rules/models.py`` DLIOResultParser; peers.md §3.3, §7). ``<model>`` is mlpstorage's name:
``model.name`` with ``llama_`` → ``llama3-`` and ``_`` → ``-``.

A training run folder describes the training run alone, as ``mlpstorage training run`` invokes DLIO: the
dataset was made by the ``datagen`` item before, so its config says ``workflow.generate_data: false`` and
its overrides start with mlpstorage's ``++workload.workflow.generate_data=False`` and
``++workload.workflow.train=True``. A ``<benchmark>_<stamp>_metadata.json`` names the run (benchmark type,
model, command, time, processes, accelerator, who wrote it): mlpstorage 2.x finds runs by that file; later
versions, finding no ``parameters`` in it, read the DLIO files as they read DLIO's own.
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from pytest_dlio.config.model import WorkloadConfig
from pytest_dlio.config.secrets import SECRET_KEYS, redact

STAMP = "%Y%m%d_%H%M%S"


def model_name(cfg: WorkloadConfig) -> str:
    return cfg.model.name.replace("llama_", "llama3-").replace("_", "-")


def run_parent(root: Path, cfg: WorkloadConfig) -> Path:
    """The folder whose timestamped children are this workload's runs."""
    if cfg.checkpoint_only:
        return Path(root) / "checkpointing" / model_name(cfg)
    command = "run" if cfg.workflow.train else "datagen"
    return Path(root) / "training" / model_name(cfg) / command


def new_run_dir(root: Path, cfg: WorkloadConfig) -> Path:
    """Claim a fresh ``<YYYYMMDD_HHMMSS>`` folder for a run starting now (atomic: two runs in the same
    second on two workers never share one; the later waits for the next second, so stamps stay true)."""
    parent = run_parent(root, cfg)
    parent.mkdir(parents=True, exist_ok=True)
    while True:
        path = parent / time.strftime(STAMP)
        try:
            path.mkdir()
            return path
        except FileExistsError:
            time.sleep(1.0 - time.time() % 1.0 + 0.001)


def write_dlio_config(run_dir: Path, cfg: WorkloadConfig, overrides: tuple[str, ...]) -> None:
    """``dlio_config/config.yaml`` and ``overrides.yaml`` as Hydra writes them for DLIO (no secrets)."""
    from pytest_dlio.config.load import normalised, parse_override

    folder = Path(run_dir) / "dlio_config"
    folder.mkdir(parents=True, exist_ok=True)
    workload = redact(normalised(cfg))
    lines = [f"workload={Path(cfg.source.path).stem}"]
    if cfg.workflow.train:  # the training run alone; the datagen item made the data
        workload["workflow"]["generate_data"] = False
        lines += ["++workload.workflow.generate_data=False", "++workload.workflow.train=True"]
    (folder / "config.yaml").write_text(yaml.safe_dump({"workload": workload}, sort_keys=False))
    for text in overrides:
        path, _ = parse_override(text)
        shown = "***" if path[-1] in SECRET_KEYS else text.partition("=")[2].strip()
        lines.append(f"++workload.{'.'.join(path)}={shown}")
    (folder / "overrides.yaml").write_text(yaml.safe_dump(lines, sort_keys=False))


def write_metadata(
    run_dir: Path, cfg: WorkloadConfig, num_processes: int, identity: dict[str, object]
) -> Path:
    """``<benchmark>_<stamp>_metadata.json``: what the run is, for mlpstorage to find it (no parameters:
    the figures and the config are the DLIO files')."""
    from pytest_dlio.report.dlio_json import write_json

    run_dir = Path(run_dir)
    kind = "checkpointing" if cfg.checkpoint_only else "training"
    command = "run" if cfg.workflow.train or cfg.checkpoint_only else "datagen"
    accel = Path(cfg.source.path).stem.rsplit("_", 1)[-1]
    doc = {
        "benchmark_type": kind,
        "model": model_name(cfg),
        "command": command,
        "run_datetime": run_dir.name,
        "num_processes": num_processes,
        "accelerator": accel if "_" in Path(cfg.source.path).stem else None,
        "written_by": f"pytest-dlio {identity.get('pytest_dlio_version')}",
        "pytest_dlio": identity,
    }
    return write_json(run_dir / f"{kind}_{run_dir.name}_metadata.json", doc)
