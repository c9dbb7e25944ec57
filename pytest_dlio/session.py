"""The plugin's per-session object: the run's settings (from options) and the rows the reports show.

pytest glue only: it builds :class:`~pytest_dlio.engine.settings.RunSettings` from the command line and
collects what items reported (controller side under xdist). Workloads themselves run in the engine.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_dlio.engine.settings import RunSettings
from pytest_dlio.progress import Progress, ProgressFn
from pytest_dlio.report.progress_text import progress_line

STASH_KEY = pytest.StashKey["DlioSession"]()


def settings_from(config: pytest.Config) -> RunSettings:
    opt = config.getoption
    root = opt("dlio_data_root")
    out = opt("dlio_output")
    return RunSettings(
        data_root=Path(root) if root else Path(config.rootpath) / ".dlio",
        output_root=Path(out) if out else None,
        overrides=tuple(opt("dlio_set") or ()),
        scale=opt("dlio_scale"),
        ranks=opt("dlio_ranks") or 1,
        ranks_explicit=opt("dlio_ranks") is not None,
        generate=opt("dlio_generate"),
        verify=not opt("dlio_no_verify"),
        drop_caches=opt("dlio_drop_caches"),
        verify_data=opt("dlio_verify_data"),
        max_bytes=opt("dlio_max_bytes"),
        storage_uri=opt("dlio_storage"),
        runs=opt("dlio_runs"),  # gating: repeated runs
        warmup=opt("dlio_warmup"),
        results_dir=Path(opt("dlio_results_dir")).resolve() if opt("dlio_results_dir") else None,
        rank_timeout=opt("dlio_rank_timeout"),
    )


def check_gating_options(config: pytest.Config) -> None:
    """Options that mean nothing alone are usage errors, not silently ignored."""
    opt = config.getoption
    if opt("dlio_save") and opt("dlio_plan"):
        raise pytest.UsageError(
            "--dlio-save with --dlio-plan would save a baseline without figures; run the "
            "workloads to save one"
        )
    if not opt("dlio_compare"):
        for name, given in (
            ("--dlio-fail-on", opt("dlio_fail_on")),
            ("--dlio-compare-force", opt("dlio_compare_force")),
        ):
            if given:
                raise pytest.UsageError(f"{name} needs --dlio-compare NAME (the baseline to compare with)")


def mpi_settings(config: pytest.Config, settings: RunSettings) -> tuple[RunSettings, Any]:
    """Under an MPI launcher: this rank's Comm and settings for the whole MPI world (rank 0's output
    folder, so every rank writes into the same one); otherwise (settings, None)."""
    from dataclasses import replace

    from pytest_dlio.ranks.mpi import launcher_world_size

    size = launcher_world_size()
    if size <= 1:
        return settings, None
    from pytest_dlio.errors import DlioError
    from pytest_dlio.ranks.mpi import MpiComm

    try:
        comm = MpiComm(timeout=settings.rank_timeout)
    except DlioError as exc:
        raise pytest.UsageError(str(exc)) from None
    asked = config.getoption("dlio_ranks")
    if asked is not None and asked != comm.size:
        raise pytest.UsageError(
            f"--dlio-ranks {asked} under mpirun with {comm.size} processes: the MPI world "
            "is the rank count; drop --dlio-ranks or launch that many processes"
        )
    out = comm.bcast_now(str(settings.output))
    return replace(settings, ranks=comm.size, ranks_explicit=True, mpi=True, output_root=Path(out)), comm


class DlioSession:
    """Settings for every workload of this pytest session, and the report rows items produced."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        check_gating_options(config)
        self.settings, self.comm = mpi_settings(config, settings_from(config))
        self.show_config: str | None = config.getoption("dlio_show_config")
        self.plan_only: bool = config.getoption("dlio_plan")
        self.find_max: bool = config.getoption("dlio_find_max") and self.comm is None
        self.rows: list[dict[str, Any]] = []  # terminal summary rows, filled from reports (xdist-safe)
        self.texts: list[tuple[str, str, str]] = []  # (nodeid, title, text) for config/plan sections
        self.notes: list[str] = []  # lines for the end of the terminal summary (e.g. baseline saved)
        self.items: list[dict[str, Any]] = []  # every dlio item's outcome and figures (for JSON / HTML)
        self.written: list[str] = []  # "dlio html report: PATH" lines for the terminal summary

    @property
    def output_root(self) -> Path:
        return self.settings.output

    @property
    def scale(self) -> float | str | None:
        return self.settings.scale

    def storage(self) -> Any:
        from pytest_dlio.storage.pytest_plugin import get_storage_session

        return get_storage_session(self.config)

    def progress(self, label: str) -> ProgressFn | None:
        """The engine's progress callback for workload ``label``: one terminal line per workload at most every
        ``--dlio-progress-interval`` seconds (0: every event, each phase's last included), written past
        output capture so it shows without ``-s``; None with ``-q``. Terminal only, never reports or JUnit."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        verbose = self.config.getoption("verbose")
        worker = getattr(self.config, "workerinput", {}).get("workerid")
        if (reporter is None and worker is None) or verbose < 0:
            return None
        capman = self.config.pluginmanager.get_plugin("capturemanager")
        interval = float(self.config.getoption("dlio_progress_interval"))
        last: float | None = None  # when this workload's last line was written (its first waits one interval)

        def show(event: Progress) -> None:
            nonlocal last
            now = time.monotonic()
            if last is None:
                last = now
            if event.phase != "wait" and interval > 0 and (event.final or now - last < interval):
                return  # a wait notice always shows: it says why nothing else does
            last = now
            line = f"[dlio] {progress_line(label, event)}"
            with capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext():
                if worker is None and reporter is not None:
                    reporter.write_line(line)
                else:  # an xdist worker: its stderr is the controller's terminal (stdout is the channel)
                    sys.stderr.write(f"{'' if verbose > 0 else chr(10)}{line} ({worker})\n")
                    sys.stderr.flush()

        return show

    # ---- gating: the --dlio-compare baseline (read once per process), --dlio-save (controller) ----
    def baseline(self) -> tuple[Path, dict[str, Any]]:
        """The --dlio-compare baseline's path and document; DlioError (each time asked) when unreadable."""
        from pytest_dlio.errors import DlioError
        from pytest_dlio.gating.baseline import baseline_path, load

        if not hasattr(self, "_baseline"):
            path = baseline_path(self.config.getoption("dlio_compare"), self.settings.data_root)
            try:
                self._baseline: tuple[Path, dict[str, Any]] | DlioError = (path, load(path))
            except DlioError as exc:
                self._baseline = exc
        if isinstance(self._baseline, DlioError):
            raise self._baseline
        return self._baseline

    def _save_baseline(self) -> None:
        name = self.config.getoption("dlio_save")
        if not name or hasattr(self.config, "workerinput"):
            return  # under xdist the controller saves, from the reports every worker sent
        from pytest_dlio.gating.baseline import baseline_path, build, save, workloads_from_rows

        workloads = workloads_from_rows(self.rows)
        path = save(baseline_path(name, self.settings.data_root), build(name, workloads))
        failed = sum(1 for w in workloads.values() for outcome in w["items"].values() if outcome == "failed")
        self.notes.append(
            f"dlio baseline {name!r} saved: {path} ({len(workloads)} workloads"
            + (f"; {failed} item(s) failed — their figures are saved as measured)" if failed else ")")
        )

    # ---- reporting (controller side; fed from reports so it works under xdist) ----
    @pytest.hookimpl
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Session-level JUnit properties: which pytest-dlio, storage and scale produced this report."""
        from _pytest.junitxml import xml_key

        from pytest_dlio import __version__
        from pytest_dlio.report.identity import public_uri

        xml = self.config.stash.get(xml_key, None)
        if xml is None or hasattr(self.config, "workerinput"):
            return
        xml.add_global_property("pytest_dlio_version", __version__)
        xml.add_global_property("dlio_storage", public_uri(self.settings.storage_uri or "from each config"))
        xml.add_global_property("dlio_scale", str(self.settings.scale or 1.0))
        xml.add_global_property("dlio_ranks", self.settings.ranks)

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, "dlio", None)
        if report.when == "call":
            for title, text in report.sections:
                name = title.removeprefix("Captured ").removesuffix(" call")
                if name in ("dlio config", "dlio plan", "dlio max accelerators"):
                    self.texts.append((report.nodeid, name, text))
        # one row per dlio item: its call, or the setup that skipped or failed it
        if data is None or not (report.when == "call" or (report.when == "setup" and not report.passed)):
            return
        props = dict(report.user_properties)
        self.rows.append(
            {"nodeid": report.nodeid, "outcome": report.outcome, "phase": data["phase"], **props}
        )
        message = None
        if not report.passed:
            message = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longreprtext
        self.items.append(
            {
                "nodeid": report.nodeid,
                "outcome": report.outcome,
                "duration": report.duration,
                "message": message,
                "properties": props,
                **data,
            }
        )

    def run_settings(self) -> dict[str, Any]:
        """The run's settings for reports: secrets in --dlio-set values and URIs hidden."""
        from pytest_dlio.config.secrets import SECRET_KEYS
        from pytest_dlio.storage.uri import scrub

        st = self.settings
        sets = [
            f"{o.partition('=')[0]}=***"
            if o.partition("=")[0].rsplit(".", 1)[-1].lstrip("+") in SECRET_KEYS
            else scrub(o)
            for o in st.overrides
        ]
        return {
            "scale": st.scale,
            "ranks": st.ranks,
            "storage": scrub(st.storage_uri) if st.storage_uri else None,
            "data_root": str(st.data_root),
            "output": str(st.output),
            "generate": st.generate,
            "overrides": sets,
        }

    @pytest.hookimpl
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(self.config, "workerinput") or (self.comm is not None and self.comm.rank != 0):
            return  # the controller (under MPI: rank 0) writes the run's files from the reports it received
        self._save_baseline()
        self._write_run_reports()

    def _write_run_reports(self) -> None:
        json_path, html_path = self.config.getoption("dlio_json"), self.config.getoption("dlio_html")
        if not (json_path or html_path):
            return
        import json

        from pytest_dlio.report.html import render_html
        from pytest_dlio.report.rundoc import run_document

        doc = run_document(self.items, self.run_settings())
        for path, text in (
            (json_path, lambda: json.dumps(doc, indent=1)),
            (html_path, lambda: render_html(doc)),
        ):
            if path:  # files to share: plain writes, so the user's umask applies (not mkstemp's 0600)
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                Path(path).write_text(text(), encoding="utf-8")
        self.written += [
            f"dlio {label} report: {Path(path).resolve()}"
            for label, path in (("json", json_path), ("html", html_path))
            if path
        ]

    def summary_lines(self) -> list[tuple[str, list[str]]]:
        return [
            (f"{title}: {nodeid.split('::')[0]}", text.rstrip("\n").split("\n"))
            for nodeid, title, text in self.texts
        ]
