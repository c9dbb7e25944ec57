"""The plugin's per-session object: the run's settings (from options) and the rows the reports show.

pytest glue only: it builds :class:`~pytest_dlio.engine.settings.RunSettings` from the command line and
collects what items reported (controller side under xdist). Workloads themselves run in the engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_dlio.engine.settings import RunSettings

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
    )


class DlioSession:
    """Settings for every workload of this pytest session, and the report rows items produced."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.settings = settings_from(config)
        self.show_config: str | None = config.getoption("dlio_show_config")
        self.plan_only: bool = config.getoption("dlio_plan")
        self.rows: list[dict[str, Any]] = []  # terminal summary rows, filled from reports (xdist-safe)
        self.texts: list[tuple[str, str, str]] = []  # (nodeid, title, text) for config/plan sections

    @property
    def output_root(self) -> Path:
        return self.settings.output

    @property
    def scale(self) -> float | str | None:
        return self.settings.scale

    def storage(self) -> Any:
        from pytest_dlio.storage.pytest_plugin import get_storage_session

        return get_storage_session(self.config)

    def progress(self, label: str) -> Any:
        """A callback writing progress lines for ``label`` to the terminal (none with ``-q``)."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")

        def say(text: str) -> None:
            if reporter is not None and self.config.getoption("verbose") >= 0:
                reporter.write_line(f"[dlio] {label}: {text}")

        return say

    # ---- reporting (controller side; fed from reports so it works under xdist) ----
    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        for title, text in report.sections:
            name = title.removeprefix("Captured ").removesuffix(" call")
            if name in ("dlio config", "dlio plan"):
                self.texts.append((report.nodeid, name, text))
        props = dict(report.user_properties)
        if props:
            self.rows.append({"nodeid": report.nodeid, "outcome": report.outcome, **props})

    def summary_lines(self) -> list[tuple[str, list[str]]]:
        return [(f"{title}: {nodeid.split('::')[0]}", text.rstrip("\n").split("\n"))
                for nodeid, title, text in self.texts]
