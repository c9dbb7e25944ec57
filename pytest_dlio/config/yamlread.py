"""Read one YAML document into plain Python data plus a side table of line marks.

Cerberus sees plain dicts; the marks table ``{("dataset", "num_files_train"): Mark}`` lets any key be
cited as ``file:line:col``. Strict where PyYAML is lax: duplicate keys and non-string keys are errors.

Safe against hostile input (every problem is a located ConfigError, never another exception):

- the document is at most ``MAX_BYTES`` (checked before parsing), holds at most ``MAX_NODES`` values and
  nests at most ``MAX_DEPTH`` levels (checked while scanning and composing, so PyYAML's recursive composer
  never overflows the stack and its quadratic flow-depth bookkeeping never starts);
- building the data visits at most ``MAX_NODES`` nodes, counting every re-use of an alias, so an alias
  bomb ("billion laughs") fails after a few milliseconds instead of expanding to gigabytes; a recursive
  anchor (``&a [*a]``) is named as such;
- only the plain YAML tags are accepted (null, bool, int, float, str, timestamp, seq, map); any other tag
  (``!!python/object…``, ``!!binary``, ``!custom``) is refused, never silently dropped;
- a scalar its tag cannot read (``!!int abc``, a 5000-digit integer) is refused with its position.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from pytest_dlio.config.secrets import secret_path
from pytest_dlio.errors import ConfigError

Path_ = tuple[str, ...]

#: Largest config accepted (bytes). DLIO and MLPerf Storage configs are 1–5 KiB.
MAX_BYTES = 256 * 1024
#: Deepest nesting of lists and mappings. DLIO's deepest key is 4 levels (dataset.parquet.columns.N.name).
MAX_DEPTH = 64
#: Most nodes built from one document, alias re-use included. The largest shipped config has ~150.
MAX_NODES = 5_000

_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {f"{_TAG}{t}" for t in ("null", "bool", "int", "float", "str", "timestamp")}
_MERGE = f"{_TAG}merge"


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


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with a depth limit in the (recursive) composer."""

    def __init__(self, stream: str, where: Callable[[Any], str]) -> None:
        super().__init__(stream)
        self.where, self.depth, self.nodes = where, 0, 0

    def limit(self, what: str, mark: Any) -> ConfigError:
        return ConfigError(f"config {what}; is this the right file? ({self.where(mark)})")

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:  # noqa: N803 - PyYAML's name
        # The scanner's simple-key bookkeeping is quadratic in flow depth: stop before it matters.
        if self.flow_level >= MAX_DEPTH:
            raise self.limit(
                f"nests more than {MAX_DEPTH} levels deep (DLIO's keys are at most 4)", self.get_mark()
            )
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:  # stop parsing early: pure-Python PyYAML costs ~50 µs per node
            raise self.limit(
                f"holds more than {MAX_NODES:,} values (a DLIO config has a few hundred)",
                self.peek_event().start_mark,
            )
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.limit(
                f"nests more than {MAX_DEPTH} levels deep (DLIO's keys are at most 4)",
                self.peek_event().start_mark,
            )
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _mark(node: yaml.Node, file: str, raw: str | None = None) -> Mark:
    return Mark(file, node.start_mark.line + 1, node.start_mark.column + 1, raw)


def _at(mark: Any, file: str) -> str:
    return f"{file}:{mark.line + 1}:{mark.column + 1}" if mark is not None else file


def too_big(size: int, file: str) -> ConfigError:
    """The refusal of a document over ``MAX_BYTES`` (checked before any parsing)."""
    return ConfigError(
        f"config is {size:,} bytes; at most {MAX_BYTES:,} are read (DLIO configs are a few KiB: "
        f"is this the right file?) ({file})"
    )


def _compose(text: str, file: str, *, positions: bool = True) -> yaml.Node | None:
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise too_big(size, file)
    try:
        loader = _Loader(text, lambda m: _at(m, file) if positions else file)  # checks printable characters
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        where = f"{file}:{line}:{col}" if positions else file
        raise ConfigError(
            f"YAML error: character U+{exc.character:04X} is not allowed in YAML (inside double "
            f"quotes it can be written as an escape) ({where})"
        ) from None
    try:
        return loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        problem = exc.problem or str(exc)
        if "expected a single document" in str(exc):
            problem = "expected a single YAML document, found more than one (remove the extra '---')"
        where = _at(exc.problem_mark, file) if positions else file
        raise ConfigError(f"YAML syntax error: {problem} ({where})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML error: {exc} ({file})") from None
    except (ValueError, TypeError, IndexError, KeyError, AttributeError, RecursionError) as exc:
        # PyYAML's reader/scanner have a few unguarded corners; never let one escape as a traceback.
        where = _at(loader.get_mark(), file) if positions else file
        raise ConfigError(f"YAML could not be read ({type(exc).__name__}) ({where})") from None
    finally:
        loader.dispose()


def read_yaml(text: str, file: str) -> tuple[dict[str, Any], Marks]:
    """Parse ``text`` (one YAML document whose top level is a mapping)."""
    node = _compose(text, file)
    if node is None:
        raise ConfigError(
            f"empty config: expected a mapping of DLIO sections such as dataset:, reader:, "
            f"train: ({file}:1:1)"
        )
    if not isinstance(node, yaml.MappingNode):
        kind = "a list" if isinstance(node, yaml.SequenceNode) else "a single value"
        raise ConfigError(
            f"top level must be a mapping of DLIO sections (dataset:, reader:, train: …), "
            f"got {kind} ({_mark(node, file)})"
        )
    marks = Marks({}, {})
    data = _Builder(file, marks).build(node, ())
    return data, marks


def read_value(text: str, where: str, path: Path_) -> Any:
    """The YAML value of key ``path`` (a ``--dlio-set`` value), read with the same limits; ``where`` names it."""
    node = _compose(text, where, positions=False)
    if node is None:
        return None
    return _Builder(where, Marks({}, {}), positions=False).build(node, path)


class _Builder:
    """Nodes → plain data, within the node budget, recording marks."""

    def __init__(self, file: str, marks: Marks, *, positions: bool = True) -> None:
        self.file, self.marks, self.positions = file, marks, positions
        self.ctor = yaml.SafeLoader("")
        self.built = 0
        self.open: set[int] = set()  # ids of the collections being built (a cycle is a recursive anchor)

    def where(self, node: yaml.Node) -> str:
        return str(_mark(node, self.file)) if self.positions else self.file

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.built += 1
        if self.built > MAX_NODES:
            raise ConfigError(
                f"{'.'.join(path) or '<top>'}: the document expands to more than {MAX_NODES:,} "
                f"values (aliases re-used over and over, an 'alias bomb'); a DLIO config has a "
                f"few hundred ({self.where(node)})"
            )
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)
        if id(node) in self.open:
            raise ConfigError(
                f"{'.'.join(path) or '<top>'}: recursive alias (an anchor used inside itself); a "
                f"config must be a tree ({self.where(node)})"
            )
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                self.tag(node, f"{_TAG}map", path)
                return self.mapping(node, path)
            self.tag(node, f"{_TAG}seq", path)
            if self.positions:
                self.marks.values[path] = _mark(node, self.file)
            out = []
            for i, item in enumerate(node.value):
                if isinstance(item, yaml.MappingNode) and self.positions:
                    self.marks.values[(*path, str(i))] = _mark(item, self.file)
                out.append(self.build(item, (*path, str(i))))
            return out
        finally:
            self.open.discard(id(node))

    def tag(self, node: yaml.Node, plain: str, path: Path_) -> None:
        if node.tag != plain and not (isinstance(node, yaml.ScalarNode) and node.tag in _SCALAR_TAGS):
            shown = node.tag.replace(_TAG, "!!")
            raise ConfigError(
                f"{'.'.join(path) or '<top>'}: YAML tag {shown} is not accepted; a DLIO config "
                f"holds plain values, lists and mappings (remove the tag) ({self.where(node)})"
            )

    def scalar(self, node: yaml.ScalarNode, path: Path_, *, is_key: bool = False) -> Any:
        self.tag(node, f"{_TAG}str", path)
        if self.positions and not is_key:
            self.marks.values[path] = _mark(node, self.file, node.value)
        try:
            return self.ctor.construct_object(node)
        except (
            ValueError,
            TypeError,
            IndexError,
            KeyError,
            AttributeError,
            OverflowError,
            yaml.YAMLError,
        ) as exc:
            kind = {"int": "a whole number", "float": "a number", "timestamp": "a date"}.get(
                node.tag.replace(_TAG, ""), node.tag.replace(_TAG, "!!")
            )
            if node.tag == f"{_TAG}int" and "digits" in str(exc):
                why = f"an integer of {len(node.value):,} digits is too long to be a setting"
            else:
                shown = "the value" if secret_path(path) else repr(node.value[:40])
                why = f"{shown} is not {kind} (fix it, or remove the tag)"
            raise ConfigError(f"{'.'.join(path) or '<top>'}: {why} ({self.where(node)})") from None

    def key(self, knode: yaml.Node, path: Path_) -> str:
        if not isinstance(knode, yaml.ScalarNode):
            raise ConfigError(f"{'.'.join(path) or '<top>'}: keys must be plain names ({self.where(knode)})")
        key = self.scalar(knode, path, is_key=True)
        if not isinstance(key, str):
            raise ConfigError(
                f"{'.'.join((*path, str(key)))}: key {knode.value!r} is read by YAML as "
                f"{type(key).__name__}; keys must be names ({self.where(knode)})"
            )
        return key

    def mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        out: dict[str, Any] = {}
        merged: dict[str, Any] = {}
        for knode, vnode in node.value:
            if knode.tag == _MERGE:  # `<<: *base` or `<<: [*a, *b]`: earlier sources win, own keys win
                sources = vnode.value if isinstance(vnode, yaml.SequenceNode) else [vnode]
                for src in sources:
                    value = self.build(src, path)
                    if not isinstance(value, dict):
                        raise ConfigError(
                            f"{'.'.join(path) or '<top>'}: '<<' merges mappings only ({self.where(src)})"
                        )
                    for k, v in value.items():
                        merged.setdefault(k, v)
                continue
            key = self.key(knode, path)
            sub = (*path, key)
            if key in out:
                first = self.marks.keys.get(sub)
                said = f" (first at line {first.line})" if first else ""
                raise ConfigError(
                    f"{'.'.join(sub)}: duplicate key{said}; YAML keeps only the last, remove one "
                    f"({self.where(knode)})"
                )
            if self.positions:
                self.marks.keys[sub] = _mark(knode, self.file)
            out[key] = self.build(vnode, sub)
        return {**{k: v for k, v in merged.items() if k not in out}, **out}
