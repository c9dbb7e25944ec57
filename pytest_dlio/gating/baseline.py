"""Baselines (pytest-benchmark's model): every figure of a run, per workload, with what the run was.

A baseline is one JSON file, ``<data_root>/baselines/<NAME>.json`` (or a path the user names)::

    {"format": "pytest-dlio-baseline/1", "name": "fast", "saved": "2026-12-01T09:30:00",
     "pytest_dlio_version": "0.1.0", "machine": {...},
     "workloads": {"tiny": {"identity": {"config_hash": ..., "scale_factor": ..., "ranks": ..., "hosts": ...,
                                         "storage_uri": ..., "storage_emulator": ...},
                            "items": {"train": "passed", ...},
                            "figures": {"train_au_mean_percentage": 97.1, ...}}}}
"""

from __future__ import annotations

import json
import os
import platform
import re
import socket
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pytest_dlio import __version__
from pytest_dlio.errors import DlioError

FORMAT = "pytest-dlio-baseline/1"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
#: Item properties that say what a run is rather than what it measured (kept under ``identity``).
IDENTITY_KEYS = (
    "pytest_dlio_version",
    "config_hash",
    "scale_factor",
    "ranks",
    "hosts",
    "storage_uri",
    "storage_emulator",
)


def check_name(value: str) -> str:
    """A baseline name (letters, digits, ``.``, ``_``, ``-``) or a path to a ``.json`` file."""
    if value.endswith(".json") or "/" in value:
        return value
    if not _NAME.match(value):
        raise ValueError(
            f"expected a name of letters, digits, '.', '_' or '-' (or a path ending in .json), got {value!r}"
        )
    return value


def baseline_path(spec: str, data_root: Path) -> Path:
    """Where baseline ``spec`` lives: a path as given, or ``<data_root>/baselines/<spec>.json``."""
    if spec.endswith(".json") or "/" in spec:
        return Path(spec).resolve()
    return Path(data_root) / "baselines" / f"{spec}.json"


def machine_info() -> dict[str, Any]:
    from pytest_dlio.report.dlio_json import host_memory_gb

    return {
        "node": socket.gethostname(),
        "machine": platform.machine(),
        "system": platform.system(),
        "release": platform.release(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "memory_GB": round(host_memory_gb(), 3),
    }


def workloads_from_rows(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Group report rows (``nodeid``, ``outcome`` and an item's properties) into baseline workloads.

    The schema item names its workload (``workload``) and carries its identity; every other item's
    properties are figures. A later item's property of the same name wins (e.g. ``au`` repeats train's AU).
    """
    by_file: dict[str, dict[str, Any]] = {}
    for row in rows:
        file_id, _, item = str(row["nodeid"]).partition("::")
        wl = by_file.setdefault(file_id, {"identity": {}, "items": {}, "figures": {}, "name": None})
        wl["items"][item] = row.get("outcome")
        props = {k: v for k, v in row.items() if k not in ("nodeid", "outcome")}
        if item == "schema":
            wl["name"] = props.get("workload")
            wl["identity"].update({k: props[k] for k in IDENTITY_KEYS if k in props})
        elif item not in ("regression", "stability", "mlperf_rules"):
            wl["figures"].update({k: v for k, v in props.items() if isinstance(v, int | float | str)})
    out: dict[str, dict[str, Any]] = {}
    for file_id, wl in by_file.items():
        name = wl.pop("name") or file_id
        wl["config"] = file_id
        out[name] = wl
    return out


def build(name: str, workloads: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "name": name,
        "saved": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "pytest_dlio_version": __version__,
        "machine": machine_info(),
        "workloads": workloads,
    }


def save(path: Path, doc: dict[str, Any]) -> Path:
    from pytest_dlio.report.dlio_json import write_json

    return write_json(Path(path), doc)


#: A baseline holds figures, not data: anything larger is not one of ours.
MAX_BYTES = 64 * 2**20


def load(path: Path) -> dict[str, Any]:
    """A saved baseline, or a DlioError saying what is wrong with the file and how to make one."""
    try:
        size = Path(path).stat().st_size
        if size > MAX_BYTES:
            raise DlioError(
                f"baseline {path}: {size:,} bytes is not a pytest-dlio baseline (those are well under "
                f"{MAX_BYTES // 2**20} MiB); name the file --dlio-save wrote"
            )
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DlioError(
            f"baseline {path}: no such file; save one first with --dlio-save NAME (it goes to "
            "<data root>/baselines/NAME.json) or name an existing .json file"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DlioError(
            f"baseline {path}: cannot read it as JSON ({exc}); save it again with --dlio-save"
        ) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("workloads"), dict):
        raise DlioError(
            f'baseline {path}: not a pytest-dlio baseline (expected "format": "{FORMAT}" and a '
            '"workloads" object); save it again with --dlio-save'
        )
    for name, wl in doc["workloads"].items():
        if not (
            isinstance(wl, dict)
            and isinstance(wl.get("figures", {}), dict)
            and isinstance(wl.get("identity", {}), dict)
        ):
            raise DlioError(
                f'baseline {path}: workload {name!r} is not an object with "identity" and '
                '"figures" objects; save the baseline again with --dlio-save'
            )
    return doc
