"""A workload file → its validated, scaled WorkloadConfig for a run (no I/O beyond reading the YAML)."""

from __future__ import annotations

from pathlib import Path

from pytest_dlio.checkpointing.sizes import check_world
from pytest_dlio.config.load import load
from pytest_dlio.config.model import WorkloadConfig
from pytest_dlio.config.scale import factor_for, scale_config
from pytest_dlio.engine.settings import SCALE_PRESETS, RunSettings
from pytest_dlio.errors import DlioError


def workload_path(spec: str | Path) -> Path:
    """A path on disk, else a shipped workload's name (``dlio/unet3d_h100``, ``mlperf-v3.0/llama3_8b``)."""
    path = Path(spec)
    if path.exists():
        return path
    from pytest_dlio.workloads import resolve

    found = resolve(str(spec))  # UnknownWorkload (a DlioError) with suggestions when nothing matches
    if len(found) != 1:
        raise DlioError(
            f"{spec}: names {len(found)} shipped workloads; name one (e.g. {found[0].parent.name}/"
            f"{found[0].stem})"
        )
    return found[0]


def load_workload(path: str | Path, settings: RunSettings) -> WorkloadConfig:
    """Load, validate, override and scale one workload YAML, by path or shipped name (ConfigError with every
    problem located)."""
    cfg = load(workload_path(path), list(settings.overrides))
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
