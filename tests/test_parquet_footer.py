"""A parquet file's footer costs the loader one request when it fits a 64 KiB suffix, two otherwise:
counted as HTTP requests on the wire, through the loopback proxy in front of the real moto server."""

from __future__ import annotations

import asyncio
import io
import uuid

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
