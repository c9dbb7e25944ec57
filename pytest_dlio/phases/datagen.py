"""The datagen phase: write this rank's share of DLIO's dataset, resumably, with bounded concurrency.

Modes: ``always`` rewrites every file; ``never`` only checks (DlioError when anything is missing or
incomplete); ``auto`` writes what is missing or incomplete and leaves complete files alone.

Complete is judged as training judges it (``phases/dataset.py``): the key exists with its exact
size, the format's prediction or, for formats whose size depends on the encoded content (hdf5, csv,
jpeg, png, parquet), the size in the empty marker object ``.dlio/sizes/{key}@{size}`` datagen writes
after the file; every sidecar exists with its exact size. Files are written whole and atomically
(``ObjectStore.put`` / a committed ``Writer``), sidecars first, then the file, then its markers, so a
killed run leaves only files that ``auto`` recognises as missing or incomplete and rewrites. Beyond size,
``auto`` checks sampled blocks of complete files against the digest marker datagen wrote with each file
(``phases/dataset.py``: what is and isn't verified) and rewrites a damaged file.

Every key a run puts (sidecars, files, markers) is in ``DatagenStats.written_keys``; with ``manifest``
the run also keeps a list on the store (``.dlio/written/<run>.json``: before writing, the files it is
going to write; at the end, the keys it wrote), so ``dataset.keep_files: false`` deletes exactly what
this run wrote — never a file that was there before — and what a killed run wrote can still be found.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from pytest_dlio.config.model import WorkloadConfig
from pytest_dlio.errors import DlioError
from pytest_dlio.formats import Encoded, get_format
from pytest_dlio.layout import DataFile, dataset_files, files_for_rank
from pytest_dlio.phases.dataset import (
    DIGEST_MIN,
    DIGEST_PREFIX,
    MARKER_PREFIX,
    Listing,
    SampledBlocks,
    content_problems,
    digest_key,
    digest_of_parts,
    list_dataset,
    marker_key,
    not_enough_message,
)
from pytest_dlio.progress import ProgressFn, Ticker
from pytest_dlio.randbytes import file_rng, new_nonce
from pytest_dlio.ranks import Comm
from pytest_dlio.storage.base import ObjectStore
from pytest_dlio.storage.file import FileStore

MODES = ("auto", "always", "never")
STREAM_ABOVE = 8 << 20  # multi-part files above this stream through a Writer (no join copy)
STREAM_CHUNK = 1 << 20  # local files are made and written this many bytes at a time (stays in L2 cache)
MEMORY_BUDGET = 1 << 30  # encoded bytes in flight at once (bounds concurrency for huge files)
WRITTEN_PREFIX = ".dlio/written/"  # per-run manifests of the keys a run wrote


def manifest_key(run_id: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
    return f"{WRITTEN_PREFIX}{safe}.json"


@dataclass(frozen=True)
class DatagenStats:
    """What one rank's generation did: plain data, for the report and the engine."""

    format: str
    files_planned: int
    files_written: int
    files_skipped: int
    bytes_written: int  # every byte put to storage: files and their sidecars
    write_latencies: tuple[float, ...]  # seconds per file written (sidecars, file, marker; on local files,
    # where each file is made as it is written, making it too)
    wall_seconds: float
    write_starts: tuple[float, ...] = ()  # time.perf_counter() at each file's start (same order)
    write_bytes: tuple[int, ...] = ()  # bytes of each file written, sidecars included (same order)
    written_keys: tuple[str, ...] = ()  # every key this run put: sidecars, files, markers
    manifest: str | None = None  # where the list of written keys is kept on the store (None: nowhere)
    files_damaged: int = 0  # complete by size but damaged content, rewritten
    flush_seconds: float = 0.0  # making the written files durable (local files' fsync), after wall_seconds

    @property
    def mib_per_second(self) -> float:
        return self.bytes_written / 2**20 / self.wall_seconds if self.wall_seconds > 0 else 0.0


async def shared_listing(
    store: ObjectStore, files: list[DataFile], comm: Comm, *, digests: bool = False
) -> Listing:
    """Rank 0 lists, every rank gets its listing: one LIST per prefix however many ranks run (a LIST per
    rank at scale is what gave mlcommons/storage #667 its SlowDown storms)."""
    listing = await list_dataset(store, files, digests=digests) if comm.rank == 0 else None
    if comm.size == 1:
        assert listing is not None
        return listing
    shared: Listing = await comm.broadcast(listing)
    return shared


def merge_stats(parts: list[DatagenStats]) -> DatagenStats:
    """Every rank's generation as one: counts and bytes summed, latencies pooled, the slowest rank's wall."""
    return DatagenStats(
        format=parts[0].format,
        files_planned=sum(p.files_planned for p in parts),
        files_written=sum(p.files_written for p in parts),
        files_skipped=sum(p.files_skipped for p in parts),
        bytes_written=sum(p.bytes_written for p in parts),
        write_latencies=tuple(x for p in parts for x in p.write_latencies),
        wall_seconds=max(p.wall_seconds for p in parts),
        flush_seconds=max(p.flush_seconds for p in parts),
    )


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise DlioError(f"--dlio-generate {mode!r}: use auto, always or never")


SPLIT_FOLDERS = ("train", "valid")


def make_split_folders(store: ObjectStore) -> None:
    """On a local filesystem, both split folders DLIO walks, even when empty: DLIO 2.0.0 lists
    ``{data_folder}/valid`` whatever ``num_files_eval`` is, and fails on a dataset without it. Object stores
    have no folders (DLIO lists prefixes there), so nothing is made."""
    root = store.local_root
    if root is None:
        return
    for name in SPLIT_FOLDERS:
        (root / name).mkdir(parents=True, exist_ok=True)


def preflight(store: ObjectStore, todo: list[DataFile], listing: Listing) -> None:
    """Fail before writing when a local filesystem can't hold what is planned."""
    root = store.local_root
    if root is None or not todo:
        return
    need = sum(
        (f.expected_size if f.expected_size is not None else f.raw_bytes) - listing.sizes.get(f.key, 0)
        for f in todo
    )
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if need > free:
        raise DlioError(
            f"datagen: {len(todo)} files need about {need / 2**30:.2f} GiB but {probe} has "
            f"{free / 2**30:.2f} GiB free ({store.uri}); free space, shrink the dataset "
            "(--dlio-scale) or point --dlio-storage elsewhere"
        )


def _encode(f: DataFile, cfg: WorkloadConfig, nonce: int) -> tuple[Encoded, str | None]:
    enc = get_format(cfg.dataset.format).encode(f, cfg.dataset, file_rng(nonce, f.position))
    return enc, digest_of_parts(enc.parts, enc.size) if enc.size >= DIGEST_MIN else None


_LANE = threading.local()  # each generation thread's chunk buffer


def _lane_buffer() -> np.ndarray:
    buf: np.ndarray | None = getattr(_LANE, "buf", None)
    if buf is None:
        buf = _LANE.buf = np.empty(STREAM_CHUNK // 8, dtype=np.uint64).view(np.uint8)
    return buf


def _stream_or_encode(
    f: DataFile, cfg: WorkloadConfig, nonce: int, store: FileStore
) -> tuple[int, str | None] | tuple[Encoded, str | None]:
    """In a generation thread: make file ``f`` chunk by chunk and write each chunk as it is made (bytes
    written, digest), or, when its format can't stream it, encode it whole for ``write_file``."""
    rng = file_rng(nonce, f.position)
    stream = (
        None if f.sidecars else get_format(cfg.dataset.format).stream(f, cfg.dataset, rng, _lane_buffer())
    )
    if stream is None:
        return _encode(f, cfg, nonce)
    blocks = SampledBlocks(stream.size) if stream.size >= DIGEST_MIN else None
    chunks = blocks.feed(stream.chunks) if blocks is not None else stream.chunks

    def patches() -> list[tuple[int, bytes]]:
        out = stream.patches()
        if blocks is not None:
            for offset, data in out:
                blocks.patch(offset, data)
        return out

    written = store.put_chunks_blocking(f.key, chunks, patches)
    return written, blocks.digest() if blocks is not None else None


def _coalesce(parts: list, target: int = 8 << 20) -> Iterator:
    """Group small parts into ~``target``-byte writes."""
    batch: list = []
    size = 0
    for p in parts:
        n = memoryview(p).nbytes
        if n >= target and not batch:
            yield p
            continue
        batch.append(p)
        size += n
        if size >= target:
            yield b"".join(batch)
            batch, size = [], 0
    if batch:
        yield b"".join(batch)


async def write_file(
    store: ObjectStore,
    f: DataFile,
    enc: Encoded,
    listing: Listing,
    digest: str | None = None,
    wrote: list[str] | None = None,
) -> int:
    """Sidecars, then the file, then its size and digest markers; returns bytes written. Each key put is
    appended to ``wrote`` before the put starts (a killed put may have left it)."""
    wrote = [] if wrote is None else wrote
    written = 0
    for key, data in enc.sidecars.items():
        wrote.append(key)
        await store.put(key, data)
        written += len(data)
    wrote.append(f.key)
    size = enc.size
    if len(enc.parts) > 1 and size > STREAM_ABOVE:
        async with await store.open_writer(f.key) as w:
            for chunk in _coalesce(enc.parts):
                await w.write(chunk)
    else:
        await store.put(f.key, enc.data())
    written += size
    await write_markers(store, f, size, listing, digest, wrote)
    return written


async def write_markers(
    store: ObjectStore, f: DataFile, size: int, listing: Listing, digest: str | None, wrote: list[str]
) -> None:
    """After file ``f`` (``size`` bytes): its size marker (content-sized formats) and its digest marker,
    replacing stale ones."""
    if f.expected_size is None:
        for stale, plan in listing.markers.get(f.key, set()) - {(size, f.plan)}:
            await store.delete(marker_key(f.key, stale, plan))
        wrote.append(marker_key(f.key, size, f.plan))
        await store.put(marker_key(f.key, size, f.plan), b"")
    if digest is not None:
        for old in listing.digests.get(f.key, set()) - {digest}:
            await store.delete(digest_key(f.key, old))
        wrote.append(digest_key(f.key, digest))
        await store.put(digest_key(f.key, digest), b"")


class Manifest:
    """The keys a run writes, kept on the store at ``key``: before the first write, every file the run is
    going to write (its ``planned`` files and sidecars; their markers are ``.dlio/sizes/{key}@*`` and
    ``.dlio/digests/{key}@*``), so a killed run's list is complete; at the end, exactly what it wrote."""

    def __init__(self, store: ObjectStore, key: str | None) -> None:
        self.store, self.key = store, key
        self.keys: list[str] = []  # in memory, as written

    async def _put(self, doc: dict[str, object]) -> None:
        if self.key is not None:
            doc = {"writer": {"pid": os.getpid(), "host": os.uname().nodename}, **doc}
            await self.store.put(self.key, json.dumps(doc).encode())

    async def plan(self, todo: list[DataFile]) -> None:
        if todo:
            planned = sorted({k for f in todo for k in (f.key, *f.sidecars)})
            await self._put(
                {
                    "done": False,
                    "planned": planned,
                    "markers": [f"{MARKER_PREFIX}{{key}}@*", f"{DIGEST_PREFIX}{{key}}@*"],
                }
            )

    async def finish(self, ok: bool) -> None:
        if self.keys:
            await self._put({"done": ok, "keys": sorted(set(self.keys))})


def in_flight(cfg: WorkloadConfig, todo: list[DataFile]) -> int:
    """max(write_threads, 4) files at once, fewer (but 2, to overlap encoding and I/O) for huge files."""
    n = max(cfg.reader.write_threads, 4)
    biggest = max((f.expected_size or f.raw_bytes for f in todo), default=1)
    return max(2, min(n, MEMORY_BUDGET // max(1, biggest)))


async def generate(
    cfg: WorkloadConfig,
    store: ObjectStore,
    *,
    comm: Comm,
    mode: str = "auto",
    progress: ProgressFn | None = None,
    manifest: str | None = None,
    verify_data: bool = False,
) -> DatagenStats:
    """Write this rank's files of the dataset (see the module docstring for modes, resumption, content
    checks and the manifest of written keys; ``verify_data`` reads every complete file whole)."""
    _check_mode(mode)
    t0 = time.perf_counter()
    files = dataset_files(cfg)
    mine = files_for_rank(files, comm.rank, comm.size)
    listing = await shared_listing(store, files, comm, digests=True)
    if mode == "never":
        msg = not_enough_message(files, listing, store.uri)
        if msg:
            raise DlioError(msg)
        todo: list[DataFile] = []
    else:
        todo = mine if mode == "always" else [f for f in mine if not listing.complete(f)]
    damaged = 0
    if mode == "auto":
        skipped = set(f.key for f in todo)
        bad = await content_problems(
            store, [f for f in mine if f.key not in skipped], listing, cfg.dataset.format, full=verify_data
        )
        damaged = len(bad)
        bad_keys = {p.key for p in bad}
        todo = [f for f in mine if f.key in skipped or f.key in bad_keys]
    preflight(store, todo, listing)

    nonce = new_nonce()
    limit = in_flight(cfg, todo)
    latencies: list[float] = []
    starts: list[float] = []
    sizes: list[int] = []
    totals = {"bytes": 0, "files": 0}
    tick = Ticker(progress, "datagen", sum(f.expected_size or f.raw_bytes for f in todo), "B")
    queue = iter(todo)
    loop = asyncio.get_running_loop()
    record = Manifest(store, manifest)
    await record.plan(todo)  # on the store before the first byte of data

    # local files: each generation thread makes a file chunk by chunk and writes every chunk while it is in
    # cache (measured: 1.5x making whole files in big buffers that another thread then writes)
    local = store if isinstance(store, FileStore) and store.blocking_put else None

    async def worker(pool: ThreadPoolExecutor) -> None:
        for f in queue:
            if local is not None:
                t = time.perf_counter()
                record.keys.append(f.key)  # before its put starts (a killed put may have left it)
                made = await loop.run_in_executor(pool, _stream_or_encode, f, cfg, nonce, local)
            else:
                made = await loop.run_in_executor(pool, _encode, f, cfg, nonce)
                t = time.perf_counter()
            # await first, then add: ``totals["bytes"] += await …`` reads the total before the await and
            # loses the updates of every worker that finished meanwhile
            first, digest = made
            if isinstance(first, Encoded):
                written = await write_file(store, f, first, listing, digest, record.keys)
                first.release()
            else:
                written = first
                await write_markers(store, f, written, listing, digest, record.keys)
            totals["bytes"] += written
            latencies.append(time.perf_counter() - t)
            starts.append(t)
            sizes.append(written)
            totals["files"] += 1
            tick(totals["bytes"], files=totals["files"], files_total=len(todo))

    if mode != "never":
        await asyncio.to_thread(make_split_folders, store)
    workers = max(1, min(limit, len(todo)))
    with ThreadPoolExecutor(
        max_workers=min(workers, os.cpu_count() or 2), thread_name_prefix="dlio-gen"
    ) as pool:
        ok = False
        try:
            await asyncio.gather(*(worker(pool) for _ in range(workers)))
            ok = True
        finally:
            await asyncio.shield(record.finish(ok))
    wrote = time.perf_counter() - t0
    # the files made durable before datagen ends: left to the kernel's writeback, a fresh dataset's dirty
    # pages were still being written while training read it (unet3d_h100 smoke: AU 83 % straight after
    # datagen, 87-93 % after a sync). Not in the MiB/s (bytes / the writes' time, DLIO's figure).
    t_flush = time.perf_counter()
    await store.make_durable([k for k in dict.fromkeys(record.keys) if k != manifest])
    flush = time.perf_counter() - t_flush if todo else 0.0
    tick(totals["bytes"], final=True, files=totals["files"], files_total=len(todo))
    await comm.barrier()
    return DatagenStats(
        format=cfg.dataset.format,
        files_planned=len(mine),
        files_written=int(totals["files"]),
        files_skipped=len(mine) - len(todo),
        bytes_written=int(totals["bytes"]),
        write_latencies=tuple(latencies),
        wall_seconds=wrote,
        flush_seconds=flush,
        write_starts=tuple(starts),
        write_bytes=tuple(sizes),
        written_keys=tuple(dict.fromkeys(record.keys)),
        manifest=manifest if todo else None,
        files_damaged=damaged,
    )


async def cleanup(store: ObjectStore, stats: DatagenStats | None, comm: Comm) -> int:
    """``dataset.keep_files: false``: delete exactly the keys this run wrote (``stats.written_keys``) and
    its manifest; a file that was there before the run, complete or not, is never touched."""
    deleted = 0
    if stats is not None:
        for k in stats.written_keys:
            await store.delete(k)
            deleted += 1
        if stats.manifest is not None:
            await store.delete(stats.manifest)
    await comm.barrier()
    return deleted
