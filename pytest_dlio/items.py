"""A workload YAML as a pytest node, and one item per check: schema, datagen, train, au, checkpoint."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from pytest_dlio.errors import ConfigError, DlioError

if TYPE_CHECKING:
    from pytest_dlio.config.model import WorkloadConfig
    from pytest_dlio.phases import PhaseResult
    from pytest_dlio.run import DlioRun


class WorkloadFile(pytest.File):
    """One DLIO workload YAML. Its items run in order on one worker and share what earlier ones found."""

    def __init__(self, *, run: DlioRun, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.run = run
        self.cfg: WorkloadConfig | None = None
        self.error: ConfigError | None = None
        self.failed: list[str] = []  # names of items that failed, so later ones skip with a reason

    def collect(self) -> Iterator[pytest.Item]:
        try:
            self.cfg = self.run.load(self.path)
        except ConfigError as exc:
            self.error = exc
        except Exception as exc:  # a bug reading one hostile file must not stop the session's other configs
            self.error = ConfigError(f"{self.path}: could not be read ({type(exc).__name__}); this is a "
                                     "pytest-dlio bug, please report it (--dlio-full-trace shows where)")
            self.error.__cause__ = exc
        yield SchemaItem.from_parent(self, name="schema")
        if self.cfg is None or self.run.plan_only:
            return
        yield from phase_items(self, self.cfg)


def phase_items(parent: WorkloadFile, cfg: WorkloadConfig) -> Iterator[pytest.Item]:
    """The items a valid workload gets, in the order they must run."""
    wf = cfg.workflow
    if wf.train or wf.generate_data:
        yield DatagenItem.from_parent(parent, name="datagen")
    if wf.train:
        yield TrainItem.from_parent(parent, name="train")
        yield AuItem.from_parent(parent, name="au")
    if wf.checkpoint:
        if cfg.checkpoint_only:
            if cfg.checkpoint.num_checkpoints_write > 0:
                yield CheckpointItem.from_parent(parent, name="checkpoint_write", which="write")
            if cfg.checkpoint.num_checkpoints_read > 0:
                yield CheckpointItem.from_parent(parent, name="checkpoint_read", which="read")
        elif wf.train:
            yield CheckpointItem.from_parent(parent, name="checkpoint_write", which="write")
            yield CheckpointItem.from_parent(parent, name="checkpoint_read", which="read")


class DlioItem(pytest.Item):
    """Shared behaviour: user errors render as one clear message; later items skip after a failure."""

    parent: WorkloadFile
    needs: tuple[str, ...] = ()

    @property
    def cfg(self) -> WorkloadConfig:
        assert self.parent.cfg is not None
        return self.parent.cfg

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

    def record(self, result: PhaseResult) -> None:
        for key, value in result.properties:
            self.user_properties.append((key, value))
        self.parent.run.record(self, result)
        if result.lines:
            self.add_report_section("call", "dlio", "\n".join(result.lines))
        if result.failure:
            raise DlioError(result.failure)

    def arun(self, make: Callable[[], Coroutine[Any, Any, PhaseResult]]) -> PhaseResult:
        """Run one async phase on this item's own event loop."""
        return asyncio.run(make())

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
        src = self.cfg.source
        self.user_properties.append(("dialect", src.dialect))
        if src.notes:
            self.user_properties.append(("config_notes", "; ".join(src.notes)))
        if src.scale != 1.0:
            self.user_properties.append(("scale", src.scale))
        lines = [f"dialect: {src.dialect}"] + [f"note: {n}" for n in src.notes]
        self.add_report_section("call", "dlio", "\n".join(lines))
        problems = self.parent.run.world_problems(self.cfg)
        if problems:
            raise ConfigError(problems)
        self.parent.run.after_schema(self)


class DatagenItem(DlioItem):
    needs = ("schema",)

    def check(self) -> None:
        self.record(self.parent.run.datagen(self))


class TrainItem(DlioItem):
    needs = ("schema", "datagen")

    def check(self) -> None:
        self.record(self.parent.run.train(self))


class AuItem(DlioItem):
    needs = ("schema", "datagen", "train")

    def check(self) -> None:
        self.record(self.parent.run.au(self))


class CheckpointItem(DlioItem):
    def __init__(self, *, which: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.which = which
        self.needs = ("schema", "datagen", "train", "checkpoint_write") if which == "read" else (
            "schema", "datagen", "train")

    def check(self) -> None:
        self.record(self.parent.run.checkpoint(self, self.which))
