"""MLPerf Storage v3.0's rules for a valid run, as mlpstorage checks them (mlperf_v3.md §3, §4, §7;
peers.md §3.2, §7). Each violation names the rule, the value found and the fix.

What is checked, training: the workload is admitted in the division (unet3d on b200, retinanet on b200 or
mi355); only the division's overrides (CLOSED: ``dataset.{num_files_train, num_subfolders_train,
data_folder}``, ``reader.{read_threads, computation_threads, transfer_size, odirect, prefetch_size}``,
``checkpoint.checkpoint_folder``, ``storage.{storage_type, storage_root}``,
``storage.storage_options.prefetch_window``; OPEN adds ``framework``, ``dataset.format``,
``dataset.num_samples_per_file``, ``reader.data_loader``; the keys mlpstorage injects itself are exempt);
``reader.odirect`` only for unet3d; no ``--dlio-scale``; the dataset at least 5 x the clients' memory and
500 steps per epoch (:mod:`pytest_dlio.gating.datasize`); ``metric.au`` and the measured AU at the
edition's threshold (unet3d 90 %, retinanet 85 %); accelerators a multiple of the hosts; 5 scored runs
after a warm-up.

Checkpointing (llama3): the model is one of 8b/70b/405b/1t; CLOSED runs 8/64/512/1024 processes, OPEN a
multiple of tensor x pipeline; more than 4 accelerators per host in CLOSED; 10 writes then 10 reads (0
for one half of a split run); ``fsync``; only ``checkpoint.checkpoint_folder`` may change; subset mode
only for 8b on exactly 8 accelerators (Rules.md 4.3.5); and, when all that is written per host is under
3 x its memory, the page cache is dropped before reading (``--dlio-drop-caches``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pytest_dlio.config.model import WorkloadConfig
from pytest_dlio.gating.datasize import required_files

DIVISIONS = ("closed", "open")
#: (model, accelerator) pairs CLOSED and OPEN admit for training (config.py MODELS_CLOSED, Rules 2.1.11).
ADMITTED_TRAINING = {("unet3d", "b200"), ("retinanet", "b200"), ("retinanet", "mi355")}
ACCELERATORS = ("h100", "a100", "b200", "mi355")
#: editions.yaml ``checker.training_au_thresholds`` (fractions of 1).
AU_THRESHOLDS = {"unet3d": 0.90, "retinanet": 0.85}
CLOSED_TRAINING = frozenset(
    {
        "dataset.num_files_train",
        "dataset.num_subfolders_train",
        "dataset.data_folder",
        "reader.read_threads",
        "reader.computation_threads",
        "reader.transfer_size",
        "reader.odirect",
        "reader.prefetch_size",
        "checkpoint.checkpoint_folder",
        "storage.storage_type",
        "storage.storage_root",
        "storage.storage_options.prefetch_window",
    }
)
OPEN_TRAINING = CLOSED_TRAINING | {
    "framework",
    "dataset.format",
    "dataset.num_samples_per_file",
    "reader.data_loader",
}
#: mlpstorage's TOOL_INJECTED_PARAMS: set by the tool itself, allowed in every division.
TOOL_INJECTED = frozenset(
    {
        "dataset.skip_listing",
        "dataset.listing_validation_interval",
        "dataset.num_files_generated",
        "dataset.data_folder",
        "dataset.total_disk_bytes",
        "storage.storage_type",
        "storage.storage_root",
        "storage.s3_force_path_style",
        "storage.storage_options.storage_library",
        "storage.storage_options.uri_scheme",
    }
)
CHECKPOINT_ALLOWED = frozenset({"checkpoint.checkpoint_folder"})
#: CLOSED process counts per llama3 model (config.py LLM_ALLOWED_VALUES; Rules 4.3).
CLOSED_PROCESSES = {"llama_8b": 8, "llama_70b": 64, "llama_405b": 512, "llama_1t": 1024}
CHECKPOINTS_REQUIRED = 10
CACHE_MULTIPLIER = 3
SCORED_RUNS = 5


@dataclass(frozen=True)
class Violation:
    rule: str
    value: str
    fix: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.value} — fix: {self.fix}"


@dataclass(frozen=True)
class Context:
    """The run being judged: what the user chose and the cluster it runs on."""

    division: str
    overrides: tuple[str, ...]  # the --dlio-set keys, dotted (``reader.batch_size``)
    accelerators: int
    hosts: int
    memory_gib_per_host: float
    runs: int = 1
    warmup: bool = False
    drop_caches: bool = False
    measured_au_percentage: float | None = None  # mean training AU, when training ran


def accelerator_of(path: str | Path) -> str | None:
    """The accelerator a config is for, from mlpstorage's file naming (``<model>_<accelerator>.yaml``)."""
    tail = Path(path).stem.rsplit("_", 1)[-1].lower()
    return tail if tail in ACCELERATORS else None


def check(cfg: WorkloadConfig, ctx: Context) -> list[Violation]:
    """Every MLPerf Storage rule ``cfg`` breaks in this context (empty: the run would be valid)."""
    out: list[Violation] = []
    if cfg.source.scale != 1.0:
        out.append(
            Violation(
                "full-size workload",
                f"scaled by {cfg.source.scale:g} (--dlio-scale)",
                "drop --dlio-scale; size the dataset with dataset.num_files_train instead",
            )
        )
    if cfg.checkpoint_only:
        out += _checkpointing(cfg, ctx)
    elif cfg.workflow.train:
        out += _training(cfg, ctx)
    else:  # datagen: only what may be overridden (its size is judged by the run that reads it)
        out += _overrides(ctx, CLOSED_TRAINING if ctx.division == "closed" else OPEN_TRAINING)
    return out


def _forbidden(keys: tuple[str, ...], allowed: frozenset[str]) -> list[str]:
    return [k for k in keys if k not in allowed and k not in TOOL_INJECTED]


def _overrides(ctx: Context, allowed: frozenset[str]) -> list[Violation]:
    return [
        Violation(
            f"{ctx.division.upper()} overrides",
            f"--dlio-set {key} may not change",
            f"remove it; {ctx.division.upper()} may change only " + ", ".join(sorted(allowed)),
        )
        for key in _forbidden(ctx.overrides, allowed)
    ]


def _training(cfg: WorkloadConfig, ctx: Context) -> list[Violation]:
    out: list[Violation] = []
    model, accel = cfg.model.name, accelerator_of(cfg.source.path)
    if (model, accel) not in ADMITTED_TRAINING:
        out.append(
            Violation(
                f"{ctx.division.upper()} training workloads",
                f"{model} on {accel or 'an unnamed accelerator'} is not admitted in v3.0 (whatif only)",
                "run unet3d_b200, retinanet_b200 or retinanet_mi355",
            )
        )
    out += _overrides(ctx, CLOSED_TRAINING if ctx.division == "closed" else OPEN_TRAINING)
    if cfg.reader.odirect and model != "unet3d":
        out.append(
            Violation("reader.odirect", f"set for {model}", "reader.odirect is allowed only for unet3d")
        )
    size = required_files(
        cfg, accelerators=ctx.accelerators, hosts=ctx.hosts, memory_gib_per_host=ctx.memory_gib_per_host
    )
    have = cfg.dataset.num_files_train
    if have < size.by_memory:
        out.append(
            Violation(
                f"dataset >= {5} x client memory",
                f"dataset.num_files_train {have:,} < {size.by_memory:,} files for "
                f"{size.memory_gib:.1f} GiB of memory on {ctx.hosts} host(s)",
                f"--dlio-set dataset.num_files_train={size.files} (and generate it)",
            )
        )
    if have < size.by_steps:
        out.append(
            Violation(
                "500 steps per epoch",
                f"dataset.num_files_train {have:,} < {size.by_steps:,} files for batch "
                f"{cfg.reader.batch_size} x {ctx.accelerators} accelerator(s)",
                f"--dlio-set dataset.num_files_train={size.files}",
            )
        )
    need = AU_THRESHOLDS.get(model)
    if need is not None and cfg.metric.au < need:
        out.append(
            Violation(
                "AU threshold",
                f"metric.au {cfg.metric.au:g} < {need:g} for {model}",
                f"keep the workload's metric.au ({need:g})",
            )
        )
    got = ctx.measured_au_percentage
    if need is not None and got is not None and got < need * 100:
        out.append(
            Violation(
                "AU threshold",
                f"measured AU {got:.2f} % < {need * 100:.0f} % for {model}",
                "fewer accelerators per host (--dlio-ranks), more read threads, or faster storage",
            )
        )
    if ctx.hosts > 0 and ctx.accelerators % ctx.hosts:
        out.append(
            Violation(
                "accelerators per host",
                f"{ctx.accelerators} accelerators on {ctx.hosts} hosts",
                "use the same number of accelerators on every host",
            )
        )
    if ctx.runs != SCORED_RUNS or not ctx.warmup:
        out.append(
            Violation(
                "runs",
                f"{ctx.runs} scored run(s){' after a warm-up' if ctx.warmup else ', no warm-up'}",
                f"--dlio-runs {SCORED_RUNS} --dlio-warmup (MLPerf reports the mean of {SCORED_RUNS} "
                "runs after one unscored warm-up)",
            )
        )
    return out


def _checkpointing(cfg: WorkloadConfig, ctx: Context) -> list[Violation]:
    from pytest_dlio.checkpointing.sizes import checkpoint_sizes

    out: list[Violation] = []
    model, ck = cfg.model.name, cfg.checkpoint
    closed = ctx.division == "closed"
    procs = CLOSED_PROCESSES.get(model)
    if procs is None:
        out.append(
            Violation(
                "checkpointing models",
                f"model.name {model!r}",
                "run llama3_8b, llama3_70b, llama3_405b or llama3_1t",
            )
        )
    par = cfg.model.parallelism
    mp = max(1, par.tensor) * max(1, par.pipeline)
    subset = ck.mode == "subset"
    if subset:
        if model != "llama_8b" or ctx.accelerators != 8:
            out.append(
                Violation(
                    "subset mode",
                    f"checkpoint.mode subset for {model} on {ctx.accelerators} accelerator(s)",
                    "subset runs only llama3_8b on exactly 8 accelerators "
                    "(Rules.md 4.3.5); run the full model otherwise",
                )
            )
    elif procs is not None and closed and ctx.accelerators != procs:
        out.append(
            Violation(
                "CLOSED process count",
                f"{ctx.accelerators} rank(s) for {model}",
                f"--dlio-ranks {procs} (8b 8, 70b 64, 405b 512, 1t 1024)",
            )
        )
    elif procs is not None and not closed and ctx.accelerators % mp:
        out.append(
            Violation(
                "OPEN process count",
                f"{ctx.accelerators} rank(s) is not a multiple of tensor x pipeline = {mp}",
                f"--dlio-ranks a multiple of {mp}",
            )
        )
    if closed and ctx.hosts > 0 and ctx.accelerators / ctx.hosts <= 4:
        out.append(
            Violation(
                "accelerators per host",
                f"{ctx.accelerators / ctx.hosts:g} per host",
                "CLOSED needs more than 4 accelerators on each host",
            )
        )
    for name, value in (
        ("num_checkpoints_write", ck.num_checkpoints_write),
        ("num_checkpoints_read", ck.num_checkpoints_read),
    ):
        if value not in (CHECKPOINTS_REQUIRED, 0):
            out.append(
                Violation(
                    "10 writes then 10 reads",
                    f"checkpoint.{name} {value}",
                    f"checkpoint.{name}: {CHECKPOINTS_REQUIRED} (0 only for one half of a split run)",
                )
            )
    if not ck.fsync:
        out.append(Violation("fsync", "checkpoint.fsync is false", "checkpoint.fsync: true (mandatory)"))
    for key in _forbidden(ctx.overrides, CHECKPOINT_ALLOWED):
        out.append(
            Violation(
                "checkpointing overrides",
                f"--dlio-set {key} may not change",
                "remove it; only checkpoint.checkpoint_folder may change",
            )
        )
    if ck.num_checkpoints_read > 0 and not ctx.drop_caches:
        sizes = checkpoint_sizes(cfg, max(ctx.accelerators, 1))
        per_host = sizes.total_bytes * max(ck.num_checkpoints_write, 1) / max(ctx.hosts, 1)
        limit = CACHE_MULTIPLIER * ctx.memory_gib_per_host * 1024**3
        if per_host < limit:
            out.append(
                Violation(
                    "cache clearing",
                    f"{per_host / 2**30:.2f} GiB written per host < {CACHE_MULTIPLIER}"
                    f" x {ctx.memory_gib_per_host:.1f} GiB memory, so reads may come from the page "
                    "cache",
                    "--dlio-drop-caches (needs root) before the reads",
                )
            )
    return out
