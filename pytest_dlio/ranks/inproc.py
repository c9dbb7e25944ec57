"""N ranks as coroutines of one event loop: the phases' multi-rank logic without processes.

Every rank's collectives meet at a shared rendezvous (one per call, in call order), so the same phase code
that runs over :class:`~pytest_dlio.ranks.local.LocalWorld` or MPI runs here, e.g. ``asyncio.gather`` of
``run_training`` for every rank of ``InProcessWorld(3).comms``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pytest_dlio.errors import DlioError
from pytest_dlio.ranks import CallComm, resolve


class _Rendezvous:
    def __init__(self, size: int) -> None:
        self.values: dict[int, Any] = {}
        self.ops: dict[int, str] = {}
        self.done: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self.size = size


class InProcessWorld:
    """``size`` ranks sharing one event loop; ``comms[r]`` is rank r's Comm."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._meetings: dict[int, _Rendezvous] = {}
        self.comms = [InProcessComm(self, r) for r in range(size)]

    async def meet(self, rank: int, seq: int, op: str, value: Any) -> Any:
        m = self._meetings.get(seq)
        if m is None:
            m = self._meetings[seq] = _Rendezvous(self.size)
        m.values[rank], m.ops[rank] = value, op
        if len(m.values) == self.size:
            del self._meetings[seq]
            if len(set(m.ops.values())) > 1:
                m.done.set_exception(DlioError(f"mismatched collectives #{seq}: {sorted(m.ops.items())}"))
            else:
                m.done.set_result(resolve(op, [m.values[r] for r in range(self.size)]))
        return (await asyncio.shield(m.done))[rank]


class InProcessComm(CallComm):
    """Rank ``rank`` of an :class:`InProcessWorld`."""

    emulated = False

    def __init__(self, world: InProcessWorld, rank: int) -> None:
        self.world, self.rank, self.size, self.local_rank = world, rank, world.size, rank
        self._seq = 0

    async def _call(self, op: str, value: Any) -> Any:
        self._seq += 1
        return await self.world.meet(self.rank, self._seq, op, value)
