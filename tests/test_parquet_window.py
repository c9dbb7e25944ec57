"""MLPerf v3.0 DLIO reads parquet through a sliding window of row-group reads (``storage_options.
prefetch_window``, default 64, on ``prefetch_workers`` threads), whatever ``read_threads`` says: with 0
reader workers the reads still run ahead of the step, while the accelerator computes. Checked on the
figures the train item reports, through the engine, against a store that adds 25 ms to every request."""

from __future__ import annotations

import asyncio
import io
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pytest_dlio.config.model import Dataset, Parquet, Reader, StorageConfig, TimeSpec, Train, WorkloadConfig
from pytest_dlio.config.scale import WINDOW_SHARE, scale_config
from pytest_dlio.engine import RunSettings
from pytest_dlio.engine.load import load_workload
from pytest_dlio.errors import DlioError
from pytest_dlio.phases.loader import RowBatch
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
    bytes the item reports are the footers, read again every epoch as DLIO's readers do, and those spans."""
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
    # each epoch: every footer, then each of the 16 row groups once; 2 epochs
    assert res.value("read_count") == 2 * (FILES + FILES * (ROWS // GROUP))
    assert res.value("read_bytes") == 2 * (footers + spans)


def test_the_window_threads_start_before_the_clock_and_end_with_the_run(tmp_path: Path) -> None:
    """On local files the window reads on threads of its own: started before the first epoch's clock
    (started on the first reads, 6 threads cost dlrm_mi355's first step ~3 ms), kept for every epoch, and
    stopped when training ends — none is left behind in the process."""
    import threading
    import time

    before = {t.ident for t in threading.enumerate() if t.name.startswith("dlio-rg")}
    cfg = replace(parquet_cfg(2, compute=0.0), train=Train(epochs=3))
    res, _ = train_through_engine(cfg, (tmp_path / "data").as_uri(), tmp_path)
    assert res.ok, res.failure
    assert res.value("read_count") == 3 * (FILES + FILES * (ROWS // GROUP))  # footers again every epoch
    deadline = time.monotonic() + 10
    while True:
        left = [t for t in threading.enumerate() if t.name.startswith("dlio-rg") and t.ident not in before]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert left == []


def test_the_first_step_does_not_wait_for_the_whole_epoch_to_be_planned(tmp_path: Path) -> None:
    """The window plans batches as it reaches them: with 8192 one-row batches (full-size dlrm_b200 has
    128,000 an epoch) the first step waits for its own row group, not for every batch to be cut into
    runs first (~40 us a batch: 0.34 s of this 0.47 s epoch; ~5 s for dlrm_b200's). The first step still
    reads the footers, as DLIO's first does."""
    cfg = parquet_cfg(4, compute=0.0)
    cfg = replace(
        cfg,
        dataset=replace(cfg.dataset, num_files_train=8, num_samples_per_file=1024),
        reader=replace(cfg.reader, batch_size=1),
        train=Train(epochs=1),
    )
    res, wl = train_through_engine(cfg, f"mem://pq-{uuid.uuid4().hex[:8]}", tmp_path)
    assert res.ok, res.failure
    (epoch,) = wl.train_run.timeline.epochs
    steps = [s for b in epoch.blocks for s in b.steps]
    assert len(steps) == 8192
    took = epoch.blocks[-1].t_end - epoch.blocks[0].t_start
    assert steps[0].load < 0.1 * took, (steps[0].load, took)


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


def test_read_type_memory_and_odirect_keep_their_read_paths(tmp_path: Path) -> None:
    """``read_type: memory`` keeps parquet's row-group units but not the window (its runs are per sample):
    training runs as before. An O_DIRECT store has no page-cached blocking range read, so a window over
    direct:// reads through the store's own O_DIRECT path."""
    from pytest_dlio.storage.direct import DirectStore

    cfg = parquet_cfg(None, compute=0.0)
    memory = replace(cfg, reader=replace(cfg.reader, read_type="memory"))
    res, _ = train_through_engine(memory, (tmp_path / "mem").as_uri(), tmp_path / "m")
    assert res.ok, res.failure
    assert res.value("steps") == FILES * ROWS // GROUP
    direct = DirectStore("direct:///x", tmp_path / "d")
    assert direct.blocking_get_range() is None and direct.blocking_get_suffix() is None  # O_DIRECT's own
    res, _ = train_through_engine(cfg, "direct://" + str(tmp_path / "direct"), tmp_path / "d")
    assert res.ok, res.failure


def _damaged_footers(s, cfg: WorkloadConfig, at: list[int]) -> list[str]:  # type: ignore[no-untyped-def]
    """The keys of the files at positions ``at`` of epoch 1's order (files in order of first need), each
    given a footer length past its end; awaitable."""
    from pytest_dlio.phases.sampler import epoch_order

    async def go() -> list[str]:
        order = epoch_order(cfg, 1, 0, 1, shared_seed=0) // ROWS
        files = list(dict.fromkeys(order.tolist()))
        keys = [f"train/img_{files[i]}_of_{FILES}.parquet" for i in at]
        for key in keys:
            data = bytes(await s.get(key))
            await s.put(key, data[:-12] + (10**7).to_bytes(4, "little") + b"PAR1")
        return keys

    return go()


@pytest.mark.parametrize("where", ["file", "mem"])
def test_a_bad_footer_past_the_first_file_names_the_file(tmp_path: Path, where: str) -> None:
    """The footers after the first are read concurrently (on local files by the window's threads, else
    as requests on the event loop); a damaged one fails training with the file's own error (not an
    ExceptionGroup reported as a bug)."""
    from tests.test_train_loop import fill

    cfg = parquet_cfg(None, compute=0.0)

    async def go() -> None:
        from pytest_dlio.phases.train import run_training
        from pytest_dlio.ranks import SingleComm
        from pytest_dlio.storage import open_store

        uri = (tmp_path / "d").as_uri() if where == "file" else f"mem://bad-{uuid.uuid4().hex[:8]}"
        async with open_store(uri) as s:
            await fill(s, cfg)
            await _damaged_footers(s, cfg, [1])  # past the first, whose footer is read alone
            await run_training(cfg, s, comm=SingleComm())

    with pytest.raises(DlioError, match=r"train/img_\d_of_4\.parquet: not a parquet file .*regenerate"):
        asyncio.run(go())


def test_of_two_bad_footers_the_first_in_the_epoch_is_named(tmp_path: Path) -> None:
    """On local files two readers read the epoch's footers after the first, one after another each
    (files 1 and 3, and 2, as DLIO's readers k and k + n): with files 2 and 3 damaged, reader 1 meets file
    2 after reader 0 met file 3, and the error names file 2, the first the epoch needs."""
    from tests.test_train_loop import fill

    cfg = parquet_cfg(None, compute=0.0)
    cfg = replace(cfg, reader=replace(cfg.reader, read_threads=2))
    assert cfg.data_store_threads >= 2

    async def go() -> tuple[str, str]:
        from pytest_dlio.phases.train import run_training
        from pytest_dlio.ranks import SingleComm
        from pytest_dlio.storage import open_store

        async with open_store((tmp_path / "d").as_uri()) as s:
            await fill(s, cfg)
            first_bad, _ = await _damaged_footers(s, cfg, [2, 3])
            with pytest.raises(DlioError) as got:
                await run_training(cfg, s, comm=SingleComm())
            return first_bad, str(got.value)

    first_bad, message = asyncio.run(go())
    assert message.startswith(f"{first_bad}: not a parquet file"), message


def _counting_store(root: Path, served: list[int], *, delay: float = 0.0, blocking: bool = True):  # type: ignore[no-untyped-def]
    """A file store that records the bytes of every range it serves, each after ``delay`` seconds; with
    ``blocking`` False it has no blocking range read (as DirectStore, the wrappers and S3), so the window
    reads through tasks on the event loop."""
    import time

    from pytest_dlio.storage.file import RANGE_BUFFERS, FileStore, _get_range_pooled

    class Counting(FileStore):
        def blocking_get_range(self):  # type: ignore[no-untyped-def]
            read = super().blocking_get_range()
            assert read is not None
            if not blocking:
                return None

            def counted(key: str, start: int, length: int):  # type: ignore[no-untyped-def]
                time.sleep(delay)
                got = read(key, start, length)
                served.append(len(got.data))
                return got

            return counted

        async def _get_range_pooled(self, key, start, length):  # type: ignore[no-untyped-def]
            def one():  # type: ignore[no-untyped-def]
                time.sleep(delay)
                got = _get_range_pooled(self.root / key, start, length, RANGE_BUFFERS)
                served.append(len(got.data))
                return got

            return await self._io.run("get_range", key, one)

    return Counting(root.as_uri(), root, threads=8)


def _leave_after_one_batch(store, cfg: WorkloadConfig, *, cancel_drain: bool = False):  # type: ignore[no-untyped-def]
    """The window's reads of ``cfg`` from ``store``: one batch taken, then the epoch left (with
    ``cancel_drain``, the leaving cancelled while it waits for the reads still running)."""
    from pytest_dlio.layout import dataset_files
    from pytest_dlio.phases.loader import Loader
    from pytest_dlio.phases.sampler import epoch_order
    from pytest_dlio.timeline import Reads
    from tests.test_train_loop import fill

    files = [f for f in dataset_files(cfg) if f.split == "train"]

    async def go() -> Reads:
        await fill(store, cfg)
        reads = Reads()
        loader = Loader(cfg, store, files, reads, None, np.random.default_rng(0))
        it = loader.batches(epoch_order(cfg, 1, 0, 1, shared_seed=0), GROUP)
        await anext(it)
        if cancel_drain:
            closing = asyncio.ensure_future(it.aclose())
            await asyncio.sleep(0.05)  # it now waits for the reads still running
            closing.cancel()
            with pytest.raises(asyncio.CancelledError):
                await closing
        else:
            await it.aclose()
        loader.close()
        await store.close()
        return reads

    return asyncio.run(go())


def test_an_epoch_left_early_counts_every_row_group_it_read(tmp_path: Path) -> None:
    """A consumer that leaves after one batch (an error, a cancelled run): the window's reads still running
    finish and are counted, so the reads reported are every range the store served."""
    from pytest_dlio.storage.file import RANGE_BUFFERS

    served: list[int] = []
    free_before = len(RANGE_BUFFERS._free)
    reads = _leave_after_one_batch(_counting_store(tmp_path / "d", served), parquet_cfg(None, compute=0.0))
    footers = FILES  # one suffix read each
    assert len(served) >= 1 and len(reads.nbytes) == footers + len(served)
    assert sorted(reads.nbytes[footers:]) == sorted(served)
    assert len(RANGE_BUFFERS._free) >= free_before  # every buffer the reads took came back


def test_a_phase_cancelled_while_the_window_drains_still_counts_its_reads(tmp_path: Path) -> None:
    """Cancelled (a rank aborts, Ctrl-C) while the epoch waits for its running window reads: they are
    still counted before the cancellation goes on (the count was skipped)."""
    served: list[int] = []
    store = _counting_store(tmp_path / "d", served, delay=0.2)
    reads = _leave_after_one_batch(store, parquet_cfg(8, compute=0.0), cancel_drain=True)
    assert len(served) > 1 and sorted(reads.nbytes[FILES:]) == sorted(served)


def test_an_epoch_left_early_counts_the_reads_running_on_the_event_loop(tmp_path: Path) -> None:
    """Stores without a blocking range read (O_DIRECT, wrappers, S3) run the window's reads as tasks: left
    early, those in flight finish and are counted (they were cancelled, while the store's thread read on
    and its bytes went uncounted: 9 ranges served, 8 counted)."""
    served: list[int] = []
    store = _counting_store(tmp_path / "d", served, delay=0.05, blocking=False)
    reads = _leave_after_one_batch(store, parquet_cfg(8, compute=0.0))
    assert len(served) > 1 and sorted(reads.nbytes[FILES:]) == sorted(served)


def test_shuffled_rows_do_not_plan_the_epoch_inside_one_step(tmp_path: Path) -> None:
    """Shuffled rows meet every row group in the first steps; once all are started, a step's wait must not
    go on to plan the rest of the epoch looking for another (one step planned 1946 of 2048 batches)."""
    from pytest_dlio.layout import dataset_files
    from pytest_dlio.phases.loader import Loader
    from pytest_dlio.phases.sampler import epoch_order
    from pytest_dlio.storage.factory import open_store
    from pytest_dlio.timeline import Reads
    from tests.test_train_loop import fill

    cfg = parquet_cfg(16, compute=0.0)
    cfg = replace(
        cfg,
        dataset=replace(
            cfg.dataset, num_samples_per_file=8192, record_length_bytes=8, parquet=Parquet(row_group_size=128)
        ),
        reader=replace(cfg.reader, batch_size=16, sample_shuffle="seed", file_shuffle="seed"),
    )
    files = [f for f in dataset_files(cfg) if f.split == "train"]
    planned: list[int] = []

    class Watched(Loader):
        def _runs(self, indices):  # type: ignore[no-untyped-def]
            planned[-1] += 1
            return super()._runs(indices)

    async def go() -> None:
        async with open_store(f"mem://pq-{uuid.uuid4().hex[:8]}") as store:
            await fill(store, cfg)
            loader = Watched(cfg, store, files, Reads(), None, np.random.default_rng(0), recycle=True)
            order = epoch_order(cfg, 1, 0, 1, shared_seed=0)
            it = loader.batches(order, 16)
            for _ in range(len(order) // 16):
                planned.append(0)
                await anext(it)
                loader.idle()  # what each step's compute does
            await it.aclose()
            loader.close()

    asyncio.run(go())
    assert len(planned) == 2048 and max(planned) <= 64, max(planned)


def test_the_plan_token_follows_what_the_writer_writes() -> None:
    """A column's read flag and read_mode are the reader's: flipping them keeps the token (the bytes are the
    same); a column's dtype or the row-group size changes it."""
    from pytest_dlio.config.model import ParquetColumn
    from pytest_dlio.layout import plan_token

    cols = (ParquetColumn("a", "float32", 4), ParquetColumn("b", "int8"))
    ds = Dataset(format="parquet", num_samples_per_file=64, parquet=Parquet(columns=cols, row_group_size=16))
    base = plan_token(ds, (1,), "uint8")
    flags = replace(
        ds,
        parquet=replace(ds.parquet, columns=(cols[0], replace(cols[1], read=False)), read_mode="row_group"),
    )
    assert plan_token(flags, (1,), "uint8") == base
    assert plan_token(replace(ds, parquet=replace(ds.parquet, row_group_size=8)), (1,), "uint8") != base
    typed = replace(ds, parquet=replace(ds.parquet, columns=(cols[0], replace(cols[1], dtype="int16"))))
    assert plan_token(typed, (1,), "uint8") != base


def test_a_parquet_file_with_other_rows_than_the_config_is_refused(tmp_path: Path) -> None:
    """A marker written before plans (or a file copied in) cannot tell a dataset of other settings: the
    footer can, and training refuses a file whose row count is not the config's."""
    from pytest_dlio.phases.dataset import MARKER_PREFIX
    from pytest_dlio.phases.train import run_training
    from pytest_dlio.ranks import SingleComm
    from pytest_dlio.storage import open_store
    from tests.test_train_loop import fill

    small = parquet_cfg(None, compute=0.0)
    bigger = replace(small, dataset=replace(small.dataset, num_samples_per_file=ROWS * 2))

    async def go() -> None:
        async with open_store((tmp_path / "d").as_uri()) as s:
            await fill(s, small)
            await run_training(bigger, s, comm=SingleComm())

    assert not (tmp_path / "d" / MARKER_PREFIX).exists()  # no markers at all: judged by the footer
    with pytest.raises(
        DlioError, match=rf"footer says {ROWS} rows, the config {2 * ROWS} a file .*--dlio-generate always"
    ):
        asyncio.run(go())


def test_a_row_batch_is_the_list_of_its_rows() -> None:
    """A window batch holds runs of one row group's value each, not an entry per row; read as a sequence
    it is the list DLIO's collate would hold: length, order, indexing and equality."""
    a, b = object(), object()
    rows = [a] * 3 + [b] + [a] * 2
    got = RowBatch([(a, 3), (b, 1), (a, 2)])
    assert len(got) == 6 and list(got) == rows and got == rows and got == RowBatch([(a, 3), (b, 1), (a, 2)])
    assert got != rows[::-1] and got != rows[:-1] and got != tuple(rows) and got != RowBatch([(a, 6)])
    assert [got[i] for i in range(-6, 6)] == rows + rows
    assert got[1:5] == rows[1:5]
    for bad in (6, -7):
        with pytest.raises(IndexError):
            got[bad]
    with pytest.raises(TypeError):
        got[1.5]  # type: ignore[index]
    assert len(RowBatch([])) == 0 and list(RowBatch([])) == []


def test_a_row_group_taken_ready_starts_the_next_read_inside_the_compute() -> None:
    """DLIO's window starts one more read as each row group is taken. A step that waits for its row group
    starts every read due first (they run while it waits); one whose row group is already read leaves the
    next read to the step's compute (``Loader.idle``), off the step's path: on ``mem://`` dlrm_b200's
    0.375 ms steps spent ~20 us of each starting it there. Every row group is still read once."""
    from pytest_dlio.layout import dataset_files
    from pytest_dlio.phases.loader import Loader
    from pytest_dlio.phases.sampler import epoch_order
    from pytest_dlio.storage.factory import open_store
    from pytest_dlio.timeline import Reads
    from tests.test_train_loop import Recording, fill

    cfg = parquet_cfg(2, compute=0.0)  # one row group a batch, 2 reads ahead, tasks on the loop (mem://)
    files = [f for f in dataset_files(cfg) if f.split == "train"]

    async def go() -> tuple[list[int], int]:
        store = Recording(open_store(f"mem://ahead-{uuid.uuid4().hex[:8]}"))
        await fill(store, cfg)
        loader = Loader(cfg, store, files, Reads(), None, np.random.default_rng(0))
        it = loader.batches(epoch_order(cfg, 1, 0, 1, shared_seed=0), GROUP)
        seen = []

        async def settle() -> int:
            for _ in range(5):
                await asyncio.sleep(0)
            return len(store.ranges)

        await anext(it)  # waited for row group 0: 1 and 2 started before it waited
        seen.append(await settle())
        await anext(it)  # row group 1 was read: the step starts nothing
        seen.append(await settle())
        loader.idle()  # the compute: row group 3, due since 1 was taken, starts
        seen.append(await settle())
        n = 2
        async for _ in it:
            n += 1
        ranges = list(store.ranges)
        loader.close()
        await store.close()
        assert len(set(ranges)) == len(ranges)  # each once
        return seen, n

    seen, batches = asyncio.run(go())
    assert seen == [3, 3, 4]
    assert batches == FILES * ROWS // GROUP


@pytest.mark.parametrize("where", ["file", "mem"])
def test_every_epoch_reads_every_footer_again(
    tmp_path: Path, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DLIO's parquet reader drops a file's footer once its window moves past the file (and all of them
    at the epoch's end), so each epoch reads every footer again before its first row group: on local
    files on the window's threads (never a request through the event loop), elsewhere on the event
    loop. Each footer is one request (the sizes are known after the first), and the item's bytes count
    them all."""
    from pytest_dlio.storage.file import FileStore

    async def no_loop_suffix(self, key, n):  # type: ignore[no-untyped-def]
        raise AssertionError(f"footer of {key} read through the event loop")

    if where == "file":
        monkeypatch.setattr(FileStore, "_get_suffix", no_loop_suffix)
    cfg = replace(parquet_cfg(2, compute=0.0), train=Train(epochs=3))
    uri = (tmp_path / "data").as_uri() if where == "file" else f"mem://every-{uuid.uuid4().hex[:8]}"
    res, _ = train_through_engine(cfg, uri, tmp_path)
    assert res.ok, res.failure
    groups = FILES * (ROWS // GROUP)
    assert res.value("read_count") == 3 * (FILES + groups)


@pytest.mark.parametrize("where", ["file", "mem"])
def test_a_footer_that_does_not_parse_names_the_file(tmp_path: Path, where: str) -> None:
    """A footer of a plausible length whose bytes are not a parquet footer (pyarrow's own OSError) fails
    training with a DlioError naming the file, on both read paths: not a bare OSError, an
    ExceptionGroup or a traceback."""
    from tests.test_train_loop import fill

    cfg = parquet_cfg(None, compute=0.0)

    async def go() -> tuple[str, str]:
        from pytest_dlio.phases.sampler import epoch_order
        from pytest_dlio.phases.train import run_training
        from pytest_dlio.ranks import SingleComm
        from pytest_dlio.storage import open_store

        uri = (tmp_path / "d").as_uri() if where == "file" else f"mem://garbled-{uuid.uuid4().hex[:8]}"
        async with open_store(uri) as s:
            await fill(s, cfg)
            files = list(dict.fromkeys((epoch_order(cfg, 1, 0, 1, shared_seed=0) // ROWS).tolist()))
            key = f"train/img_{files[2]}_of_{FILES}.parquet"
            data = bytes(await s.get(key))
            n = int.from_bytes(data[-8:-4], "little")
            await s.put(key, data[: -8 - n] + b"\xff" * n + data[-8:])  # its length kept, its bytes not
            with pytest.raises(DlioError) as got:
                await run_training(cfg, s, comm=SingleComm())
            return key, str(got.value)

    key, message = asyncio.run(go())
    assert message.startswith(f"{key}: not a parquet file (its "), message
    assert "-byte footer does not parse" in message


def _footer_store(root: Path, around):  # type: ignore[no-untyped-def]
    """A file store whose footer reads on the window's threads go through ``around(read, key, n)``."""
    from pytest_dlio.storage.file import FileStore

    class Around(FileStore):
        def blocking_get_suffix(self):  # type: ignore[no-untyped-def]
            read = super().blocking_get_suffix()
            assert read is not None
            return lambda key, n: around(read, key, n)

    return Around(root.as_uri(), root, threads=8)


def _readers_cfg(files_n: int) -> WorkloadConfig:
    """``files_n`` files, their footers read by 2 readers."""
    cfg = parquet_cfg(None, compute=0.0)
    return replace(
        cfg, dataset=replace(cfg.dataset, num_files_train=files_n), reader=replace(cfg.reader, read_threads=2)
    )


def test_after_a_bad_footer_the_readers_stop_and_ask_for_no_more(tmp_path: Path) -> None:
    """A damaged file whose last bytes claim a 60 MiB footer: its reader fails, the other reader starts
    no footer past it (each good footer takes 50 ms here, the failure well under that), and the claim
    does not size the next requests (they would have read whole files)."""
    import time

    from pytest_dlio.phases.train import run_training
    from pytest_dlio.ranks import SingleComm
    from tests.test_train_loop import fill

    asked: list[tuple[str, int]] = []
    files_n = 16
    cfg = _readers_cfg(files_n)
    bad: list[str] = []

    def slow(read, key: str, n: int):  # type: ignore[no-untyped-def]
        asked.append((key, n))
        if key not in bad:
            time.sleep(0.05)
        return read(key, n)

    async def go() -> None:
        from pytest_dlio.phases.sampler import epoch_order

        root = tmp_path / "d"
        async with _footer_store(root, slow) as s:
            await fill(s, cfg)
            files = list(dict.fromkeys((epoch_order(cfg, 1, 0, 1, shared_seed=0) // ROWS).tolist()))
            key = f"train/img_{files[1]:02d}_of_{files_n}.parquet"
            data = bytes(await s.get(key))
            await s.put(key, data[:-8] + (60 << 20).to_bytes(4, "little") + b"PAR1")
            bad.append(key)
            await run_training(cfg, s, comm=SingleComm())

    with pytest.raises(DlioError, match=r"not a parquet file"):
        asyncio.run(go())
    others = [n for key, n in asked if key not in bad]
    assert max(others) <= 64 * 1024  # the claim never sized a request
    # the first file alone, then the good reader (files 2, 4, ...) at most one footer past the failure
    assert len(others) <= 3, asked


def test_a_footer_readers_own_error_is_raised_after_every_read_is_counted(tmp_path: Path) -> None:
    """Not the file's error (a bug, a MemoryError): the reader that meets it hands back the footers it
    read, so every request the store served is counted before the error leaves, and the other readers
    stop."""
    from pytest_dlio.layout import dataset_files
    from pytest_dlio.phases.loader import Loader
    from pytest_dlio.timeline import Reads
    from tests.test_train_loop import fill

    cfg = _readers_cfg(8)
    files = [f for f in dataset_files(cfg) if f.split == "train"]
    served: list[str] = []

    def buggy(read, key: str, n: int):  # type: ignore[no-untyped-def]
        if key == files[3].key:
            raise RuntimeError("a bug in the store")
        got = read(key, n)
        served.append(key)
        return got

    async def go() -> Reads:
        root = tmp_path / "d"
        async with _footer_store(root, buggy) as s:
            await fill(s, cfg)
            reads = Reads()
            loader = Loader(cfg, s, files, reads, None, np.random.default_rng(0))
            try:
                with pytest.raises(RuntimeError, match="a bug in the store"):
                    await loader._locate_epoch(files, loader._own_window_pool())
            finally:
                loader.close()
            return reads

    reads = asyncio.run(go())
    assert {files[0].key, files[1].key} <= set(served)  # alone, then reader 0's first (reader 1 may stop)
    assert len(reads.nbytes) == len(served)
