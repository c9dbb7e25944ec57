"""What a training run recorded, per rank: epochs, blocks, steps, eval steps and every read. Plain data.

Times are wall-clock seconds since the Unix epoch (``time.time()`` scale, taken from a monotonic clock
anchored once), so they print as DLIO's ``%Y-%m-%dT%H:%M:%S.%f`` and subtract exactly. ``metrics.py``
turns a :class:`Timeline` into DLIO's numbers; nothing here computes a metric.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


class Clock:
    """Wall-clock seconds from a monotonic source: no jumps when NTP steps the system clock."""

    def __init__(self) -> None:
        self._wall0 = time.time()
        self._mono0 = time.perf_counter()

    def now(self) -> float:
        return self._wall0 + (time.perf_counter() - self._mono0)


@dataclass
class Step:
    """One training (or eval) step: when it began fetching, and how long load/compute/proc took."""

    t_start_load: float
    load: float  # seconds waiting for the batch (I/O wait as the accelerator sees it)
    compute: float  # seconds the emulated accelerator computed: the measured sleep, at most its draw
    proc: float  # load + compute (+ overrun, barrier): DLIO's ``proc`` time
    #: seconds the emulated compute ran past its draw: the event loop was busy with the harness's own work
    #: (batch assembly, inline decoding) when the sleep should have ended — not accelerator time
    overrun: float = 0.0


@dataclass
class Block:
    """Steps between two step-based checkpoints (DLIO's ``blockN``; a whole epoch without them)."""

    index: int  # 1-based, as in DLIO's ``block1``
    t_start: float
    t_end: float = 0.0
    steps: list[Step] = field(default_factory=list)


@dataclass
class EvalRun:
    """One evaluation pass after an epoch."""

    t_start: float
    t_end: float = 0.0
    steps: list[Step] = field(default_factory=list)


@dataclass
class Epoch:
    """One epoch of one rank; ``extra`` holds entries other phases add (``save_ckpt1`` …)."""

    epoch: int  # 1-based, as DLIO numbers epochs
    t_start: float
    t_end: float = 0.0
    blocks: list[Block] = field(default_factory=list)
    eval: EvalRun | None = None
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Reads:
    """Every storage read of the run: bytes, latency and start time, as parallel lists (cheap to append).

    ``start`` is ``time.perf_counter()`` at the read's start (0.0 when the caller gave none);
    ``start + wall_offset`` is wall-clock time on the :class:`Clock` scale the rest of the timeline uses.
    """

    nbytes: list[int] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    start: list[float] = field(default_factory=list)
    wall_offset: float = field(default_factory=lambda: time.time() - time.perf_counter())

    def add(self, nbytes: int, latency: float, start: float = 0.0) -> None:
        self.nbytes.append(nbytes)
        self.latency.append(latency)
        self.start.append(start)


@dataclass
class Timeline:
    """One rank's recording of a training run, plus the config facts the formulas need."""

    rank: int
    steps_per_epoch: int  # DLIO's S, fixed at init (total_training_steps if > 0 else max_steps)
    eval_steps: int
    batch_size: int
    batch_size_eval: int
    record_size: float  # nominal record_length_bytes (DLIO's metric uses it, not bytes read)
    exclude_start_steps: int = 1
    exclude_end_steps: int = 0
    t_start: float = 0.0
    t_end: float = 0.0
    epochs: list[Epoch] = field(default_factory=list)
    reads: Reads = field(default_factory=Reads)
    eval_reads: Reads = field(default_factory=Reads)


def to_dict(tl: Timeline) -> dict[str, Any]:
    """A JSON-able copy of a timeline (for goldens and for shipping between ranks)."""
    from dataclasses import asdict

    return asdict(tl)


def from_dict(d: dict[str, Any]) -> Timeline:
    """Inverse of :func:`to_dict`."""

    def steps(items: list[dict[str, Any]]) -> list[Step]:
        return [Step(**s) for s in items]

    epochs = []
    for e in d.get("epochs", []):
        blocks = [Block(b["index"], b["t_start"], b["t_end"], steps(b["steps"])) for b in e["blocks"]]
        ev = e.get("eval")
        run = EvalRun(ev["t_start"], ev["t_end"], steps(ev["steps"])) if ev else None
        epochs.append(Epoch(e["epoch"], e["t_start"], e["t_end"], blocks, run, dict(e.get("extra", {}))))
    scalars = {k: v for k, v in d.items() if k not in ("epochs", "reads", "eval_reads")}
    return Timeline(
        **scalars,
        epochs=epochs,
        reads=Reads(**d.get("reads", {})),
        eval_reads=Reads(**d.get("eval_reads", {})),
    )
