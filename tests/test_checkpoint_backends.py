"""Checkpoint write + verified read on O_DIRECT files, S3 (moto) and Azure Blob (Azurite) through the session."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from pytest_dlio.checkpointing.sizes import rank_layout
from pytest_dlio.config.model import Checkpoint, ModelConfig, Parallelism, Transformer, WorkloadConfig
from pytest_dlio.phases.checkpoint import read_checkpoints, write_checkpoints
from pytest_dlio.ranks import SingleComm
from pytest_dlio.storage.direct import probe
from pytest_dlio.storage.pytest_plugin import get_storage_session
from tests.conftest import use_embedded_emulators

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

CFG = WorkloadConfig(
    model=ModelConfig(
        type="transformer",
        num_layers=2,
        parallelism=Parallelism(zero_stage=1),
        transformer=Transformer(
            vocab_size=3000, hidden_size=128, ffn_hidden_size=512, num_attention_heads=4, num_kv_heads=2
        ),
    ),
    checkpoint=Checkpoint(num_checkpoints_write=2, num_checkpoints_read=2, fsync=True),
)


@pytest.fixture(params=["direct", "s3", "az"])
def uri(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    run = uuid.uuid4().hex[:10]
    if request.param == "direct":
        assert probe(tmp_path) is None, "O_DIRECT must work on the test machine's temp disk"
        return f"direct://{tmp_path}/ckpt"
    use_embedded_emulators(monkeypatch)
    return f"{request.param}://dlio-ckpt-tests/{run}"  # the session's embedded moto / Azurite


def test_roundtrip_and_corruption_on_backend(request: pytest.FixtureRequest, uri: str) -> None:
    session = get_storage_session(request.config)
    layout = rank_layout(CFG, 1, 0)
    assert layout.files[0].nbytes % 4096 != 0  # O_DIRECT must pad and trim an unaligned tail

    async def go() -> tuple[Any, Any, Any, dict[str, int]]:
        store = await session.open(uri)
        try:
            w = await write_checkpoints(CFG, store, comm=SingleComm())
            r = await read_checkpoints(CFG, store, comm=SingleComm())
            listed = {k: n async for k, n in store.list("global_epoch1_step2/")}
            key = f"global_epoch1_step2/{layout.files[-1].name}"
            data = bytearray(await store.get(key))
            data[-1] ^= 0x01
            await store.put(key, bytes(data))
            bad = await read_checkpoints(CFG, store, comm=SingleComm())
            return w, r, bad, listed
        finally:
            await store.delete_prefix("")
            await store.close()

    w, r, bad, listed = asyncio.run(go())
    assert w.failure is None and r.failure is None
    want = {f"global_epoch1_step2/{f.name}": f.nbytes for f in layout.files}
    assert {k: n for k, n in listed.items() if "/.dlio_manifest" not in k} == want
    assert bad.failure is not None and "content differs" in bad.failure
    assert r.metric["load_checkpoint_count"] == 2
