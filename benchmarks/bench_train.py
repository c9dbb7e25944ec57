"""Training-phase harness fidelity and read speed, through the engine, as ratios from one run.

1. Fidelity: mem://, 10 ms compute, small records: the ``train_au_mean_percentage`` the au item reports
   must be >= 99 % and the measured compute per step within 1 % of the configured 10 ms.
2. Read speed: local files, hot page cache, large npy records, no compute: the train item's
   ``read_MB_per_second_actual`` ÷ a plain thread-pool loop (``threads`` threads, each ``f.read()`` of a
   whole file) over the same files, interleaved in the same process (target >= 0.9). More baselines:
   ``readinto`` one reused private huge-page mmap per thread (no allocation per read), the plain loop
   restarted per epoch (training's structure: each epoch's pipeline starts empty) and, for npz, the plain
   loop plus a CRC-32 of every byte (an npz member's CRC is checked, as ``np.load`` does).
3. Row groups (``--formats parquet``): MLPerf v3.0 dlrm_mi355 at ``--dlio-scale smoke`` (parquet, 6144-row
   groups, 40 of 200 columns read: one ~5.8 MB range per group) with no compute and ``threads`` readers:
   ``read_MB_per_second_actual`` ÷ ``threads`` threads ``preadv``-ing the same row-group ranges into one
   reused huge-page mmap each (target >= 0.9); also ÷ the same loop on as many threads as the window keeps
   reads in flight, and ÷ DLIO's window with no harness around it (each epoch every footer read first, one
   after another, then those reads taken in order, one more started as each is taken: a straggler holds
   the next starts back, as in DLIO).
4. ``--storage s3`` / ``--storage az``: the same train item on the embedded moto / Azurite (a separate
   process each, started once for the whole run) ÷ a raw client loop over the same objects with the same
   concurrency (``threads`` gets in flight, an epoch barrier as training has): aiobotocore
   ``get_object`` + ``read()``, azure-storage-blob aio ``download_blob().readall()`` (target >= 0.9).

    python benchmarks/bench_train.py [--files 16] [--mib 32] [--threads 2] [--reps 5] [--dir /tmp]
    python benchmarks/bench_train.py --skip-fidelity --formats parquet --threads 4
    python benchmarks/bench_train.py --storage s3 --skip-fidelity --formats npy --files 16 --mib 8
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import mmap
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from _common import figure, interleave, load, ratio_line, run_phases
from bench_storage import RawAzure, RawS3

from pytest_dlio.config.model import Dataset, Reader, TimeSpec, Train, Workflow, WorkloadConfig
from pytest_dlio.engine import RunSettings
from pytest_dlio.engine.load import load_workload
from pytest_dlio.formats import get_format
from pytest_dlio.phases.loader import dataset_keys
from pytest_dlio.storage.session import StorageSession
from pytest_dlio.storage.uri import parse_uri


def cfg_for(
    files: int, spf: int, rl: int, bs: int, threads: int, compute: float, epochs: int, fmt: str = "npy"
) -> WorkloadConfig:
    return WorkloadConfig(
        framework="pytorch",
        dataset=Dataset(format=fmt, num_files_train=files, num_samples_per_file=spf, record_length_bytes=rl),
        reader=Reader(
            data_loader="pytorch", batch_size=bs, read_threads=threads, prefetch_size=max(2, threads)
        ),
        train=Train(epochs=epochs, computation_time=TimeSpec(mean=compute)),
        workflow=Workflow(generate_data=True, train=True),
    )


def fidelity(root: Path, reps: int) -> tuple[float, float]:
    """(AU %, mean measured ÷ configured compute) of the run whose compute per step is closest to 1."""
    cfg = cfg_for(files=256, spf=1, rl=4096, bs=4, threads=2, compute=0.010, epochs=1)
    uri = "mem://bench-fidelity"
    run_phases(cfg, root, "datagen", storage_uri=uri)
    best: tuple[float, float] | None = None
    for _ in range(reps):  # the run least disturbed by the shared machine: closest compute ratio
        res = run_phases(cfg, root, "train", "au", storage_uri=uri, generate="never")
        steps = figure(res["train"], "steps")
        # measured sleep = compute (at most its draw) + the overrun past it
        measured = figure(res["train"], "compute_seconds") + figure(res["train"], "compute_overrun_seconds")
        mean = measured / steps / 0.010
        au = figure(res["au"], "train_au_mean_percentage")
        got = (au, mean)
        if best is None or abs(got[1] - 1) < abs(best[1] - 1):
            best = got
    assert best is not None
    return best


def plain_loop(paths: list[Path], threads: int) -> float:
    """Bytes/s of a thread pool reading every file whole with ``f.read()`` (a fresh buffer per read)."""

    def read(p: Path) -> int:
        with open(p, "rb", buffering=0) as f:
            return len(f.read())

    t = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(read, paths))
    return total / (time.perf_counter() - t)


def readinto_loop(paths: list[Path], threads: int, size: int) -> float:
    """Bytes/s of the same loop reading into one reused page-aligned buffer per thread (an anonymous
    mmap: no allocation per read; a malloc'd bytearray is slower here than a fresh read)."""
    local = threading.local()

    def read(p: Path) -> int:
        buf = getattr(local, "buf", None)
        if buf is None:  # private, huge pages asked for: the fastest buffer to read into here
            buf = local.buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            buf.madvise(mmap.MADV_HUGEPAGE)
        with open(p, "rb", buffering=0) as f:
            return f.readinto(buf)

    t = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(read, paths))
    return total / (time.perf_counter() - t)


def crc_loop(paths: list[Path], threads: int) -> float:
    """Bytes/s of the plain loop plus a CRC-32 of every byte read (ISA-L's, the fastest here): the least
    any reader that checks an npz member's CRC, as ``np.load`` does, must spend."""
    from isal.isal_zlib import crc32

    def read(p: Path) -> int:
        with open(p, "rb", buffering=0) as f:
            data = f.read()
        crc32(data)
        return len(data)

    t = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(read, paths))
    return total / (time.perf_counter() - t)


def throughput(
    root: Path, files: int, mib: int, threads: int, reps: int, fmt: str
) -> tuple[list[str], float]:
    cfg = cfg_for(files=files, spf=1, rl=mib * 2**20, bs=1, threads=threads, compute=0.0, epochs=3, fmt=fmt)
    run_phases(cfg, root, "datagen")  # generate, and warm the page cache
    data = root / "data"
    paths = [data / k for k in dataset_keys(cfg)]
    size = max(p.stat().st_size for p in paths)
    every = paths * cfg.train.epochs
    plain_loop(every, threads)  # warm

    def ours() -> float:
        return (
            figure(run_phases(cfg, root, "train", generate="never")["train"], "read_MB_per_second_actual")
            * 2**20
        )

    def per_epoch() -> float:  # the same loop with a barrier between epochs, as training has
        t = time.perf_counter()
        for _ in range(cfg.train.epochs):
            plain_loop(paths, threads)
        return sum(p.stat().st_size for p in every) / (time.perf_counter() - t)

    sides = {
        "ours": ours,
        "plain": lambda: plain_loop(every, threads),
        "per_epoch": per_epoch,
        "readinto": lambda: readinto_loop(every, threads, size),
    }
    if fmt == "npz":
        sides["crc"] = lambda: crc_loop(every, threads)
    got = interleave(sides, reps)
    what = f"{fmt} train reads, local files, hot cache, {files} x {mib} MiB, {threads} threads, no compute"
    line, ratio = ratio_line(
        f"{what} (read_MB_per_second_actual ÷ f.read() loop)", got["ours"], got["plain"], 0.9
    )
    line2, _ = ratio_line(
        "    same ÷ readinto a reused huge-page mmap loop", got["ours"], got["readinto"], 0.9
    )
    line3, _ = ratio_line("    same ÷ f.read() loop restarted per epoch", got["ours"], got["per_epoch"], 0.9)
    lines = [line, line2, line3]
    if fmt == "npz":
        lines.append(
            ratio_line("    same ÷ f.read() + CRC-32 of every byte loop", got["ours"], got["crc"], 0.9)[0]
        )
    return lines, ratio


def _preadv(ranges: list[tuple[Path, int, int]]) -> Callable[[tuple[Path, int, int]], int]:
    """A raw ranged read: ``preadv`` of (file, start, length) into one reused private huge-page mmap per
    thread (no allocation per read); the bytes read."""
    local = threading.local()
    size = max(n for _, _, n in ranges)

    def read(r: tuple[Path, int, int]) -> int:
        path, start, n = r
        buf = getattr(local, "buf", None)
        if buf is None:
            buf = local.buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            buf.madvise(mmap.MADV_HUGEPAGE)
        fd = os.open(path, os.O_RDONLY)
        try:
            return os.preadv(fd, [memoryview(buf)[:n]], start)
        finally:
            os.close(fd)

    return read


def preadv_loop(ranges: list[tuple[Path, int, int]], threads: int) -> float:
    """Bytes/s of a thread pool reading every (file, start, length) raw (``_preadv``), all queued at once."""
    read = _preadv(ranges)
    t = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(read, ranges))
    return total / (time.perf_counter() - t)


def window_loop(
    ranges: list[tuple[Path, int, int]],
    threads: int,
    window: int,
    epochs: int,
    footers: list[tuple[Path, int, int]],
) -> float:
    """Bytes/s of MLPerf v3.0 DLIO's row-group window with no harness around it: per epoch, every file's
    footer read first, one after another (as DLIO's reader does, each epoch), then ``window`` raw reads
    (``_preadv``) in flight on ``threads`` threads, taken in order, one more started as each is taken (the
    step that waits for a straggler holds the next starts back), the next epoch started once this one's
    reads are all taken. The footers' bytes count, as in ``read_MB_per_second_actual``."""
    read = _preadv(ranges + footers)
    total = 0
    t = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(epochs):
            total += sum(read(f) for f in footers)
            started: list[Future[int]] = []
            for i in range(len(ranges)):
                while len(started) < min(i + 1 + window, len(ranges)):
                    started.append(pool.submit(read, ranges[len(started)]))
                total += started[i].result()
    return total / (time.perf_counter() - t)


def row_groups(root: Path, threads: int, reps: int) -> tuple[list[str], float]:
    """dlrm_mi355 (smoke) with no compute: our row-group read rate ÷ a raw preadv loop over its ranges."""
    cfg = load_workload("mlperf_storage_v3.0/dlrm_mi355", RunSettings(data_root=root, scale="smoke"))
    cfg = dataclasses.replace(
        cfg,
        train=dataclasses.replace(cfg.train, epochs=3, computation_time=TimeSpec(mean=0.0)),
        reader=dataclasses.replace(cfg.reader, read_threads=threads),
    )
    run_phases(cfg, root, "datagen")
    fmt = get_format("parquet")
    ranges, footers = [], []
    for key in dataset_keys(cfg):
        path = root / cfg.dataset.data_folder / key
        with open(path, "rb") as f:
            f.seek(-8, os.SEEK_END)
            n = fmt.footer_length(f.read(8))
            end = f.seek(-n, os.SEEK_END)
            spans = fmt.row_group_spans(f.read(n), cfg.dataset, None)
        ranges += [(path, start, length) for start, length in spans.spans]
        footers.append((path, end, n))
    every = ranges * cfg.train.epochs
    preadv_loop(every, threads)  # warm

    def ours() -> float:
        res = run_phases(cfg, root, "train", generate="never")["train"]
        return figure(res, "read_MB_per_second_actual") * 2**20

    def per_epoch() -> float:  # the same loop with a barrier between epochs, as training has
        t = time.perf_counter()
        for _ in range(cfg.train.epochs):
            preadv_loop(ranges, threads)
        return sum(n for _, _, n in every) / (time.perf_counter() - t)

    inflight = cfg.data_store_threads  # the window's reads in flight, each on a thread of its own (DLIO's)
    window = cfg.row_group_window * max(1, threads)  # the readers' windows, as the loader keeps them
    sides = {
        "ours": ours,
        "raw": lambda: preadv_loop(every, threads),
        "per_epoch": per_epoch,
        "inflight": lambda: preadv_loop(every, inflight),
        "window": lambda: window_loop(ranges, inflight, window, cfg.train.epochs, footers),
    }
    got = interleave(sides, reps)
    mb = sum(n for _, _, n in ranges) / len(ranges) / 1e6
    what = (
        f"parquet row groups (dlrm_mi355 smoke, {len(ranges)} x {mb:.1f} MB ranges), {threads} threads, "
        "no compute"
    )
    line, ratio = ratio_line(
        f"{what} (read_MB_per_second_actual ÷ preadv loop)", got["ours"], got["raw"], 0.9
    )
    line2, _ = ratio_line("    same ÷ preadv loop restarted per epoch", got["ours"], got["per_epoch"], 0.9)
    line3, _ = ratio_line(
        f"    same ÷ preadv loop on {inflight} threads (as many reads in flight as the window keeps)",
        got["ours"],
        got["inflight"],
        0.9,
    )
    line4, _ = ratio_line(
        f"    same ÷ DLIO's window with no harness (each epoch's footers, then {window} reads in flight on "
        f"{inflight} threads, taken in order, one more started as each is taken)",
        got["ours"],
        got["window"],
        0.9,
    )
    return [line, line2, line3, line4], ratio


async def raw_epochs(
    kind: str,
    session: StorageSession,
    data_uri: str,
    keys: list[str],
    threads: int,
    epochs: int,
    crc: bool = False,
) -> tuple[float, int]:
    """(bytes/s, bytes) of a raw client reading every object whole, ``threads`` at a time, epoch by epoch;
    ``crc``: and taking the CRC-32 of each (ISA-L, on a worker thread) as an npz reader must."""
    from isal.isal_zlib import crc32

    u = parse_uri(data_uri)
    prefix = u.path.strip("/")
    names = [f"{prefix}/{k}" if prefix else k for k in keys]
    opts = session.options_for(data_uri, threads=threads)
    raw: RawS3 | RawAzure = await (
        RawS3(opts, u.netloc, threads) if kind == "s3" else RawAzure(opts, u.netloc)
    ).open()
    slots = asyncio.Semaphore(threads)

    async def one(name: str) -> int:
        async with slots:
            data = await raw.get_key(name)
            if crc:
                await asyncio.to_thread(crc32, data)
            return len(data)

    try:
        await one(names[0])  # the connection pool warmed, as our store's is by its first read
        t = time.perf_counter()
        total = 0
        for _ in range(epochs):
            total += sum(await asyncio.gather(*(one(n) for n in names)))
        return total / (time.perf_counter() - t), total
    finally:
        await raw.close()


def remote(
    kind: str, root: Path, files: int, mib: int, threads: int, reps: int, fmt: str
) -> tuple[list[str], float]:
    """The train item on the embedded moto / Azurite ÷ a raw client loop over the same objects."""
    uri = f"{kind}://dlio-bench-train/run"
    cfg = cfg_for(files=files, spf=1, rl=mib * 2**20, bs=1, threads=threads, compute=0.0, epochs=2, fmt=fmt)
    session = StorageSession(root, uri)
    try:
        run_phases(cfg, root, "datagen", storage_uri=uri, session=session)
        data_uri = session.resolve(cfg.dataset.data_folder)
        keys = dataset_keys(cfg)
        moved: dict[str, float] = {}

        def ours() -> float:
            res = run_phases(cfg, root, "train", storage_uri=uri, generate="never", session=session)["train"]
            moved["ours"] = figure(res, "read_bytes")
            return figure(res, "read_MB_per_second_actual") * 2**20

        def raw() -> float:
            rate, moved["raw"] = asyncio.run(
                raw_epochs(kind, session, data_uri, keys, threads, cfg.train.epochs)
            )
            return rate

        def raw_crc() -> float:
            return asyncio.run(
                raw_epochs(kind, session, data_uri, keys, threads, cfg.train.epochs, crc=True)
            )[0]

        ours()  # warm: the emulator's first reads of each object
        sides = {"ours": ours, "raw": raw, **({"crc": raw_crc} if fmt == "npz" else {})}
        got = interleave(sides, reps)
        client = "aiobotocore get_object+read" if kind == "s3" else "azure aio download_blob().readall()"
        what = (
            f"{fmt} train reads, {kind} on embedded {'moto' if kind == 's3' else 'Azurite'}, {files} x {mib} "
            f"MiB, {threads} in flight, {cfg.train.epochs} epochs, no compute"
        )
        line, ratio = ratio_line(
            f"{what} (read_MB_per_second_actual ÷ raw {client} loop)", got["ours"], got["raw"], 0.9
        )
        note = (
            f"    bytes per run (the same objects): ours read_bytes {moved['ours']:.0f}, raw {moved['raw']}"
        )
        lines = [line, note]
        if fmt == "npz":
            lines.append(
                ratio_line("    same ÷ raw loop + CRC-32 of every object", got["ours"], got["crc"], 0.9)[0]
            )
        return lines, ratio
    finally:
        session.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=16)
    ap.add_argument("--mib", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--formats", default="npy,npz")
    ap.add_argument("--skip-fidelity", action="store_true")
    ap.add_argument("--dir", default=None)
    ap.add_argument("--storage", choices=("file", "s3", "az"), default="file")
    a = ap.parse_args()
    ok = True
    with tempfile.TemporaryDirectory(prefix="bench-train-", dir=a.dir) as d:
        if not a.skip_fidelity:
            au, mean = fidelity(Path(d) / "fid", a.reps)
            print(
                f"fidelity (mem://, 10 ms compute, 4 KiB records): AU {au:.3f} % (target >= 99), "
                f"measured/configured compute {mean:.4f} (target within 1 %) {load()}"
            )
            ok = au >= 99 and abs(mean - 1) <= 0.01
        for fmt in a.formats.split(","):
            if fmt == "parquet":
                lines, ratio = row_groups(Path(d) / fmt, a.threads, a.reps)
            elif a.storage == "file":
                lines, ratio = throughput(Path(d) / fmt, a.files, a.mib, a.threads, a.reps, fmt)
            else:
                lines, ratio = remote(a.storage, Path(d) / fmt, a.files, a.mib, a.threads, a.reps, fmt)
            for line in lines:
                print(line)
            ok = ok and ratio >= 0.9
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
