"""--dlio-ranks N: N real rank processes on this host, supervised by the pytest process.

End to end through pytest (summed samples/s, averaged AU, per-rank files, summed datagen, uneven shards),
and through LocalWorld directly: a rank SIGKILLed mid-epoch or stopped (hung) fails the phase within the
bound, names the rank, and leaves no process behind.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest

from pytest_dlio.config.load import load
from pytest_dlio.engine import RunSettings
from pytest_dlio.engine.runner import compose
from pytest_dlio.ranks.local import LocalWorld
from tests._junit import properties_by_name as _props
from tests.conftest import run
from tests.test_e2e_items import SMALL, run_two_on_xdist

# 20 training samples, batch 2, 3 ranks: floor(20 / 2 / 3) = 3 steps each, 2 samples left over
UNEVEN = SMALL.replace("num_files_train: 16", "num_files_train: 20")


def worker_children() -> list[int]:
    """Pids of this process's live rank-worker children (from /proc: psutil is not installed here)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        state, ppid = fields[0], int(fields[1])
        if ppid == os.getpid() and b"pytest_dlio.engine.worker" in cmd and state != "Z":
            out.append(int(entry.name))
    return out


def test_three_ranks_end_to_end_with_uneven_shards(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", tiny=UNEVEN)
    result = run(
        pytester,
        "--dlio-config",
        "tiny.yaml",
        "--dlio-ranks",
        "3",
        "--junitxml=out.xml",
        "--dlio-output",
        "out",
    )
    result.assert_outcomes(passed=6)
    props = _props(pytester.path / "out.xml")
    assert props["train"]["num_accelerators"] == "3"
    assert props["datagen"]["datagen_files_written"] == "24"  # every rank's share, summed: 20 + 4
    out = pytester.path / "out" / "tiny"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_accelerators"] == 3 and summary["num_hosts"] == 1
    assert len(summary["host_memory_GB"]) == 1 and summary["host_memory_GB"][0] > 0
    # one training run, judged by the au item and reported by the train item and summary.json alike (each
    # item once re-ran the phases before it in the rank processes: au judged a second training run)
    au = props["train"]["train_au_mean_percentage"]
    assert props["au"]["train_au_mean_percentage"] == au
    assert float(au) == pytest.approx(summary["metric"]["train_au_mean_percentage"], abs=1e-9)
    ranks = [json.loads((out / f"{r}_output.json").read_text()) for r in range(3)]
    for r in range(3):
        assert (out / f"{r}_per_epoch_stats.json").exists()
    # every rank ran the same 3 steps per epoch although 20 samples do not divide over 3 ranks x batch 2
    assert {len(doc[str(e)]["compute"]["block1"]) for doc in ranks for e in (1, 2)} == {3}
    # samples/s is the sum of the ranks' own (written by three processes), AU their mean
    for e in (1, 2):
        thr = [doc[str(e)]["throughput"]["block1"] for doc in ranks]
        au = [doc[str(e)]["au"]["block1"] for doc in ranks]
        assert summary["metric"]["train_throughput_samples_per_second"][e - 1] == pytest.approx(sum(thr))
        assert summary["metric"]["train_au_percentage"][e - 1] == pytest.approx(sum(au) / 3)
    assert not worker_children()


def _world(tmp_path: Path, yaml: str, size: int, timeout: float) -> LocalWorld:
    (tmp_path / "w.yaml").write_text(yaml)
    settings = RunSettings(
        data_root=tmp_path / "root",
        output_root=tmp_path / "out",
        ranks=size,
        ranks_explicit=True,
        rank_timeout=timeout,
    )
    return LocalWorld(load(tmp_path / "w.yaml", []), settings, size=size, name="w", timeout=timeout)


# 30 steps of 0.5 s per epoch per rank: a training phase that lasts about a minute when nothing goes wrong
SLOW = (
    SMALL.replace("num_files_train: 16", "num_files_train: 180")
    .replace("computation_time: 0.002", "computation_time: 0.5")
    .replace("checkpoint: true", "checkpoint: false")
)


def _kill_later(pid: int, sig: signal.Signals, delay: float) -> threading.Thread:
    t = threading.Thread(target=lambda: (time.sleep(delay), os.kill(pid, sig)), daemon=True)
    t.start()
    return t


def test_a_rank_killed_mid_epoch_fails_the_phase_naming_it(tmp_path: Path) -> None:
    world = _world(tmp_path, SLOW, 3, timeout=20)
    try:
        assert world.pytest_in_workers is False  # the engine runs in the workers without pytest
        assert compose("datagen", world.run("datagen")).ok
        victim = world.pids[1]
        _kill_later(victim, signal.SIGKILL, 3.0)  # well inside epoch 1 (15 s of compute per epoch)
        t0 = time.monotonic()
        outcomes = world.run("train")
        elapsed = time.monotonic() - t0
    finally:
        world.close()
    result = compose("train", outcomes)
    assert result.failure is not None and "rank 1" in result.failure and "SIGKILL" in result.failure
    assert "2 other rank(s) stopped" in result.failure
    assert elapsed < 20  # the bound; the run itself would have lasted about a minute
    assert not worker_children()
    assert all(not Path(f"/proc/{pid}").exists() for pid in world.pids)


def test_a_hung_rank_is_killed_after_the_timeout(tmp_path: Path) -> None:
    world = _world(tmp_path, SLOW, 2, timeout=3)
    try:
        assert compose("datagen", world.run("datagen")).ok
        _kill_later(world.pids[0], signal.SIGSTOP, 2.0)  # stopped: alive, but silent
        t0 = time.monotonic()
        result = compose("train", world.run("train"))
        elapsed = time.monotonic() - t0
        later = compose("au", world.run("au"))
    finally:
        world.close()
    assert (
        result.failure is not None
        and "rank 0" in result.failure
        and "did not respond for 3 s" in result.failure
    )
    assert elapsed < 20
    assert later.failure is not None and "not run: rank 0" in later.failure  # the world is gone for good
    assert not worker_children()


def test_a_failure_on_one_rank_names_it_and_stops_the_others(tmp_path: Path) -> None:
    world = _world(tmp_path, SMALL.replace("num_files_train: 16", "num_files_train: 12"), 3, timeout=20)
    try:
        assert compose("datagen", world.run("datagen")).ok
        # rank 2 generated files 2, 5, 8, 11 (r, r+P, …); remove one: the dataset check (rank 0 alone lists)
        data = tmp_path / "root" / "data" / "tiny" / "train"
        victim = sorted(data.iterdir())[5]
        victim.unlink()
        result = compose("train", world.run("train"))
    finally:
        world.close()
    assert result.failure is not None
    assert "dataset incomplete" in result.failure and victim.name in result.failure
    # every rank got rank 0's verdict; whichever reported first is named, the message is said once
    assert re.match(r"ranks? [0-2](, [0-2])*: dataset incomplete", result.failure)
    assert result.failure.count("dataset incomplete") == 1


def test_bad_rank_timeout_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", tiny=SMALL)
    result = run(pytester, "--dlio-config", "tiny.yaml", "--dlio-rank-timeout", "0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--dlio-rank-timeout*expected a number of seconds > 0, got '0'*"])


def test_xdist_spreads_workloads_and_runs_ranks_inside_a_worker(pytester: pytest.Pytester) -> None:
    result = run_two_on_xdist(pytester, "one", "two", "--dlio-ranks", "2", "--dlio-output", "out", "-v")
    result.assert_outcomes(passed=12)
    where: dict[str, set[str]] = {}
    for worker, name in re.findall(r"\[(gw\d)\] .*PASSED (one|two)\b", result.stdout.str()):
        where.setdefault(name, set()).add(worker)
    # each workload's items in order on one worker, the two workloads on different workers
    assert len(where["one"]) == len(where["two"]) == 1 and where["one"] != where["two"]
    for name in ("one", "two"):
        summary = json.loads((pytester.path / "out" / name / "summary.json").read_text())
        assert summary["num_accelerators"] == 2
        assert (pytester.path / "out" / name / "1_output.json").exists()


def test_ranks_share_the_sessions_moto_server(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", tiny=SMALL)
    result = run(
        pytester,
        "--dlio-config",
        "tiny.yaml",
        "--dlio-ranks",
        "2",
        "--dlio-storage",
        "s3://bucket/run",
        "--junitxml=out.xml",
    )
    result.assert_outcomes(passed=6)
    props = _props(pytester.path / "out.xml")
    assert props["train"]["num_accelerators"] == "2"
    assert props["datagen"]["datagen_files_written"] == "20"
    # train passed, so rank 0's listing found rank 1's share: both ranks used the one embedded S3 the
    # pytest process started (a worker starting its own moto would have hidden its files from rank 0)
    result.stdout.fnmatch_lines(["*S3: embedded moto at http://127.0.0.1:*"])
    assert not (pytester.path / ".dlio" / "data").exists()


def test_each_local_rank_writes_and_reads_its_own_checkpoint_files(pytester: pytest.Pytester) -> None:
    from tests.test_ranks_mpi import SPLIT  # checkpoint-only, tensor parallel 2

    pytester.makefile(".yaml", ck=SPLIT)
    result = run(pytester, "--dlio-config", "ck.yaml", "--dlio-ranks", "2")
    result.assert_outcomes(passed=3)
    step = pytester.path / ".dlio" / "checkpoints" / "ck" / "global_epoch1_step1"
    assert sorted(p.name for p in step.iterdir()) == [
        ".dlio_manifest-0.json",
        ".dlio_manifest-1.json",
        "model_states-0.pt",
        "model_states-1.pt",
    ]
    assert (
        step / "model_states-1.pt"
    ).stat().st_size == 65536  # DLIO: model_size_bytes per model-parallel rank


def test_dlio_ranks_1_keeps_the_rank_zero_emulation(pytester: pytest.Pytester) -> None:
    from tests.test_ranks_mpi import SPLIT

    pytester.makefile(".yaml", ck=SPLIT)
    result = run(pytester, "--dlio-config", "ck.yaml", "--dlio-ranks", "1", "-rA")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*one process emulates rank 0 of 2 (tensor 2 x pipeline 1)*"])
    step = pytester.path / ".dlio" / "checkpoints" / "ck" / "global_epoch1_step1"
    assert sorted(p.name for p in step.glob("*.pt")) == ["model_states-0.pt"]


def test_killing_a_rank_mid_epoch_fails_the_train_item_and_leaves_no_process(
    pytester: pytest.Pytester,
) -> None:
    pytester.makefile(".yaml", slow=SLOW)
    run(pytester, "--dlio-config", "slow.yaml", "-k", "datagen").assert_outcomes(passed=1, deselected=3)
    killed: dict[str, float] = {}

    def kill_one() -> None:  # once the three ranks run (about 30 s of training ahead), SIGKILL rank 1
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(worker_children()) < 3:
            time.sleep(0.1)
        time.sleep(4.0)
        pids = sorted(worker_children())
        if len(pids) == 3:
            os.kill(pids[1], signal.SIGKILL)
            killed["at"] = time.monotonic()

    killer = threading.Thread(target=kill_one, daemon=True)
    killer.start()
    result = run(
        pytester,
        "--dlio-config",
        "slow.yaml",
        "--dlio-ranks",
        "3",
        "--dlio-rank-timeout",
        "10",
        "--dlio-generate",
        "never",  # the ranks go straight to training: the kill can't land in a dataset check
        "-k",
        "train",
        "--junitxml=out.xml",
    )
    ended = time.monotonic()
    killer.join(timeout=5)
    result.assert_outcomes(failed=1, deselected=3)
    assert "at" in killed and ended - killed["at"] < 20  # bounded, where the epochs had ~25 s to go
    result.stdout.fnmatch_lines(["*slow::train*", "*rank 1 (pid *) was killed by SIGKILL*"])
    assert not worker_children()
