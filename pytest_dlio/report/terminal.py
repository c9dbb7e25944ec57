"""The ``dlio`` section of pytest's terminal summary: configs/plans asked for, and the metrics table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_dlio.run import DlioRun


def write_summary(tr: Any, run: DlioRun) -> None:
    for title, lines in run.summary_lines():
        tr.write_sep("-", title)
        for line in lines:
            tr.write_line(line)
    try:
        from pytest_dlio.report.table import render_table
    except ImportError:  # pragma: no cover - during development only
        return
    rows = [r for r in run.rows if any(k.startswith(("train_", "save_", "load_", "files")) for k in r)]
    if rows:
        tr.write_sep("=", "dlio")
        for line in render_table(rows):
            tr.write_line(line)
