"""The ``--dlio-plan`` report: what a run would do and the least time it can take, without any I/O."""

from __future__ import annotations

from pytest_dlio.checkpointing.sizes import GIB, check_world, checkpoint_sizes
from pytest_dlio.config.model import WorkloadConfig


def human(nbytes: float) -> str:
    """Bytes in binary units (what DLIO calls GB is GiB)."""
    for unit, scale in (("TiB", 1024**4), ("GiB", GIB), ("MiB", 1024**2), ("KiB", 1024)):
        if nbytes >= scale:
            return f"{nbytes / scale:.2f} {unit}"
    return f"{nbytes:.0f} B"


def checkpoint_epochs(cfg: WorkloadConfig) -> range:
    """Epochs after which training checkpoints when checkpointing is epoch-based (a range: the plan counts
    it without enumerating, whatever train.epochs says)."""
    c = cfg.checkpoint
    if c.epochs_between_checkpoints <= 0:
        first = c.checkpoint_after_epoch
        return range(first, first + 1) if first <= cfg.train.epochs else range(0)
    return range(c.checkpoint_after_epoch, cfg.train.epochs + 1, c.epochs_between_checkpoints)


def eval_epochs(cfg: WorkloadConfig) -> range:
    """Epochs followed by an evaluation pass (a range, as above)."""
    ev = cfg.evaluation
    if not cfg.workflow.evaluation or cfg.dataset.num_files_eval <= 0:
        return range(0)
    step = max(1, ev.epochs_between_evals)
    return range(max(1, ev.eval_after_epoch), cfg.train.epochs + 1, step)


def checkpoint_counts(cfg: WorkloadConfig, ranks: int) -> tuple[int, int]:
    """(saves, loads) the run performs."""
    if not cfg.workflow.checkpoint:
        return 0, 0
    c = cfg.checkpoint
    if cfg.checkpoint_only:
        return max(0, c.num_checkpoints_write), max(0, c.num_checkpoints_read)
    if c.steps_between_checkpoints >= 0:
        k = c.steps_between_checkpoints
        return (cfg.steps_per_epoch(ranks) // k * cfg.train.epochs if k > 0 else 0), 0
    return len(checkpoint_epochs(cfg)), 0


def plan_lines(cfg: WorkloadConfig, ranks: int) -> list[str]:
    """Dataset, steps, checkpoint sizes and counts, and the least run time for ``ranks`` processes."""
    d, lines = cfg.dataset, [f"workload {cfg.model.name} at {ranks} rank(s)"]
    lines += [f"problem: {p}" for p in check_world(cfg, ranks)]
    least = 0.0
    if cfg.workflow.train or cfg.workflow.generate_data:
        for kind, files in (("train", d.num_files_train), ("eval", d.num_files_eval)):
            if files > 0:
                total = files * d.num_samples_per_file * d.sample_bytes
                lines.append(
                    f"dataset {kind}: {files} files x {d.num_samples_per_file} samples x "
                    f"{human(d.sample_bytes)} ~ {human(total)} ({d.format})"
                )
    if cfg.workflow.train:
        steps, epochs = cfg.steps_per_epoch(ranks), cfg.train.epochs
        compute = steps * cfg.train.computation_time.expected() * epochs
        lines.append(
            f"train: {epochs} epoch(s) x {steps} step(s)/epoch per rank, batch {cfg.reader.batch_size}; "
            f"compute {compute:.2f} s"
        )
        evals = eval_epochs(cfg)
        if evals:
            eval_s = cfg.eval_steps(ranks) * cfg.evaluation.eval_time.expected() * len(evals)
            lines.append(
                f"eval: {len(evals)} pass(es) x {cfg.eval_steps(ranks)} step(s); compute {eval_s:.2f} s"
            )
            compute += eval_s
        least += compute
    saves, loads = checkpoint_counts(cfg, ranks)
    if cfg.workflow.checkpoint:
        s = checkpoint_sizes(cfg, ranks)
        if s.num_parameters:
            lines.append(f"model: {s.num_parameters:,} parameters")
        lines.append(
            f"checkpoint: {s.checkpoint_size_gib:.2f} GiB (DLIO checkpoint_size_GB; model "
            f"{s.dlio_model_gib:.2f}, optimizer {s.dlio_optimizer_gib:.2f}); written {human(s.total_bytes)} "
            f"in {s.files} file(s) by {s.writer_ranks} rank(s); largest rank {human(s.max_rank_bytes)}, "
            f"largest file {human(s.max_file_bytes)}"
        )
        lines.append(
            f"checkpoint: {saves} write(s), {loads} read(s): {human(s.total_bytes * saves)} written, "
            f"{human(s.total_bytes * loads)} read"
        )
        if cfg.checkpoint_only:
            least += max(0.0, cfg.checkpoint.time_between_checkpoints) * (saves + loads)
    lines.append(f"least run time (compute and pauses only, no I/O): {least:.2f} s")
    return lines
