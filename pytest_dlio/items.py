"""A workload YAML as a pytest node, and one item per phase of its plan: schema, datagen, train, au,
checkpoint_write, checkpoint_read. Items decide skips, call the engine on their own event loop, and
record what it returns; the work itself is the engine's."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Coroutine, Iterator
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

    def collect(self) -> Iterator[pytest.Item]:
        from pytest_dlio.engine.workload import Workload

        st = self.state
        try:
            self.workload = Workload.load(self.path, st.settings, st.storage(),
                                          progress=st.progress(f"{self.path.name}"))
        except ConfigError as exc:
            self.error = exc
        except Exception as exc:  # a bug reading one hostile file must not stop the session's other configs
            self.error = ConfigError(f"{self.path}: could not be read ({type(exc).__name__}); this is a "
                                     "pytest-dlio bug, please report it (--dlio-full-trace shows where)")
            self.error.__cause__ = exc
        yield SchemaItem.from_parent(self, name="schema")
        if self.workload is None or st.plan_only:
            return
        for phase in self.workload.phases:
            yield PhaseItem.from_parent(self, name=phase.name, needs=("schema", *phase.needs))


class DlioItem(pytest.Item):
    """Shared behaviour: user errors render as one clear message; later items skip after a failure."""

    parent: WorkloadFile

    def __init__(self, *, needs: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.needs = needs

    @property
    def workload(self) -> Workload:
        assert self.parent.workload is not None
        return self.parent.workload

    def setup(self) -> None:
        failed = [n for n in self.needs if n in self.parent.failed]
        if failed:
            pytest.skip(f"not run: {failed[0]} failed")

    def runtest(self) -> None:
        try:
            self.check()
        except BaseException:
            self.parent.failed.append(self.name)
            raise

    def check(self) -> None:  # pragma: no cover - each item overrides it
        raise NotImplementedError

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, DlioError) and not self.config.getoption("dlio_full_trace"):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Any, int, str]:
        return self.path, 0, f"{self.path.name}::{self.name}"


class SchemaItem(DlioItem):
    """Passes when the config is valid; fails with every problem, each naming key and file:line:col."""

    def check(self) -> None:
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


def run_phase(coro: Coroutine[Any, Any, Any]) -> Any:
    """``asyncio.run(coro)``, where SIGTERM cancels the phase — its writers abort, its stores close — and
    then ends the session as Ctrl-C does (KeyboardInterrupt)."""
    stopped: list[int] = []

    async def main() -> Any:
        loop, task = asyncio.get_running_loop(), asyncio.current_task()
        hook = threading.current_thread() is threading.main_thread()
        previous = signal.getsignal(signal.SIGTERM) if hook else None
        def stop() -> None:
            stopped.append(signal.SIGTERM)
            if task is not None:
                task.cancel()

        if hook:
            loop.add_signal_handler(signal.SIGTERM, stop)
        try:
            return await coro
        finally:
            if hook:
                loop.remove_signal_handler(signal.SIGTERM)
                signal.signal(signal.SIGTERM, previous)

    try:
        return asyncio.run(main())
    except asyncio.CancelledError:
        if stopped:
            raise KeyboardInterrupt("SIGTERM") from None
        raise


class PhaseItem(DlioItem):
    """One engine phase (datagen, train, au, checkpoint_write, checkpoint_read) run on its own event loop."""

    def check(self) -> None:
        self.record(run_phase(self.workload.run(self.name)))

    def record(self, result: PhaseResult) -> None:
        for key, value in result.properties:
            self.user_properties.append((key, value))
        if result.lines:
            self.add_report_section("call", "dlio", "\n".join(result.lines))
        if result.failure:
            raise DlioError(result.failure)
