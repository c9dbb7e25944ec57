"""Recognise the older DLIO 2.0.0 dialect and dl-driver's dialect, and map them onto DLIO HEAD's keys.

Also honours keys DLIO ignores by mistake but whose intent is plain (``model.model_size`` in the unet3d
YAMLs, ``dataset.record_length`` in MLPerf v3.0's flux). Every mapping leaves a note for the report.
Sources: ``dlio.md`` §1.9 (2.0.0 → HEAD), ``peers.md`` §1.4 (dl-driver), ``mlperf_v3.md`` §6.
"""

from __future__ import annotations

from typing import Any

from pytest_dlio.config.yamlread import Marks, Path_
from pytest_dlio.errors import ConfigError

#: (old path, new path) honoured in every dialect: DLIO ignores the old key but the intent is plain.
ALIASES: list[tuple[Path_, Path_]] = [
    (("model", "model_size"), ("model", "model_size_bytes")),
    (("dataset", "record_length"), ("dataset", "record_length_bytes")),
    (("dataset", "record_length_stdev"), ("dataset", "record_length_bytes_stdev")),
    (("dataset", "record_length_resize"), ("dataset", "record_length_bytes_resize")),
    (("storage", "s3_force_path_style"), ("storage", "storage_options", "s3_force_path_style")),
    (("data_reader",), ("reader",)),
]

#: DLIO 2.0.0 keys (dlio.md §1.9) and where HEAD keeps them.
V2_KEYS: list[tuple[Path_, Path_]] = [
    (("dataset", "record_length"), ("dataset", "record_length_bytes")),
    (("dataset", "record_length_stdev"), ("dataset", "record_length_bytes_stdev")),
    (("dataset", "record_length_resize"), ("dataset", "record_length_bytes_resize")),
    (("checkpoint", "model_size"), ("model", "model_size_bytes")),
    (("checkpoint", "optimization_groups"), ("model", "optimization_groups")),
    (("checkpoint", "num_layers"), ("model", "num_layers")),
    (("checkpoint", "layer_parameters"), ("model", "layer_parameters")),
    (("checkpoint", "tensor_parallelism"), ("model", "parallelism", "tensor")),
    (("checkpoint", "pipeline_parallelism"), ("model", "parallelism", "pipeline")),
]
V2_MARKERS = {old for old, _ in V2_KEYS}

#: dl-driver keys with a DLIO equivalent.
DLDRIVER_KEYS: list[tuple[Path_, Path_]] = [
    (("checkpointing",), ("checkpoint",)),
    (("train", "checkpoint"), ("checkpoint",)),
    (("reader", "prefetch"), ("reader", "prefetch_size")),
    (("reader", "compute_threads"), ("reader", "computation_threads")),
    (("reader", "seed"), ("train", "seed")),
    (("checkpoint", "enabled"), ("workflow", "checkpoint")),
]
#: dl-driver runtime keys that have no DLIO meaning: accepted in that dialect, ignored, and said so.
DLDRIVER_IGNORED: list[Path_] = [
    ("pytorch_config",),
    ("tensorflow_config",),
    ("jax_config",),
    ("framework_profiles",),
    ("resume",),
    ("model", "framework_version"),
    ("profiling", "profile_folder"),
    ("profiling", "iostat"),
    ("storage", "cache_type"),
    ("train", "warmup_epochs"),
    ("dataset", "directory_tree"),
    ("dataset", "endpoint_uris"),
    ("dataset", "load_balance_strategy"),
    ("dataset", "tfrecord_index_enabled"),
    ("dataset", "tfrecord_index_folder"),
    ("checkpoint", "endpoint_uris"),
    ("checkpoint", "load_balance_strategy"),
    ("checkpoint", "compression"),
    ("checkpoint", "compression_level"),
    ("checkpoint", "checkpoint_size_mb"),
    ("reader", "file_access_type"),
]
DLDRIVER_MARKERS = {
    ("checkpointing",),
    ("workload",),
    ("reader", "prefetch"),
    ("reader", "shuffle"),
    ("reader", "compute_threads"),
    ("reader", "seed"),
    ("model", "framework"),
    ("train", "checkpoint"),
    ("checkpoint", "enabled"),
} | set(DLDRIVER_IGNORED)


_MISSING = object()


def lookup(data: dict[str, Any], path: Path_) -> Any:
    """The value at ``path``, or ``_MISSING``."""
    node: Any = data
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return _MISSING
        node = node[key]
    return node


def _get(data: dict[str, Any], path: Path_) -> Any:
    value = lookup(data, path)
    return None if value is _MISSING else value


def has_path(data: dict[str, Any], path: Path_) -> bool:
    return lookup(data, path) is not _MISSING


_has = has_path


def _pop(data: dict[str, Any], path: Path_) -> Any:
    parent = _get(data, path[:-1]) if len(path) > 1 else data
    return parent.pop(path[-1])


def _remark(marks: Marks, src: Path_, dst: Path_) -> None:
    for table in (marks.keys, marks.values):
        for p in [p for p in table if p[: len(src)] == src]:
            table.setdefault((*dst, *p[len(src) :]), table[p])


def move(data: dict[str, Any], marks: Marks, src: Path_, dst: Path_, notes: list[str], why: str) -> None:
    """Move ``src`` to ``dst`` (merging mappings); a conflicting value at ``dst`` is an error."""
    if not _has(data, src):
        return
    value = _pop(data, src)
    parent: Any = data
    for key in dst[:-1]:
        if parent.get(key) is None:
            parent[key] = {}
        if not isinstance(parent[key], dict):
            break
        parent = parent[key]
    else:
        last = dst[-1]
        if isinstance(value, dict) and isinstance(parent.get(last), dict):
            for k, v in value.items():
                if k in parent[last]:
                    where = marks.of((*src, k))
                    raise ConfigError(
                        f"{'.'.join((*src, k))}: also given as {'.'.join((*dst, k))}; keep one ({where})"
                    )
                parent[last][k] = v
        elif last in parent and parent[last] == value:
            pass  # said twice, the same way: keep one
        elif last in parent:
            raise ConfigError(f"{'.'.join(src)}: also given as {'.'.join(dst)}; keep one ({marks.of(src)})")
        else:
            parent[last] = value
        _remark(marks, src, dst)
        notes.append(f"{'.'.join(src)} read as {'.'.join(dst)} ({why}; {marks.of(src)})")
        return
    raise ConfigError(f"{'.'.join(dst[:-1])}: must be a mapping to hold {'.'.join(src)} ({marks.of(src)})")


def detect(data: dict[str, Any]) -> str:
    """``dl-driver``, ``dlio-2.0.0`` or ``dlio`` (HEAD)."""
    if any(_has(data, p) for p in DLDRIVER_MARKERS):
        return "dl-driver"
    if isinstance(data.get("model"), str) or any(
        _has(data, p) for p in V2_MARKERS - {("dataset", "record_length")}
    ):
        return "dlio-2.0.0"
    return "dlio"


def apply_aliases(data: dict[str, Any], marks: Marks, notes: list[str]) -> None:
    """Keys DLIO ignores by mistake whose intent is plain (any dialect)."""
    for old, new in ALIASES:
        move(data, marks, old, new, notes, "DLIO ignores this key; its intent is plain")


def to_head(data: dict[str, Any], marks: Marks) -> tuple[str, list[str]]:
    """Map ``data`` in place onto DLIO HEAD's keys; returns (dialect, notes)."""
    dialect = detect(data)
    notes: list[str] = []
    if dialect == "dl-driver":
        _from_dldriver(data, marks, notes)
    elif dialect == "dlio-2.0.0":
        _from_v2(data, marks, notes)
    apply_aliases(data, marks, notes)
    if _has(data, ("workflow", "debug")):
        _pop(data, ("workflow", "debug"))
        notes.append("workflow.debug ignored: only DLIO 2.0.0 read it (set DLIO_LOG_LEVEL instead)")
    return dialect, notes


def _from_v2(data: dict[str, Any], marks: Marks, notes: list[str]) -> None:
    if isinstance(data.get("model"), str):
        name = data.pop("model")
        data["model"] = {"name": name}
        _remark(marks, ("model",), ("model", "name"))
        notes.append(f"model: {name} read as model.name (DLIO 2.0.0 dialect)")
    for old, new in V2_KEYS:
        move(data, marks, old, new, notes, "DLIO 2.0.0 dialect")
    wf = data.get("workflow")
    if isinstance(wf, dict) and "train" not in wf:
        wf["train"] = False
        notes.append(
            "workflow.train defaults to false in the DLIO 2.0.0 dialect when a workflow section is present"
        )


def _from_dldriver(data: dict[str, Any], marks: Marks, notes: list[str]) -> None:
    inner = data.get("workload")
    if isinstance(inner, dict):
        data.pop("workload")
        for key, value in inner.items():
            if key in data:
                where = marks.of(("workload", key))
                raise ConfigError(f"workload.{key}: also given at the top level; keep one ({where})")
            data[key] = value
            _remark(marks, ("workload", key), (key,))
        notes.append("sections nested under workload: read at the top level (dl-driver ignores them there)")
    if _has(data, ("model", "framework")):
        if "framework" in data:
            _pop(data, ("model", "framework"))
        else:
            move(data, marks, ("model", "framework"), ("framework",), notes, "dl-driver dialect")
    shuffle = _get(data, ("reader", "shuffle"))
    if _has(data, ("reader", "shuffle")):
        _pop(data, ("reader", "shuffle"))
        if not isinstance(shuffle, bool):
            raise ConfigError(
                f"reader.shuffle: must be true or false, got {shuffle!r} "
                f"({marks.of(('reader', 'shuffle'), value=True)})"
            )
        seeded = _has(data, ("reader", "seed")) or _has(data, ("train", "seed"))
        mode = ("seed" if seeded else "random") if shuffle else "off"
        reader = data["reader"]
        for key in ("file_shuffle", "sample_shuffle"):
            reader.setdefault(key, mode)
            marks.keys.setdefault(("reader", key), marks.keys[("reader", "shuffle")])
        notes.append(
            f"reader.shuffle: {str(shuffle).lower()} read as file_shuffle and sample_shuffle "
            f"{mode} (dl-driver dialect)"
        )
    for old, new in DLDRIVER_KEYS:
        move(data, marks, old, new, notes, "dl-driver dialect")
    for path in DLDRIVER_IGNORED:
        if _has(data, path):
            _pop(data, path)
            notes.append(
                f"{'.'.join(path)} ignored: a dl-driver runtime setting with no DLIO meaning "
                f"({marks.of(path)})"
            )
    reader = data.get("reader")
    if isinstance(reader, dict):
        for key in ("file_shuffle", "sample_shuffle"):
            if isinstance(reader.get(key), bool):
                seeded = _has(data, ("train", "seed"))
                reader[key] = ("seed" if seeded else "random") if reader[key] else "off"
                notes.append(f"reader.{key}: a boolean read as {reader[key]} (dl-driver dialect)")
    profiler = _get(data, ("profiling", "profiler"))
    if isinstance(profiler, str) and profiler not in ("none", "iostat", "darshan", "tensorboard"):
        _pop(data, ("profiling", "profiler"))
        notes.append(f"profiling.profiler: {profiler} is dl-driver's own profiler; ignored")
    au = _get(data, ("metric", "au"))
    if isinstance(au, (int, float)) and not isinstance(au, bool) and 1 < au <= 100:
        data["metric"]["au"] = au / 100
        notes.append(f"metric.au: {au} read as {au / 100:g} (dl-driver accepts percentages)")
