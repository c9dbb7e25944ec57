"""The ``dlio`` option group: every flag is ``--dlio-*`` with a ``parse_*`` type naming its syntax."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytest_dlio.engine.settings import GENERATE_MODES, SCALE_PRESETS


def parse_generate(value: str) -> str:
    if value not in GENERATE_MODES:
        raise argparse.ArgumentTypeError(f"expected auto, always or never, got {value!r}")
    return value


def parse_scale(value: str) -> float | str:
    """``smoke``, ``small`` or a factor in (0, 1] by which total dataset bytes shrink."""
    if value in SCALE_PRESETS:
        return value
    try:
        factor = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected smoke, small or a number in (0, 1], got {value!r}"
        ) from None
    if not 0 < factor <= 1:
        raise argparse.ArgumentTypeError(f"expected a factor in (0, 1], got {value!r}")
    return factor


_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "p": 10**15,
    "pb": 10**15,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
    "pib": 2**50,
}


def parse_size(value: str) -> int:
    """A byte count: ``500000``, ``200GB``, ``1.5TiB``, ``2PB`` (decimal and binary units)."""
    text = value.strip().lower().replace(" ", "")
    num = text.rstrip("kmgtpib")
    unit = text[len(num) :]
    try:
        n = float(num)
    except ValueError:
        n = float("nan")
    if unit not in _UNITS or not n > 0 or n == float("inf"):
        raise argparse.ArgumentTypeError(
            f"expected a size such as 500GB, 2TiB or 1000000 (bytes), got {value!r}"
        )
    return int(n * _UNITS[unit])


def parse_interval(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {value!r}") from None
    if not seconds >= 0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {value!r}")
    return seconds


def parse_ranks(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value!r}")
    return n


def parse_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {value!r}") from None
    if not seconds > 0 or seconds != seconds or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {value!r}")
    return seconds


def parse_storage(value: str) -> str:
    """A storage URI, checked before the session starts (so a bad one is a usage error that names the form,
    never echoing credentials written into it)."""
    from pytest_dlio.errors import StorageError
    from pytest_dlio.storage.uri import parse_uri

    try:
        parse_uri(value)
    except StorageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


SHOW_CONFIG_FORMATS = ("yaml", "json")


_HYDRA = re.compile(r"\+{0,2}[A-Za-z_][\w.]*=")  # DLIO's hydra override: ++key=value, +key=value, key=value


def _show_config_value(args: list[str]) -> list[str]:
    """``--dlio-show-config PATH`` (nargs="?" takes the path as its value): keep PATH as a positional argument."""
    args = list(args)
    for i, a in enumerate(args):
        if (
            a == "--dlio-show-config"
            and i + 1 < len(args)
            and not args[i + 1].startswith("-")
            and args[i + 1] not in SHOW_CONFIG_FORMATS
        ):
            args[i] = "--dlio-show-config=yaml"
        elif a.startswith("--dlio-show-config=") and a.partition("=")[2] not in SHOW_CONFIG_FORMATS:
            raise ValueError(
                f"{a}: expected --dlio-show-config, --dlio-show-config=yaml or --dlio-show-config=json"
            )
    return args


def rewrite_args(args: list[str], positional: list[str], targets: list[Path], *, dlio: bool) -> list[str]:
    """The command line pytest should parse (ValueError, saying what to do, for what cannot be kept).

    ``--dlio-show-config PATH`` keeps PATH as a path; hydra overrides (``++key=value``, or ``key=value`` with
    --dlio-config) become ``--dlio-set``; with --dlio-config (``targets``), node ids inside its targets stay
    and replace the targets they select, and any other positional is refused (never silently dropped).
    """
    out = _show_config_value(args)
    keep: list[str] = []
    for a in positional:
        if (a.startswith("+") or dlio) and _HYDRA.match(a) and not Path(a.partition("::")[0]).exists():
            out[out.index(a)] = f"--dlio-set={a}"
        elif dlio:
            path = Path(a.partition("::")[0]).resolve()
            if not any(path == t or t in path.parents for t in targets):
                raise ValueError(
                    f"positional argument {a!r} is not one of the --dlio-config workloads: pass it as "
                    "--dlio-config, select an item as CONFIG.yaml::ITEM, or give a hydra override "
                    "(++workload.key=value)"
                )
            keep.append(a)
    if not dlio:
        return out
    chosen = {Path(a.partition("::")[0]).resolve() for a in keep}
    configs = [str(t) for t in targets if not any(c == t or t in c.parents for c in chosen)]
    return [a for a in out if a not in positional or a in keep] + configs


# ---- gating (baselines, repeated runs, MLPerf rules, results tree) ----
def parse_baseline(value: str) -> str:
    from pytest_dlio.gating.baseline import check_name

    try:
        return check_name(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_fail_on(value: str) -> Any:
    from pytest_dlio.gating.compare import parse_fail_on as parse

    try:
        return parse(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_division(value: str) -> str:
    if value not in ("closed", "open"):
        raise argparse.ArgumentTypeError(f"expected closed or open, got {value!r}")
    return value


def parse_memory_gib(value: str) -> float:
    try:
        gib = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected GiB of memory per host, e.g. 256, got {value!r}"
        ) from None
    if not 0 < gib < 2**20:
        raise argparse.ArgumentTypeError(f"expected GiB of memory per host in (0, 1048576), got {value!r}")
    return gib


def add_gating_options(addoption: Callable[..., Any]) -> None:
    """Options of pytest_dlio.gating: baselines and regression items."""
    addoption(
        "--dlio-save",
        default=None,
        type=parse_baseline,
        metavar="NAME",
        help="save every figure of this run, with machine info, version, config hash, scale, ranks and "
        "storage, as baseline NAME (<data root>/baselines/NAME.json; a path ending in .json is used "
        "as given).",
    )
    addoption(
        "--dlio-compare",
        default=None,
        type=parse_baseline,
        metavar="NAME",
        help="compare with baseline NAME: adds a 'regression' item per workload that fails when a figure "
        "got worse than --dlio-fail-on allows.",
    )
    addoption(
        "--dlio-fail-on",
        action="append",
        default=[],
        type=parse_fail_on,
        metavar="METRIC:LIMIT",
        help="how much METRIC may get worse than the baseline: METRIC:-10%% (percent) or METRIC:+2 "
        "(absolute); direction from the metric (lower throughput/AU, higher latency are worse). "
        "Repeatable. Default: AU -5%%, samples/s -10%%, checkpoint GB/s -10%%, read p99 +20%%.",
    )
    addoption(
        "--dlio-runs",
        default=1,
        type=parse_ranks,
        metavar="N",
        help="run each workload's measured phases (train, checkpoint write/read) N times, a new seed each "
        "run; figures become the mean, with _stdev and _cov (percent), and a 'stability' item fails "
        "when a headline figure varies more than 5 %% (MLPerf's limit). MLPerf: --dlio-runs 5 "
        "--dlio-warmup.",
    )
    addoption(
        "--dlio-warmup",
        action="store_true",
        default=False,
        help="run the measured phases once more first, unscored (MLPerf's warm-up run).",
    )
    addoption(
        "--dlio-mlperf",
        default=None,
        type=parse_division,
        metavar="closed|open",
        help="add an 'mlperf_rules' item per workload that fails, naming rule, value and fix, when the run "
        "would not be a valid MLPerf Storage v3.0 run in that division (overrides, dataset >= 5 x "
        "memory and 500 steps, AU, runs, checkpoint ranks/counts/fsync/cache).",
    )
    addoption(
        "--dlio-hosts",
        default=1,
        type=parse_ranks,
        metavar="N",
        help="client hosts the MLPerf rules and datasize assume (default 1: this host).",
    )
    addoption(
        "--dlio-host-memory-gb",
        default=None,
        type=parse_memory_gib,
        metavar="GIB",
        help="memory per client host for the MLPerf rules and datasize (default: this host's).",
    )
    addoption(
        "--dlio-results-dir",
        default=None,
        metavar="DIR",
        help="lay runs out as mlpstorage does: DIR/training/<model>/run/<YYYYMMDD_HHMMSS>/ and "
        "DIR/checkpointing/<model>/<ts>/, each with summary.json, per-rank files and "
        "dlio_config/{config,overrides}.yaml (one folder per --dlio-runs run).",
    )
    addoption(
        "--dlio-compare-force",
        action="store_true",
        default=False,
        help="compare even when the baseline's config hash, scale, ranks or hosts differ from this run's.",
    )


def add_dlio_options(addoption: Callable[..., Any], addini: Callable[..., Any] | None = None) -> None:
    """Register every ``--dlio-*`` option with pytest (``addoption``/``addini`` of the ``dlio`` group)."""
    addoption(
        "--dlio-config",
        action="append",
        default=[],
        metavar="PATH|NAME",
        help="DLIO workload YAML, a folder of them (recursively) or a glob, or a shipped workload name "
        "(mlperf-v3.0/unet3d_h100, a set such as mlperf-v3.0, or a glob over names); repeatable. "
        "When given, only these configs are collected.",
    )
    addoption(
        "--dlio-list-configs",
        action="store_true",
        default=False,
        help="list the shipped workload sets and names (for --dlio-config) and exit.",
    )
    addoption(
        "--dlio-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. dataset.num_files_train=16 or DLIO's "
        "++workload.dataset.num_files_train=16; the value is a YAML scalar. Repeatable.",
    )
    # nargs="?": a path after it is taken as its value; the plugin puts such a value back as a positional
    # argument (pytest_load_initial_conftests), so the option works anywhere on the command line.
    addoption(
        "--dlio-show-config",
        nargs="?",
        const="yaml",
        default=None,
        metavar="yaml|json",
        help="print each collected workload's normalised config (YAML or JSON) and run only its schema "
        "item: nothing touches storage.",
    )
    addoption(
        "--dlio-storage",
        default=None,
        type=parse_storage,
        metavar="URI",
        help="where data and checkpoints go: file:///path, direct:///path, s3://bucket/prefix, "
        "az://container/prefix, az://account/container/prefix, mem://name.",
    )
    addoption(
        "--dlio-data-root",
        default=None,
        metavar="DIR",
        help="where relative data/checkpoint folders resolve (default: .dlio/ beside the rootdir).",
    )
    addoption(
        "--dlio-generate",
        default="auto",
        type=parse_generate,
        metavar="auto|always|never",
        help="auto: generate what is missing or incomplete (default); always: regenerate; "
        "never: fail when data is missing, as DLIO does.",
    )
    addoption(
        "--dlio-scale",
        default=None,
        type=parse_scale,
        metavar="smoke|small|FACTOR",
        help="shrink every workload so total bytes scale by FACTOR; smoke / small pick, per workload, the "
        "factor that brings it to about 8 MiB / 512 MiB (smoke also caps epochs at 2). Steps "
        "per epoch and the I/O-to-compute ratio stay meaningful; records stop shrinking where compute "
        "per step would drop below 10 ms or per read below 2 ms.",
    )
    addoption(
        "--dlio-output",
        default=None,
        metavar="DIR",
        help="where DLIO-compatible summary.json and per-rank files go (default: under the data root).",
    )
    addoption(
        "--dlio-ranks",
        default=None,
        type=parse_ranks,
        metavar="N",
        help="run N emulated accelerators: N rank processes on this host, supervised by pytest "
        "(default 1; a model-parallel checkpoint workload then runs as rank 0 of tensor x "
        "pipeline ranks). Under mpirun the MPI world size is used instead.",
    )
    addoption(
        "--dlio-rank-timeout",
        default=60.0,
        type=parse_seconds,
        metavar="SECONDS",
        help="a rank that does not respond for this long counts as hung: the item fails naming it; a "
        "local rank is killed, an MPI job is ended after the report (default 60).",
    )
    addoption(
        "--dlio-find-max",
        action="store_true",
        default=False,
        help="add an item max_accelerators per training workload: the most local ranks whose mean "
        "train AU still meets metric.au (doubling, then bisection), and whether host CPU or "
        "storage was the limit.",
    )
    addoption(
        "--dlio-plan",
        action="store_true",
        default=False,
        help="print what each workload will cost (files, bytes, steps, checkpoint sizes, least time) "
        "without touching storage.",
    )
    addoption(
        "--dlio-no-verify",
        action="store_true",
        default=False,
        help="skip checksum verification of checkpoint read-back.",
    )
    addoption(
        "--dlio-max-bytes",
        default=None,
        type=parse_size,
        metavar="SIZE",
        help="the most a dataset or a run's checkpoints may take on the target (e.g. 50TB, 2PiB); "
        "object stores are capped at 10 TiB unless this raises it.",
    )
    addoption(
        "--dlio-verify-data",
        action="store_true",
        default=False,
        help="datagen auto reads every complete file whole to check its content (sampled digest and "
        "the format's checksums: npz zip CRCs, tfrecord record CRCs), not only sampled blocks.",
    )
    addoption(
        "--dlio-drop-caches",
        action="store_true",
        default=False,
        help="drop the page cache between checkpoint write and read (needs root).",
    )
    addoption(
        "--dlio-progress-interval",
        default=2.0,
        type=parse_interval,
        metavar="SECONDS",
        help="seconds between live progress lines of one workload (default 2; 0: every update). "
        "-q turns progress off.",
    )
    addoption(
        "--dlio-json",
        default=None,
        metavar="FILE",
        help="write every workload's items, figures, per-epoch AU, per-second series and latency "
        "histograms as one JSON document (the data behind --dlio-html).",
    )
    addoption(
        "--dlio-html",
        default=None,
        metavar="FILE",
        help="write a self-contained HTML report with charts (no network needed to view it).",
    )
    addoption(
        "--dlio-full-trace",
        action="store_true",
        default=False,
        help="show full Python tracebacks for pytest-dlio errors (for debugging the plugin).",
    )
    add_gating_options(addoption)
    if addini is not None:
        addini(
            "dlio_configs",
            type="paths",
            default=[],
            help="DLIO workload YAMLs/folders to collect (used when --dlio-config is not given).",
        )
