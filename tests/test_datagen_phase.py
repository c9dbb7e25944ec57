"""datagen phase against real mem:// and file:// stores: modes, resumption, markers, preflight, cleanup."""

from __future__ import annotations

import asyncio
import io
import os
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_dlio.config.model import Dataset, Reader, WorkloadConfig
from pytest_dlio.errors import DlioError
from pytest_dlio.layout import dataset_files
from pytest_dlio.phases import datagen
from pytest_dlio.phases.datagen import cleanup, generate
from pytest_dlio.phases.dataset import DIGEST_PREFIX, check_dataset
from pytest_dlio.progress import Progress
from pytest_dlio.ranks import SingleComm
from pytest_dlio.ranks.inproc import InProcessWorld
from pytest_dlio.report.results import datagen_result
from pytest_dlio.storage.base import ObjectStore
from pytest_dlio.storage.factory import open_store


def cfg(**ds: Any) -> WorkloadConfig:
    base = {"format": "npz", "num_files_train": 4, "num_files_eval": 2, "record_length_bytes": 4096}
    return WorkloadConfig(dataset=Dataset(**{**base, **ds}), reader=Reader(write_threads=2))


def run(cfg: WorkloadConfig, store: ObjectStore, mode: str = "auto", comm: Any = None, **kw: Any) -> dict:
    res = asyncio.run(generate(cfg, store, comm=comm or SingleComm(), mode=mode, **kw))
    props = dict(datagen_result(res).properties)  # the figures as the user sees them
    assert all(isinstance(v, int | float | str) and not isinstance(v, np.generic) for v in props.values())
    return props


async def listing(store: ObjectStore) -> dict[str, int]:
    return {k: s async for k, s in store.list("")}


def objects(store: ObjectStore) -> dict[str, int]:
    """What the store holds, without the digest markers datagen writes beside every file."""
    return {k: v for k, v in asyncio.run(listing(store)).items() if not k.startswith(DIGEST_PREFIX)}


@pytest.fixture
def mem() -> ObjectStore:
    return open_store(f"mem://dg-{uuid.uuid4().hex}")


@pytest.fixture
def files(tmp_path: Path) -> ObjectStore:
    return open_store(f"file://{tmp_path}/data")


def test_generates_dlio_layout_in_memory(mem: ObjectStore) -> None:
    c = cfg()
    props = run(c, mem)
    got = objects(mem)
    assert got == {f.key: f.expected_size for f in dataset_files(c)}
    assert props["datagen_files_written"] == 6 and props["datagen_files_skipped"] == 0
    assert props["datagen_bytes"] == sum(got.values())
    data = asyncio.run(mem.get("train/img_2_of_4.npz"))
    with np.load(io.BytesIO(data)) as z:
        assert z["x"].shape == (64, 64, 1)


def test_auto_skips_complete_and_always_rewrites(mem: ObjectStore) -> None:
    c = cfg()
    run(c, mem)
    before = asyncio.run(mem.get("train/img_0_of_4.npz"))
    props = run(c, mem)
    assert props["datagen_files_written"] == 0 and props["datagen_files_skipped"] == 6
    props = run(c, mem, "always")
    assert props["datagen_files_written"] == 6
    assert asyncio.run(mem.get("train/img_0_of_4.npz")) != before  # fresh contents per run, as DLIO


def test_resume_rewrites_only_missing_and_truncated(files: ObjectStore, tmp_path: Path) -> None:
    c = cfg(num_subfolders_train=2)
    run(c, files)
    root = tmp_path / "data"
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*.npz")}
    (root / "train/1/img_1_of_4.npz").unlink()
    victim = root / "valid/img_0_of_2.npz"
    victim.write_bytes(victim.read_bytes()[:1000])
    stamps.pop(victim)
    stamps.pop(root / "train/1/img_1_of_4.npz")
    props = run(c, files)
    assert props["datagen_files_written"] == 2 and props["datagen_files_skipped"] == 4
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert victim.stat().st_size == dataset_files(c)[4].expected_size
    # no temp files left: only the files and their digest markers
    assert not [
        p
        for p in root.rglob("*")
        if p.is_file() and not p.name.endswith(".npz") and ".dlio/digests/" not in p.as_posix()
    ]


def test_content_sized_format_uses_markers(files: ObjectStore, tmp_path: Path) -> None:
    c = cfg(format="png", record_length_bytes=32 * 32)
    run(c, files)
    assert run(c, files)["datagen_files_written"] == 0
    target = tmp_path / "data/train/img_3_of_4.png"
    target.write_bytes(target.read_bytes()[:-10])
    assert run(c, files)["datagen_files_written"] == 1
    markers = [k for k in objects(files) if k.startswith(".dlio/sizes/train/img_3_of_4.png@")]
    (f,) = [f for f in dataset_files(c) if f.key == "train/img_3_of_4.png"]
    assert f.plan.startswith("p") and markers == [
        f".dlio/sizes/train/img_3_of_4.png@{target.stat().st_size}@{f.plan}"
    ]


def test_a_content_sized_file_written_for_other_settings_is_regenerated(files: ObjectStore) -> None:
    """Parquet files written for one --dlio-scale (8 files of 43008 rows at smoke) have the same names at
    another (8 of 98304 at small), and their size markers once matched their own sizes: training read a
    smoke dataset as the small one. The marker now names what the file encodes: training refuses a
    dataset written for other settings, naming it, and datagen auto rewrites exactly those files; a
    marker from before plans counts as one for other settings."""
    small = cfg(format="parquet", num_samples_per_file=16, record_length_bytes=64)
    run(small, files)
    bigger = replace(small, dataset=replace(small.dataset, num_samples_per_file=24))
    assert [f.key for f in dataset_files(bigger)] == [f.key for f in dataset_files(small)]
    with pytest.raises(
        DlioError,
        match=r"files under .* were written for other dataset settings, first "
        r"train/.*img_0_of_4\.parquet was written for other dataset settings.*--dlio-generate auto",
    ):
        asyncio.run(check_dataset(files, dataset_files(bigger)))
    assert run(bigger, files)["datagen_files_written"] == len(dataset_files(bigger))
    asyncio.run(check_dataset(files, dataset_files(bigger)))  # complete now
    sizes = [k for k in objects(files) if k.startswith(".dlio/sizes/")]
    assert len(sizes) == len(dataset_files(bigger))  # the stale markers are gone
    assert run(bigger, files)["datagen_files_written"] == 0
    # markers from before plans (no @p… part) cannot tell what a file holds: training refuses, datagen
    # rewrites each such file once
    legacy = {k.rpartition("@")[0] for k in sizes}
    for k in sizes:
        asyncio.run(files.delete(k))
    for k in legacy:
        asyncio.run(files.put(k, b""))
    with pytest.raises(DlioError, match=r"has a size marker from before markers named the settings"):
        asyncio.run(check_dataset(files, dataset_files(bigger)))
    assert run(bigger, files)["datagen_files_written"] == len(dataset_files(bigger))
    assert run(bigger, files)["datagen_files_written"] == 0


def test_sidecars_are_part_of_completeness(files: ObjectStore, tmp_path: Path) -> None:
    c = cfg(format="indexed_binary", num_samples_per_file=4)
    run(c, files)
    (tmp_path / "data/train/img_1_of_4.indexed_binary.off.idx").unlink()
    assert run(c, files)["datagen_files_written"] == 1
    t = cfg(format="tfrecord", num_samples_per_file=3)
    run(t, files)
    got = objects(files)
    assert "index/valid/img_1_of_2.tfrecord.idx" in got
    (tmp_path / "data/index/train/img_0_of_4.tfrecord.idx").unlink()
    assert run(t, files)["datagen_files_written"] == 1


def test_never_reports_missing_like_dlio(mem: ObjectStore) -> None:
    c = cfg()
    with pytest.raises(
        DlioError,
        match=r"Not enough training dataset is found: expected 4 files, found 0 "
        r"complete in mem://.*--dlio-generate auto",
    ):
        run(c, mem, "never")
    run(c, mem)
    asyncio.run(mem.delete("valid/img_1_of_2.npz"))
    with pytest.raises(DlioError, match="Not enough validation dataset is found: expected 2 files, found 1"):
        run(c, mem, "never")
    run(c, mem)
    assert run(c, mem, "never")["datagen_files_written"] == 0


def test_bad_mode_is_a_dlio_error(mem: ObjectStore) -> None:
    with pytest.raises(DlioError, match="auto, always or never"):
        run(cfg(), mem, "sometimes")


def test_preflight_fails_before_writing(files: ObjectStore, tmp_path: Path) -> None:
    c = cfg(num_files_train=100, num_files_eval=0, record_length_bytes=float(2**50))
    with pytest.raises(DlioError, match=r"GiB free .*free space, shrink the dataset"):
        run(c, files)
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").rglob("*"))


def test_ranks_write_round_robin_shares(mem: ObjectStore) -> None:
    c = cfg(num_files_train=5, num_files_eval=0)
    world = InProcessWorld(2)
    written: dict[int, list[str]] = {0: [], 1: []}

    class Puts:  # the real store, remembering which rank put which key
        def __init__(self, rank: int) -> None:
            self.rank = rank

        def __getattr__(self, name: str) -> Any:
            return getattr(mem, name)

        async def put(self, key: str, data: Any, **kw: Any) -> None:
            written[self.rank].append(key)
            await mem.put(key, data, **kw)

    async def go() -> list[Any]:
        return await asyncio.gather(*(generate(c, Puts(k.rank), comm=k) for k in world.comms))  # type: ignore[arg-type]

    stats = asyncio.run(go())
    assert sorted(written[1]) == ["train/img_1_of_5.npz", "train/img_3_of_5.npz"]
    assert [s.files_planned for s in stats] == [3, 2]
    assert len(objects(mem)) == 5


def test_cleanup_removes_exactly_the_generated_files(files: ObjectStore, tmp_path: Path) -> None:
    c = cfg(format="jpeg", record_length_bytes=16 * 16)
    (tmp_path / "data/train").mkdir(parents=True)
    keep = tmp_path / "data/train/notes.txt"
    keep.write_text("mine")
    stats = asyncio.run(generate(c, files, comm=SingleComm()))
    assert asyncio.run(cleanup(files, stats, SingleComm())) == 12  # 6 files + 6 size markers
    assert [k for k in objects(files)] == ["train/notes.txt"] and keep.read_text() == "mine"


def test_progress_is_reported(mem: ObjectStore) -> None:
    said: list[Progress] = []
    props = run(cfg(), mem, progress=said.append)
    last = said[-1]  # every phase ends with a final event, however fast it was
    assert last.final and last.phase == "datagen" and last.unit == "B"
    assert last.done == props["datagen_bytes"] == last.total and last.eta == 0
    assert last.extra["files"] == last.extra["files_total"] == 6


def test_large_multipart_file_streams_through_a_writer(
    files: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(datagen, "STREAM_ABOVE", 1024)
    c = cfg(format="tfrecord", num_files_train=1, num_files_eval=0, num_samples_per_file=50)
    run(c, files)
    f = dataset_files(c)[0]
    assert os.path.getsize(tmp_path / "data" / f.key) == f.expected_size
    from pytest_dlio.formats import get_format

    data = (tmp_path / "data" / f.key).read_bytes()
    assert len(get_format("tfrecord").decode(data, f, c.dataset)) == 50


def test_written_files_are_made_durable_before_datagen_ends(files: ObjectStore, tmp_path: Path) -> None:
    """On local files datagen fsyncs what it wrote (the kernel's writeback then does not compete with the
    training that reads the dataset next) and says how long that took, apart from its MiB/s; a run that
    wrote nothing flushes nothing. make_durable skips a key removed since it was written."""
    c = cfg(record_length_bytes=256 * 1024)
    props = run(c, files)
    assert props["datagen_files_written"] == 6 and props["datagen_flush_seconds"] > 0
    assert props["datagen_MiB_per_s"] == pytest.approx(
        props["datagen_bytes"] / 2**20 / props["datagen_wall_seconds"], rel=1e-3
    )
    again = run(c, files)
    assert again["datagen_files_written"] == 0 and again["datagen_flush_seconds"] == 0
    asyncio.run(files.make_durable(["train/img_0_of_4.npz", "train/not-there.npz"]))
    lines = datagen_result(asyncio.run(generate(c, files, comm=SingleComm(), mode="always"))).lines
    assert any("made durable (fsync)" in line for line in lines), lines
