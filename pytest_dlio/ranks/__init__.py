"""Who is running: the ``Comm`` every phase talks to, and its implementations.

Collectives are coroutines so a real implementation can wait for its peers without stalling the event
loop's reader tasks: the step loop awaits ``barrier()`` while the loader keeps prefetching.

- :class:`SingleComm` / :class:`RankOfWorld`: one process (here).
- :class:`~pytest_dlio.ranks.inproc.InProcessWorld`: N ranks as coroutines of one event loop (tests).
- :class:`~pytest_dlio.ranks.local.LocalWorld`: N rank processes on this host, started and supervised by
  the caller, collectives through a hub on a Unix socket (``--dlio-ranks N``).
- :class:`~pytest_dlio.ranks.mpi.MpiComm`: one rank of an MPI job (``mpirun -np N python -m pytest``).
"""

from __future__ import annotations

from typing import Any, Protocol

from pytest_dlio.errors import DlioError


class Comm(Protocol):
    rank: int
    size: int

    async def barrier(self) -> None: ...
    async def allreduce(self, value: float) -> float: ...
    async def gather(self, obj: Any) -> list[Any] | None: ...
    async def broadcast(self, obj: Any) -> Any: ...


class RankAborted(DlioError):
    """A collective gave up because another rank failed, died or hung (the message says which)."""


class SingleComm:
    """The single-process world: rank 0 of 1."""

    rank = 0
    size = 1
    local_rank = 0
    emulated = False

    async def barrier(self) -> None:
        return None

    async def allreduce(self, value: float) -> float:
        return value

    async def gather(self, obj: Any) -> list[Any] | None:
        return [obj]

    async def broadcast(self, obj: Any) -> Any:
        return obj


class RankOfWorld(SingleComm):
    """One process standing in for rank ``rank`` of a ``size``-rank world whose other ranks do not run.

    Used for model-parallel checkpoint workloads on one process: the files and sizes are exactly those
    DLIO's rank ``rank`` writes in that world. Collectives see only this rank.
    """

    emulated = True

    def __init__(self, rank: int, size: int) -> None:
        self.rank, self.size = rank, size


class CallComm:
    """A Comm whose four collectives are one ``_call(op, value)`` that returns this rank's share of
    :func:`resolve` (subclasses say how the call reaches the other ranks)."""

    rank: int
    size: int

    async def _call(self, op: str, value: Any) -> Any:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    async def barrier(self) -> None:
        await self._call("barrier", None)

    async def allreduce(self, value: float) -> float:
        return float(await self._call("allreduce", value))

    async def gather(self, obj: Any) -> list[Any] | None:
        out = await self._call("gather", obj)
        return list(out) if out is not None else None

    async def broadcast(self, obj: Any) -> Any:
        return await self._call("broadcast", obj if self.rank == 0 else None)


def host_leader(comm: Comm) -> bool:
    """Whether this rank is the first on its host (it alone drops page caches and the like)."""
    return int(getattr(comm, "local_rank", comm.rank)) == 0


OPS = ("barrier", "allreduce", "gather", "broadcast")


def resolve(op: str, values: list[Any], root: int = 0) -> list[Any]:
    """What each rank gets back from collective ``op`` given every rank's contribution (index = rank)."""
    n = len(values)
    if op == "barrier":
        return [None] * n
    if op == "allreduce":
        total = float(sum(float(v) for v in values))
        return [total] * n
    if op == "gather":
        return [list(values) if r == root else None for r in range(n)]
    if op == "broadcast":
        return [values[root]] * n
    raise DlioError(f"unknown collective {op!r}; collectives are {', '.join(OPS)}")


__all__ = ["OPS", "CallComm", "Comm", "RankAborted", "RankOfWorld", "SingleComm", "host_leader", "resolve"]
