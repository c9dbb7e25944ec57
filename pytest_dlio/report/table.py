"""The terminal table per workload item (AU, samples/s, MB/s, p99 read latency, verdict) and metric lines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # a plain pytest session renders no table: keep numpy (via metrics) out of it
    from pytest_dlio.metrics import TrainMetrics

#: The table's width: the item column shortens (middle cut) so that every line fits.
WIDTH = 100
#: (header, alignment) per column.
COLUMNS = (
    ("item", "<"),
    ("result", "<"),
    ("AU %", ">"),
    ("samples/s", ">"),
    ("MB/s nom", ">"),
    ("MB/s act", ">"),
    ("p99 ms", ">"),
    ("figure", "<"),
)
LEGEND = (
    "MB/s nom: DLIO's train_io_mean_MB_per_second = samples/s x record_length_bytes (nominal sizes)",
    "MB/s act: bytes actually read / train time (file headers, sidecars, compression included)",
    "p99 ms: per read (train), per file written (datagen, checkpoint); MB = 2^20 B, GB = 2^30 B",
)


def _num(v: Any, fmt: str) -> str:
    return format(v, fmt) if isinstance(v, int | float) and not isinstance(v, bool) else ""


def _figure(r: Mapping[str, Any]) -> str:
    if r.get("datagen_files_written") == 0:
        return "reused"
    if "datagen_MiB_per_s" in r:
        return f"{_num(r['datagen_MiB_per_s'], '.1f')} MiB/s"
    for kind in ("save", "load"):
        key = f"{kind}_checkpoint_io_mean_GB_per_second"
        if key in r:
            return f"{kind} {_num(r[key], '.2f')} GB/s"
    if r.get("phase") == "au" and "au_threshold_percentage" in r:
        return f"need {_num(r['au_threshold_percentage'], '.0f')} %"
    return ""


def _p99(r: Mapping[str, Any]) -> Any:
    if r.get("datagen_files_written") == 0:
        return None
    for key in (
        "read_latency_p99_ms",
        "datagen_write_latency_p99_ms",
        "save_checkpoint_file_latency_p99_ms",
        "load_checkpoint_file_latency_p99_ms",
    ):
        if key in r:
            return r[key]
    return None


def short_ids(nodeids: Sequence[str]) -> list[str]:
    """``dir/unet3d_h100.yaml::train`` → ``unet3d_h100::train``; the folder stays when two files share a name."""

    def parts(nodeid: str) -> tuple[str, str, str]:
        path, _, rest = nodeid.partition("::")
        folder, _, name = path.rpartition("/")
        return folder, name.removesuffix(".yaml").removesuffix(".yml"), rest

    split = [parts(n) for n in nodeids]
    folders_of: dict[str, set[str]] = {}
    for folder, stem, _ in split:
        folders_of.setdefault(stem, set()).add(folder)
    out = []
    for folder, stem, rest in split:
        name = f"{folder.rpartition('/')[2]}/{stem}" if len(folders_of[stem]) > 1 and folder else stem
        out.append(f"{name}::{rest}" if rest else name)
    return out


def fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` in the middle (``…``); for ``workload::item`` only the workload is cut."""
    if len(text) <= width:
        return text
    head, sep, item = text.rpartition("::")
    if sep and len(item) + 2 + 4 <= width:
        return fit(head, width - len(item) - 2) + sep + item
    keep = width - 1
    return text[: keep - keep // 2] + "…" + text[len(text) - keep // 2 :]


def _row(r: Mapping[str, Any], name: str) -> list[str]:
    return [
        name,
        str(r.get("outcome", "?")),
        _num(r.get("train_au_mean_percentage"), ".1f"),
        _num(r.get("train_throughput_mean_samples_per_second"), ".1f"),
        _num(r.get("train_io_mean_MB_per_second"), ".1f"),
        _num(r.get("read_MB_per_second_actual"), ".1f"),
        _num(_p99(r), ".2f"),
        _figure(r),
    ]


def render_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """A header, a rule, one line per item row (keys are the item's properties), then the legend; every line
    fits ``WIDTH`` columns."""
    first: dict[str, int] = {}  # workloads in order of first appearance, items in order within each
    for i, r in enumerate(rows):
        first.setdefault(str(r.get("nodeid", "?")).partition("::")[0], i)
    rows = sorted(rows, key=lambda r: first[str(r.get("nodeid", "?")).partition("::")[0]])
    names = short_ids([str(r.get("nodeid", "?")) for r in rows])
    table = [[c[0] for c in COLUMNS], *(_row(r, n) for r, n in zip(rows, names, strict=True))]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    room = WIDTH - sum(widths[1:]) - 2 * (len(COLUMNS) - 1)
    widths[0] = max(12, min(widths[0], room))  # the item column gives way; figures are never cut
    out = []
    for n, line in enumerate(table):
        cells = [format(fit(c, w), f"{spec[1]}{w}") for c, w, spec in zip(line, widths, COLUMNS, strict=True)]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return [*out, *LEGEND]


def metric_lines(m: TrainMetrics) -> list[str]:
    """DLIO's [METRIC] console lines plus ours, for one training run."""
    lines = [
        f"Number of Simulated Accelerators: {m.num_accelerators}",
        f"Training Accelerator Utilization [AU] (%): {m.train_au_mean_percentage:.4f} ({m.train_au_stdev_percentage:.4f})",
        f"Training Throughput (samples/second): {m.train_throughput_mean_samples_per_second:.4f} "
        f"({m.train_throughput_stdev_samples_per_second:.4f})",
        f"Training I/O Throughput (MB/second): {m.train_io_mean_MB_per_second:.4f} ({m.train_io_stdev_MB_per_second:.4f})",
        f"train_au_meet_expectation: {m.train_au_meet_expectation}",
    ]
    if m.has_eval:
        lines += [
            f"Eval Accelerator Utilization [AU] (%): {m.eval_au_mean_percentage:.4f} ({m.eval_au_stdev_percentage:.4f})",
            f"Eval Throughput (samples/second): {m.eval_throughput_mean_samples_per_second:.4f} "
            f"({m.eval_throughput_stdev_samples_per_second:.4f})",
            f"eval_au_meet_expectation: {m.eval_au_meet_expectation}",
        ]
    lines.append(
        f"Read: {m.read_bytes} bytes in {m.read_count} reads, {m.read_MB_per_second_actual:.1f} MB/s actual, "
        f"latency p50/p90/p99/max {m.read_latency_p50_ms:.2f}/{m.read_latency_p90_ms:.2f}/"
        f"{m.read_latency_p99_ms:.2f}/{m.read_latency_max_ms:.2f} ms; I/O wait per step mean "
        f"{m.io_wait_mean_ms:.2f} ms, max {m.io_wait_max_ms:.2f} ms"
    )
    return lines
