"""A workload YAML as a pytest node, and one item per phase of its plan: schema, datagen, train, au,
checkpoint_write, checkpoint_read. Items decide skips, call the engine on their own event loop, and
record what it returns; the work itself is the engine's."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from pytest_dlio.errors import ConfigError, DlioError

if TYPE_CHECKING:
    from pytest_dlio.engine.workload import Workload
    from pytest_dlio.report.results import PhaseResult
    from pytest_dlio.session import DlioSession


class WorkloadFile(pytest.File):
    """One DLIO workload YAML. Its items run in order on one worker and share one engine Workload."""

    def __init__(self, *, session_state: DlioSession, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = session_state
        self.workload: Workload | None = None
        self.error: ConfigError | None = None
        self.failed: list[str] = []  # names of items that failed, so later ones skip with a reason
        self.schema_ran = False  # whether the schema item ran in this session (else items check the world)

    def collect(self) -> Iterator[pytest.Item]:
        from pytest_dlio.engine.workload import Workload

        st = self.state
        try:
            self.workload = Workload.load(self.path, st.settings, st.storage(),
                                          progress=st.progress(self.path.stem))
        except ConfigError as exc:
            self.error = exc
        except Exception as exc:  # a bug reading one hostile file must not stop the session's other configs
            self.error = ConfigError(f"{self.path}: could not be read ({type(exc).__name__}); this is a "
                                     "pytest-dlio bug, please report it (--dlio-full-trace shows where)")
            self.error.__cause__ = exc
        yield SchemaItem.from_parent(self, name="schema")
        if self.workload is None or st.plan_only or st.show_config:
            return  # --dlio-plan / --dlio-show-config: only the schema item runs; nothing touches storage
        for phase in self.workload.phases:
            yield PhaseItem.from_parent(self, name=phase.name, needs=("schema", *phase.needs))


class DlioItem(pytest.Item):
    """Shared behaviour: user errors render as one clear message; later items skip after a failure."""

    parent: WorkloadFile

    def __init__(self, *, needs: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.needs = needs
        self.report_data: dict[str, Any] = {}  # what reports draw; attached to the report (see plugin.py)
        self.ran_first: list[str] = []  # prerequisites this item ran itself (they were not selected)

    @property
    def workload(self) -> Workload:
        assert self.parent.workload is not None
        return self.parent.workload

    def setup(self) -> None:
        failed = [n for n in self.needs if n in self.parent.failed]
        if failed:
            pytest.skip(f"not run: {failed[0]} failed")
        self.run_prerequisites()

    def run_prerequisites(self) -> None:
        """Run the earlier phases this item needs that did not run in this session (``file.yaml::au`` alone,
        ``--lf``), quietly, in order; skip naming the one that fails. Their figures stay off this item."""
        if self.parent.workload is None or self.parent.error is not None:
            return
        wl = self.workload
        missing = [n for n in self.needs if n != "schema" and n not in wl.results]
        if "schema" in self.needs and not self.parent.schema_ran:
            problems = wl.problems()
            if problems:
                pytest.skip(f"not run: schema fails ({problems[0]}); run {self.parent.nodeid}::schema for all")
        for name in missing:
            try:
                result = asyncio.run(wl.run(name))
            except DlioError as exc:
                result_failure: str | None = str(exc)
            else:
                result_failure = result.failure
            if result_failure:
                self.parent.failed.append(name)
                pytest.skip(f"not run: prerequisite {name} (run here because it was not selected) failed: "
                            f"{result_failure}; run {self.parent.nodeid}::{name} to see it as an item")
        if missing:
            self.ran_first = missing

    def runtest(self) -> None:
        try:
            self.check()
        except BaseException:
            self.parent.failed.append(self.name)
            raise
        finally:
            if self.parent.workload is not None:
                self.report_data = self.workload.report_data(self.name)

    def check(self) -> None:  # pragma: no cover - each item overrides it
        raise NotImplementedError

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, DlioError) and not self.config.getoption("dlio_full_trace"):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Any, int, str]:
        # The failure headline. Not a suffix of the node id: pytest rewrites such a suffix's dots to "::" in
        # -v lines (``x.yaml::au`` became ``x::yaml::au``); the stem names the workload as the summary does.
        return self.path, 0, f"{self.path.stem}::{self.name}"


class SchemaItem(DlioItem):
    """Passes when the config is valid; fails with every problem, each naming key and file:line:col."""

    def check(self) -> None:
        self.parent.schema_ran = True
        if self.parent.error is not None:
            raise self.parent.error
        wl = self.workload
        src = wl.cfg.source
        self.user_properties.append(("dialect", src.dialect))
        if src.notes:
            self.user_properties.append(("config_notes", "; ".join(src.notes)))
        if src.scale != 1.0:
            self.user_properties.append(("scale", src.scale))
        lines = [f"dialect: {src.dialect}"] + [f"note: {n}" for n in src.notes]
        self.add_report_section("call", "dlio", "\n".join(lines))
        problems = wl.problems()
        if problems:
            raise ConfigError(problems)
        st = self.parent.state
        if st.show_config:
            from pytest_dlio.report.config_text import config_text

            self.add_report_section("call", "dlio config", config_text(wl.cfg, st.show_config))
        if st.plan_only:
            from pytest_dlio.checkpointing.plan import plan_lines

            self.add_report_section("call", "dlio plan", "\n".join(plan_lines(wl.cfg, wl.settings.ranks)))


class PhaseItem(DlioItem):
    """One engine phase (datagen, train, au, checkpoint_write, checkpoint_read) run on its own event loop."""

    def check(self) -> None:
        self.record(asyncio.run(self.workload.run(self.name)))

    def record(self, result: PhaseResult) -> None:
        if self.ran_first:
            result.lines.insert(0, f"ran first (not selected in this session): {', '.join(self.ran_first)}")
        for key, value in result.properties:
            self.user_properties.append((key, value))
        if result.lines:
            self.add_report_section("call", "dlio", "\n".join(result.lines))
        if result.failure:
            raise DlioError(result.failure)
