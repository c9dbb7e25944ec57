"""datagen through the real O_DIRECT, S3 (embedded moto) and Azure (embedded Azurite) backends."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from pytest_dlio.config.model import Dataset, WorkloadConfig
from pytest_dlio.formats import get_format
from pytest_dlio.layout import dataset_files
from pytest_dlio.phases.datagen import cleanup, generate
from pytest_dlio.ranks import SingleComm
from pytest_dlio.report.results import datagen_result
from pytest_dlio.storage.pytest_plugin import get_storage_session
from tests.conftest import use_embedded_emulators

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(params=["direct", "s3", "az"])
def uri(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    use_embedded_emulators(monkeypatch)
    tag = uuid.uuid4().hex[:10]
    return {
        "direct": f"direct://{tmp_path}/data",
        "s3": f"s3://dlio-datagen/{tag}",
        "az": f"az://dlio-datagen/{tag}",
    }[request.param]


@pytest.mark.parametrize("fmt,rl,spf", [("npz", 9 << 20, 1), ("tfrecord", 64 << 10, 3)])
def test_generate_resume_read_and_cleanup(
    request: pytest.FixtureRequest, uri: str, fmt: str, rl: int, spf: int
) -> None:
    cfg = WorkloadConfig(
        dataset=Dataset(
            format=fmt, num_files_train=2, num_files_eval=1, record_length_bytes=rl, num_samples_per_file=spf
        )
    )
    files = dataset_files(cfg)
    session = get_storage_session(request.config)

    async def main() -> None:
        store = await session.open(uri, None)
        try:
            run1 = await generate(cfg, store, comm=SingleComm())
            first = dict(datagen_result(run1).properties)
            assert first["datagen_files_written"] == 3
            await store.delete(files[1].key)
            run2 = await generate(cfg, store, comm=SingleComm())
            again = dict(datagen_result(run2).properties)
            assert again["datagen_files_written"] == 1 and again["datagen_files_skipped"] == 2
            for f in files:
                assert await store.size(f.key) == f.expected_size
                sidecars = {k: await store.get(k) for k in f.sidecars}
                assert len(get_format(fmt).decode(await store.get(f.key), f, cfg.dataset, sidecars)) == spf
            # the second run wrote only the file it rewrote (its sidecars, its digest marker) and deletes only those
            assert files[1].key in run2.written_keys and files[0].key not in run2.written_keys
            assert await cleanup(store, run2, SingleComm()) == len(run2.written_keys)
            replaced = (
                f".dlio/digests/{files[1].key}@"  # the first run's digest of the file the second rewrote
            )
            left = {k for k in set(run1.written_keys) - set(run2.written_keys) if not k.startswith(replaced)}
            assert {k async for k, _ in store.list("")} == left
            await cleanup(store, run1, SingleComm())
            assert [k async for k, _ in store.list("")] == []
        finally:
            await store.close()

    asyncio.run(main())
