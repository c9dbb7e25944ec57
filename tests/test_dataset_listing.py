"""One verdict on a stored dataset for datagen and training (phases/dataset.py), on real mem:// stores:
the same damage makes ``--dlio-generate never`` and training's pre-epoch check refuse, naming the same
file and why, and ``auto`` rewrites exactly that file."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import pytest

from pytest_dlio.config.model import Dataset, Reader, WorkloadConfig
from pytest_dlio.errors import DlioError
from pytest_dlio.layout import dataset_files
from pytest_dlio.phases.datagen import generate
from pytest_dlio.phases.dataset import MARKER_PREFIX, check_dataset, list_dataset
from pytest_dlio.ranks import SingleComm
from pytest_dlio.storage.base import ObjectStore
from pytest_dlio.storage.factory import open_store
from pytest_dlio.storage.memory import MemoryStore


def cfg(fmt: str, **ds: Any) -> WorkloadConfig:
    base = {
        "format": fmt,
        "num_files_train": 4,
        "num_files_eval": 2,
        "record_length_bytes": 32 * 32,
        "num_samples_per_file": 2,
    }
    return WorkloadConfig(dataset=Dataset(**{**base, **ds}), reader=Reader(write_threads=2))


def generate_(c: WorkloadConfig, store: ObjectStore, mode: str = "auto") -> int:
    res = asyncio.run(generate(c, store, comm=SingleComm(), mode=mode))
    return res.files_written


def verdicts(c: WorkloadConfig, store: ObjectStore) -> tuple[str | None, str | None]:
    """(datagen never's error, training's error), None for a pass."""
    out: list[str | None] = []

    def train() -> None:
        asyncio.run(check_dataset(store, dataset_files(c)))

    for check in (lambda: generate_(c, store, "never"), train):
        try:
            check()
            out.append(None)
        except DlioError as exc:
            out.append(str(exc))
    return out[0], out[1]


async def truncate(store: ObjectStore, key: str, by: int) -> int:
    data = await store.get(key)
    await store.put(key, data[: len(data) - by])
    return len(data) - by


@pytest.fixture
def mem() -> ObjectStore:
    return open_store(f"mem://ds-{uuid.uuid4().hex}")


def test_content_sized_file_changed_after_datagen(mem: ObjectStore) -> None:
    c = cfg("png")
    generate_(c, mem)
    key = "train/img_1_of_4.png"
    marked = asyncio.run(mem.size(key))
    now = asyncio.run(truncate(mem, key, 10))
    never, train = verdicts(c, mem)
    why = f"{key} has {now} bytes, its size marker says {marked}"
    assert never == (
        f"Not enough training dataset is found: expected 4 files, found 3 complete in {mem.uri} "
        f"({why}); run with --dlio-generate auto"
    )
    assert train is not None and re.fullmatch(
        rf"dataset does not match the config: 1 of 6 files have the wrong size under \S+, "
        rf"first {re.escape(why)}; the file changed after datagen wrote it; "
        r"regenerate it \(--dlio-generate auto\)",
        train,
    )
    assert generate_(c, mem) == 1
    assert verdicts(c, mem) == (None, None)


def test_a_wrong_sidecar_size_is_incomplete_for_both(mem: ObjectStore) -> None:
    c = cfg("tfrecord")
    generate_(c, mem)
    idx = "index/valid/img_0_of_2.tfrecord.idx"
    now = asyncio.run(truncate(mem, idx, 3))
    never, train = verdicts(c, mem)
    why = f"{idx} has {now} bytes, expected {now + 3}"
    assert never is not None and never.startswith(
        f"Not enough validation dataset is found: expected 2 files, found 1 complete in {mem.uri} ({why})"
    )
    assert train is not None and "1 of 6 files have the wrong size under" in train
    assert f"first {why};" in train
    assert generate_(c, mem) == 1
    assert verdicts(c, mem) == (None, None)


@pytest.mark.parametrize(
    "damage,train_says",
    [
        (
            "delete",
            r"dataset incomplete: 2 of 6 files missing under \S+, first train/img_0_of_4\.indexed_binary; "
            r"generate it",
        ),
        (
            "empty",
            r"dataset damaged: 2 of 6 files are empty under \S+, first train/img_0_of_4\.indexed_binary; ",
        ),
    ],
)
def test_missing_and_empty_files(mem: ObjectStore, damage: str, train_says: str) -> None:
    c = cfg("indexed_binary")
    generate_(c, mem)
    for key in ("train/img_0_of_4.indexed_binary", "train/img_3_of_4.indexed_binary"):
        asyncio.run(mem.delete(key) if damage == "delete" else mem.put(key, b""))
    never, train = verdicts(c, mem)
    kind = "missing" if damage == "delete" else "empty"
    assert never is not None and never.startswith(
        "Not enough training dataset is found: expected 4 files, found 2 complete in "
        f"{mem.uri} (train/img_0_of_4.indexed_binary is {kind}; train/img_3_of_4.indexed_binary is {kind})"
    )
    assert train is not None and re.match(train_says, train)
    assert generate_(c, mem) == 2
    assert verdicts(c, mem) == (None, None)


def test_content_sized_files_without_markers_are_accepted_by_both(mem: ObjectStore) -> None:
    """DLIO's own (or copied-in) hdf5/png/… data has no size markers: it can't be size-checked, but a
    non-empty file is whole (writes are atomic), so neither datagen nor training rejects it."""
    c = cfg("hdf5")
    generate_(c, mem)
    markers = [k for k, _ in asyncio.run(_keys(mem)) if k.startswith(MARKER_PREFIX)]
    assert len(markers) == 6
    for k in markers:
        asyncio.run(mem.delete(k))
    assert verdicts(c, mem) == (None, None)
    assert generate_(c, mem) == 0
    asyncio.run(mem.put("train/img_2_of_4.hdf5", b""))  # empty is still refused
    never, train = verdicts(c, mem)
    assert never is not None and "train/img_2_of_4.hdf5 is empty" in never
    assert train is not None and train.startswith("dataset damaged: 1 of 6 files are empty")


async def _keys(store: ObjectStore) -> list[tuple[str, int]]:
    return [(k, s) async for k, s in store.list("")]


class UnlistableStore(MemoryStore):
    """A real in-memory store that says it cannot list (as an object store without LIST permission)."""

    supports_listing = False

    def list(self, prefix: str = "") -> Any:
        raise AssertionError("list() called on a store without listing")


def test_a_store_without_listing_is_checked_key_by_key() -> None:
    name = f"nolist-{uuid.uuid4().hex}"
    c = cfg("npy")
    generate_(c, open_store(f"mem://{name}"))
    store = UnlistableStore(f"mem://{name}", name)
    files = dataset_files(c)
    assert all(asyncio.run(list_dataset(store, files)).complete(f) for f in files)
    asyncio.run(store.put(files[4].key, b"x"))
    asyncio.run(store.delete(files[5].key))
    problems = asyncio.run(list_dataset(store, files)).problems(files)
    assert [(p.key, p.kind) for p in problems] == [(files[4].key, "size"), (files[5].key, "missing")]
    with pytest.raises(DlioError, match=rf"1 of 6 files missing .* first {re.escape(files[5].key)}"):
        asyncio.run(check_dataset(store, files))
