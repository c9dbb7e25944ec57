"""The ``dlio`` section of pytest's terminal summary: configs/plans asked for, and the metrics table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pytest_dlio.report.table import render_table


def write_summary(
    tr: Any,
    texts: Sequence[tuple[str, list[str]]],
    rows: Sequence[Mapping[str, Any]],
    written: Sequence[str] = (),
) -> None:
    for title, lines in texts:
        tr.write_sep("-", title)
        for line in lines:
            tr.write_line(line)
    if rows:
        tr.write_sep("=", "dlio")
        for line in render_table(rows):
            tr.write_line(line)
    for line in written:
        tr.write_line(line)
