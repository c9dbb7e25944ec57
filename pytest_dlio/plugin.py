"""pytest hooks only (wiring); the work lives in items, config, phases and report."""

from __future__ import annotations

import glob
import importlib.util
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from pytest_dlio.options import SHOW_CONFIG_FORMATS, add_dlio_options, rewrite_args

pytest_plugins = [m for m in ["pytest_dlio.storage.pytest_plugin"] if importlib.util.find_spec(m)]
_YAML = (".yaml", ".yml")
_TARGETS = pytest.StashKey[list[Path]]()
_OLD_SIGTERM = pytest.StashKey[Any]()


def _sigterm_as_sigint(signum: int, frame: Any) -> None:
    """SIGTERM between phases stops a DLIO session as Ctrl-C does: whatever handles SIGINT now, else
    KeyboardInterrupt, which pytest turns into a clean exit. During a phase ``items.run_phase`` handles
    SIGTERM instead: it cancels the phase (writers abort, stores close), then raises KeyboardInterrupt."""
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler) and handler is not _sigterm_as_sigint:
        handler(signal.SIGINT, frame)
    else:
        raise KeyboardInterrupt


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dlio", "DLIO workloads (pytest-dlio)")
    add_dlio_options(group.addoption, parser.addini)


def _expand(spec: str) -> tuple[list[str], bool]:
    """The YAMLs/folders ``spec`` names: a path, folder or glob on disk wins; else a shipped workload name
    (``mlperf-v3.0/unet3d_h100``). The flag says the paths came from the shipped catalog."""
    matches = sorted(glob.glob(spec, recursive=True)) if any(c in spec for c in "*?[") else [spec]
    if matches and all(Path(m).exists() for m in matches):
        return matches, False
    from pytest_dlio import workloads

    try:
        return [str(p) for p in workloads.resolve(spec)], True
    except workloads.UnknownWorkload as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.hookimpl
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if config.getoption("dlio_list_configs"):
        from pytest_dlio import workloads

        print("\n".join(workloads.listing()))
        return 0
    return None


# tryfirst: the config paths must replace the command-line targets before pytest reads them.
@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> None:
    ns = early_config.known_args_namespace
    positional = list(ns.file_or_dir or [])
    if ns.dlio_show_config is not None and ns.dlio_show_config not in SHOW_CONFIG_FORMATS:
        positional.append(ns.dlio_show_config)  # --dlio-show-config PATH: PATH was taken as its value
    specs = ns.dlio_config or []
    targets: list[Path] = []
    if specs:
        from pytest_dlio.workloads import ROOT

        # Shipped names are collected from the catalog's root (only the named files are targets), so their
        # node ids read `mlperf_storage_v3.0/unet3d_h100.yaml::train` even with the package outside rootdir.
        expanded = [_expand(spec) for spec in specs]
        targets = list(
            dict.fromkeys(ROOT if named else Path(p).resolve() for found, named in expanded for p in found)
        )
    try:
        args[:] = rewrite_args(args, positional, targets, dlio=bool(specs))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.hookimpl
def pytest_configure(config: pytest.Config) -> None:
    from pytest_dlio.session import STASH_KEY, DlioSession

    specs = config.getoption("dlio_config") or []
    targets = [Path(p).resolve() for s in specs for p in _expand(s)[0]]
    if not specs and not config.args_source == pytest.Config.ArgsSource.ARGS:
        targets = [Path(p).resolve() for p in config.getini("dlio_configs")]
        config.args.extend(str(t) for t in targets)
    elif not specs:  # `pytest unet3d.yaml` / `pytest unet3d.yaml::au`: a YAML named on the command line
        named = [a.partition("::")[0] for a in config.args]
        targets = [Path(a).resolve() for a in named if a.endswith(_YAML) and Path(a).is_file()]
    config.stash[_TARGETS] = targets
    state = config.stash[STASH_KEY] = DlioSession(config)
    config.pluginmanager.register(state, "dlio-session")  # receives the reports (controller side under xdist)
    if targets and threading.current_thread() is threading.main_thread():
        config.stash[_OLD_SIGTERM] = signal.signal(signal.SIGTERM, _sigterm_as_sigint)


@pytest.hookimpl
def pytest_unconfigure(config: pytest.Config) -> None:
    old = config.stash.get(_OLD_SIGTERM, None)
    if old is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, old)


class _RankZeroSpeaks:
    """Under mpirun every rank runs the same items in lockstep, and only rank 0 speaks: the other ranks'
    terminal reporter and JUnit XML are unregistered (trylast: after both were configured). After the report,
    rank 0 ends a job that a hung rank broke."""

    @pytest.hookimpl(trylast=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        from pytest_dlio.session import STASH_KEY

        state = config.stash.get(STASH_KEY, None)
        if state is None or state.comm is None or state.comm.rank == 0:
            return
        from _pytest.junitxml import xml_key

        xml = config.stash.get(xml_key, None)
        if xml is not None:
            config.pluginmanager.unregister(xml)
            del config.stash[xml_key]
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            config.pluginmanager.unregister(reporter)

    # trylast: after JUnit XML and the terminal summary are written
    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        import sys

        from pytest_dlio.session import STASH_KEY

        state = config.stash.get(STASH_KEY, None)
        if state is not None and state.comm is not None:
            sys.stdout.flush()
            sys.stderr.flush()
            state.comm.end_job_if_broken()  # a hung rank would keep mpirun waiting for ever


@pytest.hookimpl
def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.register(_RankZeroSpeaks(), "dlio-rank-zero-speaks")


def _targeted(config: pytest.Config, path: Path) -> bool:
    targets = config.stash.get(_TARGETS, [])
    return any(path == t or t in path.parents for t in targets)


@pytest.hookimpl
def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    # With --dlio-config, only workload YAMLs are collected from the named folders.
    if config.stash.get(_TARGETS, []) and config.getoption("dlio_config") and collection_path.is_file():
        return collection_path.suffix not in _YAML or None
    return None


# tryfirst: a folder named like a workload (x.yaml/) must not be walked as a folder and silently yield
# nothing (exit 5, no message); it becomes a workload whose schema item says what is wrong.
# (On pytest 7 the hook does not exist; there such a folder is walked as before.)
@pytest.hookimpl(tryfirst=True, optionalhook=True)  # optional: pytest < 8 has no such hook
def pytest_collect_directory(path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if path.suffix in _YAML and _targeted(parent.config, path):
        from pytest_dlio.items import WorkloadFile
        from pytest_dlio.session import STASH_KEY

        return WorkloadFile.from_parent(parent, path=path, session_state=parent.config.stash[STASH_KEY])
    return None


@pytest.hookimpl
def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix in _YAML and _targeted(parent.config, file_path):
        from pytest_dlio.items import WorkloadFile
        from pytest_dlio.session import STASH_KEY

        state = parent.config.stash[STASH_KEY]
        node = WorkloadFile.from_parent(parent, path=file_path, session_state=state)
        if not node.nodeid:  # a YAML named outside the rootdir: pytest leaves its node id empty ("::au");
            # an absolute one shows relative to the current folder in -v lines and reports
            node = WorkloadFile.from_parent(
                parent, path=file_path, session_state=state, nodeid=str(file_path)
            )
        return node
    return None


# The figures reports draw travel on the report itself (``report.dlio``): TestReport keeps extra attributes
# through xdist's serialisation, and JUnit never sees them.
@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    from pytest_dlio.items import DlioItem

    if isinstance(item, DlioItem):
        report.dlio = {
            "workload": item.parent.nodeid,
            "phase": item.name,
            **(item.report_data if call.when == "call" else {}),
        }
        if call.when == "call" and item.config.pluginmanager.hasplugin("html"):
            _html_extras(report)
    return report


def _html_extras(report: pytest.TestReport) -> None:
    """pytest-html: the item's charts (the --dlio-html ones) as an extra of its row."""
    from pytest_html import extras  # type: ignore[import-not-found, import-untyped, unused-ignore]

    from pytest_dlio.report.html import charts_block, workload_charts
    from pytest_dlio.report.rundoc import run_document

    doc = run_document([{"nodeid": report.nodeid, "outcome": report.outcome, **report.dlio}])
    block = charts_block(workload_charts(doc["workloads"][0]))
    if block:
        report.extras = [*getattr(report, "extras", []), extras.html(block)]  # type: ignore[attr-defined]


@pytest.hookimpl
def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    from pytest_dlio.session import STASH_KEY

    state = config.stash.get(STASH_KEY, None)
    if state is not None and (state.rows or state.texts or state.written or state.notes):
        from pytest_dlio.report.terminal import write_summary  # only sessions with DLIO output pay for it

        write_summary(terminalreporter, state.summary_lines(), state.rows, [*state.written, *state.notes])


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
    from pytest_dlio import __version__
    from pytest_dlio.session import STASH_KEY

    state = config.stash.get(STASH_KEY, None)
    targets = config.stash.get(_TARGETS, [])
    if not targets and not config.getoption("dlio_storage"):
        return []  # only sessions that use pytest-dlio get its lines
    lines = [f"pytest-dlio {__version__}"]
    if state is not None and targets:
        lines.append(f"dlio output: {state.output_root}")
        if state.scale is not None:
            lines.append(f"dlio scale: {state.scale} (workloads shrunk; every report says by how much)")
    return lines
