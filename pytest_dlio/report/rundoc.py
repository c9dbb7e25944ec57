"""The run document behind ``--dlio-json`` and ``--dlio-html``: every workload's items, figures and charts' data.

Pure: a list of item records in (what the pytest glue collected from the items' reports, so it works under
xdist), one JSON-able dict out. An item record is ``{"workload", "phase", "nodeid", "outcome", "duration",
"message", "properties", ...}`` plus what the engine's ``Workload.report_data(phase)`` gave: ``run``,
``epochs``, ``eval_epochs``, ``timeseries``, ``histograms``, ``checkpoint``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_dlio.report.table import short_ids

FORMAT_VERSION = 1
#: Per-workload figures the summary table shows, by the property that carries them.
SUMMARY_KEYS = (
    "train_au_mean_percentage",
    "au_threshold_percentage",
    "train_throughput_mean_samples_per_second",
    "train_io_mean_MB_per_second",
    "read_MB_per_second_actual",
    "read_latency_p99_ms",
    "datagen_MiB_per_s",
    "datagen_files_written",
    "save_checkpoint_io_mean_GB_per_second",
    "load_checkpoint_io_mean_GB_per_second",
)


def _verdict(outcomes: Sequence[str]) -> str:
    if "failed" in outcomes:
        return "failed"
    if outcomes and all(o == "skipped" for o in outcomes):
        return "skipped"
    return "passed"


def run_document(
    items: Sequence[Mapping[str, Any]], settings: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Group item records by workload (in the order they first appear) into the run document."""
    workloads: dict[str, dict[str, Any]] = {}
    for rec in items:
        key = str(rec.get("workload") or str(rec.get("nodeid", "?")).partition("::")[0])
        wl = workloads.setdefault(
            key,
            {
                "id": key,
                "name": key,
                "run": {},
                "items": [],
                "summary": {},
                "histograms": {},
                "timeseries": {},
                "checkpoint": {},
            },
        )
        props = dict(rec.get("properties") or {})
        wl["items"].append(
            {
                "phase": rec.get("phase"),
                "nodeid": rec.get("nodeid"),
                "outcome": rec.get("outcome"),
                "duration": rec.get("duration"),
                "message": rec.get("message"),
                "properties": props,
            }
        )
        wl["run"].update(rec.get("run") or {})
        for k in SUMMARY_KEYS:
            if k in props and isinstance(props[k], int | float) and not isinstance(props[k], bool):
                wl["summary"][k] = props[k]
        for k in ("epochs", "eval_epochs"):
            if rec.get(k):
                wl[k] = list(rec[k])
        wl["histograms"].update(rec.get("histograms") or {})
        wl["timeseries"].update(rec.get("timeseries") or {})
        ck = rec.get("checkpoint")
        if ck:
            wl["checkpoint"][ck["kind"]] = {k: v for k, v in ck.items() if k != "kind"}
    out = list(workloads.values())
    for wl, name in zip(out, short_ids([wl["id"] for wl in out]), strict=True):
        wl["name"] = name  # the stem, with its folder when two workloads share one (as the terminal table)
        wl["verdict"] = _verdict([str(i["outcome"]) for i in wl["items"]])
    outcomes = [str(i["outcome"]) for wl in out for i in wl["items"]]
    return {
        "pytest_dlio_report": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": dict(settings or {}),
        "totals": {
            "workloads": len(out),
            "items": len(outcomes),
            **{o: outcomes.count(o) for o in ("passed", "failed", "skipped")},
        },
        "workloads": out,
    }


__all__ = ["run_document"]
