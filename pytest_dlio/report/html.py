"""``--dlio-html``: the run document (report/rundoc.py) as one self-contained page with inline SVG charts.

No script, no stylesheet or font from the network: the page views offline. A summary table comes first (one
row per workload, linking to its section); each workload is a collapsible ``<details>`` section (open when it
is the only one or when it failed) with what was run, its items and verdicts, and its charts: per-epoch AU
and samples/s, MB/s and read latency per second, read/write latency distributions, checkpoint timings.

Every plotted point carries its value in ``data-*`` attributes and a ``<title>`` (hover text), so a test (or
a reader's browser) finds the run's numbers in the DOM.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from pytest_dlio.report.rundoc import SUMMARY_KEYS

#: Charts draw a marker per point up to this many points; longer series are a line only.
MAX_MARKERS = 600
W, H = 560, 200  # chart size (px)
ML, MR, MT, MB = 56, 12, 24, 34  # margins: left (y labels), right, top (title), bottom (x labels)

CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em;color:#1d2330;max-width:1250px}
h1{font-size:1.4em;margin:0 0 .3em}h2{font-size:1.1em;margin:1em 0 .4em}
table{border-collapse:collapse;margin:.4em 0}td,th{padding:2px 8px;border-bottom:1px solid #e3e6ec;text-align:left}
th{background:#f3f5f9;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
.passed{color:#17803d;font-weight:600}.failed{color:#c0262d;font-weight:600}.skipped{color:#8a6d00;font-weight:600}
details{border:1px solid #d9dde5;border-radius:6px;margin:.6em 0;padding:.3em .8em}
summary{cursor:pointer;font-weight:600;font-size:1.05em}
.msg{white-space:pre-wrap;font-family:ui-monospace,monospace;font-size:12px;color:#7a1d22}
.muted{color:#6b7386}code{font-size:12px}
"""


#: The charts' own style (also inlined where pytest-html shows them).
CHART_CSS = """
.charts{display:flex;flex-wrap:wrap;gap:10px}svg.chart{background:#fbfcfe;border:1px solid #e3e6ec;border-radius:4px}
svg.chart text{font:11px system-ui,sans-serif;fill:#4a5265}svg.chart .t{font-weight:600;fill:#1d2330;font-size:12px}
svg.chart .ax{stroke:#9aa3b5;stroke-width:1}svg.chart .gr{stroke:#e6e9ef;stroke-width:1}
svg.chart polyline{fill:none;stroke:#2f6fdb;stroke-width:1.6}svg.chart circle.pt{fill:#2f6fdb}
svg.chart rect.bar{fill:#5b8def}svg.chart rect.bar.load{fill:#e07b39}
"""


#: The page's one script: following a summary link opens the workload's section.
OPEN_ON_LINK = (
    "function dlioOpen(){var e=document.getElementById(location.hash.slice(1));"
    "if(e&&e.tagName==='DETAILS'){e.open=true;}}addEventListener('hashchange',dlioOpen);dlioOpen();"
)


def _fmt(v: Any, digits: int = 2) -> str:
    if isinstance(v, bool) or v is None:
        return "" if v is None else str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if v != v:
            return "nan"
        return f"{v:,.{digits}f}" if abs(v) < 1e6 else f"{v:.3g}"
    return str(v)


def _attrs(d: Mapping[str, Any]) -> str:
    return "".join(f' data-{escape(k)}="{escape(str(v))}"' for k, v in d.items())


def _ticks(lo: float, hi: float, n: int = 4, *, integer: bool = False) -> list[float]:
    """Round tick values from at or below ``lo`` to at or above ``hi``."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    if integer:
        step = max(1.0, math.ceil(step))
    v = math.floor(lo / step) * step
    out = [round(v, 10)]
    while out[-1] < hi - step * 1e-9:
        v += step
        out.append(round(v, 10))
    return out


def _frame(
    chart: str,
    title: str,
    x_label: str,
    y_label: str,
    body: list[str],
    xt: list[tuple[float, str]],
    yt: list[tuple[float, str]],
    extra: Mapping[str, Any] | None = None,
) -> str:
    parts = [
        f'<svg class="chart" data-chart="{escape(chart)}"{_attrs(extra or {})} width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(title)}">',
        f'<text class="t" x="{ML}" y="15">{escape(title)}</text>',
    ]
    for y, label in yt:
        parts.append(
            f'<line class="gr" x1="{ML}" x2="{W - MR}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text x="{ML - 4}" y="{y + 4:.1f}" text-anchor="end">{escape(label)}</text>'
        )
    for x, label in xt:
        parts.append(f'<text x="{x:.1f}" y="{H - MB + 14}" text-anchor="middle">{escape(label)}</text>')
    parts.append(
        f'<line class="ax" x1="{ML}" x2="{W - MR}" y1="{H - MB}" y2="{H - MB}"/>'
        f'<line class="ax" x1="{ML}" x2="{ML}" y1="{MT}" y2="{H - MB}"/>'
    )
    parts.append(
        f'<text x="{(ML + W - MR) / 2:.0f}" y="{H - 4}" text-anchor="middle">{escape(x_label)}</text>'
    )
    parts.append(
        f'<text x="12" y="{(MT + H - MB) / 2:.0f}" text-anchor="middle" '
        f'transform="rotate(-90 12 {(MT + H - MB) / 2:.0f})">{escape(y_label)}</text>'
    )
    return "".join(parts + body + ["</svg>"])


def line_chart(
    chart: str,
    title: str,
    xs: Sequence[float],
    ys: Sequence[float],
    *,
    x_label: str,
    y_label: str,
    point_attrs: Sequence[Mapping[str, Any]] | None = None,
    hover: Sequence[str] | None = None,
    y_min: float | None = 0.0,
) -> str:
    """A line with a marker per point (each with its ``data-*`` values and a hover title)."""
    if not xs:
        return ""
    x0, x1 = min(xs), max(xs)
    if x1 == x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    lo = min(ys) if y_min is None else min(y_min, min(ys))
    yticks = _ticks(lo, max(ys) if max(ys) > lo else lo + 1)
    y0, y1 = yticks[0], yticks[-1]

    def px(x: float) -> float:
        return ML + (x - x0) / (x1 - x0) * (W - ML - MR)

    def py(y: float) -> float:
        return H - MB - (y - y0) / ((y1 - y0) or 1.0) * (H - MT - MB)

    pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys, strict=True))
    body = [f'<polyline points="{pts}"/>']
    if len(xs) <= MAX_MARKERS:
        for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
            attrs = dict(point_attrs[i]) if point_attrs else {"x": x, "value": y}
            label = hover[i] if hover else f"{_fmt(x)}: {_fmt(y)}"
            body.append(
                f'<circle class="pt" cx="{px(x):.1f}" cy="{py(y):.1f}" r="3"{_attrs(attrs)}>'
                f"<title>{escape(label)}</title></circle>"
            )
    xt_vals = _ticks(x0, x1, 5) if len(xs) > 8 else list(xs)
    xt = [(px(v), f"{v:,g}") for v in xt_vals if x0 <= v <= x1]
    yt = [(py(v), f"{v:,g}") for v in yticks]
    return _frame(chart, title, x_label, y_label, body, xt, yt, {"points": len(xs)})


def histogram_chart(chart: str, title: str, hist: Mapping[str, Any]) -> str:
    """An HDR histogram's log buckets as bars on a log latency axis; p50/p99 in the title."""
    buckets = hist.get("buckets") or []
    if not buckets:
        return ""
    lo = math.log10(max(1.0, buckets[0][0]))
    hi = math.log10(buckets[-1][1])
    if hi <= lo:
        hi = lo + 1
    top = max(c for _, _, c in buckets)
    yticks = _ticks(0, top, integer=True)

    def px(us: float) -> float:
        return ML + (math.log10(max(1.0, us)) - lo) / (hi - lo) * (W - ML - MR)

    def py(c: float) -> float:
        return H - MB - c / (yticks[-1] or 1) * (H - MT - MB)

    body = []
    for b_lo, b_hi, count in buckets:
        x, x2 = px(b_lo), px(b_hi)
        body.append(
            f'<rect class="bar" x="{x:.1f}" y="{py(count):.1f}" width="{max(1.0, x2 - x - 0.5):.1f}" '
            f'height="{H - MB - py(count):.1f}"{_attrs({"low-us": b_lo, "high-us": b_hi, "count": count})}>'
            f"<title>{_fmt(b_lo / 1000, 3)}–{_fmt(b_hi / 1000, 3)} ms: {count:,}</title></rect>"
        )
    xt = [(px(10**e), _ms_label(10**e)) for e in range(math.ceil(lo), math.floor(hi) + 1)]
    yt = [(py(v), _fmt(v, 0)) for v in yticks]
    full = (
        f"{title}: n={hist.get('count', 0):,} · p50 {_fmt(hist.get('p50_ms'), 3)} · "
        f"p99 {_fmt(hist.get('p99_ms'), 3)} · max {_fmt(hist.get('max_ms'), 3)} ms"
    )
    return _frame(chart, full, "latency (log scale)", "count", body, xt, yt, {"count": hist.get("count", 0)})


def _ms_label(us: float) -> str:
    if us < 1000:
        return f"{us:g} µs"
    if us < 1_000_000:
        return f"{us / 1000:g} ms"
    return f"{us / 1e6:g} s"


def bars_chart(
    chart: str, title: str, bars: Sequence[tuple[str, float, Mapping[str, Any], str]], *, y_label: str
) -> str:
    """One bar per (label, value, data attributes, css class)."""
    if not bars:
        return ""
    yticks = _ticks(0, max(v for _, v, _, _ in bars) or 1)
    slot = (W - ML - MR) / len(bars)

    def py(v: float) -> float:
        return H - MB - v / (yticks[-1] or 1) * (H - MT - MB)

    body, xt = [], []
    for i, (label, value, attrs, cls) in enumerate(bars):
        x = ML + i * slot + slot * 0.15
        body.append(
            f'<rect class="bar {escape(cls)}" x="{x:.1f}" y="{py(value):.1f}" width="{slot * 0.7:.1f}" '
            f'height="{H - MB - py(value):.1f}"{_attrs(attrs)}><title>{escape(label)}: '
            f"{_fmt(value, 4)} s</title></rect>"
        )
        if len(bars) <= 24:
            xt.append((x + slot * 0.35, label))
    yt = [(py(v), f"{v:,g}") for v in yticks]
    return _frame(chart, title, "checkpoint", y_label, body, xt, yt, {"bars": len(bars)})


# ---------------------------------------------------------------- sections ----
def _badge(outcome: str) -> str:
    return f'<span class="{escape(outcome)}">{escape(outcome)}</span>'


def _anchor(i: int) -> str:
    return f"wl-{i}"


def _summary_table(workloads: Sequence[Mapping[str, Any]]) -> str:
    head = (
        "workload",
        "verdict",
        "AU %",
        "need %",
        "samples/s",
        "MB/s nom",
        "MB/s act",
        "p99 ms",
        "datagen MiB/s",
        "save GB/s",
        "load GB/s",
    )
    keys = tuple(k for k in SUMMARY_KEYS if k != "datagen_files_written")  # that one only says "reused"
    rows = ['<table class="summary"><tr>' + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for i, wl in enumerate(workloads):
        s = wl.get("summary", {})
        cells = "".join(
            f'<td class="n" data-key="{k}">'
            f"{'reused' if k == 'datagen_MiB_per_s' and s.get('datagen_files_written') == 0 else _fmt(s.get(k))}"
            "</td>"
            for k in keys
        )
        rows.append(
            f'<tr data-workload="{escape(str(wl["name"]))}"><td><a href="#{_anchor(i)}">'
            f"{escape(str(wl['name']))}</a></td><td>{_badge(str(wl['verdict']))}</td>{cells}</tr>"
        )
    return "".join(rows) + "</table>"


def _run_table(run: Mapping[str, Any]) -> str:
    shown = (
        ("config", "config"),
        ("dialect", "dialect"),
        ("model", "model"),
        ("format", "format"),
        ("scale", "scale factor"),
        ("scale_option", "--dlio-scale"),
        ("ranks", "ranks planned"),
        ("world", "ranks running"),
        ("epochs", "epochs"),
        ("data_uri", "data"),
        ("data_emulator", "data emulator"),
        ("checkpoints_uri", "checkpoints"),
        ("checkpoints_emulator", "checkpoint emulator"),
        ("output", "DLIO output"),
    )
    rows = []
    for key, label in shown:
        if key not in run or (run[key] is None and not key.endswith("_emulator")):
            continue
        v = run[key]
        if key == "scale" and isinstance(v, float):
            v = f"{v:.3g}"
        if key.endswith("_emulator"):
            v = f"{v} (emulator, not real storage)" if v else "none (real storage)"
        rows.append(f"<tr><th>{escape(label)}</th><td><code>{escape(_fmt(v, 6))}</code></td></tr>")
    return '<table class="run">' + "".join(rows) + "</table>"


_FIGURES = (
    ("datagen_MiB_per_s", "MiB/s"),
    ("train_au_mean_percentage", "AU %"),
    ("train_throughput_mean_samples_per_second", "samples/s"),
    ("train_io_mean_MB_per_second", "MB/s nominal"),
    ("read_MB_per_second_actual", "MB/s actual"),
    ("read_latency_p99_ms", "p99 ms"),
    ("save_checkpoint_io_mean_GB_per_second", "save GB/s"),
    ("load_checkpoint_io_mean_GB_per_second", "load GB/s"),
)


def _items_table(items: Sequence[Mapping[str, Any]]) -> str:
    rows = ['<table class="items"><tr><th>item</th><th>result</th><th>seconds</th><th>figures</th></tr>']
    for it in items:
        props = it.get("properties") or {}
        figs = ", ".join(
            f"{label} {_fmt(props[k])}"
            for k, label in _FIGURES
            if k in props and not (it.get("phase") == "au" and k != "train_au_mean_percentage")
        )
        if it.get("phase") == "au" and "au_threshold_percentage" in props:
            figs += f" (need {_fmt(props['au_threshold_percentage'])})"
        msg = f'<div class="msg">{escape(str(it["message"]))}</div>' if it.get("message") else ""
        rows.append(
            f'<tr data-phase="{escape(str(it.get("phase")))}" data-outcome="{escape(str(it.get("outcome")))}">'
            f"<td>{escape(str(it.get('phase')))}</td><td>{_badge(str(it.get('outcome')))}</td>"
            f'<td class="n">{_fmt(it.get("duration"))}</td><td>{escape(figs)}{msg}</td></tr>'
        )
    return "".join(rows) + "</table>"


def workload_charts(wl: Mapping[str, Any]) -> list[str]:
    """Every chart one workload's data has (also used for pytest-html's per-item extras)."""
    charts = []
    epochs = wl.get("epochs") or []
    if epochs:
        xs = [float(e["epoch"]) for e in epochs]
        au = [float(e["au_percentage"]) for e in epochs]
        thr = [float(e["samples_per_second"]) for e in epochs]
        charts.append(
            line_chart(
                "au",
                "train AU per epoch (%)",
                xs,
                au,
                x_label="epoch",
                y_label="AU %",
                point_attrs=[{"epoch": int(x), "value": v} for x, v in zip(xs, au, strict=True)],
                hover=[f"epoch {int(x)}: AU {v:.2f} %" for x, v in zip(xs, au, strict=True)],
            )
        )
        charts.append(
            line_chart(
                "samples",
                "train samples/s per epoch",
                xs,
                thr,
                x_label="epoch",
                y_label="samples/s",
                point_attrs=[{"epoch": int(x), "value": v} for x, v in zip(xs, thr, strict=True)],
                hover=[f"epoch {int(x)}: {v:.1f} samples/s" for x, v in zip(xs, thr, strict=True)],
            )
        )
    for key, what in (
        ("train_read", "train reads"),
        ("eval_read", "eval reads"),
        ("datagen_write", "datagen file writes"),
    ):
        ts = (wl.get("timeseries") or {}).get(key)
        name, _, op = key.partition("_")
        if ts and ts.get("t"):
            since = f"seconds since the first {op}"
            charts.append(
                line_chart(
                    f"{name}-mbps",
                    f"{what}: MB/s per second",
                    ts["t"],
                    ts["MB_per_second"],
                    x_label=since,
                    y_label="MB/s",
                )
            )
            charts.append(
                line_chart(
                    f"{name}-p99",
                    f"{what}: p99 latency per second (ms)",
                    ts["t"],
                    ts["latency_p99_ms"],
                    x_label=since,
                    y_label="ms",
                )
            )
    titles = {
        "train_read": "train read",
        "eval_read": "eval read",
        "datagen_write": "datagen file write",
        "checkpoint_save_file": "checkpoint file save",
        "checkpoint_load_file": "checkpoint file load",
    }
    for key, title in titles.items():
        hist = (wl.get("histograms") or {}).get(key)
        if hist:
            charts.append(histogram_chart(f"hist-{key}", title, hist))
    ck = wl.get("checkpoint") or {}
    bars = [
        (f"{kind} {i + 1}", float(d), {"kind": kind, "index": i + 1, "seconds": d}, kind)
        for kind in ("save", "load")
        for i, d in enumerate((ck.get(kind) or {}).get("durations_seconds") or [])
    ]
    if bars:
        charts.append(
            bars_chart("checkpoint", "checkpoint save / load duration (s)", bars, y_label="seconds")
        )
    return [c for c in charts if c]


def _section(wl: Mapping[str, Any], i: int, open_: bool) -> str:
    s = wl.get("summary", {})
    bits = [
        f"AU {_fmt(s['train_au_mean_percentage'])} %" if "train_au_mean_percentage" in s else "",
        f"{_fmt(s['train_throughput_mean_samples_per_second'], 1)} samples/s"
        if "train_throughput_mean_samples_per_second" in s
        else "",
    ]
    line = " · ".join(b for b in bits if b)
    charts = workload_charts(wl)
    return (
        f'<details id="{_anchor(i)}" data-workload="{escape(str(wl["name"]))}"{" open" if open_ else ""}>'
        f"<summary>{escape(str(wl['name']))} — {_badge(str(wl['verdict']))} "
        f'<span class="muted">{escape(line)}</span></summary>'
        f"<h2>What was run</h2>{_run_table(wl.get('run') or {})}"
        f"<h2>Items</h2>{_items_table(wl.get('items') or [])}"
        + (f'<h2>Charts</h2><div class="charts">{"".join(charts)}</div>' if charts else "")
        + "</details>"
    )


def render_html(doc: Mapping[str, Any]) -> str:
    """The whole page for a run document."""
    wls = doc.get("workloads") or []
    t = doc.get("totals") or {}
    st = doc.get("settings") or {}
    setting = ", ".join(f"{k} {escape(_fmt(v, 6))}" for k, v in st.items() if v not in (None, "", [], ()))
    sections = "".join(
        _section(wl, i, len(wls) == 1 or wl.get("verdict") == "failed") for i, wl in enumerate(wls)
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>pytest-dlio report</title><style>{CSS}{CHART_CSS}</style></head><body>"
        f'<h1>pytest-dlio report</h1><p class="muted">{escape(str(doc.get("created", "")))} · '
        f"{t.get('workloads', 0)} workloads, {t.get('items', 0)} items: {t.get('passed', 0)} passed, "
        f"{t.get('failed', 0)} failed, {t.get('skipped', 0)} skipped"
        + (f" · {setting}" if setting else "")
        + "</p>"
        '<p class="muted">MB/s nom: DLIO\'s train_io_mean_MB_per_second, samples/s × record_length_bytes. '
        "MB/s act: bytes actually read ÷ train time. MB = 2<sup>20</sup> bytes, GB = 2<sup>30</sup> bytes.</p>"
        f"{_summary_table(wls)}{sections}<script>{OPEN_ON_LINK}</script></body></html>"
    )


def charts_block(charts: Sequence[str]) -> str:
    """Charts with their style, for pages that are not ours (pytest-html's report)."""
    return f'<div class="charts"><style>{CHART_CSS}</style>{"".join(charts)}</div>' if charts else ""


__all__ = ["CHART_CSS", "charts_block", "render_html", "workload_charts"]
