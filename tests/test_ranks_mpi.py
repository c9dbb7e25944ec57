"""mpirun -np 2 python -m pytest …: two MPI ranks run the same items in lockstep; rank 0 alone reports.

Needs OpenMPI and mpi4py (``.ci/run`` installs both; as root OpenMPI needs --allow-run-as-root)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_dlio.ranks.mpi import launcher_world_size
from tests.test_e2e_items import SMALL

pytest.importorskip("mpi4py", reason="mpi4py is installed by .ci/run (pip install 'pytest-dlio[mpi]')")
MPIRUN = shutil.which("mpirun")
pytestmark = pytest.mark.skipif(MPIRUN is None, reason="OpenMPI's mpirun is installed by .ci/run")


def mpirun(tmp_path: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "OMPI_", "PMI"))}
    forward = ["-x", "PYTHONPATH"] if "PYTHONPATH" in env else []
    cmd = [
        MPIRUN or "mpirun",
        "-np",
        "2",
        "--oversubscribe",
        "--allow-run-as-root",
        *forward,
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:xdist",
        "-p",
        "no:hypothesispytest",
        "--color=no",
        *args,
    ]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)


def test_two_mpi_ranks_run_one_workload_and_rank_zero_reports(tmp_path: Path) -> None:
    (tmp_path / "tiny.yaml").write_text(SMALL)
    done = mpirun(tmp_path, "--dlio-config", "tiny.yaml", "--dlio-output", "out", "--junitxml=out.xml")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("test session starts") == 1  # rank 1 is silent
    assert "6 passed" in done.stdout
    out = tmp_path / "out" / "tiny"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_accelerators"] == 2 and summary["num_hosts"] == 1
    for r in (0, 1):
        assert (out / f"{r}_output.json").exists() and (out / f"{r}_per_epoch_stats.json").exists()
    # 16 samples, batch 2, 2 ranks: 4 steps each per epoch, on both ranks
    for r in (0, 1):
        doc = json.loads((out / f"{r}_output.json").read_text())
        assert len(doc["1"]["compute"]["block1"]) == 4
    cases = {c.get("name"): c for c in ET.parse(tmp_path / "out.xml").getroot().iter("testcase")}
    assert set(cases) == {"schema", "datagen", "train", "au", "checkpoint_write", "checkpoint_read"}
    props = {p.get("name"): p.get("value") for p in cases["datagen"].iter("property")}
    assert props["datagen_files_written"] == "20"  # both ranks' shares, summed


def test_dlio_ranks_must_match_the_mpi_world(tmp_path: Path) -> None:
    (tmp_path / "tiny.yaml").write_text(SMALL)
    done = mpirun(tmp_path, "--dlio-config", "tiny.yaml", "--dlio-ranks", "3", timeout=120)
    assert done.returncode != 0
    assert "--dlio-ranks 3 under mpirun with 2 processes" in done.stderr


def test_launcher_environment_is_recognised() -> None:
    assert launcher_world_size({"OMPI_COMM_WORLD_SIZE": "4"}) == 4
    assert launcher_world_size({"PMI_SIZE": "3"}) == 3
    assert launcher_world_size({}) == 1


# checkpoint-only, tensor parallel 2: rank 0 and rank 1 each write their own model_states file
SPLIT = """
model:
  name: ck
  model_size_bytes: 65536
  parallelism:
    tensor: 2
framework: pytorch
workflow:
  checkpoint: true
  train: false
  generate_data: false
checkpoint:
  checkpoint_folder: checkpoints/ck
  num_checkpoints_write: 1
  num_checkpoints_read: 1
"""


def test_a_failure_on_rank_one_fails_rank_zeros_item_naming_it(tmp_path: Path) -> None:
    (tmp_path / "ck.yaml").write_text(SPLIT)
    wrote = mpirun(tmp_path, "--dlio-config", "ck.yaml", "-k", "checkpoint_write")
    assert wrote.returncode == 0, wrote.stdout[-3000:]
    step = tmp_path / ".dlio" / "checkpoints" / "ck" / "global_epoch1_step1"
    assert sorted(p.name for p in step.glob("*.pt")) == ["model_states-0.pt", "model_states-1.pt"]
    (step / "model_states-1.pt").unlink()  # only rank 1's read can fail
    read = mpirun(tmp_path, "--dlio-config", "ck.yaml", "-k", "checkpoint_read")
    assert read.returncode == 1
    assert read.stdout.count("test session starts") == 1
    assert "rank 1: checkpoint read:" in read.stdout and "for rank 1" in read.stdout
    assert "1 other rank(s) stopped because of it" in read.stdout


def _rank_pid(tmp_path: Path, rank: int) -> int | None:
    """The pytest process of MPI rank ``rank`` running in ``tmp_path`` (from /proc)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd == str(tmp_path) and f"OMPI_COMM_WORLD_RANK={rank}".encode() in env:
            return int(entry.name)
    return None


def test_a_hung_mpi_rank_fails_the_item_and_the_job_ends(tmp_path: Path) -> None:
    # 120 samples / batch 2 / 2 ranks = 30 steps of 0.5 s per epoch: about half a minute of training
    (tmp_path / "slow.yaml").write_text(
        SMALL.replace("num_files_train: 16", "num_files_train: 120")
        .replace("computation_time: 0.002", "computation_time: 0.5")
        .replace("checkpoint: true", "checkpoint: false")
    )
    stopped: list[int] = []

    def stop_rank_one() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not stopped:
            pid = _rank_pid(tmp_path, 1)
            if pid is not None:
                time.sleep(6.0)  # past start-up, into the run
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
            time.sleep(0.1)

    t = threading.Thread(target=stop_rank_one, daemon=True)
    t.start()
    done = mpirun(
        tmp_path, "--dlio-config", "slow.yaml", "--dlio-rank-timeout", "5", "--junitxml=out.xml", timeout=150
    )
    t.join(timeout=5)
    assert stopped, "rank 1 was never found"
    assert done.returncode != 0
    assert "rank 1: did not respond for 5 s (hung; --dlio-rank-timeout)" in done.stdout, done.stdout[-3000:]
    failed = [
        c for c in ET.parse(tmp_path / "out.xml").getroot().iter("testcase") if c.find("failure") is not None
    ]
    assert failed  # rank 0 wrote its report before ending the job
    assert _gone(stopped[0])  # the stopped process was ended with the job


def _gone(pid: int, within: float = 15.0) -> bool:
    """Whether ``pid`` is gone (or a zombie) within ``within`` seconds (OpenMPI kills its ranks asynchronously)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.2)
    return False
