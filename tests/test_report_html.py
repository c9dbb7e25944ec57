"""--dlio-html / --dlio-json: one self-contained page, rendered by headless Chromium, holding the run's numbers."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from pytest_dlio.report.html import render_html
from pytest_dlio.report.rundoc import run_document
from tests.conftest import run
from tests.test_e2e_items import SMALL, small_named

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Debian's chromium is not installed (.ci/run installs it: apt-get install -y chromium)",
)


def rendered_dom(page: Path) -> str:
    """The page's DOM after Chromium loaded and ran it (no network: a file:// URL, networking off)."""
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        out = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--dump-dom",
                page.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    return out.stdout


class Elements(HTMLParser):
    """Every element as (tag, attributes, enclosing chart name)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str], str | None, str | None]] = []
        self.chart: str | None = None
        self.section: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "details":
            self.section = a.get("data-workload")
        if tag == "svg":
            self.chart = a.get("data-chart")
        self.found.append((tag, a, self.chart, self.section))

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self.chart = None

    def points(self, chart: str, workload: str | None = None, tag: str = "circle") -> list[dict[str, str]]:
        return [
            a for t, a, c, s in self.found if t == tag and c == chart and (workload is None or s == workload)
        ]


def parse(dom: str) -> Elements:
    p = Elements()
    p.feed(dom)
    return p


@needs_chromium
def test_page_renders_with_the_runs_points(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", tiny=SMALL)
    result = run(
        pytester,
        "--dlio-config",
        "tiny.yaml",
        "--dlio-output",
        "out",
        "--dlio-html",
        "r/report.html",
        "--dlio-json",
        "r/report.json",
    )
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["dlio html report: */r/report.html"])
    page = pytester.path / "r" / "report.html"
    text = page.read_text()
    assert "<script src" not in text and "<link" not in text and "@import" not in text  # self-contained
    dom = parse(rendered_dom(page))
    summary = json.loads((pytester.path / "out" / "tiny" / "summary.json").read_text())
    au = dom.points("au", "tiny")
    # one point per epoch, holding DLIO's per-epoch AU as summary.json has it
    assert [int(p["data-epoch"]) for p in au] == [1, 2]
    assert [float(p["data-value"]) for p in au] == pytest.approx(summary["metric"]["train_au_percentage"])
    thr = [float(p["data-value"]) for p in dom.points("samples", "tiny")]
    assert thr == pytest.approx(summary["metric"]["train_throughput_samples_per_second"])
    doc = json.loads((pytester.path / "r" / "report.json").read_text())
    wl = doc["workloads"][0]
    series = wl["timeseries"]["train_read"]
    assert [float(p["data-value"]) for p in dom.points("train-mbps", "tiny")] == pytest.approx(
        series["MB_per_second"]
    )
    written = wl["timeseries"]["datagen_write"]
    assert [float(p["data-value"]) for p in dom.points("datagen-mbps", "tiny")] == pytest.approx(
        written["MB_per_second"]
    )
    bars = dom.points("hist-train_read", "tiny", tag="rect")
    assert sum(int(b["data-count"]) for b in bars) == wl["histograms"]["train_read"]["count"] > 0
    ck = dom.points("checkpoint", "tiny", tag="rect")
    assert [(b["data-kind"], int(b["data-index"])) for b in ck] == [
        ("save", 1),
        ("save", 2),
        ("load", 1),
        ("load", 2),
    ]
    verdicts = [
        (a["data-phase"], a["data-outcome"]) for t, a, _, _ in dom.found if t == "tr" and "data-phase" in a
    ]
    assert verdicts == [
        (p, "passed") for p in ("schema", "datagen", "train", "au", "checkpoint_write", "checkpoint_read")
    ]
    assert doc["totals"] == {"workloads": 1, "items": 6, "passed": 6, "failed": 0, "skipped": 0}
    assert wl["run"]["data_uri"].startswith("file://") and wl["run"]["data_emulator"] is None


def _record(name: str, phase: str, outcome: str, **extra: Any) -> dict[str, Any]:
    return {
        "workload": f"cfg/{name}.yaml",
        "phase": phase,
        "nodeid": f"cfg/{name}.yaml::{phase}",
        "outcome": outcome,
        "duration": 1.0,
        "message": None,
        "properties": {},
        **extra,
    }


def test_seventy_workloads_collapse_under_a_summary_table() -> None:
    items = []
    for i in range(70):
        epochs = [{"epoch": 1, "au_percentage": 50.0 + i / 10, "samples_per_second": 100.0}]
        items.append(
            _record(
                f"w{i}",
                "train",
                "failed" if i == 7 else "passed",
                epochs=epochs,
                properties={"train_au_mean_percentage": 50.0 + i / 10},
            )
        )
    html = render_html(run_document(items))
    dom = parse(html)
    rows = [a for t, a, _, _ in dom.found if t == "tr" and "data-workload" in a]
    assert len(rows) == 70
    sections = [a for t, a, _, _ in dom.found if t == "details"]
    assert len(sections) == 70 and [s["data-workload"] for s in sections if "open" in s] == ["w7"]
    assert [float(p["data-value"]) for p in dom.points("au", "w69")] == [pytest.approx(56.9)]


def test_secrets_never_reach_the_page(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", tiny=SMALL)
    result = run(
        pytester,
        "--dlio-config",
        "tiny.yaml",
        "--dlio-show-config",
        "--dlio-json",
        "r.json",
        "--dlio-html",
        "r.html",
        "--dlio-set",
        "storage.storage_options.secret_access_key=TOPSECRET123",
        "++workload.storage.storage_options.account_key=QU5PVEhFUlNFQ1JFVDk=",
    )
    result.assert_outcomes(passed=1)
    for name in ("r.json", "r.html"):
        text = (pytester.path / name).read_text()
        assert "TOPSECRET123" not in text and "QU5PVEhFUlNFQ1JFVDk" not in text, name
    settings = json.loads((pytester.path / "r.json").read_text())["settings"]
    assert settings["overrides"] == [
        "storage.storage_options.secret_access_key=***",
        "++workload.storage.storage_options.account_key=***",
    ]


def test_emulator_is_named_on_the_page() -> None:
    items = [_record("s3", "schema", "passed", run={"data_uri": "s3://b/x", "data_emulator": "moto"})]
    assert "moto (emulator, not real storage)" in render_html(run_document(items))


def test_html_escapes_what_it_shows() -> None:
    html = render_html(
        run_document([_record("x<script>", "schema", "failed", message="<img src=x onerror=1>")])
    )
    assert "<img src=x" not in html and "&lt;img src=x onerror=1&gt;" in html and "x<script>" not in html


@needs_chromium
def test_pytest_html_report_gets_the_charts(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_html")
    pytester.makefile(".yaml", tiny=SMALL)
    result = run(pytester, "--dlio-config", "tiny.yaml", "--html", "ph.html", "--self-contained-html")
    result.assert_outcomes(passed=6)
    dom = parse(rendered_dom(pytester.path / "ph.html"))
    charts = {c for t, _, c, _ in dom.found if t == "svg" and c}
    assert {"au", "samples", "train-mbps", "hist-train_read", "hist-datagen_write", "checkpoint"} <= charts
    assert len([a for t, a, c, _ in dom.found if t == "circle" and c == "au"]) == 2


@needs_chromium
def test_mlperf_set_at_smoke_scale_renders_every_workload(pytester: pytest.Pytester) -> None:
    from tests.conftest import CONFIGS

    result = run(
        pytester,
        "--dlio-config",
        str(CONFIGS / "mlperf_storage_v3.0"),
        "--dlio-scale",
        "smoke",
        "--dlio-html",
        "m.html",
        "--dlio-json",
        "m.json",
        "--dlio-data-root",
        str(pytester.path / ".dlio"),
    )
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)  # au may fail at smoke scale
    doc = json.loads((pytester.path / "m.json").read_text())
    dom = parse(rendered_dom(pytester.path / "m.html"))
    names = [a["data-workload"] for t, a, _, _ in dom.found if t == "tr" and "data-workload" in a]
    assert len(names) == len(doc["workloads"]) == len(list((CONFIGS / "mlperf_storage_v3.0").glob("*.yaml")))
    trained = [
        wl
        for wl in doc["workloads"]
        if any(i["phase"] == "train" and i["outcome"] == "passed" for i in wl["items"])
    ]
    assert len(trained) >= 10
    for wl in trained:
        au = dom.points("au", wl["name"])
        assert [float(p["data-value"]) for p in au] == pytest.approx(
            [e["au_percentage"] for e in wl["epochs"]]
        )
        assert dom.points("hist-train_read", wl["name"], tag="rect"), wl["name"]
    llama = [wl["name"] for wl in doc["workloads"] if wl["name"].startswith("llama3")]
    for name in llama:
        kinds = {b["data-kind"] for b in dom.points("checkpoint", name, tag="rect")}
        assert kinds == {"save", "load"}, name


def test_json_says_an_emulator_served_the_run(pytester: pytest.Pytester) -> None:
    pytest.importorskip("aiobotocore")
    pytester.makefile(".yaml", tiny=SMALL.replace("checkpoint: true", "checkpoint: false"))
    result = run(
        pytester,
        "--dlio-config",
        "tiny.yaml",
        "--dlio-storage",
        "s3://dlio-report/run",
        "--dlio-json",
        "r.json",
    )
    result.assert_outcomes(passed=4)
    run_info = json.loads((pytester.path / "r.json").read_text())["workloads"][0]["run"]
    assert run_info["data_uri"] == "s3://dlio-report/run/data/tiny" and run_info["data_emulator"] == "moto"
    assert render_html(json.loads((pytester.path / "r.json").read_text())).count("moto (emulator") >= 1


def test_json_is_built_from_reports_under_xdist(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makefile(
        ".yaml",
        tiny=SMALL,
        other=small_named("other"),
    )
    result = run(
        pytester,
        "-p",
        "no:benchmark",
        "-n",
        "2",
        "--dlio-config",
        "tiny.yaml",
        "--dlio-config",
        "other.yaml",
        "--dlio-json",
        "r.json",
        "--dlio-output",
        "out",
    )
    result.assert_outcomes(passed=12)
    doc = json.loads((pytester.path / "r.json").read_text())
    assert sorted(wl["name"] for wl in doc["workloads"]) == ["other", "tiny"]
    for wl in doc["workloads"]:
        summary = json.loads((pytester.path / "out" / wl["name"] / "summary.json").read_text())
        assert [e["au_percentage"] for e in wl["epochs"]] == summary["metric"]["train_au_percentage"]
        assert [i["phase"] for i in wl["items"]] == [
            "schema",
            "datagen",
            "train",
            "au",
            "checkpoint_write",
            "checkpoint_read",
        ]
        assert wl["histograms"]["train_read"]["count"] > 0 and wl["checkpoint"]["load"]["durations_seconds"]


def test_workloads_sharing_a_name_keep_their_folders() -> None:
    items = [
        {**_record("unet3d", "schema", "passed"), "workload": f"{d}/unet3d.yaml"} for d in ("dlio", "mlperf")
    ]
    doc = run_document(items)
    assert [wl["name"] for wl in doc["workloads"]] == ["dlio/unet3d", "mlperf/unet3d"]
