"""Side by side with DLIO itself (issue 14): the same workload, the same machine, the same files.

DLIO runs from its own venv (``--dlio-python``, e.g. a venv with ``dlio_benchmark==2.0.0``, mpi4py, a CPU
torch and tensorflow-cpu; never one of this project's dependencies), one process (MPI singleton), its
shipped 2.0.0 workload with the overrides below; we run our copy of the same YAML
(``dlio_2.0.0/<name>``) through the engine, in this process. Each tool's figures are read from its own
output: DLIO's ``per_epoch_stats.json`` / ``summary.json`` / ``dlio.log``, our items' properties.

1. Datagen: DLIO's time from its log ("Starting data generation" → "Generation done") against our
   ``datagen_wall_seconds``, each tool writing its own dataset.
2. One epoch, hot page cache, rounds interleaved (who goes first alternates): DLIO reading its own
   dataset, DLIO reading OUR dataset (item 7: DLIO reads what we generate), and us reading ours. DLIO's
   epoch is ``per_epoch_stats.json`` ``duration`` (start to end of the epoch, its reader processes'
   start included, as DLIO reports it); ours the train item's ``train_seconds``. Both do the same emulated
   compute (2 steps x 0.636 s for 16 unet3d files of batch 7).
3. ``--layout`` also makes DLIO train on small datasets we generated in npz, npy and hdf5 on file:// and
   direct:// (DLIO's ``default`` workload: two subfolders, an eval split) and says whether each completed.

    python benchmarks/bench_dlio.py --dlio-python /opt/dlio-venv/bin/python [--files 16] [--reps 3]
        [--workload unet3d_a100] [--layout] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from _common import figure, load, run_phases

from pytest_dlio.engine import RunSettings
from pytest_dlio.engine.load import load_workload

MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}


def dlio(python: str, workload: str, out: Path, data: Path, overrides: list[str]) -> Path:
    """One DLIO run (its own process); the output folder it wrote. Exits naming the log when it fails."""
    out.mkdir(parents=True, exist_ok=True)
    args = [
        python,
        "-m",
        "dlio_benchmark.main",
        f"workload={workload}",
        *(f"++workload.{o}" for o in overrides),
        f"++workload.dataset.data_folder={data}",
        f"++workload.output.folder={out}",
        f"hydra.run.dir={out / 'hydra'}",
    ]
    log = out / "stdout.log"
    with open(log, "wb") as f:
        rc = subprocess.run(args, stdout=f, stderr=subprocess.STDOUT, cwd=out, env={**os.environ, **MPI_ENV})
    if rc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"DLIO failed (exit {rc.returncode}); its output, {log}:\n{tail}")
    return out


def dlio_datagen_seconds(out: Path) -> float:
    """DLIO's generation time, from the timestamps of its own log lines."""
    stamps: dict[str, datetime] = {}
    for line in (out / "dlio.log").read_text(errors="replace").splitlines():
        for what in ("Starting data generation", "Generation done"):
            if what in line:
                stamps[what] = datetime.fromisoformat(line.split()[1])
    return (stamps["Generation done"] - stamps["Starting data generation"]).total_seconds()


def dlio_epoch(out: Path) -> dict[str, float]:
    """DLIO's figures for epoch 1 from its own files."""
    epoch = json.loads((out / "per_epoch_stats.json").read_text())["1"]
    metric = json.loads((out / "summary.json").read_text())["metric"]
    return {
        "seconds": float(epoch["duration"]),
        "au": float(metric["train_au_mean_percentage"]),
        "io_MB_s": float(metric["train_io_mean_MB_per_second"]),
    }


def tree_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and ".dlio" not in p.parts)


def med(xs: list[float]) -> str:
    return f"best {min(xs):.2f} s, median {statistics.median(xs):.2f} s of {len(xs)}"


def side_by_side(python: str, name: str, files: int, reps: int, root: Path) -> list[str]:
    overrides = [f"dataset.num_files_train={files}", "train.epochs=1", "workflow.checkpoint=False"]
    cfg = load_workload(f"dlio_2.0.0/{name}", RunSettings(data_root=root, overrides=tuple(overrides)))
    ours_root, theirs = root / "ours", root / "dlio"
    data_ours = ours_root / cfg.dataset.data_folder
    data_theirs = theirs / "data"
    lines = []

    gen = dlio(
        python,
        name,
        theirs / "gen",
        data_theirs,
        [*overrides, "workflow.generate_data=True", "workflow.train=False"],
    )
    t_dlio = dlio_datagen_seconds(gen)
    res = run_phases(cfg, ours_root, "datagen")["datagen"]
    t_ours = figure(res, "datagen_wall_seconds")
    b_dlio, b_ours = tree_bytes(data_theirs), figure(res, "datagen_bytes")
    lines.append(
        f"{name} datagen, {files} files: DLIO {t_dlio:.2f} s ({b_dlio / 1e9:.2f} GB, "
        f"{b_dlio / 2**20 / t_dlio:.0f} MiB/s), ours {t_ours:.2f} s ({b_ours / 1e9:.2f} GB, "
        f"{b_ours / 2**20 / t_ours:.0f} MiB/s): ours {t_dlio / t_ours:.2f}x faster {load()}"
    )
    print(lines[-1], flush=True)

    runs: dict[str, list[dict[str, float]]] = {"dlio_own": [], "dlio_ours": [], "ours": []}

    def ours() -> dict[str, float]:
        # train alone: the au item fails (and so would stop this script) below metric.au
        r = run_phases(cfg, ours_root, "train", generate="never")
        return {
            "seconds": figure(r["train"], "train_seconds"),
            "au": figure(r["train"], "train_au_mean_percentage"),
            "read_MB_s": figure(r["train"], "read_MB_per_second_actual"),
            "compute": figure(r["train"], "compute_seconds"),
            "io_wait": figure(r["train"], "io_wait_seconds"),
            "bytes": figure(r["train"], "read_bytes"),
        }

    sides = {
        "dlio_own": lambda i: dlio_epoch(dlio(python, name, theirs / f"train{i}", data_theirs, overrides)),
        "dlio_ours": lambda i: dlio_epoch(dlio(python, name, theirs / f"ours{i}", data_ours, overrides)),
        "ours": lambda i: ours(),
    }
    order = list(sides)
    for i in range(reps):
        for k in order if i % 2 == 0 else order[::-1]:
            runs[k].append(sides[k](i))
            print(f"    round {i + 1}, {k}: {runs[k][-1]} {load()}", flush=True)
            time.sleep(0.5)

    def mid(side: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[side])

    def best(side: str) -> float:
        return min(r["seconds"] for r in runs[side])

    lines.append(
        f"{name} 1 epoch, hot cache: DLIO on its dataset {med([r['seconds'] for r in runs['dlio_own']])} "
        f"(AU {mid('dlio_own', 'au'):.1f} %); DLIO on our dataset "
        f"{med([r['seconds'] for r in runs['dlio_ours']])}; "
        f"ours {med([r['seconds'] for r in runs['ours']])} (AU {mid('ours', 'au'):.1f} %, compute "
        f"{mid('ours', 'compute'):.2f} s, io_wait {mid('ours', 'io_wait'):.2f} s, read_MB_per_second_actual "
        f"{mid('ours', 'read_MB_s'):.0f}) {load()}"
    )
    lines.append(
        f"    epoch ratio DLIO ÷ ours on the same files (> 1: we are faster): best-of "
        f"{best('dlio_ours') / best('ours'):.2f}, median "
        f"{mid('dlio_ours', 'seconds') / mid('ours', 'seconds'):.2f} "
        f"{load()}"
    )
    return lines


def layout_check(python: str, root: Path) -> list[str]:
    """DLIO trains on small datasets we generated (subfolders, an eval split) on file:// and direct://
    (O_DIRECT) stores: completed or not."""
    lines = []
    for scheme in ("file", "direct"):
        for fmt in ("npz", "npy", "hdf5"):
            overrides = [
                f"dataset.format={fmt}",
                "train.epochs=1",
                "train.computation_time=0.01",
                "evaluation.eval_time=0.01",
            ]
            cfg = load_workload("dlio_2.0.0/default", RunSettings(data_root=root, overrides=tuple(overrides)))
            mine = root / f"layout-{scheme}-{fmt}"
            run_phases(cfg, mine, "datagen", storage_uri=f"direct://{mine}" if scheme == "direct" else None)
            data = mine / cfg.dataset.data_folder
            ds = cfg.dataset
            what = (
                f"our {fmt} dataset on {scheme}:// (default: {ds.num_files_train}+{ds.num_files_eval} files, "
                "2 subfolders each)"
            )
            try:
                out = dlio(python, "default", root / f"dlio-layout-{scheme}-{fmt}", data, overrides)
                got = json.loads((out / "summary.json").read_text())
                lines.append(
                    f"DLIO trained on {what}: completed, {got['epochs']} epoch, train AU "
                    f"{got['metric']['train_au_mean_percentage']:.1f} %"
                )
            except SystemExit as exc:
                lines.append(f"DLIO on {what}: FAILED\n{exc}")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dlio-python", required=True, help="the python of a venv with dlio_benchmark installed")
    ap.add_argument("--workload", default="unet3d_a100")
    ap.add_argument("--files", type=int, default=16)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--layout", action="store_true", help="also: DLIO trains on our npz/npy/hdf5 datasets")
    ap.add_argument("--dir", default=None)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-dlio-", dir=a.dir) as d:
        for line in side_by_side(a.dlio_python, a.workload, a.files, a.reps, Path(d))[1:]:
            print(line, flush=True)
        if a.layout:
            for line in layout_check(a.dlio_python, Path(d)):
                print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
