"""Checkpoint phase: write and read DLIO-shaped checkpoints through an ObjectStore, timed as DLIO times them.

Each save writes this rank's files (``checkpointing.sizes.rank_layout``) under ``global_epoch{e}_step{s}/``,
streamed in bounded chunks through ``store.open_writer`` (fsync honoured, unlike DLIO §1.8 #2), then a small
per-rank manifest ``.dlio_manifest-{rank}.json`` naming each file's size and content (seed and chunk numbers of
``checkpointing.content``). A load reads every file back in bounded ranges and, with ``verify``, compares sizes
and every byte against the regenerated content (no checksum work on the write path). Timing follows DLIO's checkpoint-only
loop: sleep ``time_between_checkpoints``, barrier, start clock, save/load, barrier if ``rank_sync``, stop.

Use :class:`Checkpointer` from training (``on_checkpoint=ckpt.save``, then ``ckpt.stats()``), or
:func:`write_checkpoints` / :func:`read_checkpoints` for checkpoint-only workloads.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from pytest_dlio.checkpointing import metrics
from pytest_dlio.checkpointing.content import CHUNK, ChunkSource
from pytest_dlio.checkpointing.sizes import CkptFile, checkpoint_sizes, folder_name, rank_layout
from pytest_dlio.config.model import WorkloadConfig
from pytest_dlio.errors import DlioError, NotFound
from pytest_dlio.progress import ProgressFn, Ticker
from pytest_dlio.ranks import Comm, host_leader
from pytest_dlio.storage.base import ObjectStore, Pooled

#: Ranges of a checkpoint file read ahead of the one being compared (with one, each read waited for the
#: event loop's hop between the previous read and its own start: ~0.4 ms idle per 16 MiB range).
READ_AHEAD = 2


def manifest_key(epoch: int, step: int, rank: int) -> str:
    """Where a rank's manifest (file sizes and content recipe) for one checkpoint lives."""
    return f"{folder_name(epoch, step)}/.dlio_manifest-{rank}.json"


def drop_page_cache() -> bool:
    """``sync`` then ``echo 3 > /proc/sys/vm/drop_caches``; False when not permitted (e.g. not root)."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        return False
    return True


@dataclass
class Timings:
    """One kind (save or load) of operation: per-checkpoint durations and per-file latencies."""

    durations: list[float] = field(default_factory=list)
    file_latencies: list[float] = field(default_factory=list)
    nbytes: int = 0


class Checkpointer:
    """Saves and loads this rank's checkpoint files; collects DLIO's checkpoint metrics."""

    def __init__(
        self,
        cfg: WorkloadConfig,
        store: ObjectStore,
        *,
        comm: Comm,
        fsync: bool | None = None,
        chunk: int = CHUNK,
        progress: ProgressFn | None = None,
    ) -> None:
        self.cfg, self.store, self.comm = cfg, store, comm
        self.progress = progress
        self._tick, self._moved, self._kind, self._index = Ticker(None, "checkpoint", 0, "B"), 0, "save", 0
        self.fsync = cfg.checkpoint.fsync if fsync is None else fsync
        self.layout = rank_layout(cfg, comm.size, comm.rank)
        self.size_gib = checkpoint_sizes(cfg, comm.size).checkpoint_size_gib
        if getattr(comm, "emulated", False):  # one process standing in for one rank: GB/s of what it writes
            self.size_gib = self.layout.total_bytes / 2**30
        self.chunk = max(1 << 20, chunk - chunk % 4096)
        self._source: ChunkSource | None = None
        self._check: ChunkSource | None = None
        self.saves, self.loads = Timings(), Timings()
        self.saved: list[tuple[int, int]] = []  # (epoch, step) of every save, for a later read-back
        self.problems: list[str] = []
        self.notes: list[str] = []

    @property
    def source(self) -> ChunkSource:
        if self._source is None:  # made lazily: ranks that write nothing never allocate it
            self._source = ChunkSource(
                self.cfg.train.seed + self.comm.rank,
                randomize=self.cfg.checkpoint.randomize_tensor,
                chunk=self.chunk,
            )
        return self._source

    # ---- save ----
    async def save(self, epoch: int, step: int) -> float:
        """Write one checkpoint (usable as training's ``on_checkpoint``); returns its duration in seconds."""
        if self.layout.files:
            _ = self.source  # make the random pool before the clock starts (DLIO allocates tensors up front)
        self._begin("save")
        start = time.perf_counter()
        firsts = {}
        for f in self.layout.files:
            firsts[f.name] = self.source.counter + 1
            await self._write_file(f"{folder_name(epoch, step)}/{f.name}", f)
        if self.cfg.checkpoint.rank_sync:
            await self.comm.barrier()
        duration = time.perf_counter() - start
        self._advance(0, final=True)
        self.saves.durations.append(duration)
        self.saves.nbytes += self.layout.total_bytes
        self.saved.append((epoch, step))
        if firsts:
            src = self.source
            doc = {
                "rank": self.comm.rank,
                "world": self.comm.size,
                "seed": src.seed,
                "chunk": src.chunk,
                "randomize": src.randomize,
                "files": {
                    f.name: {"bytes": f.nbytes, "first_chunk": firsts[f.name], "dtype": f.dtype}
                    for f in self.layout.files
                },
            }
            await self.store.put(
                manifest_key(epoch, step, self.comm.rank), json.dumps(doc).encode(), fsync=self.fsync
            )
        return duration

    async def _write_file(self, key: str, f: CkptFile) -> None:
        t0 = time.perf_counter()
        left = f.nbytes
        writer = await self.store.open_writer(key, fsync=self.fsync)
        try:
            while left > 0:
                data = self.source.next(min(left, self.chunk), f.dtype)
                await writer.write(data)
                left -= len(data)
                self._advance(len(data))
        except BaseException:
            await writer.abort()
            raise
        await writer.close()
        self.saves.file_latencies.append(time.perf_counter() - t0)

    # ---- load ----
    async def load(self, epoch: int, step: int, *, verify: bool = True) -> float:
        """Read one checkpoint back (checking sizes and every byte when ``verify``); returns its duration."""
        manifest: dict[str, Any] | None = None
        if verify and self.layout.files:
            manifest = await self._manifest(epoch, step)
            if manifest is not None:  # its 16 MiB pool is drawn before the clock starts (~60 ms), as a save's
                check = self._verifier(manifest)
                if check.randomize:
                    check.pristine()
        self._begin("load")
        start = time.perf_counter()
        for f in self.layout.files:
            key = f"{folder_name(epoch, step)}/{f.name}"
            entry = manifest["files"].get(f.name) if manifest else None
            source = self._verifier(manifest) if manifest and entry else None
            await self._read_file(key, f, source, entry, check_size=verify)
        if self.cfg.checkpoint.rank_sync:
            await self.comm.barrier()
        duration = time.perf_counter() - start
        self._advance(0, final=True)
        self.loads.durations.append(duration)
        self.loads.nbytes += self.layout.total_bytes
        return duration

    def _verifier(self, manifest: dict[str, Any]) -> ChunkSource:
        key = (int(manifest["seed"]), int(manifest["chunk"]), bool(manifest["randomize"]))
        if self._check is None or (self._check.seed, self._check.chunk, self._check.randomize) != key:
            self._check = ChunkSource(key[0], chunk=key[1], randomize=key[2])
        return self._check

    async def _manifest(self, epoch: int, step: int) -> dict[str, Any] | None:
        try:
            raw = await self.store.get(manifest_key(epoch, step, self.comm.rank))
        except NotFound:
            note = f"{folder_name(epoch, step)}: no manifest for rank {self.comm.rank}; sizes checked only"
            if note not in self.notes:
                self.notes.append(note)
            return None
        return dict(json.loads(bytes(raw)))

    async def _read_file(
        self,
        key: str,
        f: CkptFile,
        source: ChunkSource | None,
        entry: dict[str, Any] | None,
        *,
        check_size: bool,
    ) -> None:
        t0 = time.perf_counter()
        try:
            size = await self.store.size(key)
        except NotFound:
            raise DlioError(
                f"checkpoint read: {self.store.uri.rstrip('/')}/{key} does not exist; write the "
                "checkpoint first (checkpoint.num_checkpoints_write) with the same model and "
                "parallelism settings and rank count"
            ) from None
        if check_size and size != f.nbytes:
            self.problems.append(
                f"{key}: {size} bytes, expected {f.nbytes} (DLIO layout for rank "
                f"{self.comm.rank} of {self.comm.size})"
            )
            source = None
        step = source.chunk if source is not None else self.chunk
        chunk_no = int(entry["first_chunk"]) if entry else 0
        dtype = str(entry["dtype"]) if entry else f.dtype
        offset = launched = 0
        # READ_AHEAD chunks in flight, each read and then compared in a worker thread (on local files into a
        # reused buffer), so reads and comparisons of consecutive chunks overlap on separate cores
        ahead: deque[asyncio.Task[tuple[int, int]]] = deque()

        def launch() -> None:
            nonlocal launched, chunk_no
            while launched < size and len(ahead) < READ_AHEAD:
                n = min(step, size - launched)
                ahead.append(asyncio.ensure_future(self._chunk(key, launched, n, source, chunk_no, dtype)))
                launched += n
                chunk_no += 1

        try:
            launch()
            while ahead:
                n, bad = await ahead.popleft()
                if not n:
                    break
                launch()
                if bad >= 0 and source is not None:
                    self.problems.append(
                        f"{key}: content differs from what was written at byte {offset + bad}; "
                        "the stored file is corrupt or was overwritten"
                    )
                    source = None  # one problem per file; chunks already in flight are still compared
                offset += n
                self._advance(n)
        finally:
            for task in ahead:  # stopped early (short file, error): nobody reads them
                task.cancel()
        self.loads.file_latencies.append(time.perf_counter() - t0)

    async def _chunk(
        self, key: str, start: int, length: int, source: ChunkSource | None, chunk_no: int, dtype: str
    ) -> tuple[int, int]:
        """Read one chunk; with ``source``, where it first differs from chunk ``chunk_no`` (-1: nowhere)."""
        got = await self._range(key, start, length)
        n = len(got.data)
        bad = -1
        if source is not None and n:
            bad = await asyncio.to_thread(source.difference, got.data, chunk_no, dtype)
        got.release()  # not when cancelled while comparing: the thread still uses the buffer
        return n, bad

    async def _range(self, key: str, start: int, length: int) -> Pooled:
        """A range of a checkpoint file; on local files into a reused buffer (``release()`` it after use)."""
        return await self.store.get_range_pooled(key, start, length)

    # ---- progress ----
    def _begin(self, kind: str) -> None:
        count = len((self.saves if kind == "save" else self.loads).durations) + 1
        self._tick = Ticker(self.progress, "checkpoint", self.layout.total_bytes, "B")
        self._kind, self._index, self._moved = kind, count, 0

    def _advance(self, nbytes: int, final: bool = False) -> None:
        self._moved += nbytes
        self._tick(self._moved, final=final, kind=self._kind, index=self._index)

    # ---- metrics ----
    def stats(self) -> CheckpointStats:
        """DLIO's checkpoint summary keys (rank-local timings, as DLIO reports rank 0's) plus ours."""
        metric: dict[str, float] = {"checkpoint_size_GB": self.size_gib}
        counts: dict[str, int] = {}
        for kind, t in (("save", self.saves), ("load", self.loads)):
            if not t.durations:
                continue
            metric.update(metrics.summary(kind, t.durations, self.size_gib))
            metric.update(metrics.latency_ms(kind, t.file_latencies))
            metric[f"{kind}_checkpoint_rank_GiB_per_second"] = metrics.bytes_rate_gib_s(
                t.nbytes, sum(t.durations)
            )
            metric[f"{kind}_checkpoint_count"] = float(len(t.durations))
            counts[kind] = len(t.durations)
        metric["checkpoint_rank_bytes"] = float(self.layout.total_bytes)
        return CheckpointStats(
            metric=metric,
            fsync=self.fsync,
            counts=counts,
            saved=tuple(self.saved),
            notes=tuple(self.notes),
            problems=tuple(self.problems),
            durations={"save": tuple(self.saves.durations), "load": tuple(self.loads.durations)},
            file_latencies={
                "save": tuple(self.saves.file_latencies),
                "load": tuple(self.loads.file_latencies),
            },
        )


@dataclass(frozen=True)
class CheckpointStats:
    """What one rank's checkpoint saves/loads did: DLIO's ``metric`` keys, and what went wrong."""

    metric: dict[str, float]
    fsync: bool
    counts: dict[str, int]  # "save"/"load" → number of checkpoints
    saved: tuple[tuple[int, int], ...] = ()  # (epoch, step) of each save, for a later read-back
    notes: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()  # verification failures (size or content)
    potential_caching: bool | None = None  # None: not a local page-cache question
    durations: dict[str, tuple[float, ...]] = field(default_factory=dict)  # "save"/"load" → s per checkpoint
    file_latencies: dict[str, tuple[float, ...]] = field(default_factory=dict)  # → s per file

    @property
    def failure(self) -> str | None:
        if not self.problems:
            return None
        shown = "; ".join(self.problems[:5])
        more = f" (and {len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        return "checkpoint verification failed: " + shown + more


def _pause(cfg: WorkloadConfig) -> float:
    return max(0.0, float(cfg.checkpoint.time_between_checkpoints))


async def write_checkpoints(
    cfg: WorkloadConfig,
    store: ObjectStore,
    *,
    comm: Comm,
    epoch_steps: list[tuple[int, int]] | None = None,
    fsync: bool | None = None,
    progress: ProgressFn | None = None,
) -> CheckpointStats:
    """Checkpoint-only saves: ``num_checkpoints_write`` checkpoints at epoch 1, steps 1..N (or ``epoch_steps``)."""
    if epoch_steps is None:
        epoch_steps = [(1, s) for s in range(1, cfg.checkpoint.num_checkpoints_write + 1)]
    ckpt = Checkpointer(cfg, store, comm=comm, fsync=fsync, progress=progress)
    for epoch, step in epoch_steps:
        await asyncio.sleep(_pause(cfg))
        await comm.barrier()
        await ckpt.save(epoch, step)
    return ckpt.stats()


async def _present(store: ObjectStore, cfg: WorkloadConfig, comm: Comm, epoch: int, step: int) -> bool:
    files = rank_layout(cfg, comm.size, comm.rank).files
    if not files:
        return True
    return await store.exists(f"{folder_name(epoch, step)}/{files[0].name}")


async def _drop_once_per_host(comm: Comm) -> bool:
    """The first rank on each host drops its page cache; True when every host's drop worked."""
    failed = 0.0 if not host_leader(comm) or drop_page_cache() else 1.0
    failures = await comm.allreduce(failed)
    await comm.barrier()  # nobody reads before every host has dropped
    return failures == 0


async def read_checkpoints(
    cfg: WorkloadConfig,
    store: ObjectStore,
    *,
    comm: Comm,
    verify: bool = True,
    drop_caches: bool = False,
    epoch_steps: list[tuple[int, int]] | None = None,
    progress: ProgressFn | None = None,
) -> CheckpointStats:
    """Checkpoint-only loads: ``num_checkpoints_read`` checkpoints at epoch 1, steps 1..N (or ``epoch_steps``,
    e.g. a training run's ``Checkpointer.saved``), verified by default."""
    if epoch_steps is None:
        wanted = [(1, s) for s in range(1, cfg.checkpoint.num_checkpoints_read + 1)]
    else:
        wanted = list(epoch_steps)
    found = 0
    for epoch, step in wanted:
        if not await _present(store, cfg, comm, epoch, step):
            break
        found += 1
    if found < len(wanted):
        raise DlioError(
            f"checkpoint read: checkpoint.num_checkpoints_read is {len(wanted)} but only {found} checkpoint(s) "
            f"({folder_name(*wanted[0])}..) exist under {store.uri} for rank {comm.rank}; write them first "
            f"(checkpoint.num_checkpoints_write >= {len(wanted)}) or lower num_checkpoints_read"
        )
    ckpt = Checkpointer(cfg, store, comm=comm, progress=progress)
    cache_note, caching = None, None
    if store.page_cached:
        if drop_caches and await _drop_once_per_host(comm):
            cache_note, caching = "page cache dropped before reading", False
        elif ckpt.layout.total_bytes > 0:
            cache_note, caching = (
                (
                    "possible page-cache effects: checkpoints were not evicted from the page "
                    "cache (drop_caches " + ("not permitted" if drop_caches else "off") + ")"
                ),
                True,
            )
    for epoch, step in wanted:
        await asyncio.sleep(_pause(cfg))
        await comm.barrier()
        await ckpt.load(epoch, step, verify=verify)
    result = ckpt.stats()
    if cache_note:
        result = replace(result, notes=(*result.notes, cache_note), potential_caching=caching)
    return result


__all__ = [
    "CheckpointStats",
    "Checkpointer",
    "drop_page_cache",
    "manifest_key",
    "read_checkpoints",
    "write_checkpoints",
]
