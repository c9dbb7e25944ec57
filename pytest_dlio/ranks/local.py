"""N rank processes on this host (``--dlio-ranks N``), started and supervised by the calling process.

The caller (a pytest item, a script, the find-max search) creates a :class:`LocalWorld`; it starts a hub
— an asyncio loop in a background thread, listening on a Unix socket in a private temporary folder — and
N worker processes (``python -m pytest_dlio.engine.worker``, no pytest). Each worker runs the engine's
:class:`~pytest_dlio.engine.workload.Workload` for its rank with a :class:`LocalComm`; the caller then runs
phases one at a time with :meth:`LocalWorld.run`, which returns every rank's :class:`RankOutcome`.

Collectives: each rank sends ``(seq, op, value)``; when all ranks have sent call ``seq`` the hub resolves
it (:func:`pytest_dlio.ranks.resolve`) and answers each. A rank waits on an asyncio future, so its reader
tasks keep running meanwhile.

Failure is bounded:

- a rank whose phase fails makes the hub abort the others (their collectives raise, their phase task is
  cancelled), so the phase ends at once naming the failing rank;
- a rank that dies (EOF on its socket) or stops answering for ``timeout`` seconds (workers send a heartbeat
  from their event loop; a hung one is SIGKILLed) fails the phase the same way, and the world is closed —
  later phases fail at once naming it;
- a rank that finishes a phase while others wait in a collective it never joined (a mismatch that would
  deadlock DLIO) aborts them;
- :meth:`LocalWorld.close` (also at interpreter exit) asks workers to exit, then terminates and kills
  them; workers also die with their parent (``PR_SET_PDEATHSIG``) and exit when the hub's socket closes.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import pickle
import secrets
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_dlio.errors import DlioError
from pytest_dlio.ranks import CallComm, RankAborted, resolve
from pytest_dlio.storage.throttle import BUDGET_DIR_ENV

_HEADER = struct.Struct("!Q")
TOKEN_ENV = "PYTEST_DLIO_RANK_TOKEN"
#: What each rank process runs (the engine sits above this package, so it is named, not imported).
WORKER_MODULE = "pytest_dlio.engine.worker"
DEFAULT_TIMEOUT = 60.0
STARTUP_FLOOR = 60.0  # seconds every worker gets to import the engine and connect (a busy host is slow)


# ---------------------------------------------------------------- wire ----
async def read_frame(reader: asyncio.StreamReader) -> Any:
    """One length-prefixed pickled message (IncompleteReadError at EOF)."""
    (n,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    return pickle.loads(await reader.readexactly(n))


class Link:
    """The writing half of a connection: whole frames, one writer at a time."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self._lock = asyncio.Lock()

    async def send(self, msg: Any) -> None:
        data = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
        async with self._lock:
            self.writer.write(_HEADER.pack(len(data)) + data)
            await self.writer.drain()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


# ---------------------------------------------------------------- worker side ----
class LocalComm(CallComm):
    """One worker's Comm: collectives go to the hub and come back as futures."""

    emulated = False

    def __init__(self, rank: int, size: int, link: Link) -> None:
        self.rank, self.size, self.local_rank = rank, size, rank
        self.link = link
        self._seq = 0
        self._phase = 0
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._abort: str | None = None

    def start_phase(self, phase_no: int) -> None:
        self._phase, self._seq, self._abort = phase_no, 0, None
        self._pending.clear()

    def on_reply(self, phase_no: int, seq: int, value: Any) -> None:
        fut = self._pending.pop(seq, None) if phase_no == self._phase else None
        if fut is not None and not fut.done():
            fut.set_result(value)

    def on_abort(self, reason: str) -> None:
        self._abort = reason
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(RankAborted(reason))
        self._pending.clear()

    async def _call(self, op: str, value: Any) -> Any:
        if self._abort is not None:
            raise RankAborted(self._abort)
        if self.size == 1:  # a world of one needs no hub round trip
            return resolve(op, [value])[0]
        self._seq += 1
        fut = self._pending[self._seq] = asyncio.get_running_loop().create_future()
        await self.link.send(("coll", self._phase, self._seq, op, value))
        return await fut


# ---------------------------------------------------------------- supervisor side ----
@dataclass(frozen=True)
class RankOutcome:
    """One rank's end of one phase: its result, or why it failed (``aborted``: because another rank did)."""

    rank: int
    result: Any = None  # the engine's PhaseResult
    error: str | None = None
    aborted: bool = False
    cpu_seconds: float = 0.0  # this process's user + system CPU during the phase (all its threads)
    wall_seconds: float = 0.0


def describe_exit(code: int | None) -> str:
    if code is None:
        return "is still running"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class _Meeting:
    def __init__(self) -> None:
        self.values: dict[int, tuple[str, Any]] = {}


class LocalWorld:
    """``size`` local rank processes running one workload, phase by phase (see the module docstring).

    ``cfg`` and ``settings`` are the engine's WorkloadConfig and RunSettings (pickled to the workers);
    ``emulators_dir`` is the storage session's emulator state folder, so workers share its moto/Azurite.
    ``progress`` receives rank 0's progress events (``pytest_dlio.progress.Progress``, pickled across).
    """

    def __init__(
        self,
        cfg: Any,
        settings: Any,
        *,
        size: int,
        name: str,
        emulators_dir: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        progress: Callable[[Any], None] | None = None,
    ) -> None:
        if size < 1:
            raise DlioError(f"--dlio-ranks {size}: a world needs at least one rank")
        self.size, self.name, self.timeout = size, name, float(timeout)
        self.progress = progress  # rank 0's progress lines, called on the hub thread while run() waits
        self._init = (cfg, settings, name, emulators_dir, size)
        self._dir = Path(tempfile.mkdtemp(prefix="dlio-ranks-"))
        if len(str(self._dir)) > 90:  # a Unix socket path has at most 107 bytes; a long $TMPDIR would not fit
            self._dir.rmdir()
            self._dir = Path(tempfile.mkdtemp(prefix="dlio-ranks-", dir="/tmp"))
        self._sock = str(self._dir / "hub.sock")
        self._token = secrets.token_hex(16)
        self.procs: list[subprocess.Popen[bytes]] = []
        self._links: dict[int, Link] = {}
        self._last_seen: dict[int, float] = {}
        self._dead: dict[int, str] = {}
        self._killed: set[int] = set()
        self.broken: str | None = None
        self.pytest_in_workers: bool | None = None
        self._phase_no = 0
        self._meetings: dict[int, _Meeting] = {}
        self._running: set[int] = set()
        self._aborting = False
        self._aborted_at = 0.0
        self._outcomes: dict[int, RankOutcome] = {}
        self._phase_done: asyncio.Future[None] | None = None
        self._connected: asyncio.Future[None] | None = None
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="dlio-rank-hub", daemon=True)
        self._thread.start()
        atexit.register(self.close)
        try:
            self._submit(self._start_server())
            self._spawn()
            self._submit(self._await_connections(max(self.timeout, STARTUP_FLOOR)))
        except BaseException:
            self.close()
            raise

    # ---- plumbing ----
    def _submit(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    async def _start_server(self) -> None:
        self._connected = self._loop.create_future()
        self._server = await asyncio.start_unix_server(self._serve, path=self._sock)
        os.chmod(self._sock, 0o600)
        self._watch = self._loop.create_task(self._watchdog())

    def _spawn(self) -> None:
        env = {**os.environ, TOKEN_ENV: self._token}
        # a throttled store (?bandwidth_mib_s=) caps all ranks together: their budget is shared through files
        # in a folder of this world's (unless the caller already shares one with others)
        if not env.get(BUDGET_DIR_ENV):
            (self._dir / "throttle").mkdir()
            env[BUDGET_DIR_ENV] = str(self._dir / "throttle")
        for r in range(self.size):
            log = open(self._dir / f"rank{r}.log", "wb")  # noqa: SIM115 - the child owns it
            try:
                self.procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", WORKER_MODULE, self._sock, str(r)],
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        env=env,
                        close_fds=True,
                    )
                )
            finally:
                log.close()

    async def _await_connections(self, bound: float) -> None:
        assert self._connected is not None
        deadline = time.monotonic() + bound
        while not self._connected.done():
            if self.broken:
                raise DlioError(self.broken)
            if time.monotonic() > deadline:
                missing = sorted(set(range(self.size)) - set(self._links))
                self.broken = (
                    f"local ranks {missing} did not start within {bound:.0f} s"
                    f"{self._log_tail(missing[0])}; the host may be overloaded"
                )
                raise DlioError(self.broken)
            await asyncio.sleep(0.05)

    def _log_tail(self, rank: int, lines: int = 6) -> str:
        try:
            text = (self._dir / f"rank{rank}.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return (" — its last output: " + " | ".join(text[-lines:])) if text else ""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = Link(writer)
        try:
            hello = await asyncio.wait_for(read_frame(reader), 10)
        except (Exception, asyncio.CancelledError):
            link.close()
            return
        if not (
            isinstance(hello, tuple) and len(hello) == 5 and hello[0] == "hello" and hello[2] == self._token
        ):
            link.close()
            return
        rank = int(hello[1])
        self.pytest_in_workers = bool(self.pytest_in_workers) or bool(hello[4])
        self._links[rank] = link
        self._last_seen[rank] = time.monotonic()
        await link.send(("init", *self._init))
        if len(self._links) == self.size and self._connected is not None and not self._connected.done():
            self._connected.set_result(None)
        try:
            while True:
                msg = await read_frame(reader)
                self._last_seen[rank] = time.monotonic()
                await self._dispatch(rank, msg)
        except (asyncio.IncompleteReadError, ConnectionError, EOFError):
            pass
        except asyncio.CancelledError:
            return
        except Exception as exc:  # a message the hub cannot handle: this rank's link is unusable
            self._kill(rank, f"rank {rank}: its connection to the hub broke ({type(exc).__name__}: {exc})")
            return
        self._died(rank)

    # ---- deaths and hangs ----
    def _died(self, rank: int, reason: str | None = None) -> None:
        if rank in self._dead or self._closed:
            return
        proc = self.procs[rank] if rank < len(self.procs) else None
        if reason is None:
            code = None
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    code = proc.wait(timeout=2)
            tail = self._log_tail(rank) if code not in (None, 0) and code > 0 else ""
            reason = f"rank {rank} (pid {proc.pid if proc else '?'}) {describe_exit(code)}{tail}"
        self._dead[rank] = reason
        self.broken = self.broken or reason
        if rank in self._running:
            self._finish(RankOutcome(rank, error=reason))
        self._abort_all(reason)

    async def _watchdog(self) -> None:
        tick = max(0.05, min(1.0, self.timeout / 4))
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for r, proc in enumerate(self.procs):
                if r in self._dead:
                    continue
                code = proc.poll()
                if code is not None and r not in self._links:  # died before connecting
                    self._died(r)
                    continue
                seen = self._last_seen.get(r)
                if seen is not None and now - seen > self.timeout:
                    self._kill(
                        r,
                        f"rank {r} (pid {proc.pid}) did not respond for {self.timeout:g} s "
                        "(hung; --dlio-rank-timeout) and was killed",
                    )
                elif self._aborting and r in self._running and now - self._aborted_at > self.timeout:
                    self._kill(
                        r,
                        f"rank {r} (pid {proc.pid}) did not stop within {self.timeout:g} s of "
                        "being told another rank failed, and was killed",
                    )

    def _kill(self, rank: int, reason: str) -> None:
        self._killed.add(rank)
        with contextlib.suppress(OSError):
            self.procs[rank].kill()
        self._died(rank, reason)

    # ---- phases ----
    def _abort_all(self, reason: str) -> None:
        """Make every running rank's collectives raise (and its phase stop) with ``reason``."""
        if self._aborting:
            return
        self._aborting = True
        self._aborted_at = time.monotonic()
        for r in list(self._running):
            link = self._links.get(r)
            if link is not None and r not in self._dead:
                self._loop.create_task(self._send_quietly(link, ("abort", self._phase_no, reason)))

    async def _send_quietly(self, link: Link, msg: Any) -> None:
        with contextlib.suppress(Exception):
            await link.send(msg)

    def _finish(self, outcome: RankOutcome) -> None:
        if outcome.rank not in self._running:
            return
        self._running.discard(outcome.rank)
        self._outcomes[outcome.rank] = outcome
        if outcome.error and not outcome.aborted:
            self._abort_all(f"rank {outcome.rank} failed: {outcome.error}")
        self._check_stranded()
        if not self._running and self._phase_done is not None and not self._phase_done.done():
            self._phase_done.set_result(None)

    def _check_stranded(self) -> None:
        """Abort ranks waiting in a collective that a finished rank never joined (it would wait forever)."""
        finished = set(self._outcomes)
        for seq, m in self._meetings.items():
            absent = finished - set(m.values)
            if absent and m.values:
                ops = {op for op, _ in m.values.values()}
                self._abort_all(
                    f"rank {min(absent)} finished the phase while rank(s) {sorted(m.values)} wait in "
                    f"{'/'.join(sorted(ops))} #{seq}: the ranks ran different collectives"
                )
                return

    async def _dispatch(self, rank: int, msg: Any) -> None:
        kind = msg[0]
        if kind == "beat":
            return
        if kind == "progress":
            if rank == 0 and self.progress is not None:
                with contextlib.suppress(Exception):
                    self.progress(msg[1])
            return
        if msg[1] != self._phase_no:
            return  # a late message of an earlier phase
        if kind == "coll":
            _, _, seq, op, value = msg
            m = self._meetings.setdefault(seq, _Meeting())
            m.values[rank] = (op, value)
            if len(m.values) == self.size:
                del self._meetings[seq]
                ops = {o for o, _ in m.values.values()}
                if len(ops) > 1:
                    self._abort_all(
                        f"ranks called different collectives at #{seq}: "
                        + ", ".join(f"rank {r} {o}" for r, (o, _) in sorted(m.values.items()))
                    )
                    return
                replies = resolve(op, [m.values[r][1] for r in range(self.size)])
                for r in range(self.size):
                    link = self._links.get(r)
                    if link is not None and r not in self._dead:
                        await self._send_quietly(link, ("reply", self._phase_no, seq, replies[r]))
            else:
                self._check_stranded()
        elif kind == "done":
            _, _, result, error, aborted, cpu, wall = msg
            self._finish(RankOutcome(rank, result, error, bool(aborted), float(cpu), float(wall)))

    async def _run_phase(self, phase: str, payload: Any) -> dict[int, RankOutcome]:
        self._phase_no += 1
        self._meetings, self._outcomes, self._aborting = {}, {}, False
        self._running = set(range(self.size))
        self._phase_done = self._loop.create_future()
        for r in range(self.size):
            await self._send_quietly(self._links[r], ("run", self._phase_no, phase, payload))
        await self._phase_done
        return dict(self._outcomes)

    def run(self, phase: str, payload: Any = None) -> list[RankOutcome]:
        """Run ``phase`` on every rank; every rank's outcome, by rank (blocks until all are done or dead)."""
        if self._closed:
            raise DlioError("the local ranks were closed")
        if self.broken:
            return [RankOutcome(r, error=f"not run: {self.broken}") for r in range(self.size)]
        out = self._submit(self._run_phase(phase, payload))
        return [out.get(r, RankOutcome(r, error=self._dead.get(r, "no outcome"))) for r in range(self.size)]

    # ---- shutdown ----
    def close(self) -> None:
        """Ask every worker to exit, then terminate and kill what is left; remove the socket folder."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)

        async def bye() -> None:
            for link in list(self._links.values()):
                await self._send_quietly(link, ("exit",))

        if self._loop.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(bye(), self._loop).result(timeout=2)
        deadline = time.monotonic() + 5
        for p in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
        for sig in (signal.SIGTERM, signal.SIGKILL):
            alive = [p for p in self.procs if p.poll() is None]
            for p in alive:
                with contextlib.suppress(OSError):
                    p.send_signal(sig)
            for p in alive:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=2)

        async def stop() -> None:
            if getattr(self, "_watch", None) is not None:
                self._watch.cancel()
            if getattr(self, "_server", None) is not None:
                self._server.close()
            for link in self._links.values():
                link.close()

        if self._loop.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=2)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> LocalWorld:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["DEFAULT_TIMEOUT", "LocalComm", "LocalWorld", "RankOutcome", "describe_exit"]
