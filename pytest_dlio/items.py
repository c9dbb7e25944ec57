"""A workload YAML as a pytest node, and one item per phase of its plan: schema, datagen, train, au,
checkpoint_write, checkpoint_read. Items decide skips, call the engine on their own event loop, and
record what it returns; the work itself is the engine's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from pytest_dlio.errors import ConfigError, DlioError

if TYPE_CHECKING:
    from pytest_dlio.engine.runner import Runner
    from pytest_dlio.engine.workload import Workload
    from pytest_dlio.gating.datasize import Datasize
    from pytest_dlio.gating.rules import Context
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
        self._runner: Runner | None = None

    def runner(self) -> Runner:
        """Who runs this workload's phases (this process, local rank processes, or this MPI rank)."""
        if self._runner is None:
            from pytest_dlio.engine.runner import make_runner

            assert self.workload is not None
            self._runner = make_runner(self.workload)
        return self._runner

    def teardown(self) -> None:
        if self._runner is not None:
            self._runner.close()
            self._runner = None

    def collect(self) -> Iterator[pytest.Item]:
        from pytest_dlio.engine.naming import workload_name
        from pytest_dlio.engine.workload import Workload

        st = self.state
        try:
            self.workload = Workload.load(
                self.path,
                st.settings,
                st.storage(),
                comm=st.comm,
                name=workload_name(self.path, self.config.rootpath),
                progress=st.progress(self.path.stem),
            )
        except ConfigError as exc:
            self.error = exc
        except Exception as exc:  # a bug reading one hostile file must not stop the session's other configs
            self.error = ConfigError(
                f"{self.path}: could not be read ({type(exc).__name__}); this is a "
                "pytest-dlio bug, please report it (--dlio-full-trace shows where)"
            )
            self.error.__cause__ = exc
        yield SchemaItem.from_parent(self, name="schema")
        if self.workload is None:
            return
        if not (st.plan_only or st.show_config):  # plan / show-config: nothing touches storage
            for phase in self.workload.phases:
                yield PhaseItem.from_parent(self, name=phase.name, needs=("schema", *phase.needs))
            if st.find_max and self.workload.cfg.workflow.train:
                yield FindMaxItem.from_parent(self, name="max_accelerators", needs=("schema", "datagen"))
        yield from gating_items(self)


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
                pytest.skip(
                    f"not run: schema fails ({problems[0]}); run {self.parent.nodeid}::schema for all"
                )
        for name in missing:
            try:
                result = self.parent.runner().run(name)
            except DlioError as exc:
                result_failure: str | None = str(exc)
            else:
                result_failure = result.failure
            if result_failure:
                self.parent.failed.append(name)
                pytest.skip(
                    f"not run: prerequisite {name} (run here because it was not selected) failed: "
                    f"{result_failure}; run {self.parent.nodeid}::{name} to see it as an item"
                )
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
        self.record_identity()
        problems = wl.problems()
        if problems:
            raise ConfigError(problems)
        st = self.parent.state
        if st.show_config:
            from pytest_dlio.report.config_text import config_text

            self.add_report_section("call", "dlio config", config_text(wl.cfg, st.show_config))
        if st.plan_only:
            from pytest_dlio.checkpointing.plan import plan_lines

            lines = plan_lines(wl.cfg, wl.settings.ranks) + gating_plan_lines(self.parent)
            self.add_report_section("call", "dlio plan", "\n".join(lines))

    def record_identity(self) -> None:
        """What this workload's results are (version, config hash, scale, ranks, hosts, storage): JUnit
        properties on the schema item, the same as summary.json's ``pytest_dlio.run``."""
        ident = self.workload.identity(start_emulators=not self.parent.state.plan_only)
        self.user_properties.append(("workload", self.workload.name))
        self.user_properties.extend(ident.properties())


class PhaseItem(DlioItem):
    """One engine phase (datagen, train, au, checkpoint_write, checkpoint_read) run on its own event loop."""

    def check(self) -> None:
        self.record(self.parent.runner().run(self.name))

    def record(self, result: PhaseResult) -> None:
        if self.ran_first:
            result.lines.insert(0, f"ran first (not selected in this session): {', '.join(self.ran_first)}")
        for key, value in result.properties:
            self.user_properties.append((key, value))
        if result.lines:
            self.add_report_section("call", "dlio", "\n".join(result.lines))
        if result.failure:
            raise DlioError(result.failure)


# ---- gating items (pytest_dlio.gating does the work): stability, regression, mlperf_rules ----
def gating_items(parent: WorkloadFile) -> Iterator[pytest.Item]:
    """The items --dlio-runs, --dlio-compare and --dlio-mlperf add after a workload's phases."""
    if parent.state.show_config and not parent.state.plan_only:
        return  # --dlio-show-config: only the schema item runs
    if parent.state.plan_only:  # nothing runs: only the rules can be judged
        if parent.config.getoption("dlio_mlperf"):
            yield MlperfRulesItem.from_parent(parent, name="mlperf_rules", needs=("schema",))
        return
    measured = tuple(p.name for p in parent.workload.phases if p.name != "au") if parent.workload else ()
    if parent.config.getoption("dlio_runs") > 1:
        yield StabilityItem.from_parent(parent, name="stability", needs=("schema", *measured))
    if parent.config.getoption("dlio_compare"):
        yield RegressionItem.from_parent(parent, name="regression", needs=("schema", *measured))
    if parent.config.getoption("dlio_mlperf"):
        yield MlperfRulesItem.from_parent(parent, name="mlperf_rules", needs=("schema",))


def mlperf_context(parent: WorkloadFile) -> Context:
    """What the MLPerf rules judge besides the config: division, overrides, cluster, runs, measured AU."""
    from pytest_dlio.config.load import parse_override
    from pytest_dlio.gating.rules import Context
    from pytest_dlio.report.dlio_json import host_memory_gb

    opt, wl = parent.config.getoption, parent.workload
    assert wl is not None
    au = wl.results["au"].value("train_au_mean_percentage") if "au" in wl.results else None
    return Context(
        division=opt("dlio_mlperf") or "closed",
        overrides=tuple(".".join(parse_override(o)[0]) for o in wl.settings.overrides),
        accelerators=wl.settings.ranks,
        hosts=opt("dlio_hosts"),
        memory_gib_per_host=opt("dlio_host_memory_gb") or host_memory_gb(),
        runs=wl.settings.runs,
        warmup=wl.settings.warmup,
        drop_caches=wl.settings.drop_caches,
        measured_au_percentage=float(au) if isinstance(au, int | float) else None,
    )


def mlperf_datasize(parent: WorkloadFile) -> Datasize | None:
    """How many training files MLPerf requires for this workload on this cluster (None: not training)."""
    from pytest_dlio.gating.datasize import required_files

    wl = parent.workload
    if wl is None or not wl.cfg.workflow.train or wl.cfg.checkpoint_only:
        return None
    ctx = mlperf_context(parent)
    return required_files(
        wl.cfg, accelerators=ctx.accelerators, hosts=ctx.hosts, memory_gib_per_host=ctx.memory_gib_per_host
    )


def gating_plan_lines(parent: WorkloadFile) -> list[str]:
    """The --dlio-plan line saying how many training files MLPerf requires on this cluster."""
    size = mlperf_datasize(parent)
    return [size.line()] if size is not None else []


class RegressionItem(DlioItem):
    """Fails when a figure got worse than --dlio-fail-on allows against the --dlio-compare baseline."""

    def check(self) -> None:
        from pytest_dlio.gating.compare import DEFAULT_FAIL_ON, against_baseline

        path, doc = self.parent.state.baseline()
        wl, opt = self.workload, self.config.getoption
        figures = {k: v for result in wl.results.values() for k, v in result.properties}
        result = against_baseline(
            doc,
            str(path),
            wl.name,
            wl.identity().as_dict(),
            figures,
            opt("dlio_fail_on") or DEFAULT_FAIL_ON,
            explicit=bool(opt("dlio_fail_on")),
            force=opt("dlio_compare_force"),
        )
        self.add_report_section("call", "dlio", "\n".join(result.lines))
        self.user_properties.append(("regressions", len(result.failures)))
        if result.failures:
            raise DlioError(f"regression against baseline {doc.get('name')!r}: " + "; ".join(result.failures))


class StabilityItem(DlioItem):
    """Fails when a headline figure varies more across --dlio-runs than MLPerf allows (5 %)."""

    def check(self) -> None:
        from pytest_dlio.gating.stats import HEADLINE, STABILITY_LIMIT_PERCENT, unstable

        problems: list[str] = []
        for result in self.workload.results.values():
            props = dict(result.properties)
            problems += unstable(props)
            for name in HEADLINE:
                if f"{name}_cov" in props:
                    self.user_properties.append((f"{name}_cov", props[f"{name}_cov"]))
        self.user_properties.append(("stability_limit_percent", STABILITY_LIMIT_PERCENT))
        if problems:
            raise DlioError("not stable: " + "; ".join(problems))


class MlperfRulesItem(DlioItem):
    """Fails when the run would not be a valid MLPerf Storage run in the --dlio-mlperf division."""

    def check(self) -> None:
        from pytest_dlio.gating.rules import check

        ctx = mlperf_context(self.parent)
        found = check(self.workload.cfg, ctx)
        self.user_properties.append(("mlperf_division", ctx.division))
        self.user_properties.append(("mlperf_violations", len(found)))
        size = mlperf_datasize(self.parent)
        if size is not None:
            self.user_properties.append(("mlperf_required_files_train", size.files))
            self.add_report_section("call", "dlio", size.line())
        if found:
            raise DlioError(
                f"not a valid MLPerf Storage {ctx.division.upper()} run ({len(found)} rule(s)):\n"
                + "\n".join(f"  {v}" for v in found)
            )


class FindMaxItem(PhaseItem):
    """``--dlio-find-max``: the most local accelerators that keep the AU threshold (engine.findmax)."""

    def check(self) -> None:
        from pytest_dlio.engine.findmax import doc, find_max

        result = find_max(self.workload)
        self.parent.runner().add_to_summary(doc(result))
        self.add_report_section("call", "dlio max accelerators", result.lines[0])
        self.record(result)
