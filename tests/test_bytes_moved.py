"""Reported bytes equal bytes moved, phase by phase, as the user reads them (PhaseResult properties).

Each phase runs through the engine on a real store (file:// temp dirs, mem://) wrapped in a counting store
that adds up what was put to and served by the real backend. What counts:

- ``datagen_bytes``: every byte datagen put to storage: data files and their sidecars (index files). The
  size markers of content-sized formats are empty objects, so they add nothing; the dataset folder holds
  exactly those bytes.
- ``read_bytes`` (train): every byte the store served to the training epochs: whole files, sample ranges,
  sidecars and parquet footers alike. Evaluation's reads (the ``valid/`` files) are not in it, as
  evaluation's time is not in ``train_seconds``, the figure ``read_MB_per_second_actual`` divides by.
- checkpoints: ``checkpoint_rank_bytes`` is one checkpoint's files of this rank; the per-rank manifest (a
  small JSON recipe for verification) is ours and is not counted. ``save_checkpoint_count`` saves leave
  exactly ``checkpoint_rank_bytes × count`` checkpoint bytes on storage; a load reads exactly its bytes.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pytest_dlio.config.model import (
    Checkpoint,
    Dataset,
    ModelConfig,
    Reader,
    TimeSpec,
    Train,
    Workflow,
    WorkloadConfig,
)
from pytest_dlio.engine import RunSettings, Workload
from pytest_dlio.phases.dataset import MARKER_PREFIX
from pytest_dlio.storage.session import StorageSession


class CountingWriter:
    def __init__(self, inner: Any, owner: Counting, key: str) -> None:
        self._w, self._owner, self._key = inner, owner, key

    async def write(self, data: Any) -> None:
        await self._w.write(data)
        self._owner.put_bytes[self._key] = self._owner.put_bytes.get(self._key, 0) + memoryview(data).nbytes

    async def close(self) -> None:
        await self._w.close()

    async def abort(self) -> None:
        await self._w.abort()
        self._owner.put_bytes.pop(self._key, None)

    async def __aenter__(self) -> CountingWriter:
        return self

    async def __aexit__(self, exc_type: object, *rest: object) -> None:
        await (self.close() if exc_type is None else self.abort())


class Counting:
    """A real store that also adds up the bytes put to it and served by it, per key."""

    def __init__(self, inner: Any) -> None:
        self._s = inner
        self.uri, self.supports_listing = inner.uri, inner.supports_listing
        self.put_bytes: dict[str, int] = {}
        self.served: dict[str, int] = {}

    def _serve(self, key: str, data: Any) -> Any:
        self.served[key] = self.served.get(key, 0) + memoryview(data).nbytes
        return data

    async def put(self, key: str, data: Any, *, fsync: bool = False) -> None:
        await self._s.put(key, data, fsync=fsync)
        self.put_bytes[key] = memoryview(data).nbytes

    async def get(self, key: str) -> Any:
        return self._serve(key, await self._s.get(key))

    async def get_range(self, key: str, start: int, length: int) -> Any:
        return self._serve(key, await self._s.get_range(key, start, length))

    async def get_range_pooled(self, key: str, start: int, length: int) -> Any:  # checkpoints, row groups
        got = await self._s.get_range_pooled(key, start, length)
        self._serve(key, got.data)
        return got

    async def open_writer(self, key: str, *, fsync: bool = False) -> CountingWriter:
        self.put_bytes[key] = 0
        return CountingWriter(await self._s.open_writer(key, fsync=fsync), self, key)

    def __getattr__(self, name: str) -> Any:  # size, list, delete, exists, …: no bytes move
        return getattr(self._s, name)

    async def list(self, prefix: str = "") -> AsyncIterator[tuple[str, int]]:
        async for item in self._s.list(prefix):
            yield item

    async def close(self) -> None:
        await self._s.close()

    async def __aenter__(self) -> Counting:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class CountingSession(StorageSession):
    """The engine's storage session, handing out counting stores (kept for inspection)."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.stores: list[Counting] = []

    async def open(self, uri: str, storage: Any = None, *, threads: int = 8) -> Any:
        store = Counting(await super().open(uri, storage, threads=threads))
        self.stores.append(store)
        return store


def engine(cfg: WorkloadConfig, root: Path, uri: str | None = None) -> tuple[Workload, CountingSession]:
    settings = RunSettings(data_root=root, output_root=root / "out", storage_uri=uri)
    session = CountingSession(settings.data_root, uri)
    return Workload(cfg, settings, session, name="bytes"), session


def on_disk(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


def train_cfg(fmt: str, **ds: Any) -> WorkloadConfig:
    base = dict(
        format=fmt, num_files_train=6, num_files_eval=2, num_samples_per_file=4, record_length_bytes=3000
    )
    return WorkloadConfig(
        framework="pytorch",
        dataset=Dataset(**{**base, **ds}),
        reader=Reader(data_loader="pytorch", batch_size=2, read_threads=2, write_threads=4),
        train=Train(epochs=2, computation_time=TimeSpec(mean=0.0)),
        workflow=Workflow(generate_data=True, train=True, evaluation=True),
    )


# indexed_binary: sidecars, ranged reads; hdf5: content-sized (markers); npz: whole multi-sample files
@pytest.mark.parametrize("fmt", ["npz", "indexed_binary", "hdf5"])
def test_datagen_and_train_bytes_equal_what_storage_holds_and_served(tmp_path: Path, fmt: str) -> None:
    wl, session = engine(train_cfg(fmt), tmp_path)

    async def go() -> tuple[Any, Any]:
        return await wl.run("datagen"), await wl.run("train")

    dg, tr = asyncio.run(go())
    assert dg.ok and tr.ok, (dg.failure, tr.failure)
    gen_store, train_store = session.stores
    files = on_disk(tmp_path / "data")
    assert dg.value("datagen_bytes") == sum(files.values()) == sum(gen_store.put_bytes.values())
    assert set(gen_store.put_bytes) == set(files)  # every object written is on disk, and nothing else
    markers = [k for k in files if k.startswith(MARKER_PREFIX)]
    assert all(files[k] == 0 for k in markers) and (fmt == "hdf5") == bool(markers)
    served = sum(n for k, n in train_store.served.items() if k.startswith("train/"))
    assert served > 0 and tr.value("read_bytes") == served
    assert sum(n for k, n in train_store.served.items() if k.startswith("valid/")) > 0  # evaluation ran
    # the figure users compare with DLIO's MB/s: exactly those bytes over the measured train time
    mb_s = tr.value("read_MB_per_second_actual")
    assert mb_s == pytest.approx(served / 2**20 / float(tr.value("train_seconds")), rel=1e-9)


def test_concurrent_datagen_counts_every_worker(tmp_path: Path) -> None:
    """Many files, four writers: the total is the sum of all of them (no lost updates)."""
    cfg = train_cfg(
        "npy", num_files_train=40, num_files_eval=0, num_samples_per_file=1, record_length_bytes=200_000
    )
    wl, session = engine(cfg, tmp_path)
    dg = asyncio.run(wl.run("datagen"))
    files = on_disk(tmp_path / "data")
    assert len(files) == 40 and dg.value("datagen_files_written") == 40
    assert dg.value("datagen_bytes") == sum(files.values())
    wall = float(dg.value("datagen_wall_seconds"))  # reported to the millisecond: its rounding counts too
    assert dg.value("datagen_MiB_per_s") == pytest.approx(
        sum(files.values()) / 2**20 / wall, rel=max(0.01, 0.0006 / wall)
    )


def ckpt_cfg(writes: int, reads: int) -> WorkloadConfig:
    return WorkloadConfig(
        model=ModelConfig(model_size_bytes=3 * 2**20 + 17),
        checkpoint=Checkpoint(num_checkpoints_write=writes, num_checkpoints_read=reads),
        workflow=Workflow(train=False, checkpoint=True),
    )


@pytest.mark.parametrize("uri", [None, "mem://bytes-ckpt"])
def test_checkpoint_bytes_on_storage_and_read_back(tmp_path: Path, uri: str | None) -> None:
    cfg = ckpt_cfg(3, 2)
    if uri:
        uri = f"{uri}-{os.getpid()}"
    wl, session = engine(cfg, tmp_path, uri)

    async def go() -> tuple[Any, Any]:
        return await wl.run("checkpoint_write"), await wl.run("checkpoint_read")

    w, r = asyncio.run(go())
    assert w.ok and r.ok, (w.failure, r.failure)
    per = int(w.value("checkpoint_rank_bytes"))
    assert per > 3 * 2**20 and w.value("save_checkpoint_count") == 3 and r.value("load_checkpoint_count") == 2
    wstore, rstore = session.stores

    def ours(k: str) -> bool:
        return "/.dlio_manifest-" in k

    written = {k: n for k, n in wstore.put_bytes.items() if not ours(k)}
    assert sum(written.values()) == per * 3
    if uri is None:  # what is on disk: the checkpoint files, plus one manifest per checkpoint
        disk = on_disk(tmp_path / "checkpoints")
        assert {k: n for k, n in disk.items() if not ours(k)} == written
        assert sum(ours(k) for k in disk) == 3
    read = {k: n for k, n in rstore.served.items() if not ours(k)}
    assert sum(read.values()) == per * 2  # each load reads its files exactly once
    # DLIO's GB/s divides its checkpoint size by the mean duration: here that size is the bytes written
    assert float(w.value("checkpoint_size_GB")) * 2**30 == pytest.approx(per, rel=1e-9)


def test_checkpoint_folder_default_is_where_the_bytes_are(tmp_path: Path) -> None:
    cfg = replace(ckpt_cfg(1, 0), checkpoint=replace(ckpt_cfg(1, 0).checkpoint, checkpoint_folder="ck/x"))
    wl, _ = engine(cfg, tmp_path)
    w = asyncio.run(wl.run("checkpoint_write"))
    disk = on_disk(tmp_path / "ck" / "x")
    assert sum(n for k, n in disk.items() if "manifest" not in k) == int(w.value("checkpoint_rank_bytes"))


@pytest.mark.parametrize(("files", "meaningful"), [(2, False), (8, True)])
def test_throughput_of_short_blocks_is_flagged(tmp_path: Path, files: int, meaningful: bool) -> None:
    """DLIO's ``(steps - 2)`` numerator makes a 2-step epoch's samples/s 0: the item says so, and flags it."""
    cfg = train_cfg("npy", num_files_train=files, num_files_eval=0, num_samples_per_file=1)
    cfg = replace(
        cfg, reader=replace(cfg.reader, batch_size=1), workflow=Workflow(generate_data=True, train=True)
    )
    wl, _ = engine(cfg, tmp_path, f"mem://short-{files}-{os.getpid()}")

    async def go() -> Any:
        await wl.run("datagen")
        return await wl.run("train")

    tr = asyncio.run(go())
    assert tr.value("train_throughput_meaningful") == int(meaningful)
    noted = any("steps - 2" in line for line in tr.lines)
    assert noted is not meaningful
    thr = float(tr.value("train_throughput_mean_samples_per_second"))
    assert (thr > 0) is meaningful and float(tr.value("read_MB_per_second_actual")) > 0
