"""Plan-time refusal of datasets and checkpoint plans beyond what the target can hold, naming the sizes:
arithmetic on the config, before anything is listed, enumerated or written."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path

import pytest

from pytest_dlio.errors import DlioError
from pytest_dlio.options import parse_size
from pytest_dlio.phases import capacity
from pytest_dlio.storage.factory import open_store
from pytest_dlio.storage.pytest_plugin import get_storage_session
from tests._junit import read_cases
from tests.conftest import run

PETABYTE = """
model:
  name: huge
framework: pytorch
workflow:
  generate_data: true
  train: false
dataset:
  data_folder: data/huge
  format: npy
  num_files_train: 1000000
  num_files_eval: 0
  record_length_bytes: 1000000000
"""

BIG_CHECKPOINT = """
model:
  name: bigck
  model_size_bytes: 100000000000000
framework: pytorch
workflow:
  checkpoint: true
  train: false
checkpoint:
  checkpoint_folder: checkpoints/bigck
  num_checkpoints_write: 3
  num_checkpoints_read: 0
"""


def failure(pytester: pytest.Pytester, name: str, text: str, *args: str) -> str:
    pytester.makefile(".yaml", **{name: text})
    result = run(
        pytester, "--dlio-config", f"{name}.yaml", "--dlio-data-root", "root", "--junitxml=out.xml", *args
    )
    result.assert_outcomes(passed=1, failed=1)
    (bad,) = [c for c in read_cases(pytester.path / "out.xml") if c.outcome == "failed"]
    return bad.message


def test_petabyte_dataset_on_a_local_folder_is_refused_naming_both_sizes(pytester: pytest.Pytester) -> None:
    msg = failure(pytester, "huge", PETABYTE)
    total = shutil.disk_usage(pytester.path).total
    assert "huge: the dataset: 909.49 TiB to write, but" in msg and "can hold at most" in msg
    assert capacity.human(total) in msg and "--dlio-storage" in msg
    assert not (pytester.path / "root/data/huge").exists()  # nothing written, nothing listed


def test_dataset_beyond_host_memory_on_mem_is_refused(pytester: pytest.Pytester) -> None:
    mem = capacity.host_memory()
    assert mem
    msg = failure(pytester, "huge", PETABYTE, "--dlio-storage", f"mem://cap-{uuid.uuid4().hex}")
    assert f"this host's {capacity.human(mem)} of memory" in msg and "909.49 TiB" in msg


def test_checkpoint_plan_beyond_host_memory_on_mem_is_refused(pytester: pytest.Pytester) -> None:
    msg = failure(pytester, "bigck", BIG_CHECKPOINT, "--dlio-storage", f"mem://cap-{uuid.uuid4().hex}")
    assert "bigck: the checkpoints: 272.85 TiB to write" in msg and "of memory" in msg


def test_max_bytes_caps_any_target(pytester: pytest.Pytester) -> None:
    small = PETABYTE.replace("1000000000", "4096").replace("1000000\n", "16\n")  # 64 KiB of data
    msg = failure(pytester, "huge", small, "--dlio-max-bytes", "10KiB")
    assert "64.00 KiB to write" in msg and "--dlio-max-bytes is 10.00 KiB" in msg


def test_object_store_cap_and_its_override(request: pytest.FixtureRequest) -> None:
    pytest.importorskip("boto3")
    session = get_storage_session(request.config)

    async def main() -> None:
        store = await session.open(f"s3://dlio-cap/{uuid.uuid4().hex[:8]}")
        try:
            with pytest.raises(
                DlioError,
                match=r"20.00 TiB to write, .* at most 10.00 TiB: object stores are capped "
                r"at 10.00 TiB; .*--dlio-max-bytes SIZE",
            ):
                capacity.check_fits("d", 20 * 2**40, store, None)
            capacity.check_fits("d", 20 * 2**40, store, parse_size("30TiB"))  # raised: fits
            with pytest.raises(DlioError, match="raise --dlio-max-bytes"):
                capacity.check_fits("d", 20 * 2**40, store, parse_size("15TB"))
        finally:
            await store.close()

    asyncio.run(main())


def test_whole_filesystem_not_free_space_bounds_a_local_dataset(tmp_path: Path) -> None:
    """A dataset already generated may fill the disk: only more than the whole filesystem is refused here."""
    store = open_store(f"file://{tmp_path}/not/yet/there")
    total = shutil.disk_usage(tmp_path).total
    capacity.check_fits("d", total, store, None)
    with pytest.raises(DlioError, match="in all"):
        capacity.check_fits("d", total + 1, store, None)


@pytest.mark.parametrize(
    "text,want",
    [
        ("1000", 1000),
        ("200GB", 200 * 10**9),
        ("1.5TiB", int(1.5 * 2**40)),
        ("2 pb", 2 * 10**15),
        ("64k", 64000),
    ],
)
def test_parse_size(text: str, want: int) -> None:
    assert parse_size(text) == want


@pytest.mark.parametrize("text", ["", "abc", "-5GB", "0", "nan", "inf", "5XB", "1e400"])
def test_parse_size_refuses(text: str) -> None:
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="expected a size"):
        parse_size(text)
