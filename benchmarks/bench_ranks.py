"""Local ranks: aggregate read throughput and the per-step barrier, as ratios from one run on this machine.

1. Local files, hot page cache, no compute: aggregate read MiB/s (all bytes over the slowest's span) of 1, 2 and 4 local ranks (``LocalWorld``,
   the processes ``--dlio-ranks N`` starts) ÷ the same number of plain reader processes, each reading its
   contiguous shard whole with the same thread count, a batch at a time with a barrier after each batch
   (``multiprocessing.Barrier``) as DLIO's ranks do every step (target >= 0.9 at every count). Rounds are
   interleaved (who goes first alternates); best-of and median of the per-round ratios. One rank in this
   process (no hub) is printed too, so the read path's own cost is told apart; ÷ plain readers without
   the barrier is printed beside, so what the per-step barrier costs shows, and ÷ plain readers that keep
   each batch's bytes until its barrier (training keeps a step's samples until the step is over; a plain
   loop dropping each file's fresh bytes at once gets the same hot heap chunk back from malloc for the
   next file, 15 GB/s for 4 MiB files here, while one holding a batch of them reads at 2.5 GB/s).
2. The per-step barrier: each step's proc time minus its load and compute (DLIO's proc includes the
   barrier), median over every step of every rank, with 1, 2 and 4 local ranks and 1 ms of compute.

    python benchmarks/bench_ranks.py [--files 64] [--mib 4] [--threads 2] [--batch 4] [--ranks 1,2,4]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _common import interleave, ratio_line

from pytest_dlio.config.model import Dataset, Reader, TimeSpec, Train, Workflow, WorkloadConfig
from pytest_dlio.engine import RunSettings
from pytest_dlio.engine.runner import compose
from pytest_dlio.ranks.local import LocalWorld


def cfg_for(files: int, rl: int, bs: int, threads: int, compute: float, epochs: int) -> WorkloadConfig:
    return WorkloadConfig(
        framework="pytorch",
        dataset=Dataset(
            format="npy",
            num_files_train=files,
            num_samples_per_file=1,
            record_length_bytes=rl,
            data_folder="data/bench_ranks",
        ),
        reader=Reader(
            data_loader="pytorch", batch_size=bs, read_threads=threads, prefetch_size=max(2, threads)
        ),
        train=Train(epochs=epochs, computation_time=TimeSpec(mean=compute)),
        workflow=Workflow(train=True, generate_data=True),
    )


def run_world(
    cfg: WorkloadConfig, root: Path, ranks: int, tag: str
) -> tuple[dict[str, float | int | str], Path]:
    settings = RunSettings(data_root=root, output_root=root / "out" / tag, ranks=ranks, ranks_explicit=True)
    with LocalWorld(cfg, settings, size=ranks, name="bench") as world:
        for phase in ("datagen", "train"):
            res = compose(phase, world.run(phase))
            if res.failure:
                raise SystemExit(f"{phase} failed with {ranks} ranks: {res.failure}")
    return dict(res.properties), settings.output / "bench"


def in_process(cfg: WorkloadConfig, root: Path) -> float:
    """MiB/s of the same training run as one rank in this process (SingleComm: no hub, no barrier cost)."""
    import asyncio

    from pytest_dlio.engine import Workload
    from pytest_dlio.storage.session import StorageSession

    settings = RunSettings(data_root=root, output_root=root / "out" / "alone")
    res = asyncio.run(Workload(cfg, settings, StorageSession(root), name="bench").run("train"))
    props = dict(res.properties)
    return float(props["read_bytes"]) / 2**20 / float(props["train_seconds"])


#: the plain readers that keep each batch until its barrier, as training keeps a step's samples: a file's
#: fresh bytes dropped at once let malloc hand the same hot 4 MiB back for the next (15 GB/s here), held
#: ones do not (2.5 GB/s), so the dropping loop is not a pattern training can follow
HELD = "÷ plain readers holding each batch until its barrier"
_STEP: Any = None  # each plain reader process's per-batch barrier (inherited through the pool initializer)


def _init_reader(step: Any) -> None:
    global _STEP
    _STEP = step


def _plain_reader(args: tuple[list[str], int, int, bool]) -> tuple[int, float, float]:
    paths, threads, batch, hold = args

    def read(p: str) -> int:
        with open(p, "rb", buffering=0) as f:
            return len(f.read())

    def keep(p: str) -> bytes:
        with open(p, "rb", buffering=0) as f:
            return f.read()

    _STEP.wait()  # every process starts together, like ranks after their first barrier
    t = time.time()
    total = 0
    with ThreadPoolExecutor(threads) as pool:
        if batch <= 0:
            total = sum(pool.map(read, paths))
        else:
            for b in range(0, len(paths), batch):
                if hold:  # the batch's bytes live until its step is over, as a training step's samples do
                    got = list(pool.map(keep, paths[b : b + batch]))
                    total += sum(map(len, got))
                    _STEP.wait()
                    del got
                    continue
                total += sum(pool.map(read, paths[b : b + batch]))
                _STEP.wait()
    return total, t, time.time()


class PlainReaders:
    """``procs`` plain reader processes, started once and reused by every round."""

    def __init__(self, procs: int) -> None:
        ctx = mp.get_context("spawn")
        self.procs = procs
        self.pool = ctx.Pool(procs, initializer=_init_reader, initargs=(ctx.Barrier(procs),))

    def rate(self, paths: list[Path], threads: int, epochs: int, batch: int, hold: bool = False) -> float:
        """Aggregate MiB/s, each process reading its contiguous shard ``epochs`` times (``batch`` files then
        a barrier, or all at once when 0): all bytes over the span from the first start to the last end.
        ``hold``: each batch's bytes are kept until its barrier (else each file's are dropped at once)."""
        per = len(paths) // self.procs
        shards = [[str(p) for p in paths[r * per : (r + 1) * per]] * epochs for r in range(self.procs)]
        done = self.pool.map(_plain_reader, [(s, threads, batch, hold) for s in shards], chunksize=1)
        return sum(d[0] for d in done) / 2**20 / (max(d[2] for d in done) - min(d[1] for d in done))

    def close(self) -> None:
        self.pool.close()
        self.pool.join()


def barrier_ms(out: Path, ranks: int) -> float:
    """Median proc − load − compute over every step of every rank (what the barrier added), in ms."""
    extra = []
    for r in range(ranks):
        doc = json.loads((out / f"{r}_output.json").read_text())
        for e, d in doc.items():
            if not e.isdigit():
                continue
            for b in d["proc"]:
                extra += [
                    p - lo - c for p, lo, c in zip(d["proc"][b], d["load"][b], d["compute"][b], strict=True)
                ]
    return 1000 * statistics.median(extra)


def bench_count(cfg: WorkloadConfig, root: Path, paths: list[Path], n: int, a: argparse.Namespace) -> None:
    """``n`` local ranks ÷ ``n`` plain reader processes (a barrier per batch, and none), interleaved rounds."""
    readers = PlainReaders(n)
    tag = iter(range(10**6))

    def ours() -> float:
        props, _ = run_world(cfg, root, n, f"read{n}-{next(tag)}")
        return float(props["read_bytes"]) / 2**20 / float(props["train_seconds"])  # slowest rank's span

    try:
        got = interleave(
            {
                "ours": ours,
                "plain": lambda: readers.rate(paths, a.threads, a.epochs, a.batch),
                "free": lambda: readers.rate(paths, a.threads, a.epochs, 0),
                "held": lambda: readers.rate(paths, a.threads, a.epochs, a.batch, hold=True),
            },
            a.reps,
        )
    finally:
        readers.close()
    label = f"  {n} rank(s) ÷ {n} plain reader process(es), barrier per batch"
    line, _ = ratio_line(label, got["ours"], got["plain"], 0.9, scale=1)
    free = statistics.median(o / f for o, f in zip(got["ours"], got["free"], strict=True))
    held = statistics.median(o / h for o, h in zip(got["ours"], got["held"], strict=True))
    print(f"{line}; ÷ plain readers without the barrier: median {free:.2f}; {HELD}: median {held:.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=64)
    ap.add_argument("--mib", type=float, default=4.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=4, help="samples per step (one barrier per step)")
    ap.add_argument("--ranks", default="1,2,4")
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    counts = [int(x) for x in a.ranks.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-ranks-") as tmp:
        root = Path(tmp)
        cfg = cfg_for(
            a.files, int(a.mib * 2**20), bs=a.batch, threads=a.threads, compute=0.0, epochs=a.epochs
        )
        print(
            f"read throughput: {a.files} npy files of {a.mib:g} MiB, batch {a.batch}, read_threads {a.threads}, "
            f"{a.epochs} epochs, hot page cache"
        )
        run_world(cfg, root, 1, "warm")  # generates the dataset and warms the page cache
        paths = sorted((root / "data" / "bench_ranks" / "train").glob("*.npy"))
        readers = PlainReaders(1)
        got = interleave(
            {
                "ours": lambda: in_process(cfg, root),
                "plain": lambda: readers.rate(paths, a.threads, a.epochs, a.batch),
                "held": lambda: readers.rate(paths, a.threads, a.epochs, a.batch, hold=True),
            },
            a.reps,
        )
        readers.close()
        line, _ = ratio_line(
            "  in this process, no hub ÷ 1 plain reader", got["ours"], got["plain"], 0.9, scale=1
        )
        held = statistics.median(o / h for o, h in zip(got["ours"], got["held"], strict=True))
        print(line + f" (the read path alone, for attribution); {HELD}: median {held:.2f}")
        for n in counts:
            bench_count(cfg, root, paths, n, a)
        small = cfg_for(256, 4096, bs=4, threads=a.threads, compute=0.001, epochs=1)
        print("per-step barrier: 256 files of 4 KiB, batch 4, 1 ms compute")
        for n in counts:
            _, out = run_world(small, root / "barrier", n, f"barrier{n}")
            print(f"  {n} rank(s): barrier median {barrier_ms(out, n):.3f} ms per step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
