"""--dlio-plan lines: MLPerf llama3 checkpoint sizes at MLPerf world sizes, dataset bytes, counts, least time."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_dlio.checkpointing.plan import checkpoint_counts, human, plan_lines
from pytest_dlio.config.load import load
from pytest_dlio.config.model import (
    Checkpoint,
    Dataset,
    Evaluation,
    Reader,
    TimeSpec,
    Train,
    Workflow,
    WorkloadConfig,
)

V3 = Path(__file__).resolve().parent.parent / "pytest_dlio" / "workloads" / "mlperf_storage_v3.0"


@pytest.mark.parametrize(
    ("name", "ranks", "gib", "params"),
    [
        ("8b", 8, "104.70", "8,030,261,248"),
        ("70b", 64, "911.21", "69,882,617,856"),
        ("405b", 512, "5292.25", "405,853,388,800"),
        ("1t", 1024, "15426.59", "1,183,035,102,480"),
    ],
)
def test_full_size_llama3_plans_print_mlperf_sizes(name: str, ranks: int, gib: str, params: str) -> None:
    text = "\n".join(plan_lines(load(V3 / f"llama3_{name}.yaml"), ranks))
    assert f"checkpoint: {gib} GiB" in text
    assert f"{params} parameters" in text
    assert "10 write(s), 10 read(s)" in text
    assert "least run time (compute and pauses only, no I/O): 100.00 s" in text  # 20 x 5 s pauses
    assert "problem" not in text


def test_wrong_world_size_is_named_in_the_plan() -> None:
    text = "\n".join(plan_lines(load(V3 / "llama3_70b.yaml"), 12))
    assert "problem: model.parallelism: 12 processes is not a multiple" in text


def test_training_plan_dataset_steps_and_least_time() -> None:
    cfg = WorkloadConfig(
        workflow=Workflow(train=True, evaluation=True, checkpoint=True),
        dataset=Dataset(
            num_files_train=100, num_files_eval=10, num_samples_per_file=4, record_length_bytes=1024
        ),
        reader=Reader(batch_size=8, batch_size_eval=4),
        train=Train(epochs=3, computation_time=TimeSpec(mean=0.5)),
        evaluation=Evaluation(eval_time=TimeSpec(mean=0.25), eval_after_epoch=2, epochs_between_evals=1),
        checkpoint=Checkpoint(checkpoint_after_epoch=1, epochs_between_checkpoints=2),
    )
    lines = plan_lines(cfg, 2)
    text = "\n".join(lines)
    assert "dataset train: 100 files x 4 samples x 1.00 KiB ~ 400.00 KiB" in text
    assert "dataset eval: 10 files x 4 samples" in text
    assert "3 epoch(s) x 25 step(s)/epoch" in text  # 400 samples / 8 / 2 ranks
    # 3 x 25 x 0.5 = 37.5 s train; 2 evals x 5 steps x 0.25 = 2.5 s
    assert lines[-1].endswith("40.00 s")
    assert checkpoint_counts(cfg, 2) == (2, 0)  # after epochs 1 and 3


def test_step_based_checkpoint_count() -> None:
    cfg = WorkloadConfig(
        workflow=Workflow(train=True, checkpoint=True),
        dataset=Dataset(num_files_train=64),
        train=Train(epochs=2),
        checkpoint=Checkpoint(steps_between_checkpoints=10),
    )
    assert checkpoint_counts(cfg, 1) == (12, 0)  # 64 steps per epoch → 6 per epoch


def test_human_units() -> None:
    assert human(512) == "512 B"
    assert human(3 * 1024**3) == "3.00 GiB"
