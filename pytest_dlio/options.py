"""The ``dlio`` option group: every flag is ``--dlio-*`` with a ``parse_*`` type naming its syntax."""

from __future__ import annotations

import argparse
from collections.abc import Callable
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
        raise argparse.ArgumentTypeError(f"expected smoke, small or a number in (0, 1], got {value!r}") from None
    if not 0 < factor <= 1:
        raise argparse.ArgumentTypeError(f"expected a factor in (0, 1], got {value!r}")
    return factor


_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "p": 10**15, "pb": 10**15, "kib": 2**10, "mib": 2**20, "gib": 2**30,
          "tib": 2**40, "pib": 2**50}


def parse_size(value: str) -> int:
    """A byte count: ``500000``, ``200GB``, ``1.5TiB``, ``2PB`` (decimal and binary units)."""
    text = value.strip().lower().replace(" ", "")
    num = text.rstrip("kmgtpib")
    unit = text[len(num):]
    try:
        n = float(num)
    except ValueError:
        n = float("nan")
    if unit not in _UNITS or not n > 0 or n == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a size such as 500GB, 2TiB or 1000000 (bytes), got {value!r}")
    return int(n * _UNITS[unit])


def parse_ranks(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value!r}")
    return n


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


def parse_show_config(value: str) -> str:
    if value not in ("yaml", "json"):
        raise argparse.ArgumentTypeError(f"expected yaml or json, got {value!r}")
    return value


def add_dlio_options(addoption: Callable[..., Any], addini: Callable[..., Any] | None = None) -> None:
    """Register every ``--dlio-*`` option (reusable by a future standalone CLI)."""
    addoption("--dlio-config", action="append", default=[], metavar="PATH",
              help="DLIO workload YAML, a folder of them (recursively) or a glob; repeatable. "
                   "When given, only these configs are collected.")
    addoption("--dlio-set", action="append", default=[], metavar="KEY=VALUE",
              help="override a config key, e.g. dataset.num_files_train=16 or DLIO's "
                   "++workload.dataset.num_files_train=16; the value is a YAML scalar. Repeatable.")
    addoption("--dlio-show-config", nargs="?", const="yaml", default=None, type=parse_show_config,
              metavar="yaml|json", help="print each collected workload's normalised config (YAML or JSON).")
    addoption("--dlio-storage", default=None, type=parse_storage, metavar="URI",
              help="where data and checkpoints go: file:///path, direct:///path, s3://bucket/prefix, "
                   "az://container/prefix, az://account/container/prefix, mem://name.")
    addoption("--dlio-data-root", default=None, metavar="DIR",
              help="where relative data/checkpoint folders resolve (default: .dlio/ beside the rootdir).")
    addoption("--dlio-generate", default="auto", type=parse_generate, metavar="auto|always|never",
              help="auto: generate what is missing or incomplete (default); always: regenerate; "
                   "never: fail when data is missing, as DLIO does.")
    addoption("--dlio-scale", default=None, type=parse_scale, metavar="smoke|small|FACTOR",
              help="shrink every workload so total bytes scale by FACTOR; smoke / small pick, per workload, the "
                   "factor that brings it to about 8 MiB / 512 MiB (smoke also caps epochs at 2). Steps "
                   "per epoch and the I/O-to-compute ratio stay meaningful.")
    addoption("--dlio-output", default=None, metavar="DIR",
              help="where DLIO-compatible summary.json and per-rank files go (default: under the data root).")
    addoption("--dlio-ranks", default=None, type=parse_ranks, metavar="N",
              help="world size for planning and rank file layout (default 1; a model-parallel checkpoint "
                   "workload then runs as rank 0 of tensor x pipeline ranks).")
    addoption("--dlio-plan", action="store_true", default=False,
              help="print what each workload will cost (files, bytes, steps, checkpoint sizes, least time) "
                   "without touching storage.")
    addoption("--dlio-no-verify", action="store_true", default=False,
              help="skip checksum verification of checkpoint read-back.")
    addoption("--dlio-max-bytes", default=None, type=parse_size, metavar="SIZE",
              help="the most a dataset or a run's checkpoints may take on the target (e.g. 50TB, 2PiB); "
                   "object stores are capped at 10 TiB unless this raises it.")
    addoption("--dlio-verify-data", action="store_true", default=False,
              help="datagen auto reads every complete file whole to check its content (sampled digest and "
                   "the format's checksums: npz zip CRCs, tfrecord record CRCs), not only sampled blocks.")
    addoption("--dlio-drop-caches", action="store_true", default=False,
              help="drop the page cache between checkpoint write and read (needs root).")
    addoption("--dlio-full-trace", action="store_true", default=False,
              help="show full Python tracebacks for pytest-dlio errors (for debugging the plugin).")
    if addini is not None:
        addini("dlio_configs", type="paths", default=[],
               help="DLIO workload YAMLs/folders to collect (used when --dlio-config is not given).")
