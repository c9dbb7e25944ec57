"""Who runs a workload's phases: this process, N local rank processes, or this rank of an MPI job.

A :class:`Runner` runs one phase at a time and hands back rank 0's :class:`PhaseResult`; when any rank
failed, the result fails naming the rank(s) and their messages (root causes first; ranks that only stopped
because of them are counted, not repeated). Items call ``runner.run(phase)`` and never see ranks.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from pytest_dlio.progress import Progress
from pytest_dlio.report.results import PhaseResult

if TYPE_CHECKING:
    from pytest_dlio.engine.datalock import DatasetLock
    from pytest_dlio.engine.workload import Workload
    from pytest_dlio.ranks.local import RankOutcome


class Runner(Protocol):
    def run(self, phase: str) -> PhaseResult: ...
    def add_to_summary(self, part: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


def _failure(o: RankOutcome) -> str | None:
    return o.error or (o.result.failure if o.result is not None else None)


def _ranks(ranks: list[int]) -> str:
    return f"rank {ranks[0]}" if len(ranks) == 1 else "ranks " + ", ".join(map(str, ranks))


def compose(phase: str, outcomes: list[RankOutcome]) -> PhaseResult:
    """Rank 0's result, failing with every root-cause rank failure when any rank failed.

    A failure every rank reports alike (the AU gate over the run's shared metrics) is rank 0's verdict and
    is not repeated per rank; ranks that only stopped because another rank failed are counted.
    """
    first = outcomes[0].result if outcomes and outcomes[0].result is not None else PhaseResult(phase)
    own = first.failure
    causes = [
        o
        for o in outcomes
        if not o.aborted and _failure(o) and not (o.rank > 0 and o.error is None and _failure(o) == own)
    ]
    stopped = [o for o in outcomes if o.aborted]
    if not stopped and (not causes or (len(causes) == 1 and causes[0].rank == 0 and causes[0].error is None)):
        return first
    if causes:
        by_msg: dict[str, list[int]] = {}
        for o in causes:
            by_msg.setdefault(str(_failure(o)), []).append(o.rank)
        parts = [f"{_ranks(rs)}: {m}" for m, rs in by_msg.items()]
        msg = "; ".join(parts[:3]) + (f" (and {len(parts) - 3} more failures)" if len(parts) > 3 else "")
        if stopped:
            msg += f" ({len(stopped)} other rank(s) stopped because of it)"
    else:
        msg = f"rank {stopped[0].rank}: {stopped[0].error}"
    return PhaseResult(phase, list(first.properties), list(first.lines), msg)


#: The phases that write or read the dataset: the first of them takes the dataset's lock (datalock.py).
DATASET_PHASES = ("datagen", "train")


class _DatasetHold:
    """The workload's hold on its dataset, from its first dataset phase until :meth:`release` (the
    workload's items are done); a wait for another process is noted on the phase's result."""

    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        self.lock: DatasetLock | None = None
        self.note: str | None = None  # the wait, told on the result of the phase that waited

    def before(self, phase: str) -> None:
        if phase not in DATASET_PHASES or self.wl.settings.mpi:
            return  # one mpirun job is its own world: its ranks run one workload at a time together
        if self.lock is None:
            from pytest_dlio.engine.datalock import DatasetLock

            lock = DatasetLock(self.wl.settings.data_root, self.wl.data_uri(), self.wl.name)
            progress = self.wl.progress

            def notify(message: str) -> None:
                if progress is not None:
                    progress(Progress("wait", 0, 0, "", 0.0, None, {"message": message}))

            lock.acquire(notify)  # a DlioError (no lock file possible) fails the phase, as its own would
            self.lock = lock
            if lock.unavailable is not None:
                self.note = (
                    f"the dataset lock {lock.path} could not be taken ({lock.unavailable}): workloads "
                    "sharing this dataset folder in other processes are not kept from running at once"
                )
            elif lock.waited_for is not None:
                self.note = (
                    f"waited {lock.waited:.1f} s for the dataset before {phase}: "
                    f"{lock.waited_for} in another process on this host was using it"
                )

    def after(self, result: PhaseResult) -> PhaseResult:
        if self.note:
            result.lines.append(self.note)
            if self.lock is not None and self.lock.waited:
                result.properties.append(("dataset_wait_seconds", round(self.lock.waited, 3)))
            self.note = None
        return result

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()


class InProcess:
    """The workload's own process is its only rank (or one rank of a world the Workload's comm spans)."""

    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        self.hold = _DatasetHold(wl)

    def run(self, phase: str) -> PhaseResult:
        self.hold.before(phase)
        return self.hold.after(run_phase(self.wl.run(phase)))

    def add_to_summary(self, part: dict[str, Any]) -> None:
        self.wl._add_to_summary(part)

    def close(self) -> None:
        self.hold.release()


class LocalRanks:
    """``wl.settings.ranks`` local rank processes (started on the first phase, closed by :meth:`close`)."""

    def __init__(self, wl: Workload, size: int | None = None) -> None:
        self.wl = wl
        self.size = size or wl.settings.ranks
        self.world: Any = None
        self.last: list[RankOutcome] = []
        self.hold = _DatasetHold(wl)

    def _world(self) -> Any:
        if self.world is None:
            from pytest_dlio.ranks.local import LocalWorld

            wl = self.wl
            self.world = LocalWorld(
                wl.cfg,
                wl.settings,
                size=self.size,
                name=wl.name,
                emulators_dir=str(wl.storage.emulators.state_dir),
                timeout=wl.settings.rank_timeout,
                progress=wl.progress,
            )
        return self.world

    def outcomes(self, phase: str, payload: Any = None) -> list[RankOutcome]:
        from pytest_dlio.errors import DlioError
        from pytest_dlio.ranks.local import RankOutcome

        try:
            world = self._world()
        except DlioError as exc:
            return [RankOutcome(0, error=str(exc))]
        except OSError as exc:  # the host refused processes or sockets
            return [
                RankOutcome(0, error=f"could not start {self.size} local ranks: {exc}; lower --dlio-ranks")
            ]
        self.last = world.run(phase, payload)
        return self.last

    def run(self, phase: str) -> PhaseResult:
        self.hold.before(phase)
        result = self.hold.after(compose(phase, self.outcomes(phase)))
        # the phase ran (in the rank processes): this process's workload knows it, as Workload.run does, so
        # a later item does not run it again as a missing prerequisite (every item re-ran datagen and
        # train, and the au item judged a second training run, not the one the train item reported)
        self.wl.results[phase] = result
        return result

    def add_to_summary(self, part: dict[str, Any]) -> None:
        self.outcomes("__summary__", part)

    def close(self) -> None:
        try:
            if self.world is not None:
                self.world.close()
        finally:
            self.hold.release()


class MpiRanks(InProcess):
    """This process is one rank of an MPI job: run the phase here, then agree on the verdict with rank 0.

    Every rank gets the same outcome (rank 0 decides), so every rank's items pass, fail and skip alike and
    the ranks stay in lockstep.
    """

    def run(self, phase: str) -> PhaseResult:
        return run_phase(self._run(phase))

    async def _run(self, phase: str) -> PhaseResult:
        comm: Any = self.wl.comm
        if comm.broken:  # a rank hung earlier: no rank takes part in collectives any more
            return PhaseResult(phase, failure=f"not run: {comm.broken}")
        if comm.rank == 0:
            comm.start_watch()
        beat = asyncio.create_task(comm.heartbeat())  # rank 0 watches for silent ranks while it waits
        try:
            return await self._phase(comm, phase)
        finally:
            beat.cancel()

    async def _phase(self, comm: Any, phase: str) -> PhaseResult:
        from pytest_dlio.errors import DlioError
        from pytest_dlio.ranks import RankAborted
        from pytest_dlio.ranks.local import RankOutcome

        try:
            res = await self.wl.run(phase)
            mine = RankOutcome(comm.rank, result=res)
        except RankAborted as exc:
            mine = RankOutcome(comm.rank, error=str(exc), aborted=True)
        except DlioError as exc:
            comm.abort_peers(f"rank {comm.rank} failed: {exc}")
            mine = RankOutcome(comm.rank, error=str(exc))
        except Exception as exc:  # a bug on one rank must not leave the others waiting
            comm.abort_peers(f"rank {comm.rank} failed: {type(exc).__name__}: {exc}")
            mine = RankOutcome(comm.rank, error=f"{type(exc).__name__}: {exc}")
        return await comm.settle(phase, mine, compose, lambda r, why: RankOutcome(r, error=why))


def make_runner(wl: Workload) -> Runner:
    """InProcess for one rank (or an MPI rank), LocalRanks for ``--dlio-ranks N`` > 1."""
    if wl.settings.mpi:
        return MpiRanks(wl)
    if wl.settings.ranks > 1 and wl.settings.ranks_explicit:
        return LocalRanks(wl)
    return InProcess(wl)


__all__ = ["InProcess", "LocalRanks", "MpiRanks", "Runner", "compose", "make_runner"]


def run_phase(coro: Coroutine[Any, Any, Any]) -> Any:
    """``asyncio.run(coro)``, where SIGTERM cancels the phase — its writers abort, its stores close — and
    then ends the session as Ctrl-C does (KeyboardInterrupt)."""
    stopped: list[int] = []

    async def main() -> Any:
        loop, task = asyncio.get_running_loop(), asyncio.current_task()
        hook = threading.current_thread() is threading.main_thread()
        previous = signal.getsignal(signal.SIGTERM) if hook else None

        def stop() -> None:
            stopped.append(signal.SIGTERM)
            if task is not None:
                task.cancel()

        if hook:
            loop.add_signal_handler(signal.SIGTERM, stop)
        try:
            return await coro
        finally:
            if hook:
                loop.remove_signal_handler(signal.SIGTERM)
                signal.signal(signal.SIGTERM, previous)

    try:
        return asyncio.run(main())
    except asyncio.CancelledError:
        if stopped:
            raise KeyboardInterrupt("SIGTERM") from None
        raise
