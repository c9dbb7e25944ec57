"""Training against the real object-store emulators (moto S3, Azurite) and O_DIRECT, through the session."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace

import pytest

from pytest_dlio.phases.loader import dataset_files
from pytest_dlio.storage.pytest_plugin import get_storage_session
from tests.conftest import use_embedded_emulators
from tests.test_train_loop import make_cfg, train_through_engine


@pytest.mark.parametrize("uri", ["s3://dlio-train/{}", "az://dlio-train/{}"])
def test_train_on_object_store(request, monkeypatch, tmp_path, uri):
    use_embedded_emulators(monkeypatch)
    session = get_storage_session(request.config)
    cfg = make_cfg(files=6, spf=2, bs=2, threads=2, epochs=2, sample_shuffle="seed")
    cfg = replace(cfg, dataset=replace(cfg.dataset, format="npz"))
    where = uri.format(uuid.uuid4().hex[:10])
    res, wl = train_through_engine(cfg, where, tmp_path, session.emulators)
    props = dict(res.properties)
    # 6 files x 2 samples x 2 epochs: every file fetched at least once an epoch, and consecutive samples
    # of one file served from that fetch rather than one whole-file GET per sample
    assert props["steps"] == 12 and 12 <= props["read_count"] < 24
    # each read is one whole file, and training checked every stored file has its predicted size first
    (size,) = {f.expected_size for f in dataset_files(cfg)}
    assert props["read_bytes"] == props["read_count"] * size
    assert props["read_latency_p99_ms"] > 0
    doc = json.loads((wl.output_dir / "summary.json").read_text())
    assert len(doc["metric"]["train_au_percentage"]) == 2


def test_train_with_odirect(request, tmp_path):
    cfg = make_cfg(files=4, spf=1, bs=1, threads=2)
    res, _ = train_through_engine(cfg, "direct://" + str(tmp_path / "data"), tmp_path)
    assert res.value("read_count") == 4
    assert res.value("read_bytes") == 4 * (128 + 64)  # npy: 128-byte header + one 8x8 uint8 sample
