"""Training-phase harness fidelity and overhead, as ratios from one run on this machine.

1. mem:// with computation_time 10 ms and small records: AU must be >= 99 % and the measured compute
   per step within 1 % of the configured 10 ms (the harness itself must not eat the accelerator's time).
2. Local files, hot page cache, large records, no compute: our read throughput ÷ a plain thread-pool loop
   reading the same files with the same thread count (target >= 0.9).

    python benchmarks/bench_train.py [--files 48] [--mib 8] [--threads 4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from pytest_dlio import layout
from pytest_dlio.config.model import Dataset, Reader, TimeSpec, Train, Workflow, WorkloadConfig
from pytest_dlio.formats import get_format
from pytest_dlio.phases.train import dataset_keys, run_training
from pytest_dlio.ranks import SingleComm
from pytest_dlio.storage import open_store


def cfg_for(files: int, spf: int, rl: int, bs: int, threads: int, compute: float, epochs: int) -> WorkloadConfig:
    return WorkloadConfig(
        framework="pytorch",
        dataset=Dataset(format="npy", num_files_train=files, num_samples_per_file=spf, record_length_bytes=rl),
        reader=Reader(data_loader="pytorch", batch_size=bs, read_threads=threads, prefetch_size=max(2, threads)),
        train=Train(epochs=epochs, computation_time=TimeSpec(mean=compute)),
        workflow=Workflow(train=True),
    )


async def fill(store, cfg: WorkloadConfig, side: int) -> None:
    """The dataset as datagen writes it (real encoders); ``side`` is implied by record_length_bytes."""
    rng = np.random.default_rng(0)
    for f in layout.dataset_files(cfg):
        enc = get_format(cfg.dataset.format).encode(f, cfg.dataset, rng)
        await store.put(f.key, bytes(enc.data()))
        enc.release()


def fidelity() -> tuple[float, float, float]:
    cfg = cfg_for(files=256, spf=1, rl=4096, bs=4, threads=2, compute=0.010, epochs=1)

    async def go():
        s = open_store("mem://bench-fidelity")
        await fill(s, cfg, 64)
        return await run_training(cfg, s, comm=SingleComm())

    best: tuple[float, float, float] | None = None
    for _ in range(3):  # best of three: a shared 2-core machine preempts us now and then
        run = asyncio.run(go())
        comp = [st.compute for ep in run.timeline.epochs for b in ep.blocks for st in b.steps]
        got = (run.metrics.train_au_mean_percentage, statistics.mean(comp) / 0.010, statistics.median(comp) / 0.010)
        if best is None or abs(got[1] - 1) < abs(best[1] - 1):
            best = got
    assert best is not None
    return best


def plain_loop(paths: list[Path], threads: int) -> float:
    """Bytes/s of a thread pool reading every file whole, ``threads`` at a time (the raw baseline)."""

    def read(p: Path) -> int:
        with open(p, "rb", buffering=0) as f:
            return len(f.read())

    t = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(read, paths))
    return total / (time.perf_counter() - t)


async def store_loop(uri: str, keys: list[str], threads: int) -> float:
    """Bytes/s of ``threads`` concurrent ``store.get`` calls over every key (the store's own ceiling)."""
    s = open_store(uri, None)
    sem = asyncio.Semaphore(threads)

    async def one(k: str) -> int:
        async with sem:
            return len(await s.get(k))

    try:
        t = time.perf_counter()
        total = sum(await asyncio.gather(*(one(k) for k in keys)))
        return total / (time.perf_counter() - t)
    finally:
        await s.close()


def throughput(files: int, mib: int, threads: int) -> tuple[float, float, float, float]:
    side = int((mib * 1024 * 1024) ** 0.5)
    cfg = cfg_for(files=files, spf=1, rl=side * side, bs=1, threads=threads, compute=0.0, epochs=3)
    with tempfile.TemporaryDirectory(prefix="bench-train-") as d:
        root = Path(d)

        async def go(generate: bool):
            s = open_store(root.as_uri(), None)
            try:
                if generate:
                    await fill(s, cfg, side)
                return await run_training(cfg, s, comm=SingleComm())
            finally:
                await s.close()

        asyncio.run(go(True))  # generate (and warm the page cache)
        paths = [root / k for k in dataset_keys(cfg)]
        ours = base = store = 0.0
        for _ in range(3):  # interleaved, best of three each: all see the same hot cache
            run = asyncio.run(go(False))
            ours = max(ours, run.metrics.read_bytes / run.metrics.train_seconds)
            base = max(base, plain_loop(paths * cfg.train.epochs, threads))
            store = max(store, asyncio.run(store_loop(root.as_uri(), dataset_keys(cfg) * cfg.train.epochs, threads)))
    return ours, base, store, ours / base


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=48)
    ap.add_argument("--mib", type=int, default=8)
    ap.add_argument("--threads", type=int, default=4)
    a = ap.parse_args()
    au, ratio, med = fidelity()
    print(f"fidelity (mem://, 10 ms compute, 4 KiB records): AU {au:.3f} % (target >= 99), "
          f"measured/configured compute mean {ratio:.4f}, median {med:.4f} (target within 1 %)")
    ours, base, store, r = throughput(a.files, a.mib, a.threads)
    print(f"local files, hot cache, {a.mib} MiB records, {a.threads} threads, no compute: ours "
          f"{ours / 2**20:.0f} MiB/s, plain thread loop {base / 2**20:.0f} MiB/s, ratio {r:.3f} (target >= 0.9); "
          f"concurrent store.get alone {store / 2**20:.0f} MiB/s (ours/store {ours / store:.3f})  "
          f"[cpus {os.cpu_count()}, load {os.getloadavg()[0]:.1f}]")
    ok = au >= 99 and abs(ratio - 1) <= 0.01 and r >= 0.9
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
