"""A workload file → its validated, scaled WorkloadConfig for a run (no I/O beyond reading the YAML)."""

from __future__ import annotations

from pathlib import Path

from pytest_dlio.checkpointing.sizes import check_world
from pytest_dlio.config.load import load
from pytest_dlio.config.model import WorkloadConfig
from pytest_dlio.config.scale import factor_for, scale_config
from pytest_dlio.engine.settings import SCALE_PRESETS, RunSettings


def load_workload(path: str | Path, settings: RunSettings) -> WorkloadConfig:
    """Load, validate, override and scale one workload YAML (ConfigError with every problem located)."""
    cfg = load(path, list(settings.overrides))
    scale = settings.scale
    if scale is not None:
        factor = factor_for(cfg, SCALE_PRESETS[scale]) if isinstance(scale, str) else scale
        cfg = scale_config(cfg, factor, ranks=settings.ranks, smoke=scale == "smoke")
    return cfg


def world_problems(cfg: WorkloadConfig, settings: RunSettings) -> list[str]:
    """Rules that depend on the world size the user chose (``--dlio-ranks``)."""
    if not settings.ranks_explicit or settings.ranks == 1:
        return []  # one process: model-parallel checkpoints run as rank 0 of their smallest world
    return list(check_world(cfg, settings.ranks))
