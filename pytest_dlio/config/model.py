"""Frozen, typed workload config: what every phase reads. No dicts past ``config/``.

Attribute names are DLIO's YAML key names (HEAD dialect, ``../shared/reference/dlio.md`` §1.3), so
``cfg.dataset.num_files_train`` is ``workload.dataset.num_files_train``. Defaults are DLIO's code
defaults. ``config.load`` builds these from a validated document; nothing else constructs them from YAML.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pytest_dlio.config.storage_options import StorageOptions

#: MLPerf v3.0 DLIO's parquet read-ahead defaults: ``prefetch_window`` and ``prefetch_workers`` (64 each).
PARQUET_WINDOW = 64
#: The most threads a dataset store runs reads on (many readers times their prefetch_workers).
MAX_STORE_THREADS = 256


@dataclass(frozen=True)
class TimeSpec:
    """A per-step/per-sample time in one of DLIO's forms (dlio.md §1.5): constant or a distribution."""

    type: str | None = (
        None  # None (constant or normal when stdev given), normal, uniform, gamma, exponential, poisson
    )
    mean: float = 0.0
    stdev: float = 0.0
    min: float = 0.0
    max: float = 0.0
    shape: float = 0.0
    scale: float = 0.0
    lam: float = 0.0

    @property
    def is_zero(self) -> bool:
        return self.expected() == 0.0

    def expected(self) -> float:
        """The mean of the distribution (what a plan uses for the least run time)."""
        kind = self.type or ("normal" if self.stdev else "constant")
        if kind in ("constant", "normal"):
            return abs(self.mean)
        if kind == "uniform":
            return (self.min + self.max) / 2
        if kind == "gamma":
            return self.shape * self.scale
        if kind == "exponential":
            return self.scale
        if kind == "poisson":
            return self.lam
        return 0.0

    def sample(self, rng: np.random.Generator) -> float:
        """One draw, as DLIO's ``utility.sleep`` does (absolute value of the draw)."""
        kind = self.type or ("normal" if self.stdev else "constant")
        if kind == "constant":
            value = self.mean
        elif kind == "normal":
            value = rng.normal(self.mean, self.stdev)
        elif kind == "uniform":
            value = rng.uniform(self.min, self.max)
        elif kind == "gamma":
            value = rng.gamma(self.shape, self.scale)
        elif kind == "exponential":
            value = rng.exponential(self.scale)
        elif kind == "poisson":
            value = rng.poisson(self.lam)
        else:  # pragma: no cover - the schema admits only the kinds above
            value = 0.0
        return float(abs(value))

    def scaled(self, factor: float) -> TimeSpec:
        """The same distribution with every time multiplied by ``factor`` (for ``--dlio-scale``)."""
        return TimeSpec(
            type=self.type,
            mean=self.mean * factor,
            stdev=self.stdev * factor,
            min=self.min * factor,
            max=self.max * factor,
            shape=self.shape,
            scale=self.scale * factor,
            lam=self.lam * factor,
        )


@dataclass(frozen=True)
class Parallelism:
    tensor: int = 1
    pipeline: int = 1
    data: int = -1
    zero_stage: int = 0


@dataclass(frozen=True)
class Transformer:
    vocab_size: int = 32000
    hidden_size: int = 2048
    ffn_hidden_size: int = 8192
    num_attention_heads: int = 32
    num_kv_heads: int = 8


@dataclass(frozen=True)
class ModelConfig:
    name: str = "default"
    type: str | None = None
    model_size_bytes: int = 10240
    model_datatype: str = "fp16"
    optimizer_datatype: str = "fp32"
    optimization_groups: tuple[int, ...] = ()
    num_layers: int = -1
    layer_parameters: tuple[int, ...] = ()
    parallelism: Parallelism = field(default_factory=Parallelism)
    transformer: Transformer = field(default_factory=Transformer)


@dataclass(frozen=True)
class Workflow:
    generate_data: bool = False
    train: bool = True
    evaluation: bool = False
    checkpoint: bool = False
    profiling: bool = False


@dataclass(frozen=True)
class StorageConfig:
    storage_type: str = "local_fs"
    storage_root: str = "./"
    #: As written, sorted ``(key, value)`` pairs (for --dlio-show-config); read :attr:`options` instead.
    storage_options: tuple[tuple[str, Any], ...] = ()
    storage_library: str | None = None
    post_generation_settle_seconds: float = 0.0

    @functools.cached_property
    def options(self) -> StorageOptions:
        """``storage_options`` typed; a ConfigError lists every bad option (``config.load`` reports them
        earlier, with file:line:col, for configs read from YAML)."""
        from pytest_dlio.config.storage_options import parse_storage_options
        from pytest_dlio.errors import ConfigError

        options, problems = parse_storage_options(dict(self.storage_options))
        if problems:
            raise ConfigError([f"storage.storage_options.{key}: {msg}" for key, msg in problems])
        return options


@dataclass(frozen=True)
class Hdf5:
    chunk_dims: tuple[int, ...] = ()
    num_dset_per_record: int = 1
    max_shape: tuple[int, ...] = ()


@dataclass(frozen=True)
class ParquetColumn:
    name: str
    dtype: str = "float32"
    size: int = 1
    read: bool = True


@dataclass(frozen=True)
class Parquet:
    columns: tuple[ParquetColumn, ...] = ()
    row_group_size: int = 1024
    partition_by: str | None = None
    generation_batch_size: int = 0
    use_s3dlio_gen: bool = False
    read_mode: str = "default"


@dataclass(frozen=True)
class Dataset:
    format: str = "tfrecord"
    data_folder: str = "./data/"
    num_files_train: int = 8
    num_files_eval: int = 0
    num_samples_per_file: int = 1
    record_length_bytes: float = 65536
    record_length_bytes_stdev: float = 0
    record_length_bytes_resize: int = 0
    num_subfolders_train: int = 0
    num_subfolders_eval: int = 0
    file_prefix: str = "img"
    compression: str = "none"
    compression_level: int = 4
    enable_chunking: bool = False
    chunk_size: int = 0
    keep_files: bool = True
    generation_buffer_size: int = 2 * 1073741824
    record_dims: tuple[int, ...] = ()
    record_element_type: str = "uint8"
    hdf5: Hdf5 = field(default_factory=Hdf5)
    parquet: Parquet = field(default_factory=Parquet)
    data_gen_method: str | None = None
    skip_listing: bool = False
    listing_validation_interval: int = 1000
    num_files_generated: int | None = None

    @property
    def element_bytes(self) -> int:
        return int(np.dtype(self.record_element_type).itemsize)

    @property
    def sample_bytes(self) -> float:
        """Nominal bytes per sample, as DLIO's metrics use it (record_dims wins when given)."""
        if self.record_dims:
            return float(math.prod(self.record_dims) * self.element_bytes)
        return float(self.record_length_bytes)


@dataclass(frozen=True)
class Reader:
    data_loader: str = "tensorflow"
    batch_size: int = 1
    batch_size_eval: int = 1
    read_threads: int = 1
    computation_threads: int = 1
    prefetch_size: int = 2
    file_shuffle: str = "off"
    sample_shuffle: str = "off"
    shuffle_size: int = 1024
    read_type: str = "on_demand"
    file_access: str = "multi"
    transfer_size: int | None = None
    preprocess_time: TimeSpec = field(default_factory=TimeSpec)
    dont_use_mmap: bool = False
    reader_classname: str | None = None
    data_loader_classname: str | None = None
    data_loader_sampler: str | None = None
    multiprocessing_context: str = "fork"
    pin_memory: bool = True
    odirect: bool = False
    transformed_record_dims: tuple[int, ...] = ()
    transformed_record_element_type: str = "uint8"
    write_threads: int = 1


@dataclass(frozen=True)
class Train:
    epochs: int = 1
    computation_time: TimeSpec = field(default_factory=TimeSpec)
    total_training_steps: int = -1
    seed_change_epoch: bool = True
    seed: int = 123


@dataclass(frozen=True)
class Evaluation:
    eval_time: TimeSpec = field(default_factory=TimeSpec)
    eval_after_epoch: int = 1
    epochs_between_evals: int = 1


@dataclass(frozen=True)
class Ksm:
    madv_mergeable_id: int = 12
    high_ram_trigger: float = 30.0
    low_ram_exit: float = 15.0
    await_time: int = 200


@dataclass(frozen=True)
class Checkpoint:
    checkpoint_folder: str = "./checkpoints/"
    checkpoint_after_epoch: int = 1
    epochs_between_checkpoints: int = 1
    steps_between_checkpoints: int = -1
    type: str = "rank_zero"
    mode: str = "default"
    fsync: bool = False
    time_between_checkpoints: float = -1
    num_checkpoints_write: int = -1
    num_checkpoints_read: int = -1
    recovery_rank_shift: bool = False
    rank_sync: bool = False
    randomize_tensor: bool = True
    checkpoint_mechanism_classname: str | None = None
    ksm: Ksm | None = None


@dataclass(frozen=True)
class MetricExclusion:
    exclude_start_steps: int = 1
    exclude_end_steps: int = 0


@dataclass(frozen=True)
class Output:
    folder: str | None = None
    log_file: str = "dlio.log"
    metric: MetricExclusion = field(default_factory=MetricExclusion)


@dataclass(frozen=True)
class Profiling:
    profiler: str = "iostat"
    iostat_devices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Metric:
    au: float = 0.90


@dataclass(frozen=True)
class Source:
    """Where a config came from and how it was read (for reports)."""

    path: str = "<memory>"
    dialect: str = "dlio"  # dlio (HEAD), dlio-2.0.0, dl-driver
    notes: tuple[str, ...] = ()  # aliases honoured, ignored keys, fixes applied: said in the report
    scale: float = 1.0  # bytes scale factor applied by --dlio-scale (1.0 = full size)


@dataclass(frozen=True)
class WorkloadConfig:
    framework: str = "tensorflow"
    model: ModelConfig = field(default_factory=ModelConfig)
    workflow: Workflow = field(default_factory=Workflow)
    storage: StorageConfig = field(default_factory=StorageConfig)
    dataset: Dataset = field(default_factory=Dataset)
    reader: Reader = field(default_factory=Reader)
    train: Train = field(default_factory=Train)
    evaluation: Evaluation = field(default_factory=Evaluation)
    checkpoint: Checkpoint = field(default_factory=Checkpoint)
    output: Output = field(default_factory=Output)
    profiling: Profiling = field(default_factory=Profiling)
    metric: Metric = field(default_factory=Metric)
    source: Source = field(default_factory=Source)

    # ---- derived values (DLIO's derive_configurations / main.py, dlio.md §1.6, §3.4) ----
    @property
    def total_samples_train(self) -> int:
        return self.dataset.num_samples_per_file * self.dataset.num_files_train

    @property
    def total_samples_eval(self) -> int:
        return self.dataset.num_samples_per_file * self.dataset.num_files_eval

    def steps_per_epoch(self, ranks: int = 1) -> int:
        """DLIO's ``max_steps`` capped by ``total_training_steps`` (a per-epoch cap, as DLIO applies it)."""
        steps = self.total_samples_train // self.reader.batch_size // ranks
        if self.train.total_training_steps > 0:
            steps = min(steps, self.train.total_training_steps)
        return steps

    def eval_steps(self, ranks: int = 1) -> int:
        return self.total_samples_eval // self.reader.batch_size_eval // ranks

    @property
    def row_group_window(self) -> int:
        """Row-group reads a reader keeps in flight ahead of the step; 0 for formats other than parquet.

        MLPerf v3.0's DLIO reads parquet through a sliding window of ``storage_options.prefetch_window``
        reads (default 64) on ``prefetch_workers`` threads (default 64), whatever ``read_threads`` says,
        0 included (mlperf_v3.md §5.2)."""
        if self.dataset.format != "parquet":
            return 0
        window = self.storage.options.prefetch_window
        return PARQUET_WINDOW if window is None else window

    @property
    def data_store_threads(self) -> int:
        """Threads of the dataset's store: one per reader (``read_threads``, at least 1), or each reader's
        ``prefetch_workers`` (DLIO's 64) when a row-group window reads ahead, no more than the window
        keeps in flight (at most ``MAX_STORE_THREADS``)."""
        readers = max(1, self.reader.read_threads)
        window = self.row_group_window
        if window <= 0:
            return readers
        workers = self.storage.options.prefetch_workers or PARQUET_WINDOW
        return min(readers * min(workers, window), MAX_STORE_THREADS)

    @property
    def reads_data(self) -> bool:
        """True when the workflow trains (so a dataset is needed)."""
        return self.workflow.train

    @property
    def checkpoint_only(self) -> bool:
        return not self.workflow.train and self.workflow.checkpoint

    @property
    def generate_only(self) -> bool:
        return not self.workflow.train and self.workflow.generate_data and not self.workflow.checkpoint
