"""Cross-field rules: DLIO's ``validate()`` rules that concern the config (dlio.md §1.7), and the traps
DLIO walks into silently (§1.8), each as ``(key path, message)`` with a clearer message than DLIO's."""

from __future__ import annotations

from collections.abc import Callable

from pytest_dlio.config.model import WorkloadConfig
from pytest_dlio.config.schema import MAX_DATASET_BYTES, MAX_SAMPLE_BYTES, PIB

Problem = tuple[tuple[str, ...], str]
RULES: list[Callable[[WorkloadConfig, set[tuple[str, ...]]], list[Problem]]] = []


def rule(fn: Callable[[WorkloadConfig, set[tuple[str, ...]]], list[Problem]]) -> Callable[..., list[Problem]]:
    RULES.append(fn)
    return fn


def check(cfg: WorkloadConfig, given: set[tuple[str, ...]]) -> list[Problem]:
    """Every rule's problems. ``given`` holds the key paths the user actually wrote."""
    return [p for fn in RULES for p in fn(cfg, given)]


@rule
def _loader_matches_framework(cfg: WorkloadConfig, given: set[tuple[str, ...]]) -> list[Problem]:
    fw, loader = cfg.framework, cfg.reader.data_loader
    if (fw, loader) in (("tensorflow", "pytorch"), ("pytorch", "tensorflow")):
        return [
            (
                ("reader", "data_loader"),
                f"reader.data_loader: {loader} does not go with framework {fw} "
                f"(DLIO: 'Imcompatible between framework and data_loader setup'); use data_loader {fw}",
            )
        ]
    return []


@rule
def _tfrecord_needs_tensorflow(cfg: WorkloadConfig, given: set[tuple[str, ...]]) -> list[Problem]:
    if (
        cfg.dataset.format == "tfrecord"
        and cfg.reader.data_loader == "pytorch"
        and ("dataset", "format") in given
    ):
        return [
            (
                ("dataset", "format"),
                "dataset.format: tfrecord cannot be read by the pytorch data loader "
                "(DLIO: not implemented); use framework and data_loader tensorflow, or format npz/npy",
            )
        ]
    return []


@rule
def _custom_loader_sampler(cfg: WorkloadConfig, given: set[tuple[str, ...]]) -> list[Problem]:
    if cfg.reader.data_loader_classname and cfg.reader.data_loader_sampler is None:
        return [
            (
                ("reader", "data_loader_classname"),
                "reader.data_loader_sampler: required with "
                "reader.data_loader_classname; set it to iterative or index",
            )
        ]
    return []


@rule
def _parallelism(cfg: WorkloadConfig, given: set[tuple[str, ...]]) -> list[Problem]:
    m, par = cfg.model, cfg.model.parallelism
    out: list[Problem] = []
    if 0 < m.num_layers < par.pipeline:
        out.append(
            (
                ("model", "num_layers"),
                f"model.num_layers: {m.num_layers} must be ≥ "
                f"model.parallelism.pipeline ({par.pipeline}): every pipeline stage needs a layer",
            )
        )
    if par.pipeline > 1 and par.zero_stage == 3:
        out.append(
            (
                ("model", "parallelism", "zero_stage"),
                "model.parallelism.zero_stage: ZeRO stage 3 is "
                f"not compatible with pipeline parallelism ({par.pipeline}); use zero_stage ≤ 2 or pipeline 1",
            )
        )
    mode = cfg.checkpoint.mode
    if par.data > 0 and mode == "default":
        out.append(
            (
                ("model", "parallelism", "data"),
                "model.parallelism.data: only for checkpoint.mode "
                "subset; in default mode it follows from the number of ranks — remove it",
            )
        )
    if mode == "subset" and par.data <= 0:
        out.append(
            (
                ("checkpoint", "mode"),
                "checkpoint.mode: subset needs a target data parallelism: set model.parallelism.data ≥ 1",
            )
        )
    return out


@rule
def _checkpoint_counts(cfg: WorkloadConfig, given: set[tuple[str, ...]]) -> list[Problem]:
    ck = cfg.checkpoint
    out: list[Problem] = []
    if ck.num_checkpoints_write > 0 and ck.num_checkpoints_read > ck.num_checkpoints_write:
        out.append(
            (
                ("checkpoint", "num_checkpoints_read"),
                f"checkpoint.num_checkpoints_read: "
                f"{ck.num_checkpoints_read} cannot be larger than num_checkpoints_write "
                f"({ck.num_checkpoints_write})",
            )
        )
    if cfg.checkpoint_only and ck.num_checkpoints_write <= 0 and ck.num_checkpoints_read <= 0:
        out.append(
            (
                ("workflow", "checkpoint"),
                "workflow.checkpoint: a checkpoint-only workload (train "
                "false) needs checkpoint.num_checkpoints_write or num_checkpoints_read ≥ 1; with "
                "both unset DLIO silently does nothing",
            )
        )
    if ck.steps_between_checkpoints == 0:
        out.append(
            (
                ("checkpoint", "steps_between_checkpoints"),
                "checkpoint.steps_between_checkpoints: 0 "
                "never fires in DLIO; use -1 for epoch-based checkpoints or a step count ≥ 1",
            )
        )
    if ck.ksm is not None and ck.randomize_tensor:
        out.append(
            (
                ("checkpoint", "ksm"),
                "checkpoint.ksm needs checkpoint.randomize_tensor: false (random tensors cannot be merged)",
            )
        )
    return out


@rule
def _record_dims(cfg: WorkloadConfig, given: set[tuple[str, ...]]) -> list[Problem]:
    ds = cfg.dataset
    out: list[Problem] = []
    if ds.record_dims and ds.format == "hdf5" and ds.record_dims[0] % ds.hdf5.num_dset_per_record:
        out.append(
            (
                ("dataset", "hdf5", "num_dset_per_record"),
                f"dataset.hdf5.num_dset_per_record: "
                f"{ds.hdf5.num_dset_per_record} must divide record_dims[0] ({ds.record_dims[0]})",
            )
        )
    if ds.record_dims and ds.record_length_bytes_stdev > 0:
        out.append(
            (
                ("dataset", "record_length_bytes_stdev"),
                "dataset.record_length_bytes_stdev: not "
                "supported together with record_dims; use record_length_bytes with a stdev instead",
            )
        )
    if ds.format in ("jpeg", "png"):
        if ("dataset", "record_element_type") in given and ds.record_element_type != "uint8":
            out.append(
                (
                    ("dataset", "record_element_type"),
                    f"dataset.record_element_type: {ds.format} "
                    f"holds uint8 pixels, got {ds.record_element_type}",
                )
            )
        if len(ds.record_dims) > 2:
            out.append(
                (
                    ("dataset", "record_dims"),
                    f"dataset.record_dims: {ds.format} images have at "
                    f"most 2 dimensions, got {len(ds.record_dims)}",
                )
            )
    return out


@rule
def _formats(cfg: WorkloadConfig, given: set[tuple[str, ...]]) -> list[Problem]:
    ds = cfg.dataset
    out: list[Problem] = []
    if ds.format == "hdf5_opt":
        out.append(
            (("dataset", "format"), "dataset.format: hdf5_opt has no generator or reader in DLIO; use hdf5")
        )
    if ds.parquet.columns and ds.format != "parquet":
        out.append(
            (
                ("dataset", "parquet"),
                f"dataset.parquet: columns are given but dataset.format is "
                f"{ds.format}; set format: parquet or remove the parquet section",
            )
        )
    if ds.format == "parquet" and ds.compression not in ("none", "gzip", "snappy", "lz4", "zstd"):
        out.append(
            (
                ("dataset", "compression"),
                f"dataset.compression: {ds.compression} is not a parquet "
                "codec; use none, snappy, gzip, lz4 or zstd",
            )
        )
    if ds.format == "hdf5" and ds.compression not in ("none", "gzip", "lzf"):
        out.append(
            (
                ("dataset", "compression"),
                f"dataset.compression: {ds.compression} is not an HDF5 filter; use none, gzip or lzf",
            )
        )
    return out


@rule
def _enough_to_train(cfg: WorkloadConfig, given: set[tuple[str, ...]]) -> list[Problem]:
    if not cfg.workflow.train:
        return []
    ds = cfg.dataset
    out: list[Problem] = []
    if not any(p[0] == "dataset" for p in given):
        return [
            (
                ("workflow", "train"),
                "workflow.train: true but the config has no dataset section (DLIO "
                "would silently train on its defaults: 8 tfrecord files of 64 KiB); add one, or set "
                "train: false for a checkpoint-only workload",
            )
        ]
    if ds.num_files_train < 1:
        out.append((("dataset", "num_files_train"), "dataset.num_files_train: training needs ≥ 1 file"))
    elif cfg.steps_per_epoch(1) < 1:
        out.append(
            (
                ("reader", "batch_size"),
                f"reader.batch_size: {cfg.reader.batch_size} is larger than "
                f"the dataset ({cfg.total_samples_train} samples): 0 steps per epoch",
            )
        )
    else:
        steps = cfg.steps_per_epoch(1)
        excl = cfg.output.metric.exclude_start_steps + cfg.output.metric.exclude_end_steps
        if steps <= excl:
            out.append(
                (
                    ("output", "metric", "exclude_start_steps"),
                    f"output.metric: excluding {excl} steps leaves none of the "
                    f"{steps} steps per epoch to measure; lower the exclusions or add data",
                )
            )
    if cfg.train.total_training_steps == 0:
        out.append(
            (
                ("train", "total_training_steps"),
                "train.total_training_steps: 0 is ambiguous; use -1 for no cap or a step count ≥ 1",
            )
        )
    if cfg.workflow.evaluation:
        if ds.num_files_eval < 1:
            out.append(
                (
                    ("workflow", "evaluation"),
                    "workflow.evaluation: true but dataset.num_files_eval is "
                    "0; add eval files or set evaluation: false",
                )
            )
        elif cfg.eval_steps(1) < 1:
            out.append(
                (
                    ("reader", "batch_size_eval"),
                    f"reader.batch_size_eval: {cfg.reader.batch_size_eval} "
                    f"is larger than the eval set ({cfg.total_samples_eval} samples)",
                )
            )
    return out


@rule
def _something_to_do(cfg: WorkloadConfig, given: set[tuple[str, ...]]) -> list[Problem]:
    wf = cfg.workflow
    if not (wf.train or wf.generate_data or wf.checkpoint):
        return [
            (("workflow",), "workflow: generate_data, train and checkpoint are all false: nothing to run")
        ]
    return []


@rule
def _storage(cfg: WorkloadConfig, given: set[tuple[str, ...]]) -> list[Problem]:
    st = cfg.storage
    if st.storage_type in ("s3", "aistore"):
        bucket = st.storage_root.removeprefix("s3://").split("/")[0]
        if not (3 <= len(bucket) <= 63) or not all(c.isalnum() or c in "-." for c in bucket):
            return [
                (
                    ("storage", "storage_root"),
                    f"storage.storage_root: {st.storage_root!r} is not a bucket "
                    f"name; with storage_type {st.storage_type} it names the bucket (3–63 letters, digits, "
                    "'-' or '.')",
                )
            ]
    return []


@rule
def _sizes(cfg: WorkloadConfig, given: set[tuple[str, ...]]) -> list[Problem]:
    """Absurd sizes are refused here, by arithmetic, before anything enumerates a file or allocates a sample."""
    ds = cfg.dataset
    if ds.sample_bytes > MAX_SAMPLE_BYTES:
        where = ("dataset", "record_dims") if ds.record_dims else ("dataset", "record_length_bytes")
        return [
            (
                where,
                f"{'.'.join(where)}: a sample of {ds.sample_bytes:,.0f} bytes is above the cap of "
                f"{MAX_SAMPLE_BYTES:,} (16 GiB: the largest DLIO or MLPerf record is 0.67 GB and a sample is "
                "held in memory)",
            )
        ]
    if not (cfg.workflow.train or cfg.workflow.generate_data):
        return []
    files = ds.num_files_train + ds.num_files_eval
    total = files * ds.num_samples_per_file * ds.sample_bytes
    if total > MAX_DATASET_BYTES:
        return [
            (
                ("dataset", "num_files_train"),
                f"dataset: {files:,} files x {ds.num_samples_per_file:,} "
                f"samples x {ds.sample_bytes:,.0f} bytes = {total / PIB:,.1f} PiB is above the cap of "
                f"{MAX_DATASET_BYTES / PIB:.0f} PiB for one dataset (the largest shipped config, DLIO 2.0.0 dlrm, describes 2.4 PiB); "
                "lower num_files_train/num_files_eval, num_samples_per_file or the record size",
            )
        ]
    return []


@rule
def _storage_options(cfg: WorkloadConfig, given: set[tuple[str, ...]]) -> list[Problem]:
    from pytest_dlio.config.storage_options import parse_storage_options

    options, problems = parse_storage_options(dict(cfg.storage.storage_options))
    out: list[Problem] = [
        (("storage", "storage_options", key), f"storage.storage_options.{key}: {msg}")
        for key, msg in problems
    ]
    names = [c.name for c in cfg.dataset.parquet.columns]
    unknown = [c for c in options.columns or () if names and c not in names]
    if unknown:
        out.append(
            (
                ("storage", "storage_options", "columns"),
                f"storage.storage_options.columns: "
                f"{', '.join(unknown)} not among dataset.parquet.columns ({', '.join(names)})",
            )
        )
    return out
