"""One rank of an MPI job (``mpirun -np N python -m pytest …``), through mpi4py (the ``[mpi]`` extra).

Collectives are a star around rank 0 built from non-blocking point-to-point messages (``isend`` and
``improbe`` polled with ``await asyncio.sleep``), so a rank waiting at the step barrier never blocks its
event loop: its reader tasks keep prefetching. Messages carry a generation in their tag; after each phase
the ranks settle (rank 0 gathers every rank's outcome, decides, and tells everyone the same verdict) and
move to the next generation, so anything left over from an aborted phase is never mistaken for a reply.

A rank whose phase fails sends an abort to the others; their pending and later collectives in that phase
raise :class:`~pytest_dlio.ranks.RankAborted` at once instead of waiting forever. While a phase runs every
rank sends rank 0 a heartbeat from its event loop; a rank silent for ``timeout`` seconds fails the phase on
rank 0 naming it, later phases do not run, and after the report rank 0 ends the job (``MPI_Abort``) so the
hung process cannot keep ``mpirun`` waiting. (A rank that dies is MPI's to handle: OpenMPI's ``mpirun``
ends the whole job; a hung rank 0 is not detected.)
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

from pytest_dlio.errors import DlioError
from pytest_dlio.ranks import CallComm, RankAborted, resolve

UP, DOWN, ABORT, RESULT, VERDICT = range(5)
_KINDS = 8
_GENERATIONS = 2000  # tags stay far below MPI_TAG_UB (at least 32767)
_BEAT_TAG = _GENERATIONS * _KINDS + 1  # heartbeats to rank 0: one tag for the whole job
_ENV_SIZES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE")


def launcher_world_size(env: dict[str, str] | None = None) -> int:
    """The world size an MPI launcher announced in the environment (1 when not launched by one)."""
    env = dict(os.environ) if env is None else env
    for key in _ENV_SIZES:
        value = env.get(key, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


def _import_mpi() -> Any:
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise DlioError(
            f"this process was started by an MPI launcher but mpi4py cannot be imported ({exc}); "
            "install the extra: pip install 'pytest-dlio[mpi]' (it needs an MPI library, e.g. "
            "apt-get install openmpi-bin libopenmpi-dev)"
        ) from None
    return MPI


class MpiComm(CallComm):
    """This process's rank of ``MPI.COMM_WORLD`` (or of ``comm``)."""

    emulated = False

    def __init__(self, comm: Any = None, *, timeout: float = 60.0) -> None:
        self.MPI = _import_mpi()
        self.timeout = float(timeout)  # a rank silent this long (no heartbeat) during a phase counts as hung
        self.broken: str | None = None  # set for good once a rank hung: later phases do not run
        self._seen: dict[int, float] = {}
        self._hung: set[int] = set()
        self.comm = comm if comm is not None else self.MPI.COMM_WORLD
        self.rank, self.size = int(self.comm.Get_rank()), int(self.comm.Get_size())
        node = self.comm.Split_type(self.MPI.COMM_TYPE_SHARED)
        self.local_rank = int(node.Get_rank())
        node.Free()
        self._gen = 0
        self._abort: str | None = None
        self._sends: list[Any] = []

    # ---- plumbing ----
    def _tag(self, kind: int) -> int:
        return (self._gen % _GENERATIONS) * _KINDS + kind

    def _send(self, dest: int, kind: int, obj: Any) -> None:
        self._sends = [r for r in self._sends if not r.Test()]
        self._sends.append(self.comm.isend(obj, dest=dest, tag=self._tag(kind)))

    async def _recv(self, source: int, kind: int, *, abortable: bool = True) -> tuple[int, Any]:
        status = self.MPI.Status()
        spins = 0
        while True:
            msg = self.comm.improbe(source=source, tag=self._tag(kind), status=status)
            if msg is not None:
                return int(status.Get_source()), msg.recv()
            if abortable:
                stop = self.comm.improbe(source=self.MPI.ANY_SOURCE, tag=self._tag(ABORT))
                if stop is not None:
                    self._abort = str(stop.recv())
                    raise RankAborted(self._abort)
                hung = self._silent() if self.rank == 0 and spins % 50 == 0 else None
                if hung is not None:  # the rank everyone waits for is gone quiet: stop the phase here
                    self._hung.add(hung)
                    reason = f"rank {hung} {self._hang_reason()}"
                    self.abort_peers(reason)
                    raise RankAborted(reason)
            spins += 1
            # yield at once for the first polls (a barrier is usually answered within microseconds), then
            # back off so a long wait does not spin a core the readers need
            await asyncio.sleep(0 if spins < 200 else min(0.002, 0.00002 * (spins - 199)))

    # ---- liveness: every rank beats to rank 0 while a phase runs; rank 0 watches while it waits ----
    async def heartbeat(self) -> None:
        """Run for the length of a phase (a task): tell rank 0 this rank's event loop is alive."""
        every = max(0.05, min(1.0, self.timeout / 5))
        while True:
            if self.rank != 0:
                self._sends = [r for r in self._sends if not r.Test()]
                self._sends.append(self.comm.isend(None, dest=0, tag=_BEAT_TAG))
            await asyncio.sleep(every)

    def start_watch(self) -> None:
        """At a phase's start (rank 0): every rank counts as just seen."""
        now = time.monotonic()
        self._seen = {r: now for r in range(self.size)}

    def _silent(self, among: set[int] | None = None) -> int | None:
        """Rank 0: drain heartbeats, then the first rank (of ``among``) silent for longer than the timeout."""
        status = self.MPI.Status()
        while True:
            msg = self.comm.improbe(source=self.MPI.ANY_SOURCE, tag=_BEAT_TAG, status=status)
            if msg is None:
                break
            msg.recv()
            self._seen[int(status.Get_source())] = time.monotonic()
        now = time.monotonic()
        for r in sorted(among if among is not None else range(1, self.size)):
            if r not in self._hung and now - self._seen.get(r, now) > self.timeout:
                return r
        return None

    def _hang_reason(self) -> str:
        return (
            f"did not respond for {self.timeout:g} s (hung; --dlio-rank-timeout); the MPI job is ended "
            "after this session's report"
        )

    async def _call(self, op: str, value: Any) -> Any:
        if self._abort is not None:
            raise RankAborted(self._abort)
        if self.size == 1:
            return resolve(op, [value])[0]
        if self.rank != 0:
            self._send(0, UP, (op, value))
            return (await self._recv(0, DOWN))[1]
        calls: list[Any] = [(op, value)] + [None] * (self.size - 1)
        for _ in range(self.size - 1):
            src, call = await self._recv(self.MPI.ANY_SOURCE, UP)
            calls[src] = call
        ops = {c[0] for c in calls}
        if len(ops) > 1:
            reason = "ranks called different collectives: " + ", ".join(
                f"rank {r} {c[0]}" for r, c in enumerate(calls)
            )
            self.abort_peers(reason)
            self._abort = reason
            raise RankAborted(reason)
        replies = resolve(op, [c[1] for c in calls])
        for r in range(1, self.size):
            self._send(r, DOWN, replies[r])
        return replies[0]

    # ---- failure and agreement ----
    def abort_peers(self, reason: str) -> None:
        """Make every other rank's collectives in this phase raise ``reason``."""
        self._abort = self._abort or reason
        for r in range(self.size):
            if r != self.rank:
                self._send(r, ABORT, reason)

    async def settle(
        self,
        phase: str,
        mine: Any,
        decide: Callable[[str, list[Any]], Any],
        hung_outcome: Callable[[int, str], Any],
    ) -> Any:
        """Every rank's outcome to rank 0, ``decide(phase, outcomes)`` there, the same verdict to all; then
        the next generation of tags (leftovers of this phase can never match again). A rank that went
        silent gets ``hung_outcome(rank, reason)`` instead of being waited for, and the world is broken."""
        try:
            if self.size == 1:
                return decide(phase, [mine])
            if self.rank != 0:
                self._send(0, RESULT, mine)
                verdict, broken = (await self._recv(0, VERDICT, abortable=False))[1]
                self.broken = self.broken or broken
                return verdict
            outcomes: list[Any] = [mine] + [None] * (self.size - 1)
            for r in self._hung:
                outcomes[r] = hung_outcome(r, self._hang_reason())
            status = self.MPI.Status()
            spins = 0
            while any(o is None for o in outcomes):
                msg = self.comm.improbe(source=self.MPI.ANY_SOURCE, tag=self._tag(RESULT), status=status)
                if msg is not None:
                    outcomes[int(status.Get_source())] = msg.recv()
                    continue
                spins += 1
                hung = (
                    self._silent({r for r, o in enumerate(outcomes) if o is None})
                    if spins % 50 == 0
                    else None
                )
                if hung is not None:
                    self._hung.add(hung)
                    outcomes[hung] = hung_outcome(hung, self._hang_reason())
                await asyncio.sleep(0 if spins < 200 else 0.002)
            if self._hung:
                self.broken = f"rank {min(self._hung)} {self._hang_reason()}"
            verdict = decide(phase, outcomes)
            for r in range(1, self.size):
                if r not in self._hung:
                    self._send(r, VERDICT, (verdict, self.broken))
            return verdict
        finally:
            self._gen += 1
            self._abort = None

    def end_job_if_broken(self) -> None:
        """After the report: a hung rank would keep ``mpirun`` waiting forever, so end the whole job."""
        if self.broken and self.rank == 0:
            self.comm.Abort(3)

    def bcast_now(self, obj: Any) -> Any:
        """A blocking broadcast from rank 0, for start-up (before any event loop runs)."""
        return self.comm.bcast(obj, root=0)


__all__ = ["MpiComm", "launcher_world_size"]
