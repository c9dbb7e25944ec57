"""MLPerf v3.0 DLIO reads parquet through a sliding window of row-group reads (``storage_options.
prefetch_window``, default 64, on ``prefetch_workers`` threads), whatever ``read_threads`` says: with 0
reader workers the reads still run ahead of the step, while the accelerator computes. Checked on the
figures the train item reports, through the engine, against a store that adds 25 ms to every request."""

from __future__ import annotations

import io
import uuid
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pytest_dlio.config.model import Dataset, Parquet, Reader, StorageConfig, TimeSpec, Train, WorkloadConfig
from pytest_dlio.config.scale import WINDOW_SHARE, scale_config
from pytest_dlio.engine import RunSettings
from pytest_dlio.engine.load import load_workload
from tests.test_train_loop import train_through_engine

ROWS, GROUP, FILES = 64, 16, 4  # 16 row groups of 16 rows: one a step


def parquet_cfg(window: int | None, compute: float = 0.03) -> WorkloadConfig:
    ds = Dataset(
        format="parquet",
        num_files_train=FILES,
        num_samples_per_file=ROWS,
        record_length_bytes=256,
        parquet=Parquet(row_group_size=GROUP),
    )
    options = () if window is None else (("prefetch_window", window),)
    return WorkloadConfig(
        framework="pytorch",
        dataset=ds,
        reader=Reader(batch_size=GROUP, read_threads=0, prefetch_size=0, file_shuffle="seed"),
        train=Train(epochs=1, computation_time=TimeSpec(mean=compute)),
        storage=StorageConfig(storage_options=options),
    )


def test_row_groups_are_read_ahead_with_zero_read_threads(tmp_path: Path) -> None:
    """25 ms a row group against 30 ms of compute a step: with a window of 2 the reads hide behind the
    compute (AU near 100 %); with ``prefetch_window: 0`` each step waits for its own read (AU ~55 %)."""
    au: dict[int, float] = {}
    for window in (2, 0):
        cfg = parquet_cfg(window)
        assert cfg.row_group_window == window and cfg.data_store_threads == max(1, window)
        res, _ = train_through_engine(
            cfg, f"mem://pq-{uuid.uuid4().hex[:8]}?latency_ms=25", tmp_path / str(window)
        )
        assert res.ok, res.failure
        assert res.value("steps") == FILES * ROWS // GROUP
        au[window] = float(res.value("train_au_mean_percentage"))  # type: ignore[arg-type]
    assert au[2] >= 85 > 70 >= au[0], au


def test_each_row_group_is_read_once_an_epoch_whatever_the_order(tmp_path: Path) -> None:
    """Rows shuffled across files: a batch needs row groups from every file, yet the window reads each
    row group the epoch touches once (DLIO's window walks the row groups, it never rereads one), and the
    bytes the item reports are the footers and those spans."""
    cfg = parquet_cfg(None, compute=0.0)
    cfg = replace(
        cfg, reader=replace(cfg.reader, sample_shuffle="seed", file_shuffle="seed"), train=Train(epochs=2)
    )
    assert cfg.row_group_window == 64
    res, wl = train_through_engine(cfg, (tmp_path / "data").as_uri(), tmp_path)
    assert res.ok, res.failure
    files = sorted((tmp_path / "data" / "data" / "train").iterdir())
    assert len(files) == FILES
    spans = footers = 0
    for path in files:
        data = path.read_bytes()
        meta = pq.read_metadata(io.BytesIO(data))
        footers += min(len(data), 64 * 1024)  # one suffix request holds these small footers
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            cols = [group.column(c) for c in range(group.num_columns)]
            spans += max(c.data_page_offset + c.total_compressed_size for c in cols) - min(
                c.data_page_offset for c in cols
            )
    # footers once a run, each of the 16 row groups once in each of the 2 epochs
    assert res.value("read_count") == FILES + 2 * FILES * (ROWS // GROUP)
    assert res.value("read_bytes") == footers + 2 * spans


@pytest.mark.parametrize("name,cut", [("dlrm_b200", 7), ("dlrm_mi355", 3)])
def test_scaling_cuts_the_window_to_a_share_of_the_epoch(tmp_path: Path, name: str, cut: int) -> None:
    """At smoke a 64-row-group window would read dlrm's whole ~56-row-group epoch during the first step,
    which AU leaves out: the scaled config keeps at most 1/8 of an epoch ahead over all its readers (but
    never less than one batch's row groups: dlrm_mi355's 18432-row batch is 3 of them) and says so; the
    full-size config keeps DLIO's 64."""
    full = load_workload(f"mlperf-v3.0/{name}", RunSettings(data_root=tmp_path, output_root=tmp_path))
    assert full.row_group_window == 64
    smoke = load_workload(
        f"mlperf-v3.0/{name}", RunSettings(data_root=tmp_path, output_root=tmp_path, scale="smoke")
    )
    group = min(smoke.dataset.parquet.row_group_size, smoke.dataset.num_samples_per_file)
    units = smoke.steps_per_epoch() * smoke.reader.batch_size // group
    readers = max(1, smoke.reader.read_threads)
    per_batch = -(-smoke.reader.batch_size // group)
    assert smoke.row_group_window == cut == max(per_batch, units // (WINDOW_SHARE * readers))
    assert smoke.data_store_threads == readers * cut
    assert f"parquet read-ahead cut from 64 to {cut} row groups per reader" in smoke.source.notes[-1]
    again = scale_config(smoke, 0.5, smoke=True)  # scaling a scaled config keeps the key once
    assert [k for k, _ in again.storage.storage_options].count("prefetch_window") == 1
