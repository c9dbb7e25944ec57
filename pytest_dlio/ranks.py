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
