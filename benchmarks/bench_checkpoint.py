"""Checkpoint write throughput ÷ a raw write+fsync loop of the same bytes, in the same run (target >= 0.9).

The checkpoint side is ``write_checkpoints`` on a file:// store with ``fsync: true`` (random content made
per chunk, CRC-32C per file, manifest). The raw side writes the same files, same sizes, same chunk size,
from one pre-made random buffer with ``os.write`` then ``os.fsync``. Runs alternate; the best of each is
compared (and the median of paired ratios shown), so machine noise hits both the same way.

    python benchmarks/bench_checkpoint.py [--mib 768] [--reps 5] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pytest_dlio.checkpointing.content import CHUNK
from pytest_dlio.checkpointing.sizes import rank_layout
from pytest_dlio.config.model import Checkpoint, ModelConfig, Parallelism, Transformer, WorkloadConfig
from pytest_dlio.phases.checkpoint import read_checkpoints, write_checkpoints
from pytest_dlio.ranks import SingleComm
from pytest_dlio.storage import open_store


def config(mib: int) -> WorkloadConfig:
    """A small ZeRO-1 transformer (model + optimizer file) scaled by hidden size to about ``mib`` MiB."""
    hidden = 256
    while True:
        cfg = WorkloadConfig(
            model=ModelConfig(type="transformer", num_layers=8, parallelism=Parallelism(zero_stage=1),
                              transformer=Transformer(vocab_size=32000, hidden_size=hidden, ffn_hidden_size=4 * hidden,
                                                      num_attention_heads=8, num_kv_heads=8)),
            checkpoint=Checkpoint(num_checkpoints_write=1, num_checkpoints_read=1, fsync=True))
        if rank_layout(cfg, 1, 0).total_bytes >= mib * 2**20:
            return cfg
        hidden += 128


def raw_write(folder: Path, sizes: list[int], buf: memoryview) -> float:
    """Plain os.write loop + fsync per file; seconds."""
    folder.mkdir(parents=True)
    start = time.perf_counter()
    for i, n in enumerate(sizes):
        fd = os.open(folder / f"f{i}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        left = n
        while left > 0:
            view = buf[:min(left, len(buf))]
            while view:
                view = view[os.write(fd, view):]
            left -= min(left, len(buf))
        os.fsync(fd)
        os.close(fd)
    return time.perf_counter() - start


def ckpt_write(root: Path, cfg: WorkloadConfig, *, read: bool = False) -> tuple[float, float]:
    """One checkpoint save (and optionally a verified load) through the phase; (save s, load s)."""

    async def go() -> tuple[float, float]:
        async with open_store(root.as_uri()) as store:
            w = await write_checkpoints(cfg, store, comm=SingleComm())
            load = 0.0
            if read:
                r = await read_checkpoints(cfg, store, comm=SingleComm())
                assert r.failure is None, r.failure
                load = float(r.summary["metric"]["load_checkpoint_duration_mean_seconds"])
        return float(w.summary["metric"]["save_checkpoint_duration_mean_seconds"]), load

    return asyncio.run(go())


def read_ratios(root: Path, cfg: WorkloadConfig, reps: int = 3) -> tuple[float, float, float]:
    """Warm-cache reads of one written checkpoint: (raw os.read loop, our load unverified, verified) seconds."""
    files = sorted(p for p in (root / "global_epoch1_step1").iterdir() if not p.name.startswith("."))

    def raw() -> float:
        start = time.perf_counter()
        for path in files:
            with open(path, "rb", buffering=0) as f:
                while f.read(CHUNK):
                    pass
        return time.perf_counter() - start

    async def ours(verify: bool) -> float:
        async with open_store(root.as_uri()) as store:
            r = await read_checkpoints(cfg, store, comm=SingleComm(), verify=verify)
        assert r.failure is None, r.failure
        return float(r.summary["metric"]["load_checkpoint_duration_mean_seconds"])

    raw()  # warm the page cache
    return (min(raw() for _ in range(reps)), min(asyncio.run(ours(False)) for _ in range(reps)),
            min(asyncio.run(ours(True)) for _ in range(reps)))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=768)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--dir", default=None)
    a = ap.parse_args()
    cfg = config(a.mib)
    sizes = [f.nbytes for f in rank_layout(cfg, 1, 0).files]
    total = sum(sizes)
    buf = memoryview(np.random.default_rng(0).bytes(CHUNK))
    raw, ours = [], []
    base = Path(tempfile.mkdtemp(prefix="bench-ckpt-", dir=a.dir))
    try:
        raw_write(base / "warm", sizes, buf)  # warm-up, untimed: first-touch and allocator effects
        shutil.rmtree(base / "warm")
        for rep in range(a.reps):  # alternate so machine noise hits both sides alike
            first, second = (raw, ours) if rep % 2 == 0 else (ours, raw)
            for side in (first, second):
                folder = base / f"{'raw' if side is raw else 'ck'}{rep}"
                side.append(raw_write(folder, sizes, buf) if side is raw else ckpt_write(folder, cfg)[0])
                shutil.rmtree(folder)
        ckpt_write(base / "verify", cfg)
        raw_read, plain_read, verified_read = read_ratios(base / "verify", cfg)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    gib = total / 2**30
    raw_rate, our_rate = gib / min(raw), gib / min(ours)
    ratio = our_rate / raw_rate
    median_ratio = statistics.median(r / o for r, o in zip(raw, ours, strict=True))
    print(f"bytes per checkpoint: {total / 2**20:.0f} MiB in {len(sizes)} files, fsync on, chunk {CHUNK >> 20} MiB")
    print(f"raw write+fsync: best {raw_rate:.3f} GiB/s  ({', '.join(f'{gib / t:.3f}' for t in raw)})")
    print(f"checkpoint save: best {our_rate:.3f} GiB/s  ({', '.join(f'{gib / t:.3f}' for t in ours)})")
    print(f"warm-cache read: raw {gib / raw_read:.3f} GiB/s, load {gib / plain_read:.3f} GiB/s "
          f"(ratio {raw_read / plain_read:.3f}), load verifying every byte {gib / verified_read:.3f} GiB/s "
          f"(ratio {raw_read / verified_read:.3f})")
    print(f"ratio save/raw: best-of {ratio:.3f}, median of paired runs {median_ratio:.3f} (target >= 0.9)")
    return 0 if ratio >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
