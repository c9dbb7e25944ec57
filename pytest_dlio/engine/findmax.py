"""``--dlio-find-max``: the largest number of local accelerators whose mean train AU still meets ``metric.au``.

MLPerf Storage's headline figure, searched instead of rerun by hand: try 1, 2, 4, … ranks until one misses
the threshold (or the cap), then bisect between the last count that met it and the first that did not.
Each trial is a fresh :class:`~pytest_dlio.ranks.local.LocalWorld` running datagen (a no-op when the
dataset is complete) and training with checkpoints and evaluation off, into its own output folder. The
ranks' CPU time is measured (``getrusage`` in each worker): when the first failing count kept the host's
cores busy, the host — not the storage — was the limit, and the result says so.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pytest_dlio.report.results import PhaseResult

if TYPE_CHECKING:
    from pytest_dlio.engine.workload import Workload

#: Above this share of the host's cores in use by the ranks, the host CPU is named as the limit.
CPU_BOUND = 0.8
MAX_RANKS = 64
MIN_STEPS = 3  # DLIO's throughput needs at least 3 steps per rank (its hard-coded "- 2")


@dataclass(frozen=True)
class Trial:
    """One rank count's run: mean train AU (%), and the host CPU share its ranks used (0..1)."""

    ranks: int
    au: float
    cpu_share: float = 0.0
    failure: str | None = None


@dataclass(frozen=True)
class Search:
    """The outcome: ``best`` ranks met the threshold; ``first_fail`` (if any) did not; every trial made."""

    best: int
    first_fail: int | None
    cap: int
    trials: dict[int, Trial] = field(default_factory=dict)

    @property
    def capped(self) -> bool:
        return self.first_fail is None


def search(trial: Callable[[int], Trial], threshold_pct: float, cap: int) -> Search:
    """Doubling from 1, then bisection, for the largest ranks ≤ ``cap`` whose trial AU ≥ ``threshold_pct``
    (AU is taken to fall as ranks grow; each count is tried at most once)."""
    done: dict[int, Trial] = {}

    def meets(n: int) -> bool:
        if n not in done:
            done[n] = trial(n)
        t = done[n]
        return t.failure is None and t.au >= threshold_pct

    if cap < 1 or not meets(1):
        return Search(0, 1 if cap >= 1 else None, cap, done)
    lo, hi = 1, None
    n = 2
    while n <= cap:
        if not meets(n):
            hi = n
            break
        lo, n = n, n * 2
    if hi is None:
        if lo == cap or meets(cap):
            return Search(cap, None, cap, done)
        hi = cap
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if meets(mid):
            lo = mid
        else:
            hi = mid
    return Search(lo, hi, cap, done)


def rank_cap(wl: Workload, limit: int = MAX_RANKS) -> int:
    """The most ranks worth trying: each must still get ``MIN_STEPS`` steps per epoch from this dataset."""
    cfg = wl.cfg
    extra = cfg.output.metric.exclude_start_steps + cfg.output.metric.exclude_end_steps
    n = 1
    while n < limit and cfg.steps_per_epoch(n + 1) >= max(MIN_STEPS, extra + 2):
        n += 1
    return n


def _trial_of(wl: Workload) -> Callable[[int], Trial]:
    from pytest_dlio.engine.runner import compose
    from pytest_dlio.ranks.local import LocalWorld

    cfg = replace(wl.cfg, workflow=replace(wl.cfg.workflow, checkpoint=False, evaluation=False))
    cores = os.cpu_count() or 1

    def trial(n: int) -> Trial:
        settings = replace(
            wl.settings,
            ranks=n,
            ranks_explicit=True,
            output_root=wl.settings.output / wl.name / "max_accelerators" / f"{n}_accelerators",
        )
        world = LocalWorld(
            cfg,
            settings,
            size=n,
            name=wl.name,
            emulators_dir=str(wl.storage.emulators.state_dir),
            timeout=wl.settings.rank_timeout,
        )
        try:
            for phase in ("datagen", "train"):
                outcomes = world.run(phase)
                res = compose(phase, outcomes)
                if res.failure:
                    return Trial(n, 0.0, failure=res.failure)
        finally:
            world.close()
        wall = max((o.wall_seconds for o in outcomes), default=0.0)
        cpu = sum(o.cpu_seconds for o in outcomes)
        share = cpu / (wall * cores) if wall > 0 else 0.0
        return Trial(n, float(res.value("train_au_mean_percentage") or 0.0), share)

    return trial


def describe(name: str, where: str, s: Search, threshold_pct: float) -> str:
    """The terminal line: ``unet3d_h100 on file:///data: 6 accelerators at AU ≥ 90 % (7: 87.2 %)``."""
    line = f"{name} on {where}: {s.best} accelerators at AU ≥ {threshold_pct:g} %"
    if s.first_fail is not None:
        t = s.trials[s.first_fail]
        line += f" ({s.first_fail}: {t.au:.1f} %)" if t.failure is None else f" ({s.first_fail}: failed)"
    else:
        line += f" (search capped at {s.cap}: more ranks get fewer than {MIN_STEPS} steps per epoch from this dataset)"
    return line


def limit_of(s: Search) -> str:
    """What stopped the count growing: the host's CPU, the storage, or the search cap (the dataset)."""
    if s.first_fail is None:
        return "search cap"
    t = s.trials[s.first_fail]
    if t.failure is not None:
        return "failure"
    return "host CPU" if t.cpu_share >= CPU_BOUND else "storage"


def find_max(wl: Workload, trial: Callable[[int], Trial] | None = None) -> PhaseResult:
    """Search and report (PhaseResult ``max_accelerators``; ``doc()`` of it goes into summary.json)."""
    threshold = float(wl.cfg.metric.au * 100)
    s = search(trial or _trial_of(wl), threshold, rank_cap(wl))
    where = wl.storage.resolve(wl.cfg.dataset.data_folder, wl.cfg.storage)
    limit = limit_of(s)
    props: list[tuple[str, int | float | str]] = [
        ("max_accelerators", s.best),
        ("max_accelerators_threshold_percentage", threshold),
        ("max_accelerators_limit", limit),
        ("max_accelerators_cap", s.cap),
    ]
    if s.best:
        props.append(("max_accelerators_au_percentage", round(s.trials[s.best].au, 3)))
    if s.first_fail is not None:
        props.append(("max_accelerators_first_fail", s.first_fail))
        props.append(("max_accelerators_first_fail_au_percentage", round(s.trials[s.first_fail].au, 3)))
    lines = [describe(wl.name, where, s, threshold), f"limit: {limit}"]
    for n in sorted(s.trials):
        t = s.trials[n]
        lines.append(
            f"  {n:>3} accelerators: "
            + (
                f"AU {t.au:.2f} %, ranks used {100 * t.cpu_share:.0f} % of {os.cpu_count()} cores"
                if t.failure is None
                else t.failure
            )
        )
    failure = None
    if s.best == 0 and s.trials.get(1) is not None and s.trials[1].failure:
        failure = f"max_accelerators: one accelerator failed: {s.trials[1].failure}"
    return PhaseResult("max_accelerators", props, lines, failure)


def doc(result: PhaseResult) -> dict[str, Any]:
    """summary.json's ``pytest_dlio.max_accelerators`` part: the properties and the report lines."""
    part: dict[str, Any] = dict(result.properties)
    part["report"] = list(result.lines)
    return {"pytest_dlio": {"max_accelerators": part}}


__all__ = ["Search", "Trial", "describe", "doc", "find_max", "limit_of", "rank_cap", "search"]
