"""Live progress of a long phase as small structured events, pytest-free.

Phases call a :class:`Ticker` in their inner loop (datagen per file, train per step, checkpoint per chunk);
it emits a :class:`Progress` event at most every ``every`` seconds, with the rate and ETA worked out. The
receiver (the pytest glue, a script) decides how to show it and how often; nothing here prints.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Progress:
    """Where one phase of one workload stands: ``done`` of ``total`` ``unit`` at ``rate`` units/s.

    ``eta`` is seconds left at the current rate (None when unknown); ``extra`` holds phase-specific figures
    (train: epoch, step, au_percent, samples_per_second; checkpoint: kind, index). ``final`` marks the
    phase's last event.
    """

    phase: str
    done: float
    total: float
    unit: str
    rate: float
    eta: float | None
    extra: Mapping[str, Any] = field(default_factory=dict)
    final: bool = False


ProgressFn = Callable[[Progress], None]


class Ticker:
    """Turns a loop's running count into :class:`Progress` events, no more often than every ``every`` s."""

    def __init__(
        self,
        fn: ProgressFn | None,
        phase: str,
        total: float,
        unit: str,
        *,
        every: float = 0.5,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.fn, self.phase, self.total, self.unit, self.every, self.clock = (
            fn,
            phase,
            total,
            unit,
            every,
            clock,
        )
        self.t0 = clock()
        self.last = self.t0

    def __call__(self, done: float, *, final: bool = False, **extra: Any) -> None:
        if self.fn is None:
            return
        now = self.clock()
        if not final and now - self.last < self.every:
            return
        self.last = now
        elapsed = now - self.t0
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 and self.total >= done else None
        self.fn(Progress(self.phase, done, self.total, self.unit, rate, eta, extra, final))


__all__ = ["Progress", "ProgressFn", "Ticker"]
