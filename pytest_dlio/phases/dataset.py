"""What a store holds of a planned dataset: one listing and one verdict, shared by datagen and train.

A file is complete when its key exists, is not empty, has its exact size and every sidecar is there
with its exact size. The exact size is the format's prediction (npy, npz, tfrecord, indexed_binary,
synthetic); for formats whose size depends on the content (hdf5, csv, jpeg, png, parquet) it is the
size datagen recorded in an empty marker object ``.dlio/sizes/{key}@{size}`` after writing the file.
A content-sized file without any marker (written by DLIO itself, or copied in) cannot be checked
further and counts as complete when it is not empty: writes are atomic, so a file that exists is whole.
Datagen ``auto`` rewrites exactly the files that are not complete; datagen ``never`` and training
refuse a dataset with any incomplete file, naming how many, the first one and why.

Content, beyond size: for each file of at least :data:`DIGEST_MIN` bytes it writes, datagen records in
an empty marker ``.dlio/digests/{key}@{crc}`` the CRC-32 of a few sampled blocks (:func:`sample_ranges`:
the head, the tail and two strided 64 KiB blocks). Datagen ``auto`` re-reads those blocks (ranged reads)
of complete files while that stays cheap (:func:`verify_budget`: at most 1 % of the dataset's bytes, or
64 MiB) and regenerates a file whose blocks changed. ``--dlio-verify-data`` reads every file whole: the
sampled digest, plus the format's own checksums (npz: each member's zip CRC-32; tfrecord: every
record's masked CRC-32C). Not verified: bytes outside the sampled blocks of files of other formats;
files without a digest marker (smaller than DIGEST_MIN, or written by DLIO itself or copied in) beyond
their format's checksums under ``--dlio-verify-data``; files on a store that cannot list.
"""

from __future__ import annotations

import asyncio
import io
import random
import re
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pytest_dlio.errors import DlioError, NotFound
from pytest_dlio.formats.base import DataFile
from pytest_dlio.storage.base import Buffer, ObjectStore, gather_bounded

#: Where datagen keeps the encoded size of files whose size can't be computed.
MARKER_PREFIX = ".dlio/sizes/"
#: Where datagen keeps the CRC-32 of each file's sampled blocks.
DIGEST_PREFIX = ".dlio/digests/"
BLOCK = 64 << 10  # bytes per sampled block
BLOCKS = 4  # head, tail and two strided blocks
VERIFY_FRACTION = 0.01  # auto reads at most this share of the dataset's bytes to check content...
VERIFY_FLOOR = 64 << 20  # ...or this many bytes, whichever is more
#: Files smaller than this get no digest marker: one more object per file costs datagen about as much as
#: writing a file of a few MiB (A/B on file://: +50 % time for 16 KiB files, ~2x for 1 MiB, noise at 8 MiB).
DIGEST_MIN = 8 << 20


def marker_key(key: str, size: int, plan: str = "") -> str:
    """``.dlio/sizes/{key}@{size}@{plan}`` (``@{plan}`` left out when there is none: older markers)."""
    return f"{MARKER_PREFIX}{key}@{size}" + (f"@{plan}" if plan else "")


def _marker(name: str) -> tuple[str, int, str] | None:
    """(key, size, plan) of a size marker's name after the prefix; None when it is not one."""
    rest, _, last = name.rpartition("@")
    if _DIGITS.fullmatch(last):
        return (rest, int(last), "") if rest else None
    key, _, size = rest.rpartition("@")
    return (key, int(size), last) if key and _DIGITS.fullmatch(size) and last.startswith("p") else None


_DIGITS = re.compile(r"[0-9]+")  # str.isdigit takes "²", which int() refuses


def digest_key(key: str, digest: str) -> str:
    return f"{DIGEST_PREFIX}{key}@{digest}"


def sample_ranges(size: int) -> list[tuple[int, int]]:
    """The (offset, length) blocks whose CRC datagen records: all of a small file; else the head, the tail
    and two blocks strided evenly between them."""
    if size <= BLOCK * BLOCKS:
        return [(0, size)]
    step = (size - BLOCK) // (BLOCKS - 1)
    return [(i * step, BLOCK) for i in range(BLOCKS - 1)] + [(size - BLOCK, BLOCK)]


def digest_of_blocks(blocks: Iterable[Buffer]) -> str:
    crc = 0
    for b in blocks:
        crc = zlib.crc32(b, crc)
    return f"{crc:08x}"


def digest_of_parts(parts: list[Buffer], size: int) -> str:
    """The sampled-block digest of a file given as consecutive ``parts`` (no copy of the whole file)."""
    views = [memoryview(p).cast("B") for p in parts]
    starts, pos = [], 0
    for v in views:
        starts.append(pos)
        pos += v.nbytes

    def block(off: int, n: int) -> Iterable[memoryview]:
        for v, s in zip(views, starts, strict=True):
            lo, hi = max(off, s), min(off + n, s + v.nbytes)
            if lo < hi:
                yield v[lo - s : hi - s]

    return digest_of_blocks(b for off, n in sample_ranges(size) for b in block(off, n))


class SampledBlocks:
    """:func:`digest_of_parts`'s digest of a file seen as it is written: its chunks in order (``feed``), then
    any bytes overwritten afterwards (``patch``); only the sampled blocks are kept (a copy of 256 KiB)."""

    def __init__(self, size: int) -> None:
        self.ranges = sample_ranges(size)
        self.blocks = [bytearray(n) for _, n in self.ranges]
        self.pos = 0

    def _copy(self, offset: int, data: memoryview) -> None:
        end = offset + data.nbytes
        for (start, n), block in zip(self.ranges, self.blocks, strict=True):
            lo, hi = max(start, offset), min(start + n, end)
            if lo < hi:
                block[lo - start : hi - start] = data[lo - offset : hi - offset]

    def feed(self, chunks: Iterable[Buffer]) -> Iterator[Buffer]:
        """``chunks`` passed through, their sampled bytes kept."""
        for c in chunks:
            view = memoryview(c).cast("B")
            self._copy(self.pos, view)
            self.pos += view.nbytes
            yield c

    def patch(self, offset: int, data: Buffer) -> None:
        self._copy(offset, memoryview(data).cast("B"))

    def digest(self) -> str:
        return digest_of_blocks(self.blocks)


def verify_budget(total_bytes: int) -> int:
    """Bytes datagen ``auto`` may read to check content (the rest is judged by size)."""
    return max(int(total_bytes * VERIFY_FRACTION), VERIFY_FLOOR)


@dataclass(frozen=True)
class Problem:
    """Why a planned file is not complete: ``key`` (the file or one of its sidecars) is missing, empty,
    has ``size`` bytes instead of ``expected`` (``recorded``: the expectation is datagen's marker), or its
    content changed (``content``: ``why`` says how it was found)."""

    file: DataFile
    key: str
    kind: str  # "missing", "empty", "size", "plan" (written for other settings) or "content"
    size: int | None = None
    expected: int | None = None
    recorded: bool = False
    why: str = ""

    def __str__(self) -> str:
        if self.kind == "content":
            return f"{self.key} is damaged ({self.why})"
        if self.kind == "size":
            why = "its size marker says" if self.recorded else "expected"
            return f"{self.key} has {self.size} bytes, {why} {self.expected}"
        if self.kind == "plan" and self.why == "legacy":
            return (
                f"{self.key} has a size marker from before markers named the settings a file was written "
                "for (an older pytest-dlio), so it cannot be told from a file written for other settings"
            )
        if self.kind == "plan":
            return (
                f"{self.key} was written for other dataset settings (its size marker is for another "
                "number of samples per file, sample shape or format settings, such as another --dlio-scale)"
            )
        return f"{self.key} is {self.kind}"


class Listing:
    """What the store holds under the dataset's prefixes: key → size, and size markers."""

    def __init__(self, objects: dict[str, int]) -> None:
        self.sizes = {k: v for k, v in objects.items() if not k.startswith((MARKER_PREFIX, DIGEST_PREFIX))}
        self.markers: dict[str, set[tuple[int, str]]] = {}  # key -> (size, plan) of its size markers
        self.digests: dict[str, set[str]] = {}
        for k in objects:
            if k.startswith(MARKER_PREFIX):
                got = _marker(k[len(MARKER_PREFIX) :])
                if got is not None:
                    self.markers.setdefault(got[0], set()).add(got[1:])
            elif k.startswith(DIGEST_PREFIX):
                key, _, digest = k[len(DIGEST_PREFIX) :].rpartition("@")
                if key and digest:
                    self.digests.setdefault(key, set()).add(digest)

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
            ours = {n for n, plan in marked or () if plan == f.plan}
            if marked and not ours:
                # "": every marker predates plans, so what the file encodes is unknown (a smoke dataset
                # reused at small read rows past each file's end from its last row group): rewritten once
                legacy = all(plan == "" for _, plan in marked)
                return Problem(f, f.key, "plan", why="legacy" if legacy else "")
            if ours and size not in ours:
                return Problem(f, f.key, "size", size, max(ours), recorded=True)
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


async def list_dataset(store: ObjectStore, files: list[DataFile], *, digests: bool = False) -> Listing:
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
    # digest markers only when asked (datagen): training judges by size and need not list them
    extra = {MARKER_PREFIX, DIGEST_PREFIX} if digests else {MARKER_PREFIX}
    for p in sorted({k.split("/", 1)[0] + "/" for k in keys} | extra):
        async for k, size in store.list(p):
            objects[k] = size
    return Listing(objects)


def checksum_problem(fmt: str, data: Buffer) -> str | None:
    """What the format's own checksums say is wrong with a whole file (None: fine or no checksums)."""
    if fmt == "npz":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                bad = z.testzip()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            return f"not a readable zip: {exc}"
        return f"zip CRC-32 of member {bad} does not match" if bad else None
    if fmt == "tfrecord":
        from pytest_dlio.formats.tfrecord import records

        try:
            for _ in records(data):
                pass
        except DlioError as exc:
            return str(exc)
    return None


async def content_problems(
    store: ObjectStore,
    files: list[DataFile],
    listing: Listing,
    fmt: str,
    *,
    full: bool = False,
    limit: int = 16,
) -> list[Problem]:
    """Damaged files among ``files`` (all complete by size): their sampled blocks no longer match the
    digest datagen recorded; with ``full``, every file is read whole and its format's checksums checked
    too. Without ``full`` only files with a digest are read, as many as :func:`verify_budget` allows
    (a random choice when not all fit)."""
    if full:
        chosen = files
    else:
        chosen = [f for f in files if f.key in listing.digests]
        total = sum(listing.sizes[f.key] for f in files)
        cost = {f.key: sum(n for _, n in sample_ranges(listing.sizes[f.key])) for f in chosen}
        budget = verify_budget(total)
        if sum(cost.values()) > budget:
            random.shuffle(chosen)
            spent, fits = 0, []
            for f in chosen:
                if spent + cost[f.key] <= budget:
                    fits.append(f)
                    spent += cost[f.key]
            chosen = fits

    async def check(f: DataFile) -> Problem | None:
        size = listing.sizes[f.key]
        want = listing.digests.get(f.key)
        if full:
            data = await store.get(f.key)
            view = memoryview(data)
            blocks: list[Buffer] = [view[o : o + n] for o, n in sample_ranges(size)]
            why = checksum_problem(fmt, data)
            if why:
                return Problem(f, f.key, "content", size, why=why)
        else:
            blocks = await store.get_ranges(f.key, sample_ranges(size))
        if want and digest_of_blocks(blocks) not in want:
            return Problem(f, f.key, "content", size, why="its sampled blocks differ from what datagen wrote")
        return None

    found = await gather_bounded((check(f) for f in chosen), limit)
    return [p for p in found if p is not None]


def _shown(problems: list[Problem]) -> str:
    return "; ".join(map(str, problems[:3])) + ("; …" if len(problems) > 3 else "")


def not_enough_message(files: list[DataFile], listing: Listing, where: str) -> str | None:
    """DLIO's "Not enough … dataset is found" wording for the first split with incomplete files."""
    for split, label in (("train", "training"), ("valid", "validation")):
        want = [f for f in files if f.split == split]
        bad = listing.problems(want)
        if bad:
            return (
                f"Not enough {label} dataset is found: expected {len(want)} files, found "
                f"{len(want) - len(bad)} complete in {where} ({_shown(bad)}); "
                "run with --dlio-generate auto"
            )
    return None


def incomplete_message(files: list[DataFile], listing: Listing, where: str) -> str | None:
    """Why training can't run on the dataset (missing first, then empty, then wrong sizes), or None."""
    bad = listing.problems(files)
    if not bad:
        return None
    n = len(files)
    missing = [p for p in bad if p.kind == "missing"]
    if missing:
        return (
            f"dataset incomplete: {len(missing)} of {n} files missing under {where}, "
            f"first {missing[0].key}; generate it (datagen item / workflow.generate_data: True) "
            "or point dataset.data_folder at the generated data"
        )
    empty = [p for p in bad if p.kind == "empty"]
    if empty:
        return (
            f"dataset damaged: {len(empty)} of {n} files are empty under {where}, first {empty[0].key}; "
            "regenerate the dataset (--dlio-generate auto)"
        )
    first = bad[0]
    if first.kind == "plan":
        return (
            f"dataset does not match the config: {len(bad)} of {n} files under {where} were written for "
            f"other dataset settings, first {first}; regenerate it for this config (--dlio-generate auto)"
        )
    if first.recorded:
        fix = "the file changed after datagen wrote it; regenerate it (--dlio-generate auto)"
    else:
        fix = "regenerate the dataset for this config (or fix dataset.record_length_bytes)"
    return (
        f"dataset does not match the config: {len(bad)} of {n} files have the wrong size under {where}, "
        f"first {first}; {fix}"
    )


async def check_dataset(store: ObjectStore, files: list[DataFile]) -> None:
    """DlioError naming the first missing, empty or wrongly sized file, before any epoch runs."""
    if not files:
        return
    msg = incomplete_message(files, await list_dataset(store, files), str(store).rstrip("/"))
    if msg:
        raise DlioError(msg)
