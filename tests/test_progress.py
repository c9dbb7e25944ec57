"""Progress events: throttled in the phase, rate and ETA worked out, one readable line per event."""

from __future__ import annotations

from pathlib import Path

from pytest_dlio.progress import Progress, Ticker
from pytest_dlio.report.progress_text import clock, progress_line


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_ticker_throttles_and_works_out_rate_and_eta() -> None:
    now = FakeClock()
    got: list[Progress] = []
    tick = Ticker(got.append, "train", 100, "steps", every=0.5, clock=now)
    now.t += 0.2
    tick(1)  # too soon: dropped
    now.t += 4.8
    tick(25, epoch=1)
    assert len(got) == 1
    assert got[0].rate == 5.0 and got[0].eta == 15.0 and got[0].extra == {"epoch": 1} and not got[0].final
    now.t += 0.1
    tick(26)  # within 0.5 s of the last event: dropped
    tick(26, final=True)  # the last event always goes out
    assert len(got) == 2 and got[1].final


def test_ticker_without_a_receiver_does_nothing() -> None:
    Ticker(None, "datagen", 10, "B")(5)


def test_lines_per_phase() -> None:
    dg = Progress("datagen", 3 * 2**20, 12 * 2**20, "B", 2**20, 9.0, {"files": 3, "files_total": 12})
    assert progress_line("w", dg) == "w datagen: 3/12 files, 3.0/12.0 MiB, 1.0 MiB/s, ETA 0:09"
    tr = Progress(
        "train",
        10,
        40,
        "steps",
        2.0,
        3725.0,
        {"epoch": 1, "epochs": 4, "step": 10, "steps": 10, "au_percent": 87.25, "samples_per_second": 64.0},
    )
    assert (
        progress_line("w", tr)
        == "w train: epoch 1/4 step 10/10, 64.0 samples/s, AU 87.2 % so far, ETA 1:02:05"
    )
    warm = Progress(
        "train",
        1,
        40,
        "steps",
        0.1,
        None,
        {"epoch": 1, "epochs": 4, "step": 1, "steps": 10, "au_percent": None},
    )
    assert progress_line("w", warm) == "w train: epoch 1/4 step 1/10, warming up, ETA ?"
    ev = Progress("eval", 3, 8, "steps", 1.5, 3.3, {"epoch": 2})
    assert progress_line("w", ev) == "w eval: after epoch 2: step 3/8, 1.5 steps/s, ETA 0:03"
    ck = Progress("checkpoint", 2**30, 4 * 2**30, "B", 2**29, 6.0, {"kind": "save", "index": 2})
    assert progress_line("w", ck) == "w checkpoint: save 2: 1.00/4.00 GB, 0.50 GB/s, ETA 0:06"


def test_clock() -> None:
    assert [clock(s) for s in (0, 59.6, 61, 3600, None, -1)] == ["0:00", "1:00", "1:01", "1:00:00", "?", "?"]


def test_only_rank_zero_reports_progress(tmp_path: Path) -> None:
    from pytest_dlio.engine.settings import RunSettings
    from pytest_dlio.engine.workload import Workload
    from pytest_dlio.ranks import RankOfWorld
    from pytest_dlio.storage.session import StorageSession
    from tests.test_e2e_items import SMALL

    (tmp_path / "tiny.yaml").write_text(SMALL)
    settings = RunSettings(data_root=tmp_path / ".dlio")
    storage = StorageSession(settings.data_root)
    got: list[Progress] = []
    rank0 = Workload.load(
        tmp_path / "tiny.yaml", settings, storage, comm=RankOfWorld(0, 2), progress=got.append
    )
    rank1 = Workload.load(
        tmp_path / "tiny.yaml", settings, storage, comm=RankOfWorld(1, 2), progress=got.append
    )
    assert rank0.progress is not None and rank1.progress is None  # one line per workload, not per rank
