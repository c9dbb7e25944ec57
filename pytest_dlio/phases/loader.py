"""The loader: reads batches of samples from a store as DLIO's readers do, with bounded read-ahead.

``read_threads`` concurrent reader tasks fetch each format's read unit (whole file, sample range or row
group), at most ``max(prefetch_size, read_threads)`` batches ahead, delivered in order; a heavy format's
decoding runs in a thread pool sized by ``read_threads`` (inline when it is 0, like DLIO's zero
workers), a light one's inline as a view.
"""

from __future__ import annotations

import asyncio
import bisect
import operator
import threading
import time
from collections import OrderedDict, deque
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np

from pytest_dlio import layout
from pytest_dlio.config.model import Dataset, TimeSpec, WorkloadConfig
from pytest_dlio.errors import DlioError, StorageError
from pytest_dlio.formats import Format, ReadUnit, Spans, get_format, sample_of
from pytest_dlio.layout import DataFile
from pytest_dlio.storage.base import Buffer, ObjectStore, Pooled
from pytest_dlio.timeline import Reads


def dataset_files(cfg: WorkloadConfig, split: str = "train") -> list[DataFile]:
    """The split's files as datagen writes them (``layout.dataset_files``), in DLIO's sorted order."""
    want = "train" if split == "train" else "valid"
    return [f for f in layout.dataset_files(cfg) if f.split == want]


def dataset_keys(cfg: WorkloadConfig, split: str = "train") -> list[str]:
    """DLIO's file names under the data folder (dlio.md §3.2)."""
    return layout.split_keys(cfg.dataset, "train" if split == "train" else "valid")


def decode_file(
    f: DataFile, ds: Dataset, data: Buffer, sidecars: dict[str, Buffer] | None, sample: int = 0
) -> Sequence[object]:
    """What DLIO's reader makes of an opened file: its samples (DlioError naming the file, and the
    ``sample`` being read, when the bytes don't parse)."""
    try:
        return get_format(ds.format).decode(data, f, ds, sidecars)
    except DlioError:
        raise
    except Exception as exc:  # any parse failure of a damaged file
        raise DlioError(
            f"{f.key}: cannot decode sample {sample} as {ds.format} ({type(exc).__name__}: "
            f"{exc}); regenerate the dataset with the datagen item"
        ) from None


def decode_sample(
    f: DataFile, ds: Dataset, data: Buffer, sample: int, sidecars: dict[str, Buffer] | None = None
) -> object:
    """Sample ``sample`` of an opened file (the file decoded for it alone)."""
    return sample_of(decode_file(f, ds, data, sidecars, sample), f, sample)


_Fetched = tuple[list[object], list[Pooled], list[tuple[int, float, float]]]  # samples, buffers, reads


def _release_fetched(fut: Future[_Fetched]) -> None:
    """A queued batch that finished after the consumer left: hand its buffers back."""
    if not fut.cancelled() and fut.exception() is None:
        for h in fut.result()[1]:
            h.release()


_MISS = object()  # Loader._ready: the sample needs a fetch or decode first


class RowBatch(Sequence[object]):
    """A batch of row-group rows as runs of one value each (a row group's, for every row the batch takes
    from it): what the step loop holds, without a list entry per row. A dlrm_mi355 batch is 18432 rows
    from three row groups; building the 18432-entry list took ~60 us of every step, on the event loop, on
    a machine whose cores the window's reads keep busy."""

    __slots__ = ("_ends", "_runs")

    def __init__(self, runs: list[tuple[object, int]]) -> None:
        self._runs = runs
        ends, n = [], 0
        for _, rows in runs:
            n += rows
            ends.append(n)
        self._ends = ends

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def __iter__(self) -> Iterator[object]:
        for value, rows in self._runs:
            yield from repeat(value, rows)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return list(self)[i]
        n, k = len(self), operator.index(i)
        k = k + n if k < 0 else k
        if not 0 <= k < n:
            raise IndexError("batch index out of range")
        return self._runs[bisect.bisect_right(self._ends, k)][0]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RowBatch | list):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


#: samples Loader._files_in_order looks at a time (0.9 ms for 350,208 rows, against 1.6 ms by 8192)
_SCAN = 1 << 15
_FEW_RUNS = 256  # runs of consecutive samples in a chunk below which _files_in_order follows the runs
RESERVE_BYTES = 1 << 30  # read buffers a loader makes ready before training, at most
FOOTER_GUESS_MAX = 64 << 20  # footers up to this size set the next footer read's guess
#: a footer length claimed past this is damage, not read (pyarrow refuses Thrift strings over 100 MB; a
#: full-size dlrm footer, 250 row groups x 200 columns, is ~3 MiB)
FOOTER_MAX = 128 << 20


def _start_threads(pool: ThreadPoolExecutor, n: int) -> None:
    """Start ``n`` of ``pool``'s threads now (an executor starts one per submit while none is idle: ~0.5 ms
    each here, which the first epoch's first reads would otherwise pay)."""
    gate = threading.Barrier(n)
    for f in [pool.submit(gate.wait, 10.0) for _ in range(n)]:
        try:
            f.result()
        except threading.BrokenBarrierError:  # a thread did not start within the timeout: nothing lost
            pass


class _FirstFailure:
    """An epoch's footer phase: the earliest position (in the epoch's order of files) at which a footer
    failed, and its error; readers start no footer past it. ``cancel`` stops them all. Thread-safe."""

    def __init__(self) -> None:
        self.at = 1 << 62
        self.error: Exception | None = None
        self._lock = threading.Lock()

    def past(self, at: int) -> bool:
        return at > self.at

    def fail(self, at: int, error: Exception) -> None:
        with self._lock:
            if at < self.at:
                self.at, self.error = at, error

    def cancel(self) -> None:
        with self._lock:
            self.at = -1  # ``error`` is kept, unused: the phase raises CancelledError (or a reader's bug)


@dataclass
class LoaderStats:
    """How far ahead the readers got (the prefetch bound is asserted on this)."""

    max_ahead: int = 0
    batches: int = 0
    decode_seconds: float = 0.0  # summed time spent decoding read units (pool threads or inline)
    window: int = 0  # row-group reads kept in flight ahead of the step (parquet's window), 0: none


class Loader:
    """Reads batches of samples from a store: concurrent reader tasks, bounded read-ahead, in-order delivery.

    What a sample read fetches is the format's read unit: the whole file (decoded once per fetch when it
    holds several samples), the sample's own byte range (indexed_binary, located by its index), or its
    row group's column chunks (parquet, located by the footer). Heavy decodes run in ``pool``.
    """

    def __init__(
        self,
        cfg: WorkloadConfig,
        store: ObjectStore,
        files: list[DataFile],
        reads: Reads,
        pool: ThreadPoolExecutor | None,
        rng: np.random.Generator,
        *,
        recycle: bool = False,
    ) -> None:
        rd = cfg.reader
        self.store, self.files, self.reads, self.pool = store, files, reads, pool
        self.keys = [f.key for f in files]
        self.ds = cfg.dataset
        self.format: Format = get_format(cfg.dataset.format)
        self.format.prepare_reads()  # before the step loop: the first step must not import pyarrow
        self._side: dict[str, dict[str, Buffer]] = {}
        self.spf = cfg.dataset.num_samples_per_file
        self.threads = rd.read_threads
        self.capacity = max(rd.prefetch_size, rd.read_threads, 1)
        self.memory = rd.read_type == "memory"
        self.preprocess: TimeSpec = rd.preprocess_time
        self.rng = rng
        self.stats = LoaderStats()
        self._decode_lock = threading.Lock()
        self._cache: dict[str, asyncio.Task[Buffer]] = {}
        self._left: dict[str, int] = {}
        # on_demand with several samples per file: the most recently fetched files (a reader streams a
        # file once while consecutive samples come from it; a jump to another file refetches, as DLIO's
        # on_demand readers reopen files)
        self._recent: OrderedDict[str, asyncio.Task[Buffer]] = OrderedDict()
        self._recent_cap = max(2, 2 * max(1, rd.read_threads))
        self._spans: dict[str, Spans] = {}
        self._locating: dict[str, asyncio.Task[Spans]] = {}  # footers being read: one read per file
        self._footer_guess = 0  # bytes the next footer read asks for from a file's end (_find_spans)
        self._units: OrderedDict[tuple[str, int], asyncio.Task[object]] = OrderedDict()
        # files holding several samples: each fetched file is decoded once and its samples served from
        # that (DLIO's readers keep an opened file while its samples are read; reparsing the file for
        # every sample made a 1251-sample tfrecord cost O(n^2) CRC checks)
        self._decoded: OrderedDict[str, tuple[Buffer, asyncio.Future[Sequence[object]]]] = OrderedDict()
        self.columns: list[str] | None = list(cfg.storage.options.columns or ()) or None
        # MLPerf v3.0 DLIO's parquet read-ahead: row-group reads in flight ahead of the step, per reader
        self.window = cfg.row_group_window * max(1, rd.read_threads)
        self.window_threads = cfg.data_store_threads
        self._window_pool: ThreadPoolExecutor | None = None  # the window's threads, kept across epochs
        self._ahead: Callable[[], None] | None = None  # what idle() does (set while an epoch runs)
        # whole files unless the unit is a range that read_type allows (memory reads indexed files whole)
        unit = self.format.read_unit
        self.unit = ReadUnit.FILE if unit is ReadUnit.SAMPLE_RANGE and self.memory else unit
        # recycle: a batch is dropped by its consumer once it asks for the next one (the training loop
        # does). Then, when the store reads whole objects on the caller's thread (local files:
        # ``ObjectStore.blocking_get``), one-sample files are read, decoded and queued by the reader
        # threads themselves, as DLIO's workers do: each read lands in a reused page-aligned buffer (a fresh
        # multi-MiB buffer per read was the read path's largest cost) handed back when the consumer asks
        # for the next batch, and a thread finishing a batch starts the next queued one without a round
        # trip through the event loop.
        whole_files = recycle and self.spf == 1 and not self.memory and self.unit is ReadUnit.FILE
        self.blocking = store.blocking_get() if whole_files and not any(f.sidecars for f in files) else None
        # a store with pooled reads but no blocking reader (a wrapped file store: throttled, timed) pools
        # through get_pooled on the event loop
        self.pooled = self.blocking is not None or (whole_files and store.pooled_reads)

    def _windowed(self) -> bool:
        """Whether batches are read through parquet's row-group window (DLIO v3's sliding window)."""
        return (
            self.window > 0
            and self.unit is ReadUnit.ROW_GROUP
            and self.preprocess.is_zero
            and not self.memory
        )

    def _window_read(self) -> Callable[[str, int, int], Pooled] | None:
        """A local store's blocking ranged read for the window's own threads; None: tasks on the loop."""
        return None if self.format.span_views_data else self.store.blocking_get_range()

    def _own_window_pool(self) -> ThreadPoolExecutor:
        if self._window_pool is None:
            self._window_pool = ThreadPoolExecutor(self.window_threads, thread_name_prefix="dlio-rg")
        return self._window_pool

    def idle(self) -> None:
        """Inside a step's compute, while the host is idle: the loader's own work for the coming steps
        (the row-group window plans its next batches here rather than in the step's wait for data)."""
        if self._ahead is not None:
            self._ahead()

    def close(self) -> None:
        """Stop the window's threads (each epoch has waited for its own reads already)."""
        if self._window_pool is not None:
            self._window_pool.shutdown(wait=False, cancel_futures=True)
            self._window_pool = None

    async def reserve(self, batch_size: int) -> None:
        """Before the clock starts: the pooled read buffers a full read-ahead holds (the batches ahead and
        the one the step holds, at most ``RESERVE_BYTES``), faulted in now rather than by the first steps'
        reads: unet3d_b200 at smoke faults 35 x 12.7 MB in, page by page, while its first epoch is timed."""
        if self._windowed() and self._window_read() is not None:
            await asyncio.to_thread(_start_threads, self._own_window_pool(), self.window_threads)
        if not self.pooled:
            return
        size = max((f.expected_size or 0 for f in self.files), default=0)
        if size <= 0:
            return
        ahead = self.capacity if self.pool is not None else 1
        count = min((ahead + 1) * batch_size, len(self.files), RESERVE_BYTES // size)
        await asyncio.to_thread(self.store.reserve_read_buffers, count, size)

    async def _get(self, key: str, held: list[Callable[[], None]] | None = None) -> Buffer:
        t = time.perf_counter()
        if held is not None and self.pooled:
            got = await self.store.get_pooled(key)
            held.append(got.release)
            data = got.data
        else:
            data = await self.store.get(key)
        self.reads.add(len(data), time.perf_counter() - t, t)
        return data

    async def _range(self, key: str, start: int, length: int, pooled: bool) -> Pooled:
        """A range; ``pooled``: into a reused buffer where the store has them (``release()`` it)."""
        t = time.perf_counter()
        if pooled:
            got = await self.store.get_range_pooled(key, start, length)
        else:
            got = Pooled(await self.store.get_range(key, start, length))
        self.reads.add(len(got.data), time.perf_counter() - t, t)
        return got

    async def _file(self, key: str, held: list[Callable[[], None]] | None = None) -> Buffer:
        if not self.memory and self.spf > 1:
            task = self._recent.get(key)
            if task is None:
                task = self._recent[key] = asyncio.ensure_future(self._get(key))
                while len(self._recent) > self._recent_cap:
                    self._recent.popitem(last=False)
            else:
                self._recent.move_to_end(key)
            return await task
        if not self.memory:
            return await self._get(key, held)
        task = self._cache.get(key)
        if task is None:
            task = self._cache[key] = asyncio.ensure_future(self._get(key))
        try:
            return await task
        finally:
            self._left[key] -= 1
            if self._left[key] <= 0:
                self._cache.pop(key, None)

    async def _sidecars(self, f: DataFile) -> dict[str, Buffer] | None:
        """The file's small index objects, read once per run (DLIO keeps its index in memory too)."""
        if not f.sidecars:
            return None
        side = self._side.get(f.key)
        if side is None:
            side = self._side[f.key] = {k: await self._get(k) for k in f.sidecars}
        return side

    async def _decode(self, fn: Callable[..., Any], *args: object) -> Any:
        """``fn(*args)`` in the pool for a heavy format, else inline on the event loop (timed either way)."""
        if self.pool is not None and self.format.heavy:
            return await asyncio.get_running_loop().run_in_executor(self.pool, self._timed, fn, *args)
        return self._timed(fn, *args)

    def _timed(self, fn: Callable[..., Any], *args: object) -> Any:
        t = time.perf_counter()
        try:
            return fn(*args)
        finally:
            with self._decode_lock:  # pool threads add concurrently: no lost updates
                self.stats.decode_seconds += time.perf_counter() - t

    async def _locate(self, f: DataFile) -> Spans:
        """The byte ranges of the file's read units: from its index objects, found once per run; from its
        footer, once per epoch (``batches`` drops a row-group format's spans, as DLIO's reader does)."""
        spans = self._spans.get(f.key)
        if spans is not None:
            return spans
        task = self._locating.get(f.key)
        if task is None:  # concurrent readers of one new file wait for one footer read
            task = self._locating[f.key] = asyncio.ensure_future(self._find_spans(f))

            def found(t: asyncio.Task[Spans]) -> None:  # kept even when every reader waiting left
                if self._locating.get(f.key) is not t:
                    return  # a read of an earlier epoch (batches() forgot it): not this epoch's footer
                del self._locating[f.key]
                if not t.cancelled() and t.exception() is None:
                    self._spans[f.key] = t.result()

            task.add_done_callback(found)
        spans = await asyncio.shield(task)
        self._spans[f.key] = spans  # now: a task already done returns before its callbacks ran
        return spans

    async def _find_spans(self, f: DataFile) -> Spans:
        fmt = self.format
        if self.unit is ReadUnit.SAMPLE_RANGE:
            side = await self._sidecars(f)
            spans = fmt.sample_spans(f, side or {})
        else:

            async def suffix(n: int) -> bytes:
                t = time.perf_counter()
                data = await self.store.get_suffix(f.key, n)
                self.reads.add(len(data), time.perf_counter() - t, t)
                return bytes(data)

            guess = self._footer_ask()
            tail = await suffix(guess)
            n, more = self._footer_length(tail, guess, f)
            if more is not None:
                tail = await suffix(more)
            # off the event loop: parsing a full-size dlrm footer (~3-5 MiB, 250 row groups x 200
            # columns) takes ~0.1 s, pyarrow releasing the GIL for most of it
            spans = await asyncio.to_thread(self._footer_spans, f, tail, n)
        return spans

    # ---- a parquet file's footer: the protocol both read paths share ----
    def _footer_ask(self) -> int:
        """The suffix the footer's first request asks for. The footer comes from the end of the file: one
        request when it fits a speculative 64 KiB suffix (a whole file shorter than that comes back
        entire), a second for a larger footer. A dataset's files have footers of about one size: the
        largest seen so far (and a little) is the next file's guess, so a footer larger than 64 KiB costs
        a second request once, not per file."""
        return max(64 * 1024, self.format.footer_tail, self._footer_guess)

    def _footer_length(self, tail: bytes, asked: int, f: DataFile) -> tuple[int, int | None]:
        """The footer's length from a suffix read of ``asked`` bytes (-1: unreadable), and the larger
        suffix to read when the footer did not fit (else None; also when the file, of a size known from
        the layout, could not hold it, or it claims more than ``FOOTER_MAX``: a damaged length is not
        read as a request for the whole file)."""
        fmt = self.format
        n = fmt.footer_length(tail[-fmt.footer_tail :]) if len(tail) >= fmt.footer_tail else -1
        fits = n <= (f.expected_size or FOOTER_MAX)
        return n, (n if n > len(tail) and len(tail) == asked and fits else None)

    def _footer_spans(self, f: DataFile, tail: bytes, n: int) -> Spans:
        """The file's row-group spans from its last bytes ``tail`` holding an ``n``-byte footer; blocking
        (a parse on a memo miss), so run off the event loop. DlioError for a file that is not the
        format's, or was written with other rows per file."""
        fmt = self.format
        if not fmt.footer_tail <= n <= len(tail):
            raise DlioError(
                f"{f.key}: not a {fmt.name} file ({len(tail):,} bytes read from its end, footer length "
                f"{f'{n:,}' if n >= 0 else 'unreadable'}); regenerate the dataset with --dlio-generate auto"
            )
        try:
            spans = fmt.row_group_spans(tail[len(tail) - n :], self.ds, self.columns)
        except (OSError, ValueError, NotImplementedError, IndexError) as exc:  # the parser's, on bad bytes
            raise DlioError(  # (pyarrow: OSError for Thrift, ArrowInvalid a ValueError, ...)
                f"{f.key}: not a {fmt.name} file (its {n:,}-byte footer does not parse: "
                f"{type(exc).__name__}: {str(exc)[:200]}); regenerate the dataset with --dlio-generate auto"
            ) from exc
        if n <= FOOTER_GUESS_MAX:  # a footer that parsed sizes the next file's first request
            with self._decode_lock:  # footers are read on several threads at once
                self._footer_guess = max(self._footer_guess, n + n // 16 + fmt.footer_tail)
        if spans.rows >= 0 and spans.rows != f.samples:
            # written for other settings (before size markers named them, or copied in): its rows
            # past the end would all map to its last row group
            raise DlioError(
                f"{f.key}: its footer says {spans.rows:,} rows, the config {f.samples:,} a file "
                "(dataset.num_samples_per_file): it was written for other settings; regenerate the "
                "dataset (--dlio-generate always)"
            )
        return spans

    def _footers_blocking(
        self, suffix: Callable[[str, int], Buffer], files: list[tuple[int, DataFile]], stop: _FirstFailure
    ) -> tuple[list[tuple[str, Spans]], list[tuple[int, float, float]], Exception | None]:
        """On a window thread: ``files``' footers one after another, as one of DLIO's readers reads its
        files' footers, until one fails or ``stop`` says a file earlier in the epoch did (or the phase
        was cancelled); the spans found, every read's (bytes, seconds, start), and any other error (a
        bug, MemoryError: raised once every reader's reads are counted; the others stop)."""
        located: list[tuple[str, Spans]] = []
        reads: list[tuple[int, float, float]] = []

        def get(key: str, n: int) -> bytes:
            t = time.perf_counter()
            data = suffix(key, n)
            reads.append((len(data), time.perf_counter() - t, t))
            return bytes(data)

        for at, f in files:
            if stop.past(at):
                break
            try:
                guess = self._footer_ask()
                tail = get(f.key, guess)
                n, more = self._footer_length(tail, guess, f)
                if more is not None:
                    tail = get(f.key, more)
                located.append((f.key, self._footer_spans(f, tail, n)))
            except (DlioError, StorageError) as exc:
                stop.fail(at, exc)
                break
            except Exception as exc:  # not the file's: still hand back the reads made
                stop.cancel()
                return located, reads, exc
        return located, reads, None

    async def _locate_epoch(self, keys: list[DataFile], own: ThreadPoolExecutor | None) -> None:
        """Every footer of the epoch (``keys``, in order of first need) before its first row group, as
        DLIO's ``TorchIterableDataset`` reads them. A bad one fails the epoch with that file's own error:
        the first in the epoch's order, however the reads interleave (no footer past a failure known is
        started, so a bad file costs at most one more footer per reader)."""
        stop = _FirstFailure()
        order = list(enumerate(keys))
        suffix = self.store.blocking_get_suffix() if own is not None else None
        if suffix is None:  # requests on the event loop, ``window`` at a time
            gate = asyncio.Semaphore(max(1, min(self.window, 64)))

            async def footer(at: int, f: DataFile) -> None:
                async with gate:
                    if stop.past(at):
                        return
                    try:
                        await self._locate(f)
                    except (DlioError, StorageError) as exc:
                        stop.fail(at, exc)

            await footer(*order[0])  # alone: its size is the others' first guess (one request each)
            async with asyncio.TaskGroup() as tg:
                for at, f in order[1:]:
                    tg.create_task(footer(at, f))
        else:
            assert own is not None
            # On the window's threads: DLIO's reader k reads the footers of files k, k+n, ... one after
            # another (n readers), a thread hop per reader rather than two per footer (the read, the parse:
            # ~0.2 ms each here, 9 ms for dlrm_mi355's 8 footers at smoke). A first footer not yet sized
            # goes alone.
            waves = [order[:1], order[1:]] if self._footer_guess == 0 and len(order) > 1 else [order]
            for wave in waves:
                n = max(1, min(len(wave), self.threads, self.window_threads))
                futures = [own.submit(self._footers_blocking, suffix, wave[k::n], stop) for k in range(n)]
                try:
                    await asyncio.wait([asyncio.wrap_future(fut) for fut in futures])
                except asyncio.CancelledError:  # each reader stops after its footer in hand; those count
                    stop.cancel()
                    futures_wait(futures)
                    self._take_footers(futures)
                    raise
                self._take_footers(futures)
                if stop.error is not None:
                    break
        if stop.error is not None:
            raise stop.error

    def _take_footers(
        self, futures: list[Future[tuple[list[tuple[str, Spans]], list[Any], Exception | None]]]
    ) -> None:
        """The footer readers' results, on the event loop: their reads counted, their spans kept (a
        reader's own bug is raised after every reader's reads are counted)."""
        bug: BaseException | None = None
        for fut in futures:
            if fut.cancelled():
                continue
            if fut.exception() is not None:  # outside the reader's loop: nothing it read to count
                bug = bug or fut.exception()
                continue
            located, reads, err = fut.result()
            for rec in reads:
                self.reads.add(*rec)
            self._spans.update(located)
            bug = bug or err
        if bug is not None:
            raise bug

    async def _unit(self, f: DataFile, sample: int) -> object:
        """A ranged read unit: exactly its bytes, decoded as DLIO's reader does. A row group serves all
        its rows, so consecutive rows of one group share one read."""
        spans = await self._locate(f)
        if self.unit is ReadUnit.SAMPLE_RANGE:  # unit i is sample i
            return await self._read_unit(f, sample, *sample_of(spans.spans, f, sample))
        u = spans.unit_of(sample)
        task = self._units.get((f.key, u))
        if task is None:
            task = asyncio.ensure_future(self._read_unit(f, sample, *spans.spans[u]))
            self._units[(f.key, u)] = task
            while len(self._units) > self._recent_cap:
                self._units.popitem(last=False)
        return await task

    async def _read_unit(self, f: DataFile, sample: int, start: int, length: int) -> object:
        # a value that does not view the bytes (parquet's count): read into a reused buffer, handed back
        # right after decoding (a fresh multi-MiB bytes per row group costs a page fault per 4 KiB)
        keep = self.format.span_views_data
        got = await self._range(f.key, start, length, pooled=not keep)
        try:
            return self._span_value(got, f, sample, start, length)  # a view or a count: inline
        finally:
            if not keep:
                got.release()

    def _span_value(self, got: Pooled, f: DataFile, sample: int, start: int, length: int) -> object:
        """What the format's reader makes of a read unit's bytes (DlioError when they fall short)."""
        if len(got.data) != length:
            raise DlioError(
                f"{f.key}: sample {sample} at offset {start} (+{length}) is past the end of the "
                "file; regenerate it with --dlio-generate auto"
            )
        return self.format.decode_span(got.data, f, self.ds)

    def _blocking_unit(
        self, read: Callable[[str, int, int], Pooled], f: DataFile, sample: int, start: int, length: int
    ) -> tuple[object, tuple[int, float, float]]:
        """On a window thread: a row group read into a reused buffer, counted, handed back; its value and
        its read's (bytes, seconds, start)."""
        t = time.perf_counter()
        got = read(f.key, start, length)
        try:
            took = time.perf_counter() - t
            return self._span_value(got, f, sample, start, length), (len(got.data), took, t)
        finally:
            got.release()

    async def _from_file(
        self, f: DataFile, sample: int, held: list[Callable[[], None]] | None = None
    ) -> object:
        data = await self._file(f.key, held)
        side = await self._sidecars(f)
        if self.spf == 1:
            return await self._decode(decode_sample, f, self.ds, data, sample, side)
        entry = self._decoded.get(f.key)
        if entry is None or entry[0] is not data:  # decoded once per fetched buffer
            task = asyncio.ensure_future(self._decode(decode_file, f, self.ds, data, side, sample))
            entry = self._decoded[f.key] = (data, task)
            while len(self._decoded) > self._recent_cap:
                self._decoded.popitem(last=False)
        else:
            self._decoded.move_to_end(f.key)
        return sample_of(await asyncio.shield(entry[1]), f, sample)

    async def _sample(self, idx: int, held: list[Callable[[], None]] | None = None) -> object:
        f = self.files[idx // self.spf]
        if self.unit is ReadUnit.FILE:
            out = await self._from_file(f, idx % self.spf, held)
        else:
            out = await self._unit(f, idx % self.spf)
        if not self.preprocess.is_zero:
            await asyncio.sleep(self.preprocess.sample(self.rng))
        return out

    def _unit_ready(self, idx: int) -> object:
        """The fetched, decoded read unit holding sample ``idx`` when it is at hand (no await, no task):
        a row group's value, or a several-sample file's decoded samples; else ``_MISS``."""
        if not self.preprocess.is_zero or self.memory:
            return _MISS
        f = self.files[idx // self.spf]
        if self.unit is ReadUnit.FILE:
            if self.spf == 1:
                return _MISS
            entry = self._decoded.get(f.key)
            fetched = self._recent.get(f.key)
            if (
                entry is None
                or fetched is None
                or not fetched.done()
                or fetched.cancelled()
                or fetched.exception() is not None
                or entry[0] is not fetched.result()
                or not entry[1].done()
                or entry[1].cancelled()
                or entry[1].exception() is not None
            ):
                return _MISS
            self._recent.move_to_end(f.key)
            self._decoded.move_to_end(f.key)
            return entry[1].result()
        spans = self._spans.get(f.key)
        if spans is None or self.unit is ReadUnit.SAMPLE_RANGE:
            return _MISS
        task = self._units.get((f.key, spans.unit_of(idx % self.spf)))
        if task is None or not task.done() or task.cancelled() or task.exception() is not None:
            return _MISS
        return task.result()

    def _ready(self, idx: int) -> object:
        """The sample when its fetched, decoded unit is at hand (no await, no task), else ``_MISS``."""
        got = self._unit_ready(idx)
        if got is _MISS or self.unit is not ReadUnit.FILE:
            return got
        return sample_of(got, self.files[idx // self.spf], idx % self.spf)  # type: ignore[arg-type]

    def _runs(self, indices: np.ndarray) -> list[tuple[int, int]] | None:
        """``indices`` cut into runs of consecutive samples from one read unit, as (start, end) positions;
        None when units are not shared (one sample per file, ranged samples, memory reads, preprocess)."""
        if (
            not self.preprocess.is_zero
            or self.memory
            or self.unit is ReadUnit.SAMPLE_RANGE
            or (self.unit is ReadUnit.FILE and self.spf == 1)
            or len(indices) == 0
        ):
            return None
        idx = np.asarray(indices, dtype=np.int64)
        breaks = np.flatnonzero(np.diff(idx) != 1) + 1  # where consecutive sample numbers stop
        if len(breaks) < 64:  # unshuffled samples (files may be shuffled): cut each stretch at its units
            cuts: list[int] = []
            stretches = [0, *breaks.tolist(), len(idx)]
            for a, b in zip(stretches[:-1], stretches[1:], strict=True):
                lo = int(idx[a])
                within = self._unit_starts(lo, lo + b - a)
                if within is None:
                    return None  # not located yet: the per-sample path reads the footer first
                if a and self._unit_key(lo) != self._unit_key(int(idx[a - 1])):
                    cuts.append(a)  # the stretch starts another unit (not the same one, rows out of order)
                cuts.extend(a + u - lo for u in within)
            bounds = [0, *cuts, len(idx)]
            return list(zip(bounds[:-1], bounds[1:], strict=True))
        files = idx // self.spf
        changed = np.diff(files) != 0
        if self.unit is ReadUnit.ROW_GROUP:  # row group within the file, where its footer was read
            samples = idx - files * self.spf
            unit = np.empty_like(files)
            for f in np.unique(files).tolist():
                spans = self._spans.get(self.keys[f])
                if spans is None:
                    return None
                where = files == f
                unit[where] = np.searchsorted(spans.first, samples[where], "right")
            changed |= np.diff(unit) != 0
        cuts = np.flatnonzero(changed).tolist()
        bounds = [0, *(c + 1 for c in cuts), len(idx)]
        return list(zip(bounds[:-1], bounds[1:], strict=True))

    def _files_in_order(self, samples: np.ndarray) -> list[int]:
        """The files ``samples`` come from, in order of first appearance, found ``_SCAN`` samples at a
        time: from the ends of each chunk's runs of consecutive samples (a few a chunk for unshuffled rows),
        or the chunk's files by first position for shuffled ones, where the scan stops once all are seen
        (every file is in the first chunk or two). One pass over a dlrm_mi355 smoke epoch's 350,208 rows
        at once took 3-4 ms in a fresh process, its multi-MiB temporaries faulted in page by page, and
        ~2 ms dividing every sample by the file size; np.unique over them ~10 ms."""
        out: list[int] = []
        seen = np.zeros(len(self.keys), dtype=np.bool_)
        left = len(self.keys)
        spf = self.spf
        for a in range(0, len(samples), _SCAN):
            chunk = samples[a : a + _SCAN]
            cut = np.flatnonzero(np.diff(chunk) != 1) + 1  # where a run of consecutive samples ends
            if len(cut) < _FEW_RUNS:  # a few runs: each run's files, from its ends (no division per sample)
                ends = cut.tolist()
                firsts = chunk[[0, *ends]].tolist()
                lasts = chunk[[e - 1 for e in ends] + [len(chunk) - 1]].tolist()
                for lo, hi in zip(firsts, lasts, strict=True):
                    for f in range(lo // spf, hi // spf + 1):
                        if not seen[f]:
                            seen[f] = True
                            out.append(f)
                            left -= 1
            else:  # shuffled: the chunk's files by first position, less those seen before
                u, at = np.unique(chunk // spf, return_index=True)
                found = u[np.argsort(at)]
                new = found[~seen[found]]
                seen[new] = True
                out.extend(new.tolist())
                left -= len(new)
            if not left:
                break
        return out

    def _unit_key(self, sample: int) -> tuple[int, int]:
        """(file, read unit in it) of a sample whose file is located."""
        f, row = divmod(sample, self.spf)
        if self.unit is not ReadUnit.ROW_GROUP:
            return f, 0
        return f, bisect.bisect_right(self._spans[self.keys[f]].starts, row) - 1  # Spans.unit_of, by bisect

    def _unit_starts(self, lo: int, hi: int) -> list[int] | None:
        """The samples in ``lo+1 .. hi-1`` that begin a read unit (a file, a row group), ascending; None
        when a row-group file among them is not located yet. A batch of unshuffled samples is cut this
        way, per unit instead of per sample: 18432 dlrm rows a step, with 0.56 ms of compute."""
        out: list[int] = []
        for f in range(lo // self.spf, (hi - 1) // self.spf + 1):
            base = f * self.spf
            if self.unit is ReadUnit.ROW_GROUP:
                spans = self._spans.get(self.keys[f])
                if spans is None:
                    return None
                first = spans.starts  # ascending, from 0: the file's first unit starts at base
                i = bisect.bisect_right(first, lo - base)
                j = bisect.bisect_left(first, hi - base)
                for u in first[i:j]:
                    if not out or base + u > out[-1]:  # an empty row group starts where the next does
                        out.append(base + u)
            elif base > lo:
                out.append(base)
        return out

    async def _batch(self, indices: np.ndarray, held: list[Callable[[], None]] | None = None) -> list[object]:
        """One batch's samples, in order. Samples that share a read unit (a row group, a several-sample
        file) are taken a run at a time: one lookup per run, not a coroutine and a lookup per sample — a
        dlrm batch is 12288 rows from two row groups against 0.375 ms of compute per step, and the loop
        runs on the event loop, inside the step's emulated compute."""
        out: list[object] = []
        runs = self._runs(indices)
        if runs is None and self.unit is ReadUnit.ROW_GROUP and len(indices) and self.preprocess.is_zero:
            for fi in self._files_in_order(indices):  # footers first, in order of appearance
                await self._locate(self.files[fi])
            runs = self._runs(indices)
        for start, end in runs if runs is not None else [(i, i + 1) for i in range(len(indices))]:
            first = int(indices[start])
            got = self._unit_ready(first)
            if got is _MISS:
                one = await self._sample(first, held)
                out.append(one)
                start += 1
                if self.unit is ReadUnit.ROW_GROUP:
                    # the row group's value serves its every row: looked up again, it may be gone already
                    # (other readers' units evict it), and each row would be looked up, or reread, alone
                    got = one
                else:
                    got = self._unit_ready(first) if start < end else _MISS
                if got is _MISS:  # not kept (preprocess, one-sample files, evicted): sample by sample
                    for i in indices[start:end].tolist():
                        one = self._ready(i)
                        out.append(await self._sample(i, held) if one is _MISS else one)
                    continue
            if self.unit is ReadUnit.ROW_GROUP:
                out.extend([got] * (end - start))
            else:
                f = self.files[first // self.spf]
                out.extend(sample_of(got, f, i % self.spf) for i in indices[start:end].tolist())  # type: ignore[arg-type]
        return out

    def _read_batch(self, indices: list[int], delays: list[float]) -> _Fetched:
        """On a reader thread: read each sample's file into a reused buffer and decode it (one-sample
        files, ``self.blocking``). Returns the samples, the buffers they view and each read's
        (bytes, seconds, start)."""
        read = self.blocking
        assert read is not None
        out: list[object] = []
        held: list[Pooled] = []
        recorded: list[tuple[int, float, float]] = []
        try:
            for i, delay in zip(indices, delays, strict=True):
                f = self.files[i]
                t = time.perf_counter()
                got = read(f.key)
                held.append(got)
                recorded.append((len(got.data), time.perf_counter() - t, t))
                out.append(self._timed(decode_sample, f, self.ds, got.data, 0))
                if delay > 0:
                    time.sleep(delay)  # DLIO's preprocess_time: a sleep in the worker, per sample
        except BaseException:
            for h in held:
                h.release()
            raise
        return out, held, recorded

    async def _thread_batches(self, parts: list[np.ndarray]) -> AsyncGenerator[list[object], None]:
        """Batches read by the reader threads (``_read_batch``): up to ``capacity`` batches are queued
        on the pool (it has ``read_threads`` threads, so that many reads run at once, as DLIO's workers),
        delivered in order; a batch's buffers are handed back when the consumer asks for the next."""
        # DLIO's 0 workers: each batch read on the step's own path when it is asked for (no read-ahead),
        # on a thread of its own so the event loop stays free
        own = None if self.pool is not None else ThreadPoolExecutor(1, thread_name_prefix="dlio-read")
        pool = self.pool or own
        assert pool is not None
        ahead = self.capacity if own is None else 1
        queued: deque[Future[_Fetched]] = deque()
        n, nxt, consumed = len(parts), 0, 0

        def fill() -> None:
            nonlocal nxt
            while nxt < n and nxt - consumed < ahead:
                idx = parts[nxt].tolist()
                delays = [0.0 if self.preprocess.is_zero else self.preprocess.sample(self.rng) for _ in idx]
                queued.append(pool.submit(self._read_batch, idx, delays))
                nxt += 1
                self.stats.max_ahead = max(self.stats.max_ahead, nxt - consumed)

        try:
            for b in range(n):
                fill()
                head = queued[0]
                # a batch already read is taken as it is: awaiting it would cost a round through the event
                # loop, and the reader threads may hold the GIL for a switch interval (5 ms) meanwhile
                out, held, recorded = head.result() if head.done() else await asyncio.wrap_future(head)
                queued.popleft()
                for nbytes, seconds, start in recorded:
                    self.reads.add(nbytes, seconds, start)
                consumed = b + 1
                if own is None:  # 0 workers read nothing ahead
                    # the slot this batch held is free once it is taken: the next batch starts now, while the
                    # step computes (as DataLoader puts the next index when it hands a batch out), not at the
                    # next ask
                    fill()
                self.stats.batches += 1
                try:
                    yield out
                finally:
                    del out
                    for h in held:
                        h.release()  # the consumer asked for the next batch (or left): it is done with this one
        finally:
            for fut in queued:  # not started: dropped; running or done: its buffers go back when it ends
                if not fut.cancel():
                    fut.add_done_callback(_release_fetched)
            if own is not None:
                own.shutdown(wait=False)

    async def _row_group_batches(
        self, parts: list[np.ndarray], order: np.ndarray
    ) -> AsyncGenerator[Sequence[object], None]:
        """Batches of row-group rows read through MLPerf v3.0 DLIO's sliding window (``self.window``).

        As DLIO's ``TorchIterableDataset`` does: every footer of the epoch first, then each row group the
        epoch's batches touch is read once, in the order the batches first need it, with ``window`` reads
        in flight ahead of the one the step waits for; one more is started as each is used. The reads run
        on the store's threads (``prefetch_workers`` of them per reader), while the step computes, whatever
        ``read_threads`` is; a batch waits only for row groups not read yet.
        """
        self.stats.window = self.window
        # a local file store: the window's reads run on threads of their own and come back as futures a
        # step takes without a round trip through the event loop when they are done (a count does not
        # view the bytes, so each buffer goes back on the thread that read it); else tasks on the loop
        read = self._window_read()
        own = self._own_window_pool() if read else None  # started before the clock, kept across epochs
        keys = [
            self.files[f]
            for f in self._files_in_order(order)  # the parts' samples: a view, not a copy
            if self.keys[f] not in self._spans
        ]
        if keys:  # the epoch's footers (batches() dropped the last epoch's)
            await self._locate_epoch(keys, own)
        # The plan is made as the window reaches it, a batch at a time: full-size dlrm_b200 has 128,000
        # batches an epoch (~40 us each to cut into row-group runs), which planned up front kept the first
        # read waiting ~5 s. Row groups are numbered in the order batches first need them.
        units: list[tuple[DataFile, int, int, int]] = []  # (file, sample, start, length) per row group
        index: dict[tuple[int, int], int] = {}
        plans: list[list[tuple[int, int]] | None] = []  # per batch planned: (unit, rows) runs
        needs: list[int] = []  # per batch planned: its units are all started once this many are
        # per row group: its read until a step takes it (then None: counted, its value in ``values``)
        reads: list[asyncio.Task[object] | Future[tuple[object, tuple[int, float, float]]] | None] = []
        values: dict[int, object] = {}  # a row group's value once taken (a count: later batches reuse it)
        started = 0
        # reads DLIO's window has started by now (one more as each row group is taken); ``started``
        # catches up before a step waits for a read, else inside the step's compute
        due = 0

        def plan_next() -> bool:
            b = len(plans)
            if b >= len(parts):
                return False
            p = parts[b]
            runs = self._runs(p)
            assert runs is not None  # every file located, no preprocess, row groups
            plan = []
            for start, end in runs:
                sample = int(p[start])
                key = fi, unit = self._unit_key(sample)
                u = index.get(key)
                if u is None:
                    u = index[key] = len(units)
                    units.append(
                        (self.files[fi], sample - fi * self.spf, *self._spans[self.keys[fi]].spans[unit])
                    )
                    reads.append(None)
                plan.append((u, end - start))
            plans.append(plan)
            top = max(u for u, _ in plan) + 1
            needs.append(max(top, needs[-1]) if needs else top)
            return True

        # every row group the located files hold: once all are numbered, planning more batches cannot find
        # one to start (shuffled rows meet every row group early; planning the rest of the epoch there held
        # a measured step ~0.5 s)
        most = sum(len(sp.spans) for sp in self._spans.values())
        barren = max(64, self.window)  # batches planned in a row without a new row group, at most, per call

        def start_to(count: int) -> None:
            nonlocal started
            dry = 0
            while started < count:
                if started >= len(units):
                    if len(units) >= most or dry >= barren:
                        return  # plan_ahead and the step loop plan the rest, a batch or two at a time
                    had = len(units)
                    if not plan_next():
                        return
                    dry = dry + 1 if len(units) == had else 0
                    continue
                f, sample, off, length = units[started]
                if own is not None and read is not None:
                    reads[started] = own.submit(self._blocking_unit, read, f, sample, off, length)
                else:
                    reads[started] = asyncio.ensure_future(self._read_unit(f, sample, off, length))
                started += 1

        at = 0  # the batch the step loop is at

        def plan_ahead() -> None:
            start_to(due)  # the reads the last step's takes made due
            # two batches a step: the plan gains on the step loop until the window's next reads are planned
            for _ in range(2):
                if len(plans) > at + 1 and len(units) >= started + self.window:
                    return
                if not plan_next():
                    return

        self._ahead = plan_ahead

        async def take(u: int) -> object:
            if u in values:
                return values[u]
            r = reads[u]
            if r is None or not r.done():  # not started yet, or not done: every read the window has due
                start_to(due)  # starts first (they run while the step waits, as DLIO's would have)
                r = reads[u]
            assert r is not None
            if isinstance(r, asyncio.Task):
                value = r.result() if r.done() else await r
            else:
                value, (nbytes, seconds, t) = r.result() if r.done() else await asyncio.wrap_future(r)
                self.reads.add(nbytes, seconds, t)
            values[u] = value
            reads[u] = None  # taken: the future is not kept for the rest of the epoch
            return value

        try:
            start_to(self.window)
            for b in range(len(parts)):
                at = b
                while len(plans) <= b:
                    plan_next()
                plan = plans[b]
                assert plan is not None
                out: list[tuple[object, int]] = []
                for u, rows in plan:
                    # DLIO starts the read ``window`` places ahead as it takes each row group (and a window
                    # smaller than a batch's row groups still makes progress). A read taken already done
                    # leaves the next one due: it starts inside the step's compute (``plan_ahead``), not on
                    # the step's path, unless this step has to wait for one (``take``)
                    due = max(due, u + 1 + self.window)
                    out.append((await take(u), rows))
                ahead = max(started, min(due, len(units)))
                self.stats.max_ahead = max(self.stats.max_ahead, bisect.bisect_right(needs, ahead) - b)
                plans[b] = None
                self.stats.batches += 1
                yield RowBatch(out)
                del out
        finally:
            self._ahead = None
            # reads in flight on the event loop finish rather than being cancelled: a cancelled task's
            # read still ran to the end on the store's thread, and its bytes were never counted
            left = [t for t in reads if isinstance(t, asyncio.Task) and not t.done()]
            await asyncio.gather(*left, return_exceptions=True)
            if own is not None:
                # reads not started are dropped; running ones finish (and hand their buffers back) first,
                # so each read's bytes are counted, taken by a step or not: they moved
                running = [r for r in reads if isinstance(r, Future) and not r.cancel() and not r.done()]
                if running:
                    try:
                        await asyncio.to_thread(futures_wait, running)
                    except asyncio.CancelledError:  # the phase is being cancelled: still count them
                        futures_wait(running)  # (a window's reads at most, each a row group)
                        self._count_left(reads)
                        raise
            self._count_left(reads)

    def _count_left(self, reads: list[Any]) -> None:
        """The window's reads no step took: a thread's that finished is counted (its bytes moved; a task
        counts its own), and a failure nobody awaited is marked retrieved (asyncio would log it)."""
        for u, r in enumerate(reads):
            if r is None or not r.done() or r.cancelled():
                continue
            reads[u] = None
            if r.exception() is None and isinstance(r, Future):
                self.reads.add(*r.result()[1])  # read, though no step took it

    def batches(self, order: np.ndarray, batch_size: int) -> AsyncGenerator[Sequence[object], None]:
        """``len(order) // batch_size`` batches in order, from the generator of the loader's read path
        itself (not wrapped in another: each level costs every step a resumption, ~2 us)."""
        n = len(order) // batch_size
        parts = [order[b * batch_size : (b + 1) * batch_size] for b in range(n)]
        self._recent.clear()
        self._units.clear()
        self._decoded.clear()
        self._ahead = None  # the last epoch's window plans no more
        if self.unit is ReadUnit.ROW_GROUP:
            # DLIO's parquet readers read every footer again each epoch (a reader drops a file's footer once
            # its window moves past the file, and all of them at the epoch's end): requested and counted
            # again; only the parse is memoised, by the footer's bytes (ParquetFormat.row_group_spans)
            self._spans.clear()
            self._locating.clear()
        if self.blocking is not None:  # one-sample files read by the reader threads
            return self._thread_batches(parts)
        if self._windowed() and n:
            return self._row_group_batches(parts, order[: n * batch_size])  # DLIO v3's row-group window
        return self._task_batches(parts, order[: n * batch_size])

    async def _task_batches(
        self, parts: list[np.ndarray], read: np.ndarray
    ) -> AsyncGenerator[Sequence[object], None]:
        """Batches read by reader tasks on the event loop (``threads`` of them, ``capacity`` ahead), or on
        the step's own path with no reader (DLIO's 0 workers)."""
        n = len(parts)
        if self.memory:
            self._cache.clear()
            self._left = {}
            for f in (read // self.spf).tolist():
                k = self.keys[f]
                self._left[k] = self._left.get(k, 0) + 1
        held: dict[int, list[Callable[[], None]]] = {}  # pooled buffers each batch holds until consumed

        def hold(b: int) -> list[Callable[[], None]] | None:
            if not self.pooled:
                return None
            out = held[b] = []
            return out

        def release(b: int) -> None:
            for give_back in held.pop(b, ()):
                give_back()

        if self.threads <= 0:  # DLIO's 0 workers: read on the step's own path, no read-ahead
            try:
                for b, p in enumerate(parts):
                    self.stats.batches += 1
                    yield await self._batch(p, hold(b))
                    release(b)  # the consumer asked for the next batch: it is done with this one
            finally:
                for b in list(held):
                    release(b)
            return
        loop = asyncio.get_running_loop()
        futures: dict[int, asyncio.Future[list[object]]] = {b: loop.create_future() for b in range(n)}
        slots = asyncio.Semaphore(self.capacity)
        state = {"next": 0, "consumed": 0}

        async def worker() -> None:
            while True:
                await slots.acquire()
                b = state["next"]
                if b >= n:
                    slots.release()
                    return
                state["next"] = b + 1
                self.stats.max_ahead = max(self.stats.max_ahead, b + 1 - state["consumed"])
                fut = futures[b]
                try:
                    fut.set_result(await self._batch(parts[b], hold(b)))
                except Exception as exc:  # delivered to the step loop in order
                    fut.set_exception(exc)
                del fut  # a finished batch is owned by the step loop alone

        tasks = [asyncio.create_task(worker()) for _ in range(self.threads)]
        try:
            for b in range(n):
                batch = await futures[b]
                del futures[b]  # drop our reference: a consumed batch must be freeable
                state["consumed"] = b + 1
                slots.release()
                self.stats.batches += 1
                yield batch
                del batch
                release(b)  # the consumer asked for the next batch: it is done with this one
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for f in futures.values():
                if f.done() and not f.cancelled():
                    f.exception()  # mark retrieved
                else:
                    f.cancel()
            for b in list(held):
                release(b)
