"""Workloads that share a dataset folder run one at a time on a host: two xdist workers no longer rewrite
each other's files while the other trains (MLPerf v3.0's unet3d_b200 and unet3d_h100 at smoke: one
train item failed with "47 of 70 files have the wrong size"). Real processes, a real flock."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pytest_dlio.engine.datalock import DatasetLock, lock_path
from tests._junit import not_passed, read_cases
from tests.conftest import FAST

SHARED = """
model:
  name: {name}
framework: pytorch
workflow:
  generate_data: true
  train: true
dataset:
  data_folder: data/shared
  format: npz
  num_files_train: 16
  record_length_bytes: {record}
reader:
  data_loader: pytorch
  batch_size: 2
  read_threads: 2
train:
  epochs: 2
  computation_time: 0.08
metric:
  au: 0.0
"""


def test_two_workers_on_one_dataset_take_turns(pytester: pytest.Pytester) -> None:
    """Same folder, same file names, other sizes, on two xdist workers: both train on their own files
    (the second regenerates them after the first is done), and the one that waited says so."""
    pytester.makefile(
        ".yaml",
        big=SHARED.format(name="big", record=256 * 1024),
        small=SHARED.format(name="small", record=64 * 1024),
    )
    result = pytester.runpytest_subprocess(
        *FAST, "-n", "2", "--dlio-config", "big.yaml", "--dlio-config", "small.yaml", "--junitxml=out.xml"
    )
    xml = pytester.path / "out.xml"
    assert not_passed(xml, au_gate_may_fail=False) == {}, result.stdout.str()[-3000:]
    assert sorted(c.nodeid.split("::")[-1] for c in read_cases(xml)).count("train") == 2
    # the worker that came second waited (the item's property), and its progress line said for whom
    waits = [
        float(c.properties["dataset_wait_seconds"])
        for c in read_cases(xml)
        if "dataset_wait_seconds" in c.properties
    ]
    assert len(waits) == 1 and waits[0] > 0.5, waits
    assert "in another process on this host uses it" in result.stderr.str()


def _hold_in_another_process(root: Path, uri: str, seconds: float) -> subprocess.Popen[str]:
    code = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from pytest_dlio.engine.datalock import DatasetLock
        lock = DatasetLock(Path({str(root)!r}), {uri!r}, "holder_wl")
        lock.acquire()
        print("held", flush=True)
        time.sleep({seconds})
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_waiter_names_the_holder_and_gets_the_lock_when_its_process_ends(tmp_path: Path) -> None:
    uri = f"file://{tmp_path}/data/x"
    proc = _hold_in_another_process(tmp_path, uri, 0.8)
    told: list[str] = []
    lock = DatasetLock(tmp_path, uri, "waiter_wl")
    t0 = time.monotonic()
    try:
        lock.acquire(told.append)
        waited = time.monotonic() - t0
        assert lock.held and proc.wait(timeout=10) == 0
        assert waited >= 0.3 and lock.waited > 0.3
        assert len(told) == 1 and "workload holder_wl (pid " in told[0] and uri in told[0]
        assert lock.waited_for is not None and str(proc.pid) in lock.waited_for
    finally:
        lock.release()
        proc.kill()
        proc.wait()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    uri = f"file://{tmp_path}/data/y"
    proc = _hold_in_another_process(tmp_path, uri, 60)
    proc.kill()  # SIGKILL: no cleanup ran; the kernel drops the flock with the process
    proc.wait(timeout=10)
    lock = DatasetLock(tmp_path, uri, "next")
    lock.acquire()
    try:
        assert lock.held and lock.waited_for is None
    finally:
        lock.release()


def test_holds_in_one_process_are_counted_not_waited_for(tmp_path: Path) -> None:
    """Two workloads of one process sharing a dataset run one after the other: the second must not wait
    for the first's hold (it would wait for itself); another process waits until the last is given back."""
    uri = f"file://{tmp_path}/data/z"
    a, b = DatasetLock(tmp_path, uri, "a"), DatasetLock(tmp_path, uri, "b")
    a.acquire()
    b.acquire()
    assert a.held and b.held and b.waited_for is None
    a.release()
    probe = [sys.executable, "-c", _TRY.format(root=str(tmp_path), uri=uri)]
    assert subprocess.run(probe, capture_output=True, text=True, timeout=30).stdout.strip() == "busy"
    b.release()
    assert subprocess.run(probe, capture_output=True, text=True, timeout=30).stdout.strip() == "free"


_TRY = """
import fcntl, os
from pathlib import Path
from pytest_dlio.engine.datalock import lock_path
fd = os.open(lock_path(Path({root!r}), {uri!r}), os.O_RDWR | os.O_CREAT)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    print("free")
except BlockingIOError:
    print("busy")
"""


def test_file_and_direct_uris_of_one_folder_share_a_lock(tmp_path: Path) -> None:
    assert lock_path(tmp_path, "file:///srv/d/") == lock_path(tmp_path, "direct:///srv/d")
    assert lock_path(tmp_path, "file:///srv/d") != lock_path(tmp_path, "file:///srv/e")
    assert lock_path(tmp_path, "s3://b/d").parent == tmp_path / ".locks"
    (tmp_path / "my data").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "my data")
    one = lock_path(tmp_path, f"file://{tmp_path}/my data")
    for other in (
        f"file://{tmp_path}/link/",  # a symlink to it
        f"file://localhost{tmp_path}/my%20data",  # how the store reads this URI: the same folder
        f"direct://{tmp_path}/link?latency_ms=5",  # a throttle is the harness's, not the dataset's
    ):
        assert lock_path(tmp_path, other) == one, other
    assert lock_path(tmp_path, "file://localhost/srv/d") == lock_path(tmp_path, "file:///srv/d")
    assert lock_path(tmp_path, "not a uri\x00") != one  # a URI the stores refuse is named by its text


def test_a_filesystem_without_flock_runs_unlocked_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lustre mounted without -o flock answers ENOSYS, an NFS server without its lock service ENOLCK: the
    workload runs as it did before the lock existed, and the lock tells why it holds nothing (it escaped
    as a bare OSError, failing every datagen and train item with a traceback)."""
    import errno
    import fcntl

    def no_flock(fd: int, op: int) -> None:
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    lock = DatasetLock(tmp_path, f"file://{tmp_path}/data/w", "wl")
    lock.acquire()
    assert not lock.held and lock.unavailable is not None and "errno 38" in lock.unavailable
    lock.release()  # nothing held: nothing to give back
