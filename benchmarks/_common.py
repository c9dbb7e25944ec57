"""What every benchmark shares: a phase run through the engine (the figure a user reads), raw baselines
run interleaved with it in the same process, and the machine's load printed beside every ratio.

Each side is a callable returning a rate (bytes/s or the property's own unit); :func:`interleave` runs the
sides alternately (who goes first alternates too), so background load hits both the same way, and
:func:`ratio_line` reports the best-of ratio and the median of the per-round ratios.
"""

from __future__ import annotations

import asyncio
import os
import statistics
from collections.abc import Callable
from pathlib import Path

from pytest_dlio.config.model import WorkloadConfig
from pytest_dlio.engine import RunSettings, Workload
from pytest_dlio.report.results import PhaseResult
from pytest_dlio.storage.session import StorageSession


def load() -> str:
    """The machine's load, for every printed figure (2 shared cores: ratios only mean something with it)."""
    one, five, _ = os.getloadavg()
    return f"[cpus {os.cpu_count()}, load {one:.1f}/{five:.1f}]"


def run_phases(
    cfg: WorkloadConfig,
    root: Path,
    *phases: str,
    storage_uri: str | None = None,
    generate: str = "auto",
    verify: bool = True,
    session: StorageSession | None = None,
) -> dict[str, PhaseResult]:
    """A fresh :class:`Workload` on ``root`` running ``phases`` in order, exactly as an item would.

    ``session``: a storage session kept across runs (its embedded moto/Azurite, and so the objects on it,
    live as long as it does; the caller closes it), else one made and closed for this run."""
    settings = RunSettings(
        data_root=root, output_root=root / "output", storage_uri=storage_uri, generate=generate, verify=verify
    )
    storage = session or StorageSession(settings.data_root, storage_uri)

    async def go() -> dict[str, PhaseResult]:
        wl = Workload(cfg, settings, storage, name="bench")
        out = {}
        for p in phases:
            res = await wl.run(p)
            if res.failure:
                raise SystemExit(f"{p} failed: {res.failure}")
            out[p] = res
        return out

    try:
        return asyncio.run(go())
    finally:
        if session is None:
            storage.close()


def figure(res: PhaseResult, name: str) -> float:
    """A property as the user reads it (an error when the phase did not report it)."""
    v = res.value(name)
    if not isinstance(v, int | float):
        raise SystemExit(f"{res.phase} reported no numeric {name!r}: {res.properties}")
    return float(v)


def interleave(
    sides: dict[str, Callable[[], float]], reps: int, before: Callable[[], None] | None = None
) -> dict[str, list[float]]:
    """Run every side ``reps`` times, alternating which goes first; the rates each produced."""
    got: dict[str, list[float]] = {k: [] for k in sides}
    names = list(sides)
    for r in range(reps):
        for name in names if r % 2 == 0 else names[::-1]:
            if before is not None:
                before()
            got[name].append(sides[name]())
    return got


def ratio_line(
    label: str, ours: list[float], base: list[float], target: float, unit: str = "MiB/s", scale: float = 2**20
) -> tuple[str, float]:
    """``label: ours x, raw y, ratio best-of b (median of rounds m)`` and the best-of ratio."""
    best = max(ours) / max(base)
    med = statistics.median(o / b for o, b in zip(ours, base, strict=True))
    line = (
        f"{label}: ours {max(ours) / scale:.4g} {unit}, raw {max(base) / scale:.4g} {unit}, ratio best-of "
        f"{best:.3f}, median of {len(ours)} rounds {med:.3f} (target >= {target}) {load()}"
    )
    return line, best
