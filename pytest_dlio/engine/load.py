"""A workload file → its validated, scaled WorkloadConfig for a run (no I/O beyond reading the YAML)."""

from __future__ import annotations

import dataclasses
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
    note = throughput_note(cfg, settings.ranks)
    if note:
        cfg = dataclasses.replace(
            cfg, source=dataclasses.replace(cfg.source, notes=(*cfg.source.notes, note))
        )
    return cfg


def shortest_block(cfg: WorkloadConfig, ranks: int = 1) -> int:
    """The fewest steps any training block will have: epochs, split by step-based checkpoints."""
    steps = cfg.steps_per_epoch(ranks)
    every = cfg.checkpoint.steps_between_checkpoints if cfg.workflow.checkpoint else -1
    if steps <= 0 or every <= 0 or every >= steps * cfg.train.epochs:
        return max(0, steps)
    shortest, overall = steps, 0
    for _ in range(cfg.train.epochs):  # as phases.train splits them: at every multiple of `every`, overall
        run = 0
        for _ in range(steps):
            overall, run = overall + 1, run + 1
            if overall % every == 0:
                shortest, run = min(shortest, run), 0
                if shortest <= 2:
                    return shortest
        if run:
            shortest = min(shortest, run)
    return shortest


def throughput_note(cfg: WorkloadConfig, ranks: int = 1) -> str | None:
    """A config note when DLIO's throughput formula will make samples/s meaningless for this run."""
    if not cfg.workflow.train:
        return None
    n = shortest_block(cfg, ranks)
    if n > 2:
        return None
    return (
        f"a training block will have {n} step(s) (steps per epoch {cfg.steps_per_epoch(ranks)}, "
        f"checkpoint.steps_between_checkpoints {cfg.checkpoint.steps_between_checkpoints}): DLIO's throughput "
        "formula counts steps - 2 per block, so train_throughput_* and train_io_* will be 0 or understated "
        "(train_throughput_meaningful = 0); read_MB_per_second_actual is the measured rate"
    )


def world_problems(cfg: WorkloadConfig, settings: RunSettings) -> list[str]:
    """Rules that depend on the world size the user chose (``--dlio-ranks``)."""
    if not settings.ranks_explicit or settings.ranks == 1:
        return []  # one process: model-parallel checkpoints run as rank 0 of their smallest world
    return list(check_world(cfg, settings.ranks))
