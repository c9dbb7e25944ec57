"""The cerberus schema: every key DLIO reads (HEAD + MLPerf Storage v3.0 keys), with types, enums, ranges.

Data, not code. Defaults live in ``model.py`` (one source of truth); the normalised config is the model.
Sources: ``dlio.md`` §1.3 (keys), §1.4 (enums), ``mlperf_v3.md`` §6 (v3-era keys and values).
"""

from __future__ import annotations

from typing import Any

from pytest_dlio.config.storage_options import VALID_KEYS as STORAGE_OPTION_KEYS

FRAMEWORKS = ["tensorflow", "pytorch"]
#: The format registry (formats.FORMATS) plus hdf5_opt; config sits below formats: a test checks both agree.
FORMATS = [
    "tfrecord",
    "hdf5",
    "csv",
    "npz",
    "npy",
    "hdf5_opt",
    "jpeg",
    "png",
    "indexed_binary",
    "mmap_indexed_binary",
    "synthetic",
    "parquet",
]
DATA_LOADERS = ["tensorflow", "pytorch", "dali", "native_dali", "custom", "none", "synthetic"]
STORAGE_TYPES = ["local_fs", "parallel_fs", "s3", "aistore", "direct_fs"]
STORAGE_LIBRARIES = ["s3dlio", "minio", "s3torchconnector"]
SHUFFLE = ["off", "seed", "random"]
READ_TYPES = ["memory", "on_demand"]
FILE_ACCESS = ["multi", "shared", "collective", "mpio", "posix"]
COMPRESSION = ["none", "gzip", "lzf", "bz2", "zip", "xz", "snappy", "lz4", "zstd"]
PROFILERS = ["none", "iostat", "darshan", "tensorboard"]
SAMPLERS = ["iterative", "index", "none"]
MP_CONTEXTS = ["fork", "spawn", "forkserver"]
CKPT_TYPES = ["rank_zero", "all_ranks"]
CKPT_MODES = ["default", "subset"]
MODEL_DTYPES = ["int8", "uint8", "fp16", "bf16", "fp32", "fp64"]
ELEMENT_TYPES = [
    "uint8",
    "int8",
    "uint16",
    "int16",
    "uint32",
    "int32",
    "uint64",
    "int64",
    "float16",
    "float32",
    "float64",
]
PARQUET_DTYPES = [*ELEMENT_TYPES, "list", "string", "binary", "bool"]
TIME_KINDS = ["normal", "uniform", "gamma", "exponential", "poisson"]

#: Keys whose values are enums: a YAML boolean there is a trap (``off``/``on``/``yes`` unquoted).
ENUM_KEYS = {
    "file_shuffle",
    "sample_shuffle",
    "read_type",
    "compression",
    "format",
    "framework",
    "data_loader",
    "storage_type",
    "profiler",
    "type",
    "mode",
    "file_access",
}

_INT = {"type": "integer"}
_NUM = {"type": "number"}
_BOOL = {"type": "boolean"}
_STR = {"type": "string"}


def _int(lo: int | None = None, hi: int | None = None, **kw: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {"type": "integer", **kw}
    if lo is not None:
        rule["min"] = lo
    if hi is not None:
        rule["max"] = hi
    return rule


def _num(lo: float | None = None, hi: float | None = None, **kw: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {"type": "number", **kw}
    if lo is not None:
        rule["min"] = lo
    if hi is not None:
        rule["max"] = hi
    return rule


def _cap(rule: dict[str, Any], limit: float, why: str) -> dict[str, Any]:
    """``rule`` with an upper bound that only a mistake can exceed; the message says the cap and why."""
    return {**rule, "cap": [limit, why]}


GIB = 2**30
PIB = 2**50
#: Largest total dataset (train + eval, nominal bytes) a config may describe.
MAX_DATASET_BYTES = 4 * PIB
#: Largest sample (record) in bytes: every generator and reader holds one in memory.
MAX_SAMPLE_BYTES = 16 * GIB
_FILES = "50x the largest MLPerf Storage dataset (1.7 M files); more cannot be listed or generated in one run"
_SAMPLE = "the largest DLIO or MLPerf record is 0.67 GB and a sample is held in memory"
_THREADS = "threads per rank; DLIO configs use at most 8"
_STEP_TIME = "seconds per step or sample; an hour of emulated compute per step can only be a mistake"
_BATCH = "the largest shipped batch is 18,432 samples"
_RANKS = "ranks; a million is beyond any machine"
_WIDTH = "llama3 1T's widths are below 10^5"
_CKPTS = "checkpoints per run"
#: A folder: relative ones resolve under the data root or --dlio-storage, and must stay inside it.
_FOLDER = {"type": "string", "folder": True}


def _enum(values: list[str], **kw: Any) -> dict[str, Any]:
    return {"type": "string", "allowed": values, **kw}


def _ints(lo: int | None = None, hi: int | None = None) -> dict[str, Any]:
    return {"type": "list", "schema": _int(lo, hi)}


_SECONDS = _cap(_num(0), 3600, _STEP_TIME)
_TIME_DICT = {
    "type": _enum(TIME_KINDS),
    "mean": _SECONDS,
    "stdev": _SECONDS,
    "min": _SECONDS,
    "max": _SECONDS,
    "shape": _cap(_num(0), 10_000, "a gamma shape; DLIO's configs use at most 10"),
    "scale": _SECONDS,
    "lam": _SECONDS,
}
#: A time in any of DLIO's forms (dlio.md §1.5): seconds, or a distribution mapping.
TIME = {"type": ["number", "dict"], "min": 0, "cap": [3600, _STEP_TIME], "schema": _TIME_DICT}

#: Key names only: ``config/storage_options.py`` types and checks the values (and never echoes a secret).
STORAGE_OPTIONS = {key: {"nullable": True} for key in STORAGE_OPTION_KEYS}

SCHEMA: dict[str, Any] = {
    "framework": _enum(FRAMEWORKS),
    "model": {
        "type": "dict",
        "schema": {
            "name": _STR,
            "type": _STR,
            "model_size_bytes": _cap(_int(0), PIB, "llama3 1T's checkpoint is ~15 TB"),
            "model_datatype": _enum(MODEL_DTYPES),
            "optimizer_datatype": _enum(MODEL_DTYPES),
            "optimization_groups": _ints(0, PIB),
            "num_layers": _cap(_int(-1), 100_000, "llama3 1T has 128 layers"),
            "layer_parameters": _ints(0, PIB),
            "parallelism": {
                "type": "dict",
                "schema": {
                    "tensor": _cap(_int(1), 1 << 20, _RANKS),
                    "pipeline": _cap(_int(1), 1 << 20, _RANKS),
                    "data": _cap(_int(-1), 1 << 20, _RANKS),
                    "zero_stage": _int(0, 3),
                },
            },
            "transformer": {
                "type": "dict",
                "schema": {
                    "vocab_size": _cap(_int(1), 10**7, _WIDTH),
                    "hidden_size": _cap(_int(1), 10**7, _WIDTH),
                    "ffn_hidden_size": _cap(_int(1), 10**7, _WIDTH),
                    "num_attention_heads": _cap(_int(1), 10**5, _WIDTH),
                    "num_kv_heads": _cap(_int(1), 10**5, _WIDTH),
                },
            },
        },
    },
    "workflow": {
        "type": "dict",
        "schema": {
            "generate_data": _BOOL,
            "train": _BOOL,
            "evaluation": _BOOL,
            "checkpoint": _BOOL,
            "profiling": _BOOL,
            "query": _STR,
        },
    },
    "storage": {
        "type": "dict",
        "schema": {
            "storage_type": _enum(STORAGE_TYPES),
            "storage_root": _FOLDER,
            "storage_options": {"type": "dict", "nullable": True, "schema": STORAGE_OPTIONS},
            "storage_library": _enum(STORAGE_LIBRARIES),
            "post_generation_settle_seconds": _cap(_num(0), 3600, "an hour of waiting can only be a mistake"),
        },
    },
    "dataset": {
        "type": "dict",
        "schema": {
            "format": _enum(FORMATS),
            "data_folder": _FOLDER,
            "num_files_train": _cap(_int(0), 10**8, _FILES),
            "num_files_eval": _cap(_int(0), 10**8, _FILES),
            "num_samples_per_file": _cap(
                _int(1), 10**12, "dlrm's 4.2e9 rows per file is the largest shipped"
            ),
            "record_length_bytes": _cap(_num(1), MAX_SAMPLE_BYTES, _SAMPLE),
            "record_length_bytes_stdev": _cap(_num(0), MAX_SAMPLE_BYTES, _SAMPLE),
            "record_length_bytes_resize": _cap(_int(0), MAX_SAMPLE_BYTES, _SAMPLE),
            "num_subfolders_train": _cap(_int(0), 10**6, _FILES),
            "num_subfolders_eval": _cap(_int(0), 10**6, _FILES),
            "file_prefix": {"type": "string", "regex": r"[^/\\]+"},
            "compression": _enum(COMPRESSION),
            "compression_level": _int(0, 22),
            "enable_chunking": _BOOL,
            "chunk_size": _int(0),
            "keep_files": _BOOL,
            "generation_buffer_size": _cap(_int(1), 64 * GIB, "a buffer held in memory"),
            "record_dims": _ints(1, MAX_SAMPLE_BYTES),
            "record_element_type": _enum(ELEMENT_TYPES),
            "record_element_bytes": _int(1),
            "hdf5": {
                "type": "dict",
                "schema": {"chunk_dims": _ints(1), "num_dset_per_record": _int(1), "max_shape": _ints(1)},
            },
            "parquet": {
                "type": "dict",
                "schema": {
                    "columns": {
                        "type": "list",
                        "schema": {
                            "type": "dict",
                            "schema": {
                                "name": {"type": "string", "required": True, "empty": False},
                                "dtype": _enum(PARQUET_DTYPES),
                                "size": _int(1),
                                "read": _BOOL,
                            },
                        },
                    },
                    "row_group_size": _int(1),
                    "partition_by": {"type": "string", "nullable": True},
                    "generation_batch_size": _int(0),
                    "use_s3dlio_gen": _BOOL,
                    "read_mode": _enum(["default", "row_group"]),
                },
            },
            "data_gen_method": _enum(["dgen", "numpy"]),
            "skip_listing": {"type": ["boolean", "string"]},
            "listing_validation_interval": _int(0),
            "num_files_generated": _int(0),
        },
    },
    "reader": {
        "type": "dict",
        "schema": {
            "data_loader": _enum(DATA_LOADERS),
            "batch_size": _cap(_int(1), 10**7, _BATCH),
            "batch_size_eval": _cap(_int(1), 10**7, _BATCH),
            "read_threads": _cap(_int(0), 1024, _THREADS),
            "computation_threads": _cap(_int(0), 1024, _THREADS),
            "prefetch_size": _cap(_int(0), 100_000, "batches held in memory"),
            "file_shuffle": _enum(SHUFFLE),
            "sample_shuffle": _enum(SHUFFLE),
            "shuffle_size": _int(0),
            "read_type": _enum(READ_TYPES),
            "file_access": _enum(FILE_ACCESS),
            "transfer_size": _cap(_int(1, nullable=True), MAX_SAMPLE_BYTES, _SAMPLE),
            "preprocess_time": TIME,
            "preprocess_time_stdev": _SECONDS,
            "dont_use_mmap": _BOOL,
            "reader_classname": _STR,
            "data_loader_classname": _STR,
            "data_loader_sampler": _enum(SAMPLERS),
            "multiprocessing_context": _enum(MP_CONTEXTS),
            "pin_memory": _BOOL,
            "odirect": _BOOL,
            "transformed_record_dims": _ints(1),
            "transformed_record_element_type": _enum(ELEMENT_TYPES),
            "write_threads": _cap(_int(1), 1024, _THREADS),
        },
    },
    "train": {
        "type": "dict",
        "schema": {
            "epochs": _cap(
                _int(1), 10**6, "DLIO's largest shipped config (megatron_deepspeed 2.0.0) has 311,541"
            ),
            "computation_time": TIME,
            "computation_time_stdev": _SECONDS,
            "total_training_steps": _int(-1),
            "seed_change_epoch": _BOOL,
            "seed": _cap(_int(0), 2**32 - 1, "numpy's seed range; DLIO seeds numpy with it"),
        },
    },
    "evaluation": {
        "type": "dict",
        "schema": {
            "eval_time": TIME,
            "eval_time_stdev": _SECONDS,
            "eval_after_epoch": _int(0),
            "epochs_between_evals": _int(1),
        },
    },
    "checkpoint": {
        "type": "dict",
        "schema": {
            "checkpoint_folder": _FOLDER,
            "checkpoint_after_epoch": _int(0),
            "epochs_between_checkpoints": _int(1),
            "steps_between_checkpoints": _int(-1),
            "type": _enum(CKPT_TYPES),
            "mode": _enum(CKPT_MODES),
            "fsync": _BOOL,
            "time_between_checkpoints": _cap(
                _num(-1), 86400, "seconds between checkpoints; more than a day can only be a mistake"
            ),
            "num_checkpoints_write": _cap(_int(-1), 100_000, _CKPTS),
            "num_checkpoints_read": _cap(_int(-1), 100_000, _CKPTS),
            "recovery_rank_shift": _BOOL,
            "rank_sync": _BOOL,
            "randomize_tensor": _BOOL,
            "checkpoint_mechanism_classname": _STR,
            "ksm": {
                "type": "dict",
                "nullable": True,
                "schema": {
                    "madv_mergeable_id": _int(0),
                    "high_ram_trigger": _num(0, 100),
                    "low_ram_exit": _num(0, 100),
                    "await_time": _int(0),
                },
            },
        },
    },
    "output": {
        "type": "dict",
        "schema": {
            "folder": _FOLDER,
            "log_file": _STR,  # accepted; pytest-dlio writes no DLIO log file
            "metric": {
                "type": "dict",
                "schema": {"exclude_start_steps": _int(0), "exclude_end_steps": _int(0)},
            },
        },
    },
    "profiling": {
        "type": "dict",
        "schema": {
            "profiler": _enum(PROFILERS),
            "iostat_devices": {"type": ["list", "string"], "schema": _STR},
        },
    },
    "metric": {"type": "dict", "schema": {"au": {"type": "number", "min": 0, "max": 1}}},  # 0: report only
}


def known_paths(schema: dict[str, Any] = SCHEMA, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key path the schema knows (for did-you-mean across sections)."""
    out: list[tuple[str, ...]] = []
    for key, rule in schema.items():
        path = (*prefix, key)
        out.append(path)
        sub = rule.get("schema") if isinstance(rule, dict) else None
        if rule.get("type") == "dict" and isinstance(sub, dict):
            out.extend(known_paths(sub, path))
    return out


def sub_schema(path: tuple[str, ...]) -> dict[str, Any] | None:
    """The mapping schema at ``path`` (``()`` is the top level), or None when it is not a mapping."""
    node: Any = SCHEMA
    for key in path:
        rule = node.get(key) if isinstance(node, dict) else None
        if not isinstance(rule, dict):
            return None
        node = rule.get("schema")
        if isinstance(node, dict) and rule.get("type") == "list":
            node = node.get("schema")
    return node if isinstance(node, dict) else None


def _finite(rule: Any) -> None:
    """Every number in the schema must be finite: NaN passes every comparison and .inf never ends."""
    if not isinstance(rule, dict):
        return
    kinds = rule.get("type")
    if "number" in (kinds if isinstance(kinds, list) else [kinds]):
        rule["finite"] = True
    for sub in (rule.get("schema"),):
        if isinstance(sub, dict):
            if "type" in sub and not isinstance(sub.get("type"), dict):
                _finite(sub)
            else:
                for child in sub.values():
                    _finite(child)


for _rule in SCHEMA.values():
    _finite(_rule)
