"""mlpstorage's results tree (``--dlio-results-dir DIR``), so its report and submission tools read our runs:

    DIR/training/<model>/run/<YYYYMMDD_HHMMSS>/        a training run (datagen/ for datagen-only workloads)
    DIR/checkpointing/<model>/<YYYYMMDD_HHMMSS>/       a checkpointing run

Each run folder holds what DLIO writes there — ``summary.json``, ``{rank}_output.json``,
``{rank}_per_epoch_stats.json`` — and Hydra's ``dlio_config/config.yaml`` (the run's full config under
``workload:``) and ``dlio_config/overrides.yaml`` (``workload=<config stem>`` then ``++workload.KEY=VALUE``
per override), which mlpstorage reads to tell the benchmark, command, model and accelerator apart
(mlpstorage ``rules/models.py`` DLIOResultParser; peers.md §3.3, §7). ``<model>`` is mlpstorage's name:
``model.name`` with ``llama_`` → ``llama3-`` and ``_`` → ``-``.
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
    doc = {"workload": redact(normalised(cfg))}
    (folder / "config.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    lines = [f"workload={Path(cfg.source.path).stem}"]
    for text in overrides:
        path, _ = parse_override(text)
        shown = "***" if path[-1] in SECRET_KEYS else text.partition("=")[2].strip()
        lines.append(f"++workload.{'.'.join(path)}={shown}")
    (folder / "overrides.yaml").write_text(yaml.safe_dump(lines, sort_keys=False))

