"""Completeness beyond size: datagen ``auto`` checks sampled blocks against the digest datagen recorded and
rewrites a damaged file; ``verify_data`` reads whole files and checks the format's own CRCs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from pytest_dlio.config.model import Dataset, Reader, WorkloadConfig
from pytest_dlio.layout import dataset_files
from pytest_dlio.phases import datagen, dataset
from pytest_dlio.phases.datagen import DatagenStats, generate
from pytest_dlio.phases.dataset import BLOCK, sample_ranges
from pytest_dlio.ranks import SingleComm
from pytest_dlio.storage.factory import open_store


@pytest.fixture(autouse=True)
def _digest_from_1mib(monkeypatch: pytest.MonkeyPatch) -> None:
    """Digests from 1 MiB files here (shipped: 8 MiB), so these tests write megabytes, not hundreds."""
    monkeypatch.setattr(datagen, "DIGEST_MIN", 1 << 20)


def cfg(**ds: Any) -> WorkloadConfig:
    base = {"format": "npz", "num_files_train": 4, "num_files_eval": 0, "record_length_bytes": 4096}
    return WorkloadConfig(dataset=Dataset(**{**base, **ds}), reader=Reader(write_threads=2))


def gen(c: WorkloadConfig, root: Path, **kw: Any) -> DatagenStats:
    return asyncio.run(generate(c, open_store(f"file://{root}"), comm=SingleComm(), **kw))


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def stamps(root: Path, c: WorkloadConfig) -> dict[str, int]:
    return {f.key: (root / f.key).stat().st_mtime_ns for f in dataset_files(c)}


@pytest.mark.parametrize("fmt", ["npz", "tfrecord"])
def test_auto_rewrites_only_the_byte_flipped_file(tmp_path: Path, fmt: str) -> None:
    c = cfg(format=fmt, num_samples_per_file=2, record_length_bytes=1 << 20)
    gen(c, tmp_path)
    victim = dataset_files(c)[2]
    path = tmp_path / victim.key
    before = stamps(tmp_path, c)
    off, n = sample_ranges(path.stat().st_size)[1]
    flip(path, off + n // 2)  # inside a sampled block: a record's data (tfrecord) / a member (npz)
    stats = gen(c, tmp_path)
    assert (stats.files_written, stats.files_damaged) == (1, 1)
    after = stamps(tmp_path, c)
    assert after[victim.key] != before[victim.key]
    assert {k: v for k, v in after.items() if k != victim.key} == {
        k: v for k, v in before.items() if k != victim.key
    }
    assert gen(c, tmp_path).files_written == 0  # the rewritten file is whole again


def test_flip_in_a_tfrecord_record_is_what_the_format_crc_catches_too(tmp_path: Path) -> None:
    c = cfg(format="tfrecord", num_samples_per_file=2)
    gen(c, tmp_path)
    f = dataset_files(c)[0]
    flip(tmp_path / f.key, 40)  # a byte of the first record's data
    why = dataset.checksum_problem("tfrecord", (tmp_path / f.key).read_bytes())
    assert why and "CRC mismatch" in why


def test_large_file_outside_the_sampled_blocks_needs_verify_data(tmp_path: Path) -> None:
    c = cfg(num_files_train=2, record_length_bytes=1 << 20)  # 1 MiB files: four 64 KiB blocks sampled
    gen(c, tmp_path)
    f = dataset_files(c)[1]
    size = (tmp_path / f.key).stat().st_size
    blocks = sample_ranges(size)
    assert sum(n for _, n in blocks) == 4 * BLOCK < size
    outside = blocks[0][1] + 100  # just past the head block, before the second one
    assert not any(o <= outside < o + n for o, n in blocks)
    flip(tmp_path / f.key, outside)
    assert gen(c, tmp_path).files_written == 0  # documented: auto reads only the sampled blocks
    stats = gen(c, tmp_path, verify_data=True)  # whole read: npz's zip CRC-32 catches it
    assert (stats.files_written, stats.files_damaged) == (1, 1)
    assert gen(c, tmp_path, verify_data=True).files_written == 0


def test_flip_inside_a_sampled_block_of_a_large_file_is_caught_by_auto(tmp_path: Path) -> None:
    c = cfg(num_files_train=2, record_length_bytes=1 << 20)
    gen(c, tmp_path)
    f = dataset_files(c)[0]
    size = (tmp_path / f.key).stat().st_size
    off, n = sample_ranges(size)[2]  # a strided block in the middle of the data
    flip(tmp_path / f.key, off + n // 2)
    assert gen(c, tmp_path).files_written == 1


def test_small_files_get_no_digest_marker(tmp_path: Path) -> None:
    """Below DIGEST_MIN one more object per file costs more than checking it is worth (documented)."""
    c = cfg()  # 4 KiB records: files far below DIGEST_MIN
    stats = gen(c, tmp_path)
    assert not any(k.startswith(dataset.DIGEST_PREFIX) for k in stats.written_keys)
    big = cfg(record_length_bytes=datagen.DIGEST_MIN)
    marked = [k for k in gen(big, tmp_path / "big").written_keys if k.startswith(dataset.DIGEST_PREFIX)]
    assert len(marked) == 4


def test_file_without_digest_is_checked_by_its_format_crc_under_verify_data(tmp_path: Path) -> None:
    c = cfg()
    gen(c, tmp_path)
    for marker in (tmp_path / ".dlio/digests").rglob("*@*"):
        marker.unlink()  # as if DLIO itself had written the dataset
    f = dataset_files(c)[3]
    flip(tmp_path / f.key, (tmp_path / f.key).stat().st_size // 2)
    assert gen(c, tmp_path).files_written == 0  # no digest: auto judges by size (documented)
    assert gen(c, tmp_path, verify_data=True).files_written == 1


def test_auto_reads_no_more_than_its_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    c = cfg(num_files_train=8, record_length_bytes=1 << 20)
    gen(c, tmp_path)
    monkeypatch.setattr(dataset, "VERIFY_FLOOR", 3 * 4 * BLOCK)  # room for three files' samples
    seen: list[str] = []
    real = dataset.ObjectStore.get_ranges

    async def spy(self: Any, key: str, ranges: Any) -> Any:
        seen.append(key)
        return await real(self, key, ranges)

    monkeypatch.setattr(dataset.ObjectStore, "get_ranges", spy)
    assert gen(c, tmp_path).files_written == 0
    assert len(seen) == 3 and len(set(seen)) == 3


GEN_ONLY = """
model:
  name: gen
framework: pytorch
workflow:
  generate_data: true
  train: false
dataset:
  data_folder: data/gen
  format: npz
  num_files_train: 3
  num_files_eval: 0
  record_length_bytes: 1048576
"""


def test_damage_is_reported_as_the_user_sees_it(pytester: pytest.Pytester) -> None:
    from tests._junit import properties_by_name
    from tests.conftest import run

    pytester.makefile(".yaml", gen=GEN_ONLY)

    def datagen(*args: str) -> dict[str, str]:
        run(
            pytester, "--dlio-config", "gen.yaml", "--dlio-data-root", "root", "--junitxml=out.xml", *args
        ).assert_outcomes(passed=2)
        return properties_by_name(pytester.path / "out.xml")["datagen"]

    assert datagen()["datagen_files_written"] == "3"
    victim = sorted((pytester.path / "root/data/gen/train").glob("*.npz"))[1]
    size = victim.stat().st_size
    flip(victim, sample_ranges(size)[0][1] + 10)  # outside the sampled blocks: only a whole read sees it
    assert datagen()["datagen_files_damaged"] == "0"
    props = datagen("--dlio-verify-data")
    assert (
        props["datagen_files_damaged"],
        props["datagen_files_written"],
        props["datagen_files_skipped"],
    ) == ("1", "1", "2")
