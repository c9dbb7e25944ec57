"""pytest hooks only (wiring); the work lives in items, config, phases and report."""

from __future__ import annotations

import glob
import importlib.util
from pathlib import Path
from typing import Any

import pytest

from pytest_dlio.options import add_dlio_options

pytest_plugins = [m for m in ["pytest_dlio.storage.pytest_plugin"] if importlib.util.find_spec(m)]
_YAML = (".yaml", ".yml")
_TARGETS = pytest.StashKey[list[Path]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dlio", "DLIO workloads (pytest-dlio)")
    add_dlio_options(group.addoption, parser.addini)


def _expand(spec: str) -> list[str]:
    matches = sorted(glob.glob(spec, recursive=True)) if any(c in spec for c in "*?[") else [spec]
    if not matches or not all(Path(m).exists() for m in matches):
        raise pytest.UsageError(f"--dlio-config {spec}: no such file, folder or glob match")
    return matches


# tryfirst: the config paths must replace the command-line targets before pytest reads them.
@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    specs = early_config.known_args_namespace.dlio_config or []
    if specs:
        paths = [p for spec in specs for p in _expand(spec)]
        positional = set(early_config.known_args_namespace.file_or_dir or [])
        args[:] = [a for a in args if a not in positional] + paths


@pytest.hookimpl
def pytest_configure(config: pytest.Config) -> None:
    from pytest_dlio.session import STASH_KEY, DlioSession

    specs = config.getoption("dlio_config") or []
    targets = [Path(p).resolve() for s in specs for p in _expand(s)]
    if not specs and not config.args_source == pytest.Config.ArgsSource.ARGS:
        targets = [Path(p).resolve() for p in config.getini("dlio_configs")]
        config.args.extend(str(t) for t in targets)
    config.stash[_TARGETS] = targets
    state = config.stash[STASH_KEY] = DlioSession(config)
    config.pluginmanager.register(state, "dlio-session")  # receives the reports (controller side under xdist)


def _targeted(config: pytest.Config, path: Path) -> bool:
    targets = config.stash.get(_TARGETS, [])
    return any(path == t or t in path.parents for t in targets)


@pytest.hookimpl
def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    # With --dlio-config, only workload YAMLs are collected from the named folders.
    if config.stash.get(_TARGETS, []) and config.getoption("dlio_config") and collection_path.is_file():
        return collection_path.suffix not in _YAML or None
    return None


@pytest.hookimpl
def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix in _YAML and _targeted(parent.config, file_path):
        from pytest_dlio.items import WorkloadFile
        from pytest_dlio.session import STASH_KEY

        return WorkloadFile.from_parent(parent, path=file_path, session_state=parent.config.stash[STASH_KEY])
    return None


@pytest.hookimpl
def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    from pytest_dlio.session import STASH_KEY

    state = config.stash.get(STASH_KEY, None)
    if state is not None and (state.rows or state.texts):
        from pytest_dlio.report.terminal import write_summary  # only sessions with DLIO output pay for it

        write_summary(terminalreporter, state.summary_lines(), state.rows)


# optionalhook: pytest-xdist may be absent. A workload's items (schema → datagen → train → au → checkpoint)
# must run in order on one worker, so `-n N` schedules whole files (`--dist loadfile`) unless told otherwise.
@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getoption("dist") == "load" and config.stash.get(_TARGETS, []):
        from xdist.scheduler import LoadFileScheduling

        return LoadFileScheduling(config, log)
    return None


@pytest.hookimpl
def pytest_report_header(config: pytest.Config) -> list[str]:
    from pytest_dlio.session import STASH_KEY

    state = config.stash.get(STASH_KEY, None)
    if state is None or not config.stash.get(_TARGETS, []):
        return []
    lines = [f"dlio output: {state.output_root}"]
    if state.scale is not None:
        lines.append(f"dlio scale: {state.scale} (workloads shrunk; every report says by how much)")
    return lines
