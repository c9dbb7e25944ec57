"""Who is running: one rank for now; local processes and MPI implement the same ``Comm``."""

from __future__ import annotations

from typing import Any, Protocol


class Comm(Protocol):
    rank: int
    size: int

    def barrier(self) -> None: ...
    def allreduce(self, value: float) -> float: ...
    def gather(self, obj: Any) -> list[Any] | None: ...


class SingleComm:
    """The single-process world: rank 0 of 1."""

    rank = 0
    size = 1

    def barrier(self) -> None:
        return None

    def allreduce(self, value: float) -> float:
        return value

    def gather(self, obj: Any) -> list[Any] | None:
        return [obj]


class RankOfWorld(SingleComm):
    """One process standing in for rank ``rank`` of a ``size``-rank world whose other ranks do not run.

    Used for model-parallel checkpoint workloads on one process: the files and sizes are exactly those
    DLIO's rank ``rank`` writes in that world. Collectives see only this rank.
    """

    emulated = True

    def __init__(self, rank: int, size: int) -> None:
        self.rank, self.size = rank, size
