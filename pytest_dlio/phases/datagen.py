"""The datagen phase: write this rank's share of DLIO's dataset, resumably, with bounded concurrency.

Modes: ``always`` rewrites every file; ``never`` only checks (DlioError when anything is missing or
incomplete); ``auto`` writes what is missing or incomplete and leaves complete files alone.

Complete is judged as training judges it (``phases/dataset.py``): the key exists with its exact
size, the format's prediction or, for formats whose size depends on the encoded content (hdf5, csv,
jpeg, png, parquet), the size in the empty marker object ``.dlio/sizes/{key}@{size}`` datagen writes
after the file; every sidecar exists with its exact size. Files are written whole and atomically
(``ObjectStore.put`` / a committed ``Writer``), sidecars first, then the file, then its marker, so a
killed run leaves only files that ``auto`` recognises as missing or incomplete and rewrites.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pytest_dlio.config.model import WorkloadConfig
from pytest_dlio.errors import DlioError
from pytest_dlio.formats import Encoded, get_format
from pytest_dlio.layout import DataFile, dataset_files, files_for_rank
from pytest_dlio.phases.dataset import MARKER_PREFIX, Listing, list_dataset, marker_key, not_enough_message
from pytest_dlio.randbytes import file_rng, new_nonce
from pytest_dlio.ranks import Comm
from pytest_dlio.storage.base import ObjectStore
from pytest_dlio.storage.uri import parse_uri

MODES = ("auto", "always", "never")
STREAM_ABOVE = 8 << 20  # multi-part files above this stream through a Writer (no join copy)
MEMORY_BUDGET = 1 << 30  # encoded bytes in flight at once (bounds concurrency for huge files)
PROGRESS_EVERY = 5.0  # seconds


@dataclass(frozen=True)
class DatagenStats:
    """What one rank's generation did: plain data, for the report and the engine."""

    format: str
    files_planned: int
    files_written: int
    files_skipped: int
    bytes_written: int  # every byte put to storage: files and their sidecars
    write_latencies: tuple[float, ...]  # seconds per file written (sidecars, file, marker)
    wall_seconds: float

    @property
    def mib_per_second(self) -> float:
        return self.bytes_written / 2**20 / self.wall_seconds if self.wall_seconds > 0 else 0.0


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise DlioError(f"--dlio-generate {mode!r}: use auto, always or never")


def local_root(store: ObjectStore) -> Path | None:
    """The directory behind a file:// or direct:// store, else None."""
    try:
        p = parse_uri(store.uri)
    except DlioError:
        return None
    return Path(p.path) if p.scheme in ("file", "direct") else None


SPLIT_FOLDERS = ("train", "valid")


def make_split_folders(store: ObjectStore) -> None:
    """On a local filesystem, both split folders DLIO walks, even when empty: DLIO 2.0.0 lists
    ``{data_folder}/valid`` whatever ``num_files_eval`` is, and fails on a dataset without it. Object stores
    have no folders (DLIO lists prefixes there), so nothing is made."""
    root = local_root(store)
    if root is None:
        return
    for name in SPLIT_FOLDERS:
        (root / name).mkdir(parents=True, exist_ok=True)


def preflight(store: ObjectStore, todo: list[DataFile], listing: Listing) -> None:
    """Fail before writing when a local filesystem can't hold what is planned."""
    root = local_root(store)
    if root is None or not todo:
        return
    need = sum((f.expected_size if f.expected_size is not None else f.raw_bytes) - listing.sizes.get(f.key, 0)
               for f in todo)
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if need > free:
        raise DlioError(f"datagen: {len(todo)} files need about {need / 2**30:.2f} GiB but {probe} has "
                        f"{free / 2**30:.2f} GiB free ({store.uri}); free space, shrink the dataset "
                        "(--dlio-scale) or point --dlio-storage elsewhere")


def _encode(f: DataFile, cfg: WorkloadConfig, nonce: int) -> Encoded:
    return get_format(cfg.dataset.format).encode(f, cfg.dataset, file_rng(nonce, f.position))


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


async def write_file(store: ObjectStore, f: DataFile, enc: Encoded, listing: Listing) -> int:
    """Sidecars, then the file, then its size marker; returns bytes written."""
    written = 0
    for key, data in enc.sidecars.items():
        await store.put(key, data)
        written += len(data)
    size = enc.size
    if len(enc.parts) > 1 and size > STREAM_ABOVE:
        async with await store.open_writer(f.key) as w:
            for chunk in _coalesce(enc.parts):
                await w.write(chunk)
    else:
        await store.put(f.key, enc.data())
    written += size
    if f.expected_size is None:
        for stale in listing.markers.get(f.key, set()) - {size}:
            await store.delete(marker_key(f.key, stale))
        await store.put(marker_key(f.key, size), b"")
    return written


def in_flight(cfg: WorkloadConfig, todo: list[DataFile]) -> int:
    """max(write_threads, 4) files at once, fewer (but 2, to overlap encoding and I/O) for huge files."""
    n = max(cfg.reader.write_threads, 4)
    biggest = max((f.expected_size or f.raw_bytes for f in todo), default=1)
    return max(2, min(n, MEMORY_BUDGET // max(1, biggest)))


async def generate(cfg: WorkloadConfig, store: ObjectStore, *, comm: Comm, mode: str = "auto",
                   progress: Callable[[str], None] | None = None) -> DatagenStats:
    """Write this rank's files of the dataset (see the module docstring for modes and resumption)."""
    _check_mode(mode)
    t0 = time.perf_counter()
    files = dataset_files(cfg)
    mine = files_for_rank(files, comm.rank, comm.size)
    listing = await list_dataset(store, files)
    if mode == "never":
        msg = not_enough_message(files, listing, store.uri)
        if msg:
            raise DlioError(msg)
        todo: list[DataFile] = []
    else:
        todo = mine if mode == "always" else [f for f in mine if not listing.complete(f)]
    preflight(store, todo, listing)

    nonce = new_nonce()
    limit = in_flight(cfg, todo)
    latencies: list[float] = []
    totals = {"bytes": 0, "files": 0}
    last = [time.perf_counter()]
    queue = iter(todo)
    loop = asyncio.get_running_loop()

    async def worker(pool: ThreadPoolExecutor) -> None:
        for f in queue:
            enc = await loop.run_in_executor(pool, _encode, f, cfg, nonce)
            t = time.perf_counter()
            # await first, then add: ``totals["bytes"] += await …`` reads the total before the await and
            # loses the updates of every worker that finished meanwhile
            written = await write_file(store, f, enc, listing)
            totals["bytes"] += written
            latencies.append(time.perf_counter() - t)
            totals["files"] += 1
            enc.release()
            now = time.perf_counter()
            if progress is not None and now - last[0] >= PROGRESS_EVERY:
                last[0] = now
                mib = totals["bytes"] / 2**20
                progress(f"generated {totals['files']}/{len(todo)} files, {mib:.0f} MiB, "
                         f"{mib / (now - t0):.1f} MiB/s")

    if mode != "never":
        await asyncio.to_thread(make_split_folders, store)
    workers = max(1, min(limit, len(todo)))
    with ThreadPoolExecutor(max_workers=min(workers, os.cpu_count() or 2), thread_name_prefix="dlio-gen") as pool:
        await asyncio.gather(*(worker(pool) for _ in range(workers)))
    await comm.barrier()
    return DatagenStats(format=cfg.dataset.format, files_planned=len(mine), files_written=int(totals["files"]),
                        files_skipped=len(mine) - len(todo), bytes_written=int(totals["bytes"]),
                        write_latencies=tuple(latencies), wall_seconds=time.perf_counter() - t0)


async def cleanup(cfg: WorkloadConfig, store: ObjectStore, comm: Comm) -> int:
    """Delete exactly this rank's generated files, sidecars and markers (``dataset.keep_files: false``)."""
    files = files_for_rank(dataset_files(cfg), comm.rank, comm.size)
    listing = await list_dataset(store, files)
    deleted = 0
    for f in files:
        keys = [f.key, *f.sidecars] + [marker_key(f.key, s) for s in listing.markers.get(f.key, ())]
        for k in keys:
            if k in listing.sizes or k.startswith(MARKER_PREFIX):
                await store.delete(k)
                deleted += 1
    await comm.barrier()
    return deleted
