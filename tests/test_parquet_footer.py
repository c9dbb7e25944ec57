"""A parquet file's footer costs the loader one request when it fits a 64 KiB suffix, two otherwise:
counted as HTTP requests on the wire, through the loopback proxy in front of the real moto server."""

from __future__ import annotations

import asyncio
import io
import uuid
from dataclasses import replace

import numpy as np
import pyarrow.parquet as pq
import pytest

from pytest_dlio.config.model import Dataset, Parquet, Reader, WorkloadConfig
from pytest_dlio.errors import DlioError
from pytest_dlio.formats import Spans, get_format
from pytest_dlio.layout import dataset_files
from pytest_dlio.phases.loader import Loader
from pytest_dlio.randbytes import file_rng
from pytest_dlio.storage.factory import open_store
from pytest_dlio.storage.pytest_plugin import get_storage_session
from pytest_dlio.storage.settings import StoreOptions
from pytest_dlio.testing.faultproxy import FaultProxy
from pytest_dlio.timeline import Reads

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
SUFFIX = 64 * 1024


def config(samples: int, record: int, row_group: int) -> WorkloadConfig:
    ds = Dataset(
        format="parquet",
        num_files_train=1,
        num_samples_per_file=samples,
        record_length_bytes=record,
        parquet=Parquet(row_group_size=row_group),
    )
    return WorkloadConfig(framework="pytorch", dataset=ds, reader=Reader(batch_size=1, read_threads=0))


def footer_size(data: bytes) -> int:
    return int.from_bytes(data[-8:-4], "little") + 8


@pytest.mark.parametrize(
    "samples,record,row_group,requests",
    [
        (8, 64, 4, 1),  # the whole file is shorter than the suffix
        (16, 16 * 1024, 4, 1),  # a 256 KiB file, a small footer
        (3000, 8, 1, 2),  # 3000 row groups: a footer larger than the suffix
    ],
    ids=["small-file", "small-footer", "large-footer"],
)
def test_footer_requests_on_s3(
    request: pytest.FixtureRequest, samples: int, record: int, row_group: int, requests: int
) -> None:
    cfg = config(samples, record, row_group)
    (f,) = [f for f in dataset_files(cfg) if f.split == "train"]
    data = bytes(get_format("parquet").encode(f, cfg.dataset, file_rng(3, f.position)).data())
    assert (len(data) < SUFFIX) == (samples == 8) and (footer_size(data) > SUFFIX) == (requests == 2)
    emulators = get_storage_session(request.config).emulators
    raw = {"endpoint_url": "", "access_key_id": "testing", "secret_access_key": "testing"}

    with FaultProxy(emulators.s3_endpoint()) as proxy:
        opts = StoreOptions.from_storage_options({**raw, "endpoint_url": proxy.endpoint})

        async def go() -> tuple[int, Reads, Spans]:
            async with open_store(
                f"s3://dlio-footer/{uuid.uuid4().hex[:10]}", opts.with_(create_missing=True)
            ) as s:
                await s.put(f.key, data)
                reads = Reads()
                loader = Loader(cfg, s, [f], reads, None, np.random.default_rng(0))
                before = proxy.requests
                spans = await loader._locate(f)
                sent = proxy.requests - before
                await loader._locate(f)  # found once per run
                assert proxy.requests - before == sent
                await s.delete_prefix("")
                return sent, reads, spans

        sent, reads, spans = asyncio.run(go())
    assert sent == requests
    # the bytes the loader reports reading are the bytes that came back
    want = min(len(data), SUFFIX) + (footer_size(data) if requests == 2 else 0)
    assert sum(reads.nbytes) == want
    # the spans are those of the file's exact footer (cut from the bytes written), in one row group each
    exact = get_format("parquet").row_group_spans(data[-footer_size(data) :], cfg.dataset, None)
    assert spans.spans == exact.spans and spans.first.tolist() == exact.first.tolist()
    assert len(exact.spans) == pq.read_metadata(io.BytesIO(data)).num_row_groups


def test_a_file_that_is_not_parquet_is_named() -> None:
    cfg = config(8, 64, 4)
    (f,) = [f for f in dataset_files(cfg) if f.split == "train"]

    async def go() -> None:
        async with open_store(f"mem://footer-{uuid.uuid4().hex}") as s:
            await s.put(f.key, b"\x00" * 100 + (10**6).to_bytes(4, "little") + b"PAR1")
            await Loader(cfg, s, [f], Reads(), None, np.random.default_rng(0))._locate(f)

    with pytest.raises(
        DlioError, match=rf"{f.key}: not a parquet file .*footer length 1,000,008.*regenerate"
    ):
        asyncio.run(go())


def _spans_from_dict(data: bytes, wanted: set[str] | None) -> tuple[list[int], list[tuple[int, int]]]:
    """Each row group's span of the wanted top-level columns, from pyarrow's metadata as a plain dict
    (another path through the footer than the format's): min start (the dictionary page where there is
    one) to max end over the chunks of the wanted columns."""
    meta = pq.read_metadata(io.BytesIO(data)).to_dict()
    first, spans, row = [], [], 0
    for group in meta["row_groups"]:
        chunks = [
            c for c in group["columns"] if wanted is None or c["path_in_schema"].split(".")[0] in wanted
        ]
        starts = [
            c["dictionary_page_offset"]
            if c["has_dictionary_page"] and c["dictionary_page_offset"]
            else c["data_page_offset"]
            for c in chunks
        ]
        ends = [s + c["total_compressed_size"] for s, c in zip(starts, chunks, strict=True)]
        first.append(row)
        spans.append((min(starts), max(ends) - min(starts)))
        row += group["num_rows"]
    return first, spans


@pytest.mark.parametrize(
    "chosen,wanted",
    [
        (None, {"a", "c", "e"}),  # the columns not marked read: false
        (("e", "b"), {"e", "b"}),  # storage_options.columns overrides the flags
        (("d",), {"d"}),  # one nested column in the middle
    ],
    ids=["read-flags", "chosen", "one-nested"],
)
def test_row_group_spans_cover_exactly_the_columns_read(
    chosen: tuple[str, ...] | None, wanted: set[str]
) -> None:
    """Spans found from the wanted columns' leaves alone are the spans over every chunk of those columns:
    a multi-row-group file (partial last group) of scalar, list and string columns, some not read."""
    from pytest_dlio.config.model import ParquetColumn

    cols = (
        ParquetColumn("a", "float32", 4),
        ParquetColumn("b", "int8", 16, read=False),
        ParquetColumn("c", "float64"),
        ParquetColumn("d", "uint16", 3, read=False),
        ParquetColumn("e", "string", 5),
    )
    cfg = config(100, 64, 16)
    cfg = replace(cfg, dataset=replace(cfg.dataset, parquet=Parquet(columns=cols, row_group_size=16)))
    (f,) = [f for f in dataset_files(cfg) if f.split == "train"]
    data = bytes(get_format("parquet").encode(f, cfg.dataset, file_rng(3, f.position)).data())
    spans = get_format("parquet").row_group_spans(data[-footer_size(data) :], cfg.dataset, chosen)
    first, want = _spans_from_dict(data, wanted)
    assert len(want) == 7  # 6 full groups of 16 rows and one of 4
    assert spans.first.tolist() == first and spans.spans == want
    every = get_format("parquet").row_group_spans(
        data[-footer_size(data) :], cfg.dataset, ("a", "b", "c", "d", "e")
    )
    assert every.spans == _spans_from_dict(data, None)[1]
    # without the first or the last column a span is shorter than the whole group's; with both, all of it
    assert all(
        (n < w) == (not {"a", "e"} <= wanted) for (_, n), (_, w) in zip(spans.spans, every.spans, strict=True)
    )


def test_readers_locating_one_file_at_once_read_its_footer_once() -> None:
    cfg = config(64, 64, 4)
    (f,) = [f for f in dataset_files(cfg) if f.split == "train"]
    data = bytes(get_format("parquet").encode(f, cfg.dataset, file_rng(3, f.position)).data())

    async def go() -> tuple[int, list[Spans]]:
        from pytest_dlio.storage.timed import TimedStore

        async with open_store(f"mem://footer-{uuid.uuid4().hex}") as s:
            await s.put(f.key, data)
            timed = TimedStore(s, Reads())
            loader = Loader(cfg, timed, [f], Reads(), None, np.random.default_rng(0))
            got = await asyncio.gather(*(loader._locate(f) for _ in range(4)))
            got.append(await loader._locate(f))
            # a reader reaching a footer read that has finished but whose callbacks have not run yet (an
            # awaited done task returns at once): it still leaves the file located for the batch's runs
            del loader._spans[f.key]
            done = asyncio.get_running_loop().create_future()
            done.set_result(got[0])
            loader._locating[f.key] = done  # type: ignore[assignment]
            assert await loader._locate(f) is got[0] and loader._spans[f.key] is got[0]
            return timed.calls["get_suffix"], got

    suffixes, got = asyncio.run(go())
    assert suffixes == 1
    assert all(g is got[0] for g in got) and len(got[0].spans) == 16


def test_a_large_footer_costs_a_second_request_once_not_per_file() -> None:
    """A dataset's footers are of about one size: after the first file's two requests, the loader asks
    for the size it saw (and a little more), so each further file's footer is one request."""
    cfg = config(3000, 8, 1)  # 3000 row groups: a footer larger than the 64 KiB first guess
    cfg = replace(cfg, dataset=replace(cfg.dataset, num_files_train=3))
    files = [f for f in dataset_files(cfg) if f.split == "train"]
    datas = [
        bytes(get_format("parquet").encode(f, cfg.dataset, file_rng(3, f.position)).data()) for f in files
    ]
    assert all(footer_size(d) > SUFFIX for d in datas)

    async def go() -> tuple[list[int], Reads, list[Spans]]:
        from pytest_dlio.storage.timed import TimedStore

        async with open_store(f"mem://footer-{uuid.uuid4().hex}") as s:
            for f, d in zip(files, datas, strict=True):
                await s.put(f.key, d)
            timed = TimedStore(s, Reads())
            reads = Reads()
            loader = Loader(cfg, timed, files, reads, None, np.random.default_rng(0))
            calls, spans = [], []
            for f in files:
                spans.append(await loader._locate(f))
                calls.append(timed.calls["get_suffix"])
            return calls, reads, spans

    calls, reads, spans = asyncio.run(go())
    assert calls == [2, 3, 4]
    for d, got in zip(datas, spans, strict=True):  # each file's own spans, from its exact footer
        exact = get_format("parquet").row_group_spans(d[-footer_size(d) :], cfg.dataset, None)
        assert got.spans == exact.spans
    assert sum(reads.nbytes[:2]) == SUFFIX + footer_size(datas[0])  # the bytes that came back are counted


def test_a_footer_parsed_before_is_still_read_and_a_changed_one_is_parsed_again() -> None:
    """The spans of a footer already parsed in this process are looked up by its bytes: a second loader
    (the next run) still reads the footer from storage, counted, and a file rewritten with other row
    groups under the same key gets its own spans, not the earlier file's."""
    cfg = config(64, 64, 4)
    (f,) = [f for f in dataset_files(cfg) if f.split == "train"]
    fmt = get_format("parquet")
    data = bytes(fmt.encode(f, cfg.dataset, file_rng(3, f.position)).data())
    cfg8 = replace(cfg, dataset=replace(cfg.dataset, parquet=Parquet(row_group_size=8)))
    other = bytes(fmt.encode(f, cfg8.dataset, file_rng(3, f.position)).data())

    async def go() -> list[tuple[Spans, int]]:
        from pytest_dlio.storage.timed import TimedStore

        out = []
        async with open_store(f"mem://footer-{uuid.uuid4().hex}") as s:
            for body in (data, data, other):
                await s.put(f.key, body)
                timed = TimedStore(s, Reads())
                loader = Loader(cfg, timed, [f], Reads(), None, np.random.default_rng(0))
                out.append((await loader._locate(f), timed.calls["get_suffix"]))
        return out

    (first, n1), (again, n2), (changed, n3) = asyncio.run(go())
    assert (n1, n2, n3) == (1, 1, 1)  # every run reads its footer
    assert again is first and len(first.spans) == 16  # the same bytes: the parse is not repeated
    assert len(changed.spans) == 8 and changed.first.tolist() == list(range(0, 64, 8))
    assert changed.spans == fmt.row_group_spans(other[-footer_size(other) :], cfg.dataset, None).spans
    assert not first.first.flags.writeable  # shared between runs: nobody may change it
