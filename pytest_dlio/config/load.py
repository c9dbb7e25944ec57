"""YAML file (+ overrides) → validated, frozen WorkloadConfig, or a ConfigError listing every problem."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

from pytest_dlio.config import dialects, model, rules
from pytest_dlio.config.model import TimeSpec, WorkloadConfig
from pytest_dlio.config.secrets import is_secret_key, secret_path
from pytest_dlio.config.validate import validate
from pytest_dlio.config.yamlread import (
    MAX_BYTES,
    MAX_DEPTH,
    Mark,
    Marks,
    Path_,
    read_value,
    read_yaml,
    too_big,
)
from pytest_dlio.errors import ConfigError, printable

#: Plug-in classes DLIO would import; pytest-dlio never imports code named by a config.
_NOT_LOADED = {
    ("reader", "reader_classname"): "reader",
    ("reader", "data_loader_classname"): "data loader",
    ("checkpoint", "checkpoint_mechanism_classname"): "checkpoint mechanism",
}
_TIME_FIELDS = {("train", "computation_time"), ("evaluation", "eval_time"), ("reader", "preprocess_time")}


def _override_key(text: str) -> tuple[str, str, Path_]:
    """``(shown, raw value, key path)`` of one ``--dlio-set``; ``shown`` hides a credential's value."""
    key, sep, raw = text.partition("=")
    key = key.strip().lstrip("+").removeprefix("workload.")
    parts = tuple(key.split("."))
    shown = text if len(text) <= 80 else text[:77] + "..."
    if secret_path(parts) or is_secret_key(raw):  # never echo a credential: misspelt, nested, or without '='
        shown = f"{key}=***" if sep else ".".join((*parts[:-1], "***"))
    if not sep or not key:
        raise ConfigError(f"--dlio-set {shown!r}: expected KEY=VALUE, e.g. dataset.num_files_train=16")
    if any(not p for p in parts):
        raise ConfigError(
            f"--dlio-set {shown!r}: {key!r} is not a key path (use section.key, e.g. reader.batch_size=4)"
        )
    return shown, raw, parts


def parse_override(text: str) -> tuple[Path_, Any]:
    """``dataset.num_files_train=16`` or DLIO's ``++workload.dataset.num_files_train=16``."""
    shown, raw, parts = _override_key(text)
    if len(parts) > MAX_DEPTH:
        raise ConfigError(f"--dlio-set {shown!r}: a key path of {len(parts)} parts; DLIO keys have at most 4")
    value = read_value(raw, f"--dlio-set {shown}", parts) if raw.strip() else None
    return parts, value


def apply_overrides(data: dict[str, Any], marks: Marks, overrides: list[str]) -> None:
    for text in overrides:
        path, value = parse_override(text)
        shown = _override_key(text)[0]
        mark = Mark(
            f"--dlio-set {shown}", raw=None if shown.endswith("***") else text.partition("=")[2].strip()
        )
        node = data
        for i, key in enumerate(path[:-1]):
            if node.get(key) is None:
                node[key] = {}
                marks.keys[path[: i + 1]] = mark
            if not isinstance(node[key], dict):
                raise ConfigError(
                    f"{'.'.join(path[: i + 1])}: is not a section, cannot set {'.'.join(path)} ({mark})"
                )
            node = node[key]
        node[path[-1]] = value
        marks.keys[path] = mark
        marks.values[path] = mark
        for p in [p for p in marks.values if p[: len(path)] == path and p != path]:
            del marks.values[p]


def _given(data: Any, path: Path_ = ()) -> set[Path_]:
    out: set[Path_] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            out.add((*path, key))
            out |= _given(value, (*path, key))
    return out


def _time(value: Any, stdev: Any) -> TimeSpec:
    if isinstance(value, dict):
        spec = {k: v for k, v in value.items()}
        return TimeSpec(**spec)
    return TimeSpec(mean=float(value or 0), stdev=float(stdev or 0))


def _build(cls: type, data: dict[str, Any], path: Path_) -> Any:
    hints = typing.get_type_hints(cls, vars(model))
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        sub = (*path, f.name)
        if sub in _TIME_FIELDS:
            if f.name in data or f"{f.name}_stdev" in data:
                kwargs[f.name] = _time(data.get(f.name), data.get(f"{f.name}_stdev"))
            continue
        if f.name not in data:
            continue
        value, hint = data[f.name], hints[f.name]
        target = next((t for t in typing.get_args(hint) or (hint,) if dataclasses.is_dataclass(t)), None)
        if sub == ("storage", "storage_options"):
            kwargs[f.name] = tuple(sorted((value or {}).items()))
        elif sub == ("dataset", "parquet", "columns"):
            kwargs[f.name] = tuple(model.ParquetColumn(**c) for c in value)
        elif target is not None:
            kwargs[f.name] = _build(typing.cast(type, target), value or {}, sub)
        elif isinstance(value, list):
            kwargs[f.name] = tuple(value)
        elif hint is float or "float" in str(hint):
            kwargs[f.name] = float(value) if isinstance(value, (int, float)) else value
        else:
            kwargs[f.name] = value
    return cls(**kwargs)


def build(data: dict[str, Any], source: model.Source) -> WorkloadConfig:
    """A WorkloadConfig from a validated document (HEAD keys)."""
    doc = {k: v for k, v in data.items()}
    reader = dict(doc.get("reader") or {})
    if "data_loader" not in reader:  # DLIO's default is the *string* 'tensorflow' whatever the framework
        reader["data_loader"] = doc.get("framework", "tensorflow")
    doc["reader"] = reader
    cfg: WorkloadConfig = _build(WorkloadConfig, doc, ())
    return dataclasses.replace(cfg, source=source)


def load_text(text: str, file: str, overrides: list[str] | None = None) -> WorkloadConfig:
    """Parse, map the dialect, apply overrides, validate and build; raises ConfigError with every problem."""
    data, marks = read_yaml(text, file)
    dialect, notes = dialects.to_head(data, marks)
    if overrides:
        apply_overrides(data, marks, overrides)
        dialects.apply_aliases(data, marks, notes)
    if dialects.has_path(data, ("dataset", "record_element_bytes")):
        data["dataset"].pop("record_element_bytes")
        notes.append("dataset.record_element_bytes ignored: DLIO derives it from record_element_type")
    problems = validate(data, marks)
    if problems:
        raise ConfigError(_located(problems, marks))
    for path, what in _NOT_LOADED.items():
        value = dialects.lookup(data, path)
        if isinstance(value, str) and value:
            notes.append(
                f"{'.'.join(path)}: {value} is not loaded: pytest-dlio emulates DLIO's {what}; the class "
                f"is ignored ({marks.of(path)})"
            )
    source = model.Source(path=file, dialect=dialect, notes=tuple(printable(n) for n in notes))
    cfg = build(data, source)
    found = rules.check(cfg, _given(data))
    if found:
        raise ConfigError(_located(found, marks))
    return cfg


def load(path: str | Path, overrides: list[str] | None = None) -> WorkloadConfig:
    p = Path(path)
    if p.is_dir():
        raise ConfigError(
            f"{p}: is a folder, not a workload YAML (rename it, or pass the YAML files inside it)"
        )
    try:
        with p.open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)  # never read a huge file whole
        if len(raw) > MAX_BYTES:
            raise too_big(p.stat().st_size, str(p))
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return load_text(text, str(p), overrides)


def _located(problems: list[tuple[Path_, str]], marks: Marks) -> list[str]:
    def where(path: Path_) -> Mark | None:
        return marks.of(path, value=True) if path in marks.values else marks.of(path)

    lines = []
    for path, msg in problems:
        mark = marks.of(path) if ": unknown key" in msg else where(path)
        lines.append((mark.line if mark else 0, f"{msg} ({mark})" if mark else msg))
    return [text for _, text in sorted(lines, key=lambda x: x[0])]


def normalised(cfg: WorkloadConfig) -> dict[str, Any]:
    """The config with every default filled, as plain data (for --dlio-show-config)."""

    def plain(value: Any) -> Any:
        if isinstance(value, TimeSpec):
            fields = {k: v for k, v in dataclasses.asdict(value).items() if v not in (None, 0.0)}
            return fields.get("mean", 0.0) if set(fields) <= {"mean"} else fields
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, tuple) and value and isinstance(value[0], tuple) and len(value[0]) == 2:
            return {k: plain(v) for k, v in value}
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        return value

    out = plain(cfg)
    out.pop("source")
    return out
