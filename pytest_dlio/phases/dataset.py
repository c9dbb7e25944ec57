"""What a store holds of a planned dataset: one listing and one verdict, shared by datagen and train.

A file is complete when its key exists, is not empty, has its exact size and every sidecar is there
with its exact size. The exact size is the format's prediction (npy, npz, tfrecord, indexed_binary,
synthetic); for formats whose size depends on the content (hdf5, csv, jpeg, png, parquet) it is the
size datagen recorded in an empty marker object ``.dlio/sizes/{key}@{size}`` after writing the file.
A content-sized file without any marker (written by DLIO itself, or copied in) cannot be checked
further and counts as complete when it is not empty: writes are atomic, so a file that exists is whole.
Datagen ``auto`` rewrites exactly the files that are not complete; datagen ``never`` and training
refuse a dataset with any incomplete file, naming how many, the first one and why.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from pytest_dlio.errors import DlioError, NotFound
from pytest_dlio.formats.base import DataFile
from pytest_dlio.storage.base import ObjectStore

#: Where datagen keeps the encoded size of files whose size can't be computed.
MARKER_PREFIX = ".dlio/sizes/"


def marker_key(key: str, size: int) -> str:
    return f"{MARKER_PREFIX}{key}@{size}"


@dataclass(frozen=True)
class Problem:
    """Why a planned file is not complete: ``key`` (the file or one of its sidecars) is missing, empty,
    or has ``size`` bytes instead of ``expected`` (``recorded``: the expectation is datagen's marker)."""

    file: DataFile
    key: str
    kind: str  # "missing", "empty" or "size"
    size: int | None = None
    expected: int | None = None
    recorded: bool = False

    def __str__(self) -> str:
        if self.kind == "size":
            why = "its size marker says" if self.recorded else "expected"
            return f"{self.key} has {self.size} bytes, {why} {self.expected}"
        return f"{self.key} is {self.kind}"


class Listing:
    """What the store holds under the dataset's prefixes: key → size, and size markers."""

    def __init__(self, objects: dict[str, int]) -> None:
        self.sizes = {k: v for k, v in objects.items() if not k.startswith(MARKER_PREFIX)}
        self.markers: dict[str, set[int]] = {}
        for k in objects:
            if k.startswith(MARKER_PREFIX):
                key, _, size = k[len(MARKER_PREFIX):].rpartition("@")
                if size.isdigit():
                    self.markers.setdefault(key, set()).add(int(size))

    def problem(self, f: DataFile) -> Problem | None:
        """The first reason ``f`` is not complete (the file, then its sidecars), None when it is."""
        size = self.sizes.get(f.key)
        if size is None:
            return Problem(f, f.key, "missing")
        if size == 0:
            return Problem(f, f.key, "empty", 0)
        if f.expected_size is not None:
            if size != f.expected_size:
                return Problem(f, f.key, "size", size, f.expected_size)
        else:
            marked = self.markers.get(f.key)
            if marked and size not in marked:
                return Problem(f, f.key, "size", size, max(marked), recorded=True)
        expected = f.sidecar_sizes or (None,) * len(f.sidecars)
        for side, want in zip(f.sidecars, expected, strict=True):
            got = self.sizes.get(side)
            if got is None:
                return Problem(f, side, "missing")
            if want is not None and got != want:
                return Problem(f, side, "size", got, want)
        return None

    def complete(self, f: DataFile) -> bool:
        return self.problem(f) is None

    def problems(self, files: list[DataFile]) -> list[Problem]:
        """One problem per incomplete file, in plan order."""
        return [p for p in map(self.problem, files) if p is not None]


async def list_dataset(store: ObjectStore, files: list[DataFile]) -> Listing:
    """One listing per top-level prefix the dataset uses (a size request per key on a store that
    cannot list; markers are then unknown)."""
    keys = [f.key for f in files] + [s for f in files for s in f.sidecars]
    objects: dict[str, int] = {}
    if not store.supports_listing:
        async def one(k: str) -> None:
            try:
                objects[k] = await store.size(k)
            except NotFound:
                pass

        await asyncio.gather(*(one(k) for k in keys))
        return Listing(objects)
    for p in sorted({k.split("/", 1)[0] + "/" for k in keys} | {MARKER_PREFIX}):
        async for k, size in store.list(p):
            objects[k] = size
    return Listing(objects)


def _shown(problems: list[Problem]) -> str:
    return "; ".join(map(str, problems[:3])) + ("; …" if len(problems) > 3 else "")


def not_enough_message(files: list[DataFile], listing: Listing, where: str) -> str | None:
    """DLIO's "Not enough … dataset is found" wording for the first split with incomplete files."""
    for split, label in (("train", "training"), ("valid", "validation")):
        want = [f for f in files if f.split == split]
        bad = listing.problems(want)
        if bad:
            return (f"Not enough {label} dataset is found: expected {len(want)} files, found "
                    f"{len(want) - len(bad)} complete in {where} ({_shown(bad)}); "
                    "run with --dlio-generate auto")
    return None


def incomplete_message(files: list[DataFile], listing: Listing, where: str) -> str | None:
    """Why training can't run on the dataset (missing first, then empty, then wrong sizes), or None."""
    bad = listing.problems(files)
    if not bad:
        return None
    n = len(files)
    missing = [p for p in bad if p.kind == "missing"]
    if missing:
        return (f"dataset incomplete: {len(missing)} of {n} files missing under {where}, "
                f"first {missing[0].key}; generate it (datagen item / workflow.generate_data: True) "
                "or point dataset.data_folder at the generated data")
    empty = [p for p in bad if p.kind == "empty"]
    if empty:
        return (f"dataset damaged: {len(empty)} of {n} files are empty under {where}, first {empty[0].key}; "
                "regenerate the dataset (--dlio-generate auto)")
    first = bad[0]
    if first.recorded:
        fix = "the file changed after datagen wrote it; regenerate it (--dlio-generate auto)"
    else:
        fix = "regenerate the dataset for this config (or fix dataset.record_length_bytes)"
    return (f"dataset does not match the config: {len(bad)} of {n} files have the wrong size under {where}, "
            f"first {first}; {fix}")


async def check_dataset(store: ObjectStore, files: list[DataFile]) -> None:
    """DlioError naming the first missing, empty or wrongly sized file, before any epoch runs."""
    if not files:
        return
    msg = incomplete_message(files, await list_dataset(store, files), str(store).rstrip("/"))
    if msg:
        raise DlioError(msg)
