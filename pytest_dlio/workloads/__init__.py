"""The shipped workload YAMLs (package data beside this file) and their names: ``SET/NAME``, ``SET``, globs.

A name is ``mlperf-v3.0/unet3d_h100`` (one workload), ``mlperf-v3.0`` (the whole set) or a glob over
names (``mlperf-v3.0/unet3d_*``, ``*/resnet50_h100``). A set answers to its folder name and to short
forms: case, ``-``/``_``, a ``storage_`` infix and trailing ``.0`` don't matter, so ``mlperf_storage_v3.0``,
``mlperf-v3.0`` and ``mlperf-v3`` are one set, and ``dlio-2.0.0`` is ``dlio_2.0.0``. A ``.yaml`` suffix and
a leading ``mlcommons_configs/`` (the folder's name in older clones) are accepted. Nothing here imports
pytest; the plugin turns :class:`UnknownWorkload` into a usage error.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path

from pytest_dlio.errors import DlioError

ROOT = Path(__file__).resolve().parent
_GLOB = re.compile(r"[*?\[]")
_SUFFIXES = (".yaml", ".yml")

#: Short display name and one-line description per shipped folder (folders not listed still work).
_SETS = {
    "mlperf_storage_v3.0": ("mlperf-v3.0", "MLPerf Storage v3.0"),
    "mlperf_storage_v2.0": ("mlperf-v2.0", "MLPerf Storage v2.0"),
    "dlio": ("dlio", "DLIO's own workloads (dlio_benchmark HEAD)"),
    "dlio_2.0.0": ("dlio-2.0.0", "the PyPI dlio-benchmark 2.0.0 wheel's workloads (older dialect)"),
}


class UnknownWorkload(DlioError):
    """A --dlio-config value that is neither a path nor a shipped name; the message has suggestions."""


@dataclass(frozen=True)
class WorkloadSet:
    """One shipped folder: its folder name, short name, description and workload names (sorted stems)."""

    folder: str
    short: str
    about: str
    names: tuple[str, ...]

    def path(self, name: str) -> Path:
        return ROOT / self.folder / f"{name}.yaml"


def _norm(token: str) -> str:
    """``MLPerf-Storage-v3.0`` → ``mlperf_v3``: the form set names are compared in."""
    token = token.lower().replace("-", "_").replace("storage_", "")
    while token.endswith(".0"):
        token = token[:-2]
    return token


def sets() -> tuple[WorkloadSet, ...]:
    """Every shipped set, in the order of ``_SETS`` then any other folder alphabetically."""
    folders = sorted(p.name for p in ROOT.iterdir() if p.is_dir() and any(p.glob("*.yaml")))
    order = [f for f in _SETS if f in folders] + [f for f in folders if f not in _SETS]
    out = []
    for folder in order:
        short, about = _SETS.get(folder, (folder, ""))
        names = tuple(sorted(p.stem for p in (ROOT / folder).glob("*.yaml")))
        out.append(WorkloadSet(folder, short, about, names))
    return tuple(out)


def _strip(spec: str) -> str:
    spec = spec.strip().rstrip("/")
    if spec.startswith("mlcommons_configs/"):
        spec = spec[len("mlcommons_configs/") :]
    for suffix in _SUFFIXES:
        if spec.endswith(suffix):
            return spec[: -len(suffix)]
    return spec


def _sets_matching(pattern: str, all_sets: tuple[WorkloadSet, ...]) -> list[WorkloadSet]:
    if _GLOB.search(pattern):
        return [
            s
            for s in all_sets
            if fnmatch.fnmatchcase(s.folder, pattern) or fnmatch.fnmatchcase(s.short, pattern)
        ]
    return [s for s in all_sets if _norm(s.folder) == _norm(pattern) or _norm(s.short) == _norm(pattern)]


def resolve(spec: str) -> list[Path]:
    """The shipped YAML paths ``spec`` names (sorted, at least one), else :class:`UnknownWorkload`."""
    all_sets = sets()
    name = _strip(spec)
    set_part, _, name_part = name.partition("/")
    chosen = _sets_matching(set_part, all_sets)
    if chosen and not name_part:
        return [s.path(n) for s in chosen for n in s.names]
    if chosen and "/" not in name_part:
        paths = [
            s.path(n)
            for s in chosen
            for n in s.names
            if (fnmatch.fnmatchcase(n, name_part) if _GLOB.search(name_part) else n == name_part)
        ]
        if paths:
            return paths
    raise UnknownWorkload(_unknown_message(spec, name, chosen, all_sets))


def _unknown_message(
    spec: str, name: str, chosen: list[WorkloadSet], all_sets: tuple[WorkloadSet, ...]
) -> str:
    set_part, _, name_part = name.partition("/")
    if not chosen:
        candidates = [s.short for s in all_sets] + [s.folder for s in all_sets]
        if not name_part:  # a bare workload name: which sets have it?
            owners = [f"{s.short}/{set_part}" for s in all_sets if set_part in s.names]
            if owners:
                return (
                    f"--dlio-config {spec}: no such file or folder; the shipped workload {set_part!r} is in "
                    f"several sets, name one: {', '.join(owners)} (pytest --dlio-list-configs lists every name)"
                    if len(owners) > 1
                    else f"--dlio-config {spec}: no such file or folder; did you mean {owners[0]}? "
                    "(pytest --dlio-list-configs lists every name)"
                )
        close = difflib.get_close_matches(set_part, candidates, n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(dict.fromkeys(close))}? " if close else ""
        return (
            f"--dlio-config {spec}: no such file, folder or glob match, and no shipped workload set "
            f"{set_part!r}; {hint}shipped sets: {', '.join(s.short for s in all_sets)} "
            "(pytest --dlio-list-configs lists every name)"
        )
    names = [f"{s.short}/{n}" for s in chosen for n in s.names]
    close = difflib.get_close_matches(f"{chosen[0].short}/{name_part}", names, n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return (
        f"--dlio-config {spec}: no such file, folder or glob match, and no shipped workload {name_part!r} in "
        f"{', '.join(s.short for s in chosen)}; {hint}(pytest --dlio-list-configs lists every name)"
    )


def listing() -> list[str]:
    """Lines for ``--dlio-list-configs``: each set with its names and aliases, then how to use them."""
    lines = [f"pytest-dlio shipped workloads ({ROOT}):"]
    for s in sets():
        aka = f" (folder {s.folder})" if s.folder != s.short else ""
        lines.append(f"{s.short}{aka}: {s.about}, {len(s.names)} workloads".replace(": , ", ": "))
        lines.append("    " + " ".join(s.names))
    lines.append(
        "use: --dlio-config SET/NAME (e.g. mlperf-v3.0/unet3d_h100), --dlio-config SET (a whole set), "
        "or a glob such as 'mlperf-v3.0/unet3d_*'; a path on disk wins over a name"
    )
    return lines
