"""One local rank: ``python -m pytest_dlio.engine.worker SOCKET RANK`` (started by LocalWorld, never by hand).

Connects to the hub, receives the workload (config, settings, name), builds the engine's Workload with a
:class:`~pytest_dlio.ranks.local.LocalComm` and runs the phases the hub asks for, each as a task so the
connection keeps being served (collective replies, aborts) while it runs. No pytest is imported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import resource
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from pytest_dlio.errors import DlioError
from pytest_dlio.progress import Progress
from pytest_dlio.ranks import RankAborted
from pytest_dlio.ranks.local import TOKEN_ENV, Link, LocalComm, read_frame

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the process that started it goes away (no orphans)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def _run_phase(wl: Any, comm: LocalComm, link: Link, phase_no: int, phase: str, payload: Any) -> None:
    cpu0, t0 = _cpu(), time.perf_counter()
    result, error, aborted = None, None, False
    try:
        if phase == "__summary__":  # merge a part into rank 0's summary.json (find-max adds its result)
            wl._add_to_summary(payload)
        else:
            result = await wl.run(phase)
    except RankAborted as exc:
        error, aborted = str(exc), True
    except asyncio.CancelledError:
        error, aborted = comm._abort or "cancelled", True
    except DlioError as exc:
        error = str(exc)
    except Exception as exc:  # a bug: say where, briefly
        where = traceback.extract_tb(exc.__traceback__)[-1]
        error = f"{type(exc).__name__}: {exc} (at {Path(where.filename).name}:{where.lineno})"
    cpu, wall = _cpu() - cpu0, time.perf_counter() - t0
    try:
        await link.send(("done", phase_no, result, error, aborted, cpu, wall))
    except Exception as exc:  # an unpicklable result must not leave the hub waiting for this rank forever
        await link.send(
            (
                "done",
                phase_no,
                None,
                f"could not send this rank's result ({type(exc).__name__}: {exc})",
                False,
                cpu,
                wall,
            )
        )


async def _heartbeat(link: Link, every: float) -> None:
    while True:
        await link.send(("beat",))
        await asyncio.sleep(every)


async def main(sock: str, rank: int) -> int:
    from pytest_dlio.engine.workload import Workload
    from pytest_dlio.storage.emulators import Emulators
    from pytest_dlio.storage.session import StorageSession

    reader, writer = await asyncio.open_unix_connection(sock)
    link = Link(writer)
    await link.send(("hello", rank, os.environ.get(TOKEN_ENV, ""), os.getpid(), "pytest" in sys.modules))
    _, cfg, settings, name, emulators_dir, size = await read_frame(reader)
    comm = LocalComm(rank, size, link)
    storage = StorageSession(
        settings.data_root, settings.storage_uri, Emulators(Path(emulators_dir)) if emulators_dir else None
    )
    loop = asyncio.get_running_loop()

    def progress(event: Progress) -> None:  # the supervisor shows rank 0's
        loop.create_task(link.send(("progress", event)))

    wl = Workload(cfg, settings, storage, comm=comm, name=name, progress=progress)
    beat = asyncio.create_task(_heartbeat(link, max(0.05, min(1.0, settings.rank_timeout / 5))))
    task: asyncio.Task[None] | None = None
    try:
        while True:
            try:
                msg = await read_frame(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return 3  # the hub is gone: nothing left to do
            kind = msg[0]
            if kind == "reply":
                comm.on_reply(msg[1], msg[2], msg[3])
            elif kind == "run":
                _, phase_no, phase, payload = msg
                comm.start_phase(phase_no)
                task = asyncio.create_task(_run_phase(wl, comm, link, phase_no, phase, payload))
            elif kind == "abort":
                if msg[1] == comm._phase:
                    comm.on_abort(msg[2])
                    if task is not None and not task.done():
                        task.cancel()
            elif kind == "exit":
                return 0
    finally:
        beat.cancel()
        if task is not None and not task.done():
            task.cancel()
        storage.close()
        link.close()


if __name__ == "__main__":
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the supervisor's to handle
    sys.exit(asyncio.run(main(sys.argv[1], int(sys.argv[2]))))
