"""``dataset.keep_files: false`` deletes exactly what the run itself wrote, end to end through pytest:
never a dataset an earlier run left, never a foreign file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests._junit import properties_by_name
from tests.conftest import run

TINY = """
model:
  name: tiny
framework: pytorch
workflow:
  generate_data: true
  train: true
dataset:
  data_folder: data/tiny
  format: npz
  num_files_train: 8
  num_files_eval: 0
  record_length_bytes: 4096
reader:
  batch_size: 2
train:
  epochs: 1
  computation_time: 0.0
metric:
  au: 0.0
"""


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def dlio(pytester: pytest.Pytester, *args: str) -> dict[str, dict[str, str]]:
    result = run(
        pytester, "--dlio-config", "tiny.yaml", "--dlio-data-root", "root", "--junitxml=out.xml", *args
    )
    result.assert_outcomes(passed=4)
    return properties_by_name(pytester.path / "out.xml")


def test_keep_files_false_deletes_only_what_this_run_wrote(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", tiny=TINY)
    data = pytester.path / "root/data/tiny"
    first = dlio(pytester)  # keep_files defaults to true: the dataset stays
    assert first["datagen"]["datagen_files_written"] == "8"
    foreign = {"train/notes.txt": b"mine", "README": b"not the benchmark's", "train/.hidden.dlio-tmp-x": b"?"}
    for rel, body in foreign.items():
        (data / rel).write_bytes(body)
    earlier = tree(data)

    # a run that generates nothing deletes nothing: the dataset came from the earlier run
    second = dlio(pytester, "--dlio-set", "dataset.keep_files=false")
    assert second["datagen"]["datagen_files_written"] == "0"
    assert tree(data) == earlier

    # a run that generates half deletes only its half (and its markers), and no manifest stays behind
    gone = sorted(data.glob("train/*.npz"))[::2]
    for p in gone:
        p.unlink()
    third = dlio(pytester, "--dlio-set", "dataset.keep_files=false")
    assert third["datagen"]["datagen_files_written"] == str(len(gone))
    left = tree(data)
    kept = {
        k: v
        for k, v in earlier.items()
        if not any(k == f"train/{p.name}" or k.startswith(f".dlio/digests/train/{p.name}@") for p in gone)
    }
    assert left == kept
    assert all(left[rel] == body for rel, body in foreign.items())
    assert not (data / ".dlio/written").exists() or not list((data / ".dlio/written").iterdir())


def test_manifest_on_the_store_lists_what_a_run_wrote(pytester: pytest.Pytester) -> None:
    """While a keep_files: false run writes, the store names every key it wrote (a killed run leaves it)."""
    import asyncio

    from pytest_dlio.config.model import Dataset, WorkloadConfig
    from pytest_dlio.phases.datagen import generate, manifest_key
    from pytest_dlio.ranks import SingleComm
    from pytest_dlio.storage.factory import open_store

    c = WorkloadConfig(
        dataset=Dataset(format="jpeg", num_files_train=3, num_files_eval=0, record_length_bytes=256)
    )
    key = manifest_key("wl-host-1-x")
    stats = asyncio.run(generate(c, open_store(f"file://{pytester.path}"), comm=SingleComm(), manifest=key))
    doc = json.loads((pytester.path / key).read_text())
    assert doc["done"] is True and sorted(doc["keys"]) == sorted(stats.written_keys)
    assert len(stats.written_keys) == 6  # 3 files, 3 size markers (small files: no digest markers)
    assert all((pytester.path / k).exists() for k in doc["keys"])
