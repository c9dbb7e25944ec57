"""Read one YAML document into plain Python data plus a side table of line marks.

Cerberus sees plain dicts; the marks table ``{("dataset", "num_files_train"): Mark}`` lets any key be
cited as ``file:line:col``. Strict where PyYAML is lax: duplicate keys and non-string keys are errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from pytest_dlio.errors import ConfigError

Path_ = tuple[str, ...]


@dataclass(frozen=True)
class Mark:
    """Where a key or value came from: a file position, or a command-line override."""

    file: str
    line: int = 0  # 1-based; 0 = no position (an override)
    col: int = 0
    raw: str | None = None  # the scalar as written (to explain YAML booleans such as `off`)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}" if self.line else self.file


@dataclass
class Marks:
    """Key marks (where the key is written) and value marks (where its value is)."""

    keys: dict[Path_, Mark]
    values: dict[Path_, Mark]

    def of(self, path: Path_, *, value: bool = False) -> Mark | None:
        """The best mark for ``path``: the value's, else the key's, else the nearest ancestor's."""
        table = (self.values, self.keys) if value else (self.keys, self.values)
        for p in [path[:i] for i in range(len(path), 0, -1)]:
            for t in table:
                if p in t:
                    return t[p]
        return None


def _mark(node: yaml.Node, file: str, raw: str | None = None) -> Mark:
    return Mark(file, node.start_mark.line + 1, node.start_mark.column + 1, raw)


def read_yaml(text: str, file: str) -> tuple[dict[str, Any], Marks]:
    """Parse ``text`` (one YAML document whose top level is a mapping)."""
    marks = Marks({}, {})
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        pm = exc.problem_mark
        where = f"{file}:{pm.line + 1}:{pm.column + 1}" if pm else file
        problem = exc.problem or str(exc)
        if "expected a single document" in str(exc):
            problem = "expected a single YAML document, found more than one (remove the extra '---')"
        raise ConfigError(f"YAML syntax error: {problem} ({where})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML error: {exc} ({file})") from None
    if node is None:
        raise ConfigError(f"empty config: expected a mapping of DLIO sections such as dataset:, reader:, "
                          f"train: ({file}:1:1)")
    if not isinstance(node, yaml.MappingNode):
        kind = "a list" if isinstance(node, yaml.SequenceNode) else "a single value"
        raise ConfigError(f"top level must be a mapping of DLIO sections (dataset:, reader:, train: …), "
                          f"got {kind} ({_mark(node, file)})")
    constructor = yaml.SafeLoader("")
    try:
        data = _build(node, (), file, marks, constructor)
    except yaml.constructor.ConstructorError as exc:
        pm = exc.problem_mark
        raise ConfigError(f"YAML error: {exc.problem} ({file}:{pm.line + 1}:{pm.column + 1})") from None
    return data, marks


def _build(node: yaml.Node, path: Path_, file: str, marks: Marks, ctor: yaml.SafeLoader) -> Any:
    if isinstance(node, yaml.MappingNode):
        ctor.flatten_mapping(node)  # merge keys (<<)
        out: dict[str, Any] = {}
        for knode, vnode in node.value:
            if not isinstance(knode, yaml.ScalarNode):
                raise ConfigError(f"{'.'.join(path) or '<top>'}: keys must be plain names "
                                  f"({_mark(knode, file)})")
            key = ctor.construct_object(knode)
            if not isinstance(key, str):
                raise ConfigError(f"{'.'.join((*path, str(key)))}: key {knode.value!r} is read by YAML as "
                                  f"{type(key).__name__}; keys must be names ({_mark(knode, file)})")
            sub = (*path, key)
            if key in out:
                first = marks.keys[sub]
                raise ConfigError(f"{'.'.join(sub)}: duplicate key (first at line {first.line}); YAML keeps "
                                  f"only the last, remove one ({_mark(knode, file)})")
            marks.keys[sub] = _mark(knode, file)
            out[key] = _build(vnode, sub, file, marks, ctor)
        return out
    if isinstance(node, yaml.SequenceNode):
        marks.values[path] = _mark(node, file)
        for i, item in enumerate(node.value):
            if isinstance(item, yaml.MappingNode):
                marks.values[(*path, str(i))] = _mark(item, file)
        return [_build(item, (*path, str(i)), file, marks, ctor) for i, item in enumerate(node.value)]
    marks.values[path] = _mark(node, file, node.value)
    return ctor.construct_object(node)
