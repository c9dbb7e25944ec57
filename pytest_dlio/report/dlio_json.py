"""DLIO-compatible output files (dlio.md §4.3): summary.json, {rank}_per_epoch_stats.json, {rank}_output.json.

Pure builders (:func:`summary_dict`, :func:`per_epoch_stats`, :func:`output_dict`) and atomic writers. The
engine keeps each workload's summary in memory, merges every phase's part into it (:func:`deep_merge`) and
writes it out; nothing is ever read back from disk as state. Our own figures go under the ``pytest_dlio``
key so DLIO's key set stays as DLIO writes it.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from pytest_dlio.config.model import WorkloadConfig
from pytest_dlio.metrics import TrainMetrics, rank_metrics
from pytest_dlio.timeline import Timeline

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"
SUMMARY = "summary.json"
EXTRA_KEY = "pytest_dlio"


def stamp(t: float) -> str:
    """DLIO's local-time timestamp string."""
    return datetime.fromtimestamp(t).strftime(TIME_FORMAT)


def _processor_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def host_memory_gb() -> float:
    """Physical memory of this host in GiB (DLIO's ``host_memory_GB``)."""
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3)
    except (ValueError, OSError):
        return 0.0


def host_info() -> dict[str, Any]:
    """Host-level keys DLIO writes (one host: lists of one)."""
    return {
        "hostname": socket.gethostname(),
        "host_cpu_count": [os.cpu_count() or 1],
        "host_processor_name": [_processor_name()],
        "host_memory_GB": [host_memory_gb()],
    }


def merge_hosts(infos: list[dict[str, Any]]) -> dict[str, Any]:
    """Every rank's :func:`host_info` → one entry per distinct host (in rank order), DLIO's per-host lists."""
    seen: dict[str, dict[str, Any]] = {}
    for info in infos:
        seen.setdefault(str(info["hostname"]), info)
    hosts = list(seen.values())
    return {
        "hostname": hosts[0]["hostname"],
        "num_hosts": len(hosts),
        "host_cpu_count": [h["host_cpu_count"][0] for h in hosts],
        "host_processor_name": [h["host_processor_name"][0] for h in hosts],
        "host_memory_GB": [h["host_memory_GB"][0] for h in hosts],
    }


def summary_dict(
    cfg: WorkloadConfig,
    m: TrainMetrics,
    t_start: float,
    t_end: float,
    hosts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """summary.json content: DLIO HEAD's keys, then ours under ``pytest_dlio``.

    ``hosts`` is every rank's :func:`host_info` (default: this host only)."""
    ds = cfg.dataset
    p = m.num_accelerators
    host = merge_hosts(hosts or [host_info()])
    per_host = max(1, p // host["num_hosts"])  # DLIO's ppn: processes per node
    data_gb = float(
        per_host * ds.num_samples_per_file * ds.num_files_train // p * ds.record_length_bytes / 1024**3
    )
    return {
        "start": stamp(t_start),
        "end": stamp(t_end),
        "num_accelerators": p,
        "num_hosts": host["num_hosts"],
        "hostname": host["hostname"],
        "num_files_train": ds.num_files_train,
        "num_files_eval": ds.num_files_eval,
        "num_samples_per_file": ds.num_samples_per_file,
        "host_cpu_count": host["host_cpu_count"],
        "host_processor_name": host["host_processor_name"],
        "host_memory_GB": host["host_memory_GB"],
        "data_size_per_host_GB": data_gb,
        "potential_caching": [int(data_gb <= mem) for mem in host["host_memory_GB"]],
        "epochs": m.epochs,
        "metric": m.dlio_metric(),
        EXTRA_KEY: {
            "metric": m.extra(),
            "config": cfg.source.path,
            "dialect": cfg.source.dialect,
            "scale": cfg.source.scale,
        },
    }


def run_summary(
    cfg: WorkloadConfig, num_accelerators: int, identity: dict[str, Any], t_start: float, t_end: float
) -> dict[str, Any]:
    """The part of summary.json every workload has, training or not: when, on what hosts and accelerators,
    and what the result is (``pytest_dlio.run``: version, config hash, scale, ranks, hosts, storage)."""
    host = host_info()
    return {
        "start": stamp(t_start),
        "end": stamp(t_end),
        "num_accelerators": num_accelerators,
        "num_hosts": identity.get("hosts", 1),
        "hostname": host["hostname"],
        "host_cpu_count": host["host_cpu_count"],
        "host_processor_name": host["host_processor_name"],
        "host_memory_GB": host["host_memory_GB"],
        EXTRA_KEY: {
            "config": cfg.source.path,
            "dialect": cfg.source.dialect,
            "scale": cfg.source.scale,
            "run": identity,
        },
    }


def write_json(path: Path, doc: dict[str, Any]) -> Path:
    """Write ``doc`` to ``path`` atomically (temporary file, then rename): never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=4)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def deep_merge(base: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
    """Merge ``updates`` into ``base`` in place (nested dicts such as ``metric`` merge key by key)."""
    for k, v in updates.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            deep_merge(base[k], v)
        else:
            base[k] = v
    return base


def write_summary(output_dir: Path, doc: dict[str, Any]) -> Path:
    """Write a workload's summary.json (rank 0's) from its in-memory document."""
    return write_json(Path(output_dir) / SUMMARY, doc)


def _span(t0: float, t1: float) -> dict[str, str]:
    return {"start": stamp(t0), "end": stamp(t1), "duration": f"{t1 - t0:.2f}"}


def per_epoch_stats(tl: Timeline) -> dict[str, Any]:
    """{rank}_per_epoch_stats.json content: durations as '%.2f' strings, like DLIO."""
    out: dict[str, Any] = {}
    for ep in tl.epochs:
        e: dict[str, Any] = {"start": stamp(ep.t_start)}
        for b in ep.blocks:
            e[f"block{b.index}"] = _span(b.t_start, b.t_end)
        if ep.eval is not None:
            e["eval"] = _span(ep.eval.t_start, ep.eval.t_end)
        e.update(ep.extra)
        e["end"] = stamp(ep.t_end)
        e["duration"] = f"{ep.t_end - ep.t_start:.2f}"
        out[str(ep.epoch)] = e
    return out


def output_dict(tl: Timeline) -> dict[str, Any]:
    """{rank}_output.json content: host keys, then per epoch the per-step arrays, AU and throughput."""
    rm = rank_metrics(tl)
    doc: dict[str, Any] = host_info()
    doc["potential_caching"] = 0
    for ep, em in zip(tl.epochs, rm.epochs, strict=True):
        d: dict[str, dict[str, Any]] = {"load": {}, "proc": {}, "compute": {}, "au": {}, "throughput": {}}
        for b, bm in zip(ep.blocks, em.blocks, strict=True):
            name = f"block{b.index}"
            d["load"][name] = [s.load for s in b.steps]
            d["proc"][name] = [s.proc for s in b.steps]
            d["compute"][name] = [s.compute for s in b.steps]
            d["au"][name] = bm.au
            d["throughput"][name] = bm.throughput
        if ep.eval is not None:
            d["load"]["eval"] = [s.load for s in ep.eval.steps]
            d["proc"]["eval"] = [s.proc for s in ep.eval.steps]
            d["compute"]["eval"] = [s.compute for s in ep.eval.steps]
            d["au"]["eval"] = em.eval_au
            d["throughput"]["eval"] = em.eval_throughput
        doc[str(ep.epoch)] = d
    return doc


def write_rank_files(output_dir: Path, tl: Timeline) -> tuple[Path, Path]:
    """Write this rank's ``{rank}_per_epoch_stats.json`` and ``{rank}_output.json``; returns their paths."""
    out = Path(output_dir)
    stats = write_json(out / f"{tl.rank}_per_epoch_stats.json", per_epoch_stats(tl))
    raw = write_json(out / f"{tl.rank}_output.json", output_dict(tl))
    return stats, raw
