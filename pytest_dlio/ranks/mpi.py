"""One rank of an MPI job (``mpirun -np N python -m pytest …``), through mpi4py (the ``[mpi]`` extra).

Collectives are a star around rank 0 built from non-blocking point-to-point messages (``isend`` and
``improbe`` polled with ``await asyncio.sleep``), so a rank waiting at the step barrier never blocks its
event loop: its reader tasks keep prefetching. Messages carry a generation in their tag; after each phase
the ranks settle (rank 0 gathers every rank's outcome, decides, and tells everyone the same verdict) and
move to the next generation, so anything left over from an aborted phase is never mistaken for a reply.

A rank whose phase fails sends an abort to the others; their pending and later collectives in that phase
raise :class:`~pytest_dlio.ranks.RankAborted` at once instead of waiting forever. (A rank that dies is
MPI's to handle: OpenMPI's ``mpirun`` ends the whole job.)
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

from pytest_dlio.errors import DlioError
from pytest_dlio.ranks import CallComm, RankAborted, resolve

UP, DOWN, ABORT, RESULT, VERDICT = range(5)
_KINDS = 8
_GENERATIONS = 2000  # tags stay far below MPI_TAG_UB (at least 32767)
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

    def __init__(self, comm: Any = None) -> None:
        self.MPI = _import_mpi()
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
            spins += 1
            # yield at once for the first polls (a barrier is usually answered within microseconds), then
            # back off so a long wait does not spin a core the readers need
            await asyncio.sleep(0 if spins < 200 else min(0.002, 0.00002 * (spins - 199)))

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

    async def settle(self, phase: str, mine: Any, decide: Callable[[str, list[Any]], Any]) -> Any:
        """Every rank's outcome to rank 0, ``decide(phase, outcomes)`` there, the same verdict to all; then
        the next generation of tags (leftovers of this phase can never match again)."""
        try:
            if self.size == 1:
                return decide(phase, [mine])
            if self.rank != 0:
                self._send(0, RESULT, mine)
                return (await self._recv(0, VERDICT, abortable=False))[1]
            outcomes: list[Any] = [mine] + [None] * (self.size - 1)
            for _ in range(self.size - 1):
                src, out = await self._recv(self.MPI.ANY_SOURCE, RESULT, abortable=False)
                outcomes[src] = out
            verdict = decide(phase, outcomes)
            for r in range(1, self.size):
                self._send(r, VERDICT, verdict)
            return verdict
        finally:
            self._gen += 1
            self._abort = None

    def bcast_now(self, obj: Any) -> Any:
        """A blocking broadcast from rank 0, for start-up (before any event loop runs)."""
        return self.comm.bcast(obj, root=0)


__all__ = ["MpiComm", "launcher_world_size"]
