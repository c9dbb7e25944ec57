"""Interrupts leave nothing behind: real pytest-dlio runs killed with SIGTERM / SIGKILL mid-phase, the
temp-file sweep (only ours, only of dead writers) and the sweep of dead sessions' emulator folders."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_dlio.storage import file as filestore
from pytest_dlio.storage.emulators import SCRATCH_PREFIX, remove_dead_scratch
from tests.conftest import ROOT

CHECKPOINTS = """
model:
  name: ck
  model_size_bytes: 24000000
framework: pytorch
workflow:
  checkpoint: true
  train: false
checkpoint:
  checkpoint_folder: checkpoints/ck
  num_checkpoints_write: 6
  num_checkpoints_read: 0
"""

DATAGEN = """
model:
  name: dg
framework: pytorch
workflow:
  generate_data: true
  train: false
dataset:
  data_folder: data/dg
  format: npz
  num_files_train: 40
  num_files_eval: 0
  record_length_bytes: 1048576
"""


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def start(tmp: Path, name: str, text: str, *args: str) -> subprocess.Popen[bytes]:
    (tmp / f"{name}.yaml").write_text(text)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for var in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_ADDOPTS"):
        env.pop(var, None)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "--dlio-config",
        f"{name}.yaml",
        "--dlio-data-root",
        "root",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:xdist",
        "-p",
        "no:hypothesispytest",
        "-q",
        *args,
    ]
    # SIGINT as in a terminal even when this test runs in the background (where it is ignored)
    return subprocess.Popen(
        cmd,
        cwd=tmp,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def temps(root: Path) -> list[Path]:
    return [p for p in root.rglob(f"*{filestore.TMP_MARK}*") if p.is_file()] if root.exists() else []


def wait_for(what: object, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():  # type: ignore[operator]
        assert proc.poll() is None, proc.stdout.read().decode()  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the run never reached the phase"
        time.sleep(0.01)


def finish(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError("the interrupted run did not exit") from None
    return proc.returncode, out.decode()


def test_sigkill_mid_checkpoint_leaves_temp_files_the_next_run_removes(tmp_path: Path) -> None:
    ck = tmp_path / "root/checkpoints/ck"
    throttled = f"file://{tmp_path}/root?bandwidth_mib_s=40"
    proc = start(tmp_path, "ck", CHECKPOINTS, "--dlio-storage", throttled)
    wait_for(lambda: temps(ck), proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    left = temps(ck)
    assert left and all(str(proc.pid) in p.name for p in left)  # the killed writer named itself
    foreign = ck / f".notes{filestore.TMP_MARK}mine"  # recognisably not ours: never touched
    foreign.write_bytes(b"x")
    rc, out = finish(start(tmp_path, "ck", CHECKPOINTS))
    assert rc == 0, out
    assert temps(ck) == [foreign]
    assert len(list(ck.glob("*/model_states-0.pt"))) == 6


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_mid_checkpoint_exits_like_ctrl_c(tmp_path: Path, sig: signal.Signals) -> None:
    ck = tmp_path / "root/checkpoints/ck"
    proc = start(tmp_path, "ck", CHECKPOINTS, "--dlio-storage", f"file://{tmp_path}/root?bandwidth_mib_s=40")
    wait_for(lambda: temps(ck), proc)
    proc.send_signal(sig)
    rc, out = finish(proc)
    assert rc == 2 and "KeyboardInterrupt" in out, out  # pytest's "interrupted" exit, as for SIGINT
    assert temps(ck) == []  # the writer aborted: no temp file
    finals = list(ck.glob("*/model_states-0.pt"))
    assert len(finals) < 6
    assert len({p.stat().st_size for p in finals}) <= 1  # every final file is whole: one rank-0 file size


def test_sigterm_mid_datagen_on_s3_leaves_no_emulator_and_no_scratch(tmp_path: Path) -> None:
    pytest.importorskip("boto3")
    proc = start(tmp_path, "dg", DATAGEN, "--dlio-storage", "s3://dlio-int/run?bandwidth_mib_s=8")
    scratch: list[Path] = []

    def moto_up() -> bool:
        for d in Path("/tmp").glob(f"{SCRATCH_PREFIX}*"):
            try:
                if (d / "owner").read_text().strip() == str(proc.pid) and (d / "moto.json").exists():
                    scratch.append(d)
                    return True
            except OSError:
                continue
        return False

    wait_for(moto_up, proc)
    moto = json.loads((scratch[0] / "moto.json").read_text())["pid"]
    time.sleep(2.0)  # throttled to 8 MiB/s, 40 MiB take > 5 s: the run is writing files now
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    rc, out = finish(proc)
    assert rc == 2, out
    # the emulator runs in its own process group (watchdog + moto): none of it may survive
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(moto, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    with pytest.raises(ProcessLookupError):
        os.killpg(moto, 0)  # no orphan emulator process
    assert not scratch[0].exists()


def test_sigterm_mid_datagen_leaves_only_whole_files(tmp_path: Path) -> None:
    data = tmp_path / "root/data/dg"
    proc = start(tmp_path, "dg", DATAGEN, "--dlio-storage", f"file://{tmp_path}/root?bandwidth_mib_s=8")
    wait_for(lambda: data.exists() and len(list(data.rglob("*.npz"))) >= 2, proc)
    proc.send_signal(signal.SIGTERM)
    rc, out = finish(proc)
    assert rc == 2, out
    assert temps(data) == []
    sizes = {p.stat().st_size for p in data.rglob("*.npz")}
    assert len(sizes) == 1  # npz files of one config all have one exact size: none is partial
    rc, out = finish(start(tmp_path, "dg", DATAGEN))  # and the next run completes the dataset
    assert rc == 0, out
    assert len(list(data.rglob("*.npz"))) == 40


def test_sigkill_mid_datagen_leaves_a_manifest_naming_what_it_was_writing(tmp_path: Path) -> None:
    data = tmp_path / "root/data/dg"
    proc = start(
        tmp_path,
        "dg",
        DATAGEN,
        "--dlio-set",
        "dataset.keep_files=false",
        "--dlio-storage",
        f"file://{tmp_path}/root?bandwidth_mib_s=8",
    )
    wait_for(lambda: data.exists() and len(list(data.rglob("*.npz"))) >= 2, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    (manifest,) = (data / ".dlio/written").glob("dg-*.json")
    doc = json.loads(manifest.read_text())
    assert doc["done"] is False and doc["writer"]["pid"] == proc.pid
    on_disk = {p.relative_to(data).as_posix() for p in data.rglob("*.npz")}
    assert on_disk and on_disk <= set(doc["planned"]) and len(doc["planned"]) == 40


# ---- the sweeps, on real names and real processes ----


def name_for(pid: int, host: str | None = None, start: int | None = None) -> str:
    host = host or filestore._host_tag()
    start = filestore.process_start(pid) if start is None else start
    return f".f.npz{filestore.TMP_MARK}{pid}-{host}-{start}-{'0' * 12}"


def test_temp_sweep_removes_only_dead_writers_files(tmp_path: Path) -> None:
    dead = dead_pid()
    me = os.getpid()
    files = {
        "dead": name_for(dead, start=12345),
        "reused": name_for(me, start=filestore.process_start(me) + 1),  # our pid, another start time
        "alive": name_for(me),
        "other_host_old": name_for(dead, host="00000000", start=1),
        "other_host_new": name_for(dead, host="00000000", start=2),
        "foreign": f".f.npz{filestore.TMP_MARK}abc",
        "plain": "f.npz",
    }
    sub = tmp_path / "a/b"
    sub.mkdir(parents=True)
    for label, name in files.items():
        (sub / name).write_bytes(label.encode())
    old = time.time() - filestore.STALE_AFTER - 60
    os.utime(sub / files["other_host_old"], (old, old))
    removed = filestore.remove_stale_temps(tmp_path)
    assert sorted(p.read_bytes().decode() if p.exists() else p.name for p in removed) == sorted(
        files[k] for k in ("dead", "reused", "other_host_old")
    )
    assert sorted(p.read_text() for p in sub.iterdir()) == ["alive", "foreign", "other_host_new", "plain"]


def test_this_process_names_its_temp_files_so_a_sweep_keeps_them(tmp_path: Path) -> None:
    tmp = filestore.temp_path(tmp_path / "x.npz")
    tmp.write_bytes(b"in progress")
    assert filestore.remove_stale_temps(tmp_path) == [] and tmp.exists()


def test_dead_sessions_emulator_folder_is_removed(tmp_path: Path) -> None:
    code = (
        f"import tempfile; tempfile.tempdir = {str(tmp_path)!r}; "
        "from pytest_dlio.storage.emulators import Emulators; "
        "print(Emulators().state_dir, flush=True); import time; time.sleep(60)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    folder = Path(proc.stdout.readline().strip())  # type: ignore[union-attr]
    assert folder.is_dir() and folder.name.startswith(SCRATCH_PREFIX)
    live = tmp_path / f"{SCRATCH_PREFIX}live"
    live.mkdir()
    (live / "owner").write_text(str(os.getpid()))
    fresh = tmp_path / f"{SCRATCH_PREFIX}being-set-up"  # no owner yet, just created
    fresh.mkdir()
    other = tmp_path / "someone-else"
    other.mkdir()
    assert remove_dead_scratch(tmp_path) == []  # the owner is alive
    proc.kill()
    proc.wait()
    assert remove_dead_scratch(tmp_path) == [folder]
    assert live.exists() and fresh.exists() and other.exists()


def test_a_writer_cancelled_while_its_temp_file_opens_leaves_nothing(tmp_path: Path) -> None:
    """Ctrl-C / SIGTERM can land while the open of a writer's temp file runs in its thread."""
    import asyncio
    import threading

    from pytest_dlio.storage._pool import BlockingPool

    tmp = filestore.temp_path(tmp_path / "ck.pt")
    opening = threading.Event()

    def slow_open() -> int:
        opening.set()
        time.sleep(0.3)
        return os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o644)

    async def main() -> None:
        pool = BlockingPool(f"file://{tmp_path}", 2)
        task = asyncio.ensure_future(filestore.open_temp(pool, "ck.pt", tmp, slow_open))
        while not opening.is_set():
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        pool.shutdown()

    asyncio.run(main())
    assert not tmp.exists() and list(tmp_path.iterdir()) == []
