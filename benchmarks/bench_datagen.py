"""Datagen speed as ratios against raw baselines measured in the same run.

1. randbytes rate ÷ numpy's raw PCG64 rate (``Generator.bytes``) for the same number of bytes.
2. The datagen item's ``datagen_MiB_per_s`` (npz, npy; large records; local files through the engine,
   auto concurrency, fresh contents) ÷ a plain loop writing the same number of pre-made random bytes to
   files of the same sizes, interleaved in the same process (target >= 0.9).

    python benchmarks/bench_datagen.py [--mib-per-file 32] [--files 8] [--reps 3] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import figure, interleave, load, ratio_line, run_phases

from pytest_dlio.config.model import Dataset, Reader, Workflow, WorkloadConfig
from pytest_dlio.layout import dataset_files
from pytest_dlio.randbytes import file_rng, random_bytes


def rate(fn: object, nbytes: int, reps: int) -> float:
    """Median bytes/s of ``fn()`` over ``reps`` runs."""
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t)
    return nbytes / statistics.median(times)


def bench_randbytes(nbytes: int, reps: int) -> None:
    gen = np.random.default_rng(1)
    raw = rate(lambda: gen.bit_generator.random_raw(nbytes // 8), nbytes, reps)
    slow = rate(lambda: gen.bytes(nbytes), nbytes, reps)
    ours = rate(lambda: random_bytes(nbytes, file_rng(1, 2)), nbytes, reps)
    print(
        f"randbytes {ours / 2**20:6.0f} MiB/s | numpy PCG64.random_raw {raw / 2**20:6.0f} MiB/s (ratio "
        f"{ours / raw:.2f}) | numpy Generator.bytes {slow / 2**20:6.0f} MiB/s (ratio {ours / slow:.2f})"
    )


def plain_writes(folder: Path, sizes: list[int], blob: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, n in enumerate(sizes):
        with open(folder / f"f{i}", "wb") as fh:
            fh.write(memoryview(blob)[:n])


def bench_format(fmt: str, files: int, mib: int, reps: int, base: Path) -> None:
    cfg = WorkloadConfig(
        dataset=Dataset(format=fmt, num_files_train=files, record_length_bytes=mib * 2**20),
        reader=Reader(write_threads=4),
        workflow=Workflow(generate_data=True, train=False),
    )
    sizes = [f.expected_size or 0 for f in dataset_files(cfg)]
    total = sum(sizes)
    blob = random_bytes(max(sizes), file_rng(3, 4))
    n = iter(range(10**6))

    def plain() -> float:
        folder = base / f"raw{next(n)}"
        t = time.perf_counter()
        plain_writes(folder, sizes, blob)
        rate = total / (time.perf_counter() - t)
        shutil.rmtree(folder)
        return rate

    def ours() -> float:  # the datagen item's datagen_MiB_per_s, through the engine
        root = base / f"gen{next(n)}"
        res = run_phases(cfg, root, "datagen", generate="always")["datagen"]
        assert figure(res, "datagen_bytes") == total, (res.value("datagen_bytes"), total)
        shutil.rmtree(root)
        return figure(res, "datagen_MiB_per_s") * 2**20

    # dirty pages left by one side throttle the other: flush before each; who goes first alternates
    got = interleave({"ours": ours, "plain": plain}, reps, before=os.sync)
    line, _ = ratio_line(
        f"{fmt:4} datagen_MiB_per_s ÷ plain write loop of pre-made random bytes ({files} x {mib} MiB)",
        got["ours"],
        got["plain"],
        0.9,
    )
    print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--mib-per-file", type=int, default=32)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--dir", default=None)
    a = ap.parse_args()
    print(load())
    bench_randbytes(256 << 20, a.reps)
    with tempfile.TemporaryDirectory(dir=a.dir) as tmp:
        for fmt in ("npy", "npz"):
            bench_format(fmt, a.files, a.mib_per_file, a.reps, Path(tmp))


if __name__ == "__main__":
    main()
