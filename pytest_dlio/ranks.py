"""Who is running: the ``Comm`` every phase talks to, and its single-process implementations.

Collectives are coroutines so a real implementation (local processes, MPI) can wait for its peers
without stalling the event loop's reader tasks: the step loop awaits ``barrier()`` while the loader
keeps prefetching.
"""

from __future__ import annotations

from typing import Any, Protocol


class Comm(Protocol):
    rank: int
    size: int

    async def barrier(self) -> None: ...
    async def allreduce(self, value: float) -> float: ...
    async def gather(self, obj: Any) -> list[Any] | None: ...
    async def broadcast(self, obj: Any) -> Any: ...


class SingleComm:
    """The single-process world: rank 0 of 1."""

    rank = 0
    size = 1
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
