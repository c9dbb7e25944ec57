"""Training against the real object-store emulators (moto S3, Azurite) and O_DIRECT, through the session."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import replace

import pytest

from pytest_dlio.phases.train import train
from pytest_dlio.ranks import SingleComm
from pytest_dlio.storage.pytest_plugin import get_storage_session
from tests.test_train_loop import fill, make_cfg


@pytest.mark.parametrize("uri", ["s3://dlio-train/{}", "az://dlio-train/{}"])
def test_train_on_object_store(request, monkeypatch, tmp_path, uri):
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AZURE_STORAGE_CONNECTION_STRING",
                "AZURE_STORAGE_ACCOUNT", "AZURE_BLOB_ACCOUNT"):
        monkeypatch.delenv(var, raising=False)
    session = get_storage_session(request.config)
    cfg = make_cfg(files=6, spf=2, bs=2, threads=2, epochs=2, sample_shuffle="seed")
    cfg = replace(cfg, dataset=replace(cfg.dataset, format="npz"))
    where = uri.format(uuid.uuid4().hex[:10])

    async def go():
        store = await session.open(where)
        try:
            await fill(store, cfg)
            return await train(cfg, store, comm=SingleComm(), output_dir=tmp_path)
        finally:
            await store.delete_prefix("")
            await store.close()

    res = asyncio.run(go())
    props = dict(res.properties)
    # 6 files x 2 samples x 2 epochs: every file fetched at least once an epoch, and consecutive samples
    # of one file served from that fetch rather than one whole-file GET per sample
    assert props["steps"] == 12 and 12 <= props["read_count"] < 24
    assert props["read_latency_p99_ms"] > 0
    doc = json.loads((tmp_path / "summary.json").read_text())
    assert len(doc["metric"]["train_au_percentage"]) == 2


def test_train_with_odirect(request, tmp_path):
    cfg = make_cfg(files=4, spf=1, bs=1, threads=2)
    session = get_storage_session(request.config)

    async def go():
        store = await session.open("direct://" + str(tmp_path / "data"))
        try:
            await fill(store, cfg)
            return await train(cfg, store, comm=SingleComm(), output_dir=None)
        finally:
            await store.close()

    assert dict(asyncio.run(go()).properties)["read_count"] == 4
