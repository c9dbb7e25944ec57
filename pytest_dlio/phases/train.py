"""The training loop: what DLIO's training loop does to storage (dlio.md §3.4), timed into a Timeline.

Per epoch: the rank's sample order (``phases.sampler``), batches from the ``phases.loader``, emulated
compute per step (a measured sleep), a barrier per step, optional step-based checkpoint callbacks that
split the epoch into blocks, and evaluation after the configured epochs.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import gc
import secrets
import sys
import threading
import time
import types
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from pytest_dlio.config.model import TimeSpec, WorkloadConfig
from pytest_dlio.errors import DlioError
from pytest_dlio.metrics import TrainMetrics, compute_metrics
from pytest_dlio.phases.dataset import check_dataset
from pytest_dlio.phases.loader import Loader, LoaderStats, dataset_files
from pytest_dlio.phases.sampler import coverage_problem, epoch_order, read_summary
from pytest_dlio.progress import ProgressFn, Ticker
from pytest_dlio.ranks import Comm
from pytest_dlio.storage.base import ObjectStore
from pytest_dlio.timeline import Block, Clock, Epoch, EvalRun, Step, Timeline

CheckpointHook = Callable[[int, int], Awaitable[None]]
EpochHook = Callable[[int], Awaitable[None]]


# ---------------------------------------------------------------- compute emulation ----
#: how long before the deadline the event loop's coarse sleep ends: asyncio wakes up to 1 ms late (its
#: epoll timeout is whole milliseconds), and a reader task may hold the loop a little past that
COARSE_MARGIN = 0.002
#: the last stretch yields to reader tasks no more; it sleeps with the GIL released (reader threads run
#: on both cores), then spins the final ``SPIN`` seconds, beyond the thread's timer slack
LAST = 0.0005
SPIN = 0.0001
#: a compute too short for the yield-spin still turns the event loop once, when this much of it is left:
#: reads the window started as tasks (``mem://``, object stores) run inside it, not in the next step's wait
#: (dlrm_b200's 0.375 ms steps on ``mem://``: AU 81 % without the turn)
YIELD_MIN = 0.0002


async def emulate(seconds: float, meanwhile: Callable[[], None] | None = None) -> None:
    """Sleep ``seconds`` precisely while letting reader tasks run: coarse sleep, yield-spin, then a
    blocking sleep and a short busy wait.

    Up to ``COARSE_MARGIN`` before the deadline the event loop sleeps; from there to ``LAST`` before it,
    it spins yielding to reader tasks (a compute of 0.5-2.5 ms is mostly that spin; one with at most
    ``LAST`` left after ``meanwhile`` turns the loop once, if ``YIELD_MIN`` is, and a reader task running
    past the deadline there is overrun, not compute). The last ``LAST``
    seconds do not yield (no reader task may overrun the deadline) and do not spin either: a Python busy
    loop holds the GIL and a core, and on 2 cores the reader threads then share the other (dlrm_b200's
    0.375 ms of compute per step was one long spin). An accelerator's host idles while it computes, as
    ``time.sleep`` does. ``meanwhile`` runs first, inside the sleep (the deadline
    is already set): host work an accelerator's compute overlaps, such as recording the previous step."""
    if seconds <= 0:
        if meanwhile is not None:
            meanwhile()
        return
    deadline = time.perf_counter() + seconds
    if meanwhile is not None:
        meanwhile()
    coarse = deadline - time.perf_counter() - COARSE_MARGIN
    turned = coarse > 0
    if turned:
        await asyncio.sleep(coarse)
    while deadline - time.perf_counter() > LAST:
        await asyncio.sleep(0)
        turned = True
    if not turned and deadline - time.perf_counter() > YIELD_MIN:
        await asyncio.sleep(0)  # a short compute still gives the loop's reader tasks one turn
    left = deadline - time.perf_counter() - SPIN
    if left > 0:
        time.sleep(left)  # the event loop waits (as it would spinning); the GIL and the core are free
    while time.perf_counter() < deadline:
        pass


class _Outermost:
    """A context manager that applies a process or thread setting on the outermost of nested uses and
    undoes it when that one exits (``leave`` gets what ``enter`` returned): ranks run as coroutines on one
    thread nest the training loop, and the first to finish must not undo a setting the others still run
    under. ``per_thread``: the setting is the thread's (timer slack), else the interpreter's."""

    def __init__(
        self, enter: Callable[[], Any], leave: Callable[[Any], None], doc: str, *, per_thread: bool = False
    ) -> None:
        self._enter, self._leave, self.__doc__ = enter, leave, doc
        self._state: Any = threading.local() if per_thread else types.SimpleNamespace()

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        state = self._state
        depth = getattr(state, "depth", 0)
        if depth == 0:
            state.saved = self._enter()
        state.depth = depth + 1
        try:
            yield
        finally:
            state.depth -= 1
            if state.depth == 0:
                self._leave(state.saved)


_PR_SET_TIMERSLACK, _PR_GET_TIMERSLACK = 29, 30


def _slack_fine() -> int | None:
    prctl = _prctl()
    if prctl is None:
        return None
    old = prctl(_PR_GET_TIMERSLACK, 0, 0, 0, 0)
    if old > 0:
        prctl(_PR_SET_TIMERSLACK, 1000, 0, 0, 0)
    return int(old)


def _slack_back(old: int | None) -> None:
    prctl = _prctl()
    if prctl is not None and old is not None and old > 0:
        prctl(_PR_SET_TIMERSLACK, old, 0, 0, 0)


fine_timer_slack = _Outermost(
    _slack_fine,
    _slack_back,
    """Within: this thread's timer slack at 1 us (Linux's default, 50 us, makes every short sleep wake
    50-90 us late; with 1 us, 10-30 us). Elsewhere, or where prctl is missing, a no-op.""",
    per_thread=True,
)


def _freeze() -> None:
    gc.collect(1)
    gc.freeze()


frozen_heap = _Outermost(
    _freeze,
    lambda _: gc.unfreeze(),
    """Within: the objects that exist on entry (the session, pytest, pyarrow, the config) are left out of
    garbage collection (``gc.freeze``). A full collection walks every tracked object, and one falling
    inside a step stalled dlrm's 0.375 ms steps by 10-20 ms, which the accelerator would have seen as I/O
    wait. What the loop makes is still collected. Only the young generations are collected first: a full
    collection of a pytest process with botocore loaded took 150-200 ms before every training run (old
    garbage frozen with the rest is collectable again after the run).""",
)

#: seconds a thread waiting for the GIL lets its holder run before asking it to drop it, while training
GIL_SWITCH = 0.0001


def _gil_quick() -> float:
    saved = sys.getswitchinterval()  # 0.0 when the user set it below a microsecond
    sys.setswitchinterval(max(1e-6, min(GIL_SWITCH, saved)))
    return saved


quick_gil = _Outermost(
    _gil_quick,
    lambda saved: sys.setswitchinterval(max(1e-6, saved)),
    """Within: a thread waiting for the GIL gets it after ``GIL_SWITCH`` (Python's default is 5 ms). The step
    loop shares the GIL with its reader threads; with parquet's 6 window threads on 2 cores each numpy
    call of a step's own work (it drops and retakes the GIL) waited behind them: an 18432-row np.diff took
    0.46 ms there against 0.02 ms idle. Restored on exit.""",
)


@functools.cache
def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return fn


async def timed_compute(
    seconds: float, clock: Clock, meanwhile: Callable[[], None] | None = None
) -> tuple[float, float]:
    """Emulate ``seconds`` of compute (running ``meanwhile`` inside it); (compute, overrun) as measured.

    Reader tasks share the event loop, so one that holds it (assembling a batch, decoding inline) when the
    sleep should end makes the measured sleep longer than the draw. DLIO's readers are other processes:
    its measured sleep is the draw. The accelerator computed at most the draw; the rest is the harness's
    own work, kept apart (``overrun``) so AU does not count it as compute."""
    t = clock.now()
    await emulate(seconds, meanwhile)
    took = clock.now() - t
    compute = min(took, seconds) if seconds > 0 else took
    return compute, took - compute


# ---------------------------------------------------------------- the loop ----
@dataclass
class TrainRun:
    """What one rank's training produced: its timeline, the run's metrics, and loader statistics."""

    timeline: Timeline
    metrics: TrainMetrics
    loader: LoaderStats
    t_start: float
    t_end: float


class _Recorder:
    """Records finished training steps into their block and the progress line, and draws each step's
    compute time.

    The step loop leaves each step's times in ``pending``; :meth:`between` records them, and draws the next
    step's compute, inside the next step's emulated compute, while the host is idle as it is while an
    accelerator computes. Done at the step boundary, the same Python cost ~45 us a step here (its code and
    objects are cold after a 10 ms sleep): 0.45 % of AU at 10 ms of compute."""

    def __init__(
        self,
        tick: Ticker,
        tl: Timeline,
        epochs: int,
        samples_per_step: int,
        compute: TimeSpec,
        rng: np.random.Generator,
    ) -> None:
        self.tick, self.exclude, self.steps, self.epochs = (
            tick,
            tl.exclude_start_steps,
            tl.steps_per_epoch,
            epochs,
        )
        self.samples_per_step = samples_per_step
        self.pending: tuple[Block, int, int, float, float, float, float, float] | None = None
        # compute and step seconds so far without each epoch's excluded first steps (as DLIO's metric): the
        # progress line's running AU and samples/s
        self.busy = self.proc_sum = 0.0
        self.counted = self.recorded = 0
        self._spec, self._rng = compute, rng
        self.draw = compute.sample(rng)  # the next step's compute seconds

    def between(self) -> None:
        """Inside a step's compute: record the step before it, draw the next one's compute."""
        self.flush()
        self.draw = self._spec.sample(self._rng)

    def flush(self) -> None:
        if self.pending is None:
            return
        block, epoch, step, t0, t1, compute, t2, overrun = self.pending
        self.pending = None
        block.steps.append(Step(t0, t1 - t0, compute, t2 - t0, overrun))
        self.recorded += 1
        if step > self.exclude:
            self.busy, self.proc_sum, self.counted = (
                self.busy + compute,
                self.proc_sum + t2 - t0,
                self.counted + 1,
            )
        self._tick(False, epoch, step)

    def done(self) -> None:
        self.flush()
        self._tick(True, self.epochs, self.steps)

    def _tick(self, final: bool, epoch: int, step: int) -> None:
        if self.tick.fn is None:
            return
        p = self.proc_sum
        self.tick(
            self.recorded,
            final=final,
            epoch=epoch,
            epochs=self.epochs,
            step=step,
            steps=self.steps,
            au_percent=100.0 * self.busy / p if p else None,
            samples_per_second=self.counted * self.samples_per_step / p if p else None,
        )


async def _shared_seed(comm: Comm) -> int:
    return int(await comm.broadcast(secrets.randbits(48) if comm.rank == 0 else 0))


async def _check_coverage(
    comm: Comm, read: np.ndarray, total: int, steps: int, batch_size: int, epoch: int
) -> None:
    """Each epoch: rank 0 checks what every rank read against the shard maths; every rank fails alike.
    Each rank sends its reads as runs of consecutive samples when they form few (``read_summary``)."""
    everyone = await comm.gather(read_summary(read))
    problem = coverage_problem(everyone, total, steps, batch_size, epoch) if everyone is not None else None
    if comm.size > 1:
        problem = await comm.broadcast(problem)
    if problem:
        raise DlioError(problem)


async def _eval(
    cfg: WorkloadConfig,
    loader: Loader,
    comm: Comm,
    clock: Clock,
    epoch: int,
    seed: int,
    rng: np.random.Generator,
    progress: ProgressFn | None = None,
) -> EvalRun:
    steps = cfg.eval_steps(comm.size)
    tick = Ticker(progress, "eval", steps, "steps")
    order = epoch_order(cfg, epoch, comm.rank, comm.size, shared_seed=seed, split="eval")
    run = EvalRun(clock.now())
    it = loader.batches(order, cfg.reader.batch_size_eval)
    try:
        for _ in range(steps):
            t0 = clock.now()
            await anext(it)
            t1 = clock.now()
            compute, overrun = await timed_compute(cfg.evaluation.eval_time.sample(rng), clock, loader.idle)
            t2 = clock.now()
            run.steps.append(Step(t0, t1 - t0, compute, t2 - t0, overrun))
            tick(len(run.steps), final=len(run.steps) == steps, epoch=epoch)
    finally:
        await it.aclose()
    run.t_end = clock.now()
    return run


async def run_training(
    cfg: WorkloadConfig,
    store: ObjectStore,
    *,
    comm: Comm,
    on_checkpoint: CheckpointHook | None = None,
    on_epoch_end: EpochHook | None = None,
    clock: Clock | None = None,
    progress: ProgressFn | None = None,
) -> TrainRun:
    """Run every epoch on this rank and return its timeline and the (gathered) run metrics."""
    clock = clock or Clock()
    rd = cfg.reader
    steps = cfg.steps_per_epoch(comm.size)
    if steps <= 0:
        raise DlioError(
            f"no training steps: {cfg.total_samples_train} samples / batch_size {rd.batch_size} "
            f"/ {comm.size} ranks < 1; raise dataset.num_files_train or lower reader.batch_size"
        )
    train_files = dataset_files(cfg, "train")
    do_eval = cfg.workflow.evaluation and cfg.dataset.num_files_eval > 0 and cfg.eval_steps(comm.size) > 0
    eval_files = dataset_files(cfg, "eval") if do_eval else []
    problem = None
    if comm.rank == 0:  # one rank lists the dataset and tells the others (no LIST storm at scale)
        try:
            await check_dataset(store, train_files + eval_files)
        except DlioError as exc:
            problem = str(exc)
    if comm.size > 1:
        problem = await comm.broadcast(problem)
    if problem:
        raise DlioError(problem)
    tl = Timeline(
        rank=comm.rank,
        steps_per_epoch=steps,
        eval_steps=cfg.eval_steps(comm.size),
        batch_size=rd.batch_size,
        batch_size_eval=rd.batch_size_eval,
        record_size=float(cfg.dataset.record_length_bytes),
        exclude_start_steps=cfg.output.metric.exclude_start_steps,
        exclude_end_steps=cfg.output.metric.exclude_end_steps,
    )
    seed = await _shared_seed(comm)
    rng = np.random.default_rng([cfg.train.seed, comm.rank, 3])
    pool = (
        ThreadPoolExecutor(rd.read_threads, thread_name_prefix="dlio-read") if rd.read_threads > 0 else None
    )
    # the step loops below drop each batch before asking for the next: the loaders may recycle buffers
    loader = Loader(cfg, store, train_files, tl.reads, pool, rng, recycle=True)
    eval_loader = Loader(cfg, store, eval_files, tl.eval_reads, pool, rng, recycle=True) if do_eval else None
    every = cfg.checkpoint.steps_between_checkpoints if on_checkpoint is not None else -1
    next_eval = cfg.evaluation.eval_after_epoch
    ranks = comm.size
    overall = 0  # steps taken so far, over every epoch
    rec = _Recorder(
        Ticker(progress, "train", cfg.train.epochs * steps, "steps"),
        tl,
        cfg.train.epochs,
        rd.batch_size * comm.size,
        cfg.train.computation_time,
        rng,
    )

    def between() -> None:  # inside each step's compute, while the host is idle
        rec.between()
        loader.idle()

    try:
        # read buffers faulted in, parquet's window threads started, before the clock starts
        await loader.reserve(rd.batch_size)
        # short compute sleeps wake on time (emulate); the collector leaves the heap built so far alone
        with fine_timer_slack(), frozen_heap(), quick_gil():
            tl.t_start = clock.now()
            for e in range(1, cfg.train.epochs + 1):
                order = epoch_order(cfg, e, comm.rank, comm.size, shared_seed=seed, steps=steps)
                ep = Epoch(e, clock.now())
                block = Block(1, ep.t_start)
                it = loader.batches(order, rd.batch_size)
                taken = 0
                try:
                    for step in range(1, steps + 1):
                        t0 = clock.now()
                        await anext(it)
                        taken += 1
                        t1 = clock.now()
                        # the last step is recorded (and the next draw made) inside this one's compute: the
                        # boundary only takes times
                        compute, overrun = await timed_compute(rec.draw, clock, between)
                        if ranks > 1:  # a coroutine: the loader's reader tasks keep running meanwhile
                            await comm.barrier()
                        rec.pending = (block, e, step, t0, t1, compute, clock.now(), overrun)
                        overall += 1
                        if every > 0 and overall % every == 0 and on_checkpoint is not None:
                            rec.flush()
                            block.t_end = clock.now()
                            ep.blocks.append(block)
                            await on_checkpoint(e, overall)
                            block = Block(block.index + 1, clock.now()) if step < steps else None  # type: ignore[assignment]
                            if block is None:
                                break
                    if block is not None:  # the block ends with its last step, not with the loader's teardown
                        block.t_end = clock.now()
                finally:
                    rec.flush()
                    await it.aclose()
                if block is not None and block.steps:
                    ep.blocks.append(block)
                await _check_coverage(
                    comm, order[: taken * rd.batch_size], cfg.total_samples_train, steps, rd.batch_size, e
                )
                if eval_loader is not None and e >= next_eval:
                    ep.eval = await _eval(cfg, eval_loader, comm, clock, e, seed, rng, progress)
                    next_eval += cfg.evaluation.epochs_between_evals
                ep.t_end = clock.now()
                tl.epochs.append(ep)
                if on_epoch_end is not None:
                    await on_epoch_end(e)
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        loader.close()
        if eval_loader is not None:
            eval_loader.close()
    tl.t_end = clock.now()
    rec.done()
    gathered = await comm.gather(tl)
    metrics = compute_metrics(gathered if gathered else [tl], cfg.metric.au)
    if comm.size > 1:  # every rank holds the run's metrics (DLIO allreduces them), so every AU gate agrees
        metrics = await comm.broadcast(metrics)
    return TrainRun(tl, metrics, loader.stats, tl.t_start, tl.t_end)


__all__ = ["CheckpointHook", "EpochHook", "TrainRun", "emulate", "run_training", "timed_compute"]
