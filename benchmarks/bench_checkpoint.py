"""Checkpoint write throughput ÷ a raw write+fsync loop of the same bytes, in the same run (target >= 0.9).

The checkpoint side is the checkpoint_write item's ``save_checkpoint_io_mean_GB_per_second`` (the engine on
local files, ``fsync: true``, random content made per chunk, manifest). The raw side writes the same files,
same sizes, same chunk size, from one pre-made random buffer with ``os.write`` then ``os.fsync``. Runs
alternate; the best of each is compared (and the median of paired ratios shown), so machine noise hits
both the same way. Warm loads (``load_checkpoint_io_mean_GB_per_second``, verified or not) ÷ a raw read
loop of the same files.

    python benchmarks/bench_checkpoint.py [--mib 768] [--reps 5] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import figure, interleave, ratio_line, run_phases

from pytest_dlio.checkpointing.content import CHUNK
from pytest_dlio.checkpointing.sizes import rank_layout
from pytest_dlio.config.model import (
    Checkpoint,
    ModelConfig,
    Parallelism,
    Transformer,
    Workflow,
    WorkloadConfig,
)


def config(mib: int) -> WorkloadConfig:
    """A small ZeRO-1 transformer (model + optimizer file) scaled by hidden size to about ``mib`` MiB."""
    hidden = 256
    while True:
        cfg = WorkloadConfig(
            model=ModelConfig(
                type="transformer",
                num_layers=8,
                parallelism=Parallelism(zero_stage=1),
                transformer=Transformer(
                    vocab_size=32000,
                    hidden_size=hidden,
                    ffn_hidden_size=4 * hidden,
                    num_attention_heads=8,
                    num_kv_heads=8,
                ),
            ),
            checkpoint=Checkpoint(num_checkpoints_write=1, num_checkpoints_read=1, fsync=True),
            workflow=Workflow(train=False, checkpoint=True),
        )
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
            view = buf[: min(left, len(buf))]
            while view:
                view = view[os.write(fd, view) :]
            left -= min(left, len(buf))
        os.fsync(fd)
        os.close(fd)
    return time.perf_counter() - start


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
    base = Path(tempfile.mkdtemp(prefix="bench-ckpt-", dir=a.dir))
    n = iter(range(10**6))

    def raw() -> float:
        folder = base / f"raw{next(n)}"
        rate = total / raw_write(folder, sizes, buf)
        shutil.rmtree(folder)
        return rate

    def ours() -> float:  # the checkpoint_write item's save_checkpoint_io_mean_GB_per_second (GiB/s)
        root = base / f"ck{next(n)}"
        res = run_phases(cfg, root, "checkpoint_write")["checkpoint_write"]
        assert figure(res, "checkpoint_rank_bytes") == total
        shutil.rmtree(root)
        return figure(res, "save_checkpoint_io_mean_GB_per_second") * 2**30

    def raw_read(folder: Path) -> float:
        files = sorted(p for p in folder.rglob("*.pt"))
        start = time.perf_counter()
        for path in files:
            with open(path, "rb", buffering=0) as f:
                while f.read(CHUNK):
                    pass
        return total / (time.perf_counter() - start)

    try:
        raw_write(base / "warm", sizes, buf)  # warm-up, untimed: first-touch and allocator effects
        shutil.rmtree(base / "warm")
        saves = interleave({"ours": ours, "raw": raw}, a.reps, before=os.sync)
        for verify in (False, True):
            root = base / f"read{int(verify)}"
            run_phases(cfg, root, "checkpoint_write")
            raw_read(root / "checkpoints")  # warm the page cache

            def load(root: Path = root, verify: bool = verify) -> float:
                res = run_phases(cfg, root, "checkpoint_read", verify=verify)["checkpoint_read"]
                return figure(res, "load_checkpoint_io_mean_GB_per_second") * 2**30

            got = interleave({"ours": load, "raw": lambda root=root: raw_read(root / "checkpoints")}, 3)
            line, _ = ratio_line(
                f"warm load_checkpoint_io_mean_GB_per_second ÷ raw read loop (verify {verify})",
                got["ours"],
                got["raw"],
                0.9,
                "GiB/s",
                2**30,
            )
            print(line)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(
        f"bytes per checkpoint: {total / 2**20:.0f} MiB in {len(sizes)} files, fsync on, chunk {CHUNK >> 20} MiB"
    )
    line, ratio = ratio_line(
        "save_checkpoint_io_mean_GB_per_second ÷ raw write+fsync loop",
        saves["ours"],
        saves["raw"],
        0.9,
        "GiB/s",
        2**30,
    )
    print(line)
    return 0 if ratio >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
