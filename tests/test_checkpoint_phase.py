"""Checkpoint write/read through real file:// and mem:// stores: layout, verification, fsync, bounded memory."""

from __future__ import annotations

import asyncio
import json
import os
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_dlio.checkpointing.sizes import rank_layout
from pytest_dlio.config.model import Checkpoint, ModelConfig, Parallelism, Transformer, WorkloadConfig
from pytest_dlio.errors import DlioError
from pytest_dlio.phases.checkpoint import Checkpointer, manifest_key, read_checkpoints, write_checkpoints
from pytest_dlio.ranks import RankOfWorld, SingleComm
from pytest_dlio.report.results import checkpoint_result
from pytest_dlio.storage import open_store


def tiny(zero: int = 3, pipeline: int = 1, **ck: Any) -> WorkloadConfig:
    model = ModelConfig(
        type="transformer",
        num_layers=4,
        parallelism=Parallelism(pipeline=pipeline, zero_stage=zero),
        transformer=Transformer(
            vocab_size=1000, hidden_size=64, ffn_hidden_size=128, num_attention_heads=4, num_kv_heads=2
        ),
    )
    opts = {"num_checkpoints_write": 2, "num_checkpoints_read": 2, **ck}
    return WorkloadConfig(model=model, workflow=WorkloadConfig().workflow, checkpoint=Checkpoint(**opts))


def props(result: Any) -> dict[str, Any]:
    return dict(checkpoint_result("checkpoint", result).properties)  # as the user sees them


async def roundtrip(uri: str, cfg: WorkloadConfig) -> tuple[Any, Any]:
    async with open_store(uri) as store:
        w = await write_checkpoints(cfg, store, comm=SingleComm())
        r = await read_checkpoints(cfg, store, comm=SingleComm())
    return w, r


def test_file_roundtrip_writes_dlio_layout_and_verifies(tmp_path: Path) -> None:
    cfg = tiny(fsync=True)
    w, r = asyncio.run(roundtrip(tmp_path.as_uri(), cfg))
    assert w.failure is None and r.failure is None
    layout = rank_layout(cfg, 1, 0)
    for step in (1, 2):
        folder = tmp_path / f"global_epoch1_step{step}"
        on_disk = {p.name: p.stat().st_size for p in folder.iterdir() if not p.name.startswith(".")}
        assert on_disk == {f.name: f.nbytes for f in layout.files}
        manifest = json.loads((folder / ".dlio_manifest-0.json").read_text())
        assert set(manifest["files"]) == set(on_disk)
    pw, pr = props(w), props(r)
    assert pw["save_checkpoint_count"] == 2 and pr["load_checkpoint_count"] == 2
    assert pw["checkpoint_fsync"] == 1
    # every save and load moved bytes and took time: means and latencies are positive, not merely >= 0
    for key in (
        "save_checkpoint_io_mean_GB_per_second",
        "save_checkpoint_duration_mean_seconds",
        "save_checkpoint_file_latency_p99_ms",
    ):
        assert isinstance(pw[key], float) and pw[key] > 0, key
    assert pr["load_checkpoint_io_mean_GB_per_second"] > 0 and pr["load_checkpoint_duration_mean_seconds"] > 0
    assert isinstance(pw["save_checkpoint_duration_stdev_seconds"], float)
    assert pw["save_checkpoint_io_stdev_GB_per_second"] == w.metric["save_checkpoint_io_stdev_GB_per_second"]
    assert pw["checkpoint_size_GB"] == pytest.approx(layout.total_bytes / 1024**3)


def test_mem_roundtrip_and_randomized_content_differs_between_files() -> None:
    uri = f"mem://ckpt-{uuid.uuid4().hex}"
    cfg = tiny(zero=1)
    w, r = asyncio.run(roundtrip(uri, cfg))
    assert w.failure is None and r.failure is None

    async def contents() -> list[bytes]:
        async with open_store(uri) as store:
            return [bytes(await store.get(f"global_epoch1_step{s}/model_0_model_states.pt")) for s in (1, 2)]

    a, b = asyncio.run(contents())
    assert len(a) == len(b) > 0 and a != b
    assert len(set(a[:4096])) > 200  # random bytes, not a constant fill


def test_corrupted_file_is_detected_and_skipped_without_verify(tmp_path: Path) -> None:
    cfg = tiny()
    asyncio.run(roundtrip(tmp_path.as_uri(), cfg))
    victim = tmp_path / "global_epoch1_step2" / "zero_pp_rank_0_mp_rank_0_optim_states.pt"
    with open(victim, "r+b") as f:
        f.seek(1234)
        byte = f.read(1)
        f.seek(1234)
        f.write(bytes([byte[0] ^ 0xFF]))

    async def read(verify: bool) -> Any:
        async with open_store(tmp_path.as_uri()) as store:
            return await read_checkpoints(cfg, store, comm=SingleComm(), verify=verify)

    bad = asyncio.run(read(True))
    assert bad.failure is not None
    assert "global_epoch1_step2/zero_pp_rank_0_mp_rank_0_optim_states.pt" in bad.failure
    assert "content differs from what was written at byte 1234" in bad.failure
    assert asyncio.run(read(False)).failure is None


def test_truncated_file_is_reported_by_size(tmp_path: Path) -> None:
    cfg = tiny(num_checkpoints_write=1, num_checkpoints_read=1)
    asyncio.run(roundtrip(tmp_path.as_uri(), cfg))
    victim = tmp_path / "global_epoch1_step1" / "zero_pp_rank_0_mp_rank_0_model_states.pt"
    os.truncate(victim, victim.stat().st_size - 10)

    async def read() -> Any:
        async with open_store(tmp_path.as_uri()) as store:
            return await read_checkpoints(cfg, store, comm=SingleComm())

    failure = asyncio.run(read()).failure
    assert failure is not None and "bytes, expected" in failure


def test_reading_more_checkpoints_than_exist_is_a_clear_error(tmp_path: Path) -> None:
    cfg = tiny(num_checkpoints_write=1, num_checkpoints_read=3)

    async def go() -> None:
        async with open_store(tmp_path.as_uri()) as store:
            await write_checkpoints(cfg, store, comm=SingleComm())
            await read_checkpoints(cfg, store, comm=SingleComm())

    with pytest.raises(DlioError, match=r"num_checkpoints_read is 3 but only 1 checkpoint"):
        asyncio.run(go())


def test_fsync_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    cfg = tiny(num_checkpoints_write=1, num_checkpoints_read=0)
    nfiles = len(rank_layout(cfg, 1, 0).files)

    async def go(fsync: bool | None) -> None:
        async with open_store(tmp_path.as_uri()) as store:
            await write_checkpoints(cfg, store, comm=SingleComm(), fsync=fsync)

    asyncio.run(go(False))
    assert calls == []
    asyncio.run(go(True))
    assert len(calls) >= nfiles  # every checkpoint file (and its folder / manifest) synced


def test_ones_when_not_randomized(tmp_path: Path) -> None:
    cfg = tiny(zero=1, randomize_tensor=False, num_checkpoints_write=1, num_checkpoints_read=1)
    w, r = asyncio.run(roundtrip(tmp_path.as_uri(), cfg))
    assert r.failure is None
    model = np.fromfile(tmp_path / "global_epoch1_step1" / "model_0_model_states.pt", dtype=np.float16)
    optim = np.fromfile(
        tmp_path / "global_epoch1_step1" / "zero_pp_rank_0_mp_rank_0_optim_states.pt", dtype=np.float32
    )
    assert (model == 1).all() and (optim == 1).all()


def test_two_ranks_zero3_and_pipeline_stages(tmp_path: Path) -> None:
    for cfg, expect in (
        (tiny(), "zero_pp_rank_1_mp_rank_0_model_states.pt"),
        (tiny(zero=1, pipeline=2), "layer_5-model_1_model_states.pt"),
    ):
        sub = tmp_path / f"z{cfg.model.parallelism.zero_stage}"

        async def go(cfg: WorkloadConfig = cfg, sub: Path = sub) -> list[Any]:
            out = []
            async with open_store(sub.as_uri()) as store:  # the two ranks in turn, in one process
                for rank in (0, 1):
                    out.append(await write_checkpoints(cfg, store, comm=RankOfWorld(rank, 2)))
                for rank in (0, 1):
                    out.append(await read_checkpoints(cfg, store, comm=RankOfWorld(rank, 2)))
            return out

        results = asyncio.run(go())
        assert all(res.failure is None for res in results)
        assert (sub / "global_epoch1_step2" / expect).exists()
        assert (sub / "global_epoch1_step1" / ".dlio_manifest-1.json").exists()


def test_checkpointer_save_from_training_names_the_step(tmp_path: Path) -> None:
    cfg = tiny(num_checkpoints_write=-1, num_checkpoints_read=-1)

    async def go() -> Any:
        async with open_store(tmp_path.as_uri()) as store:
            ck = Checkpointer(cfg, store, comm=SingleComm())
            await ck.save(5, 25)
            await ck.load(5, 25)
            assert await store.exists(manifest_key(5, 25, 0))
            return ck.stats()

    res = asyncio.run(go())
    assert res.failure is None
    assert props(res)["save_checkpoint_count"] == 1 and props(res)["load_checkpoint_count"] == 1


def test_page_cache_effects_are_flagged_when_caches_are_not_dropped(tmp_path: Path) -> None:
    # drop_caches=True is not run here: as root it would evict the whole shared machine's page cache.
    cfg = tiny(num_checkpoints_write=1, num_checkpoints_read=1)

    async def go() -> Any:
        async with open_store(tmp_path.as_uri()) as store:
            await write_checkpoints(cfg, store, comm=SingleComm())
            return await read_checkpoints(cfg, store, comm=SingleComm(), drop_caches=False)

    off = asyncio.run(go())
    assert any("possible page-cache effects" in line for line in off.notes)
    assert props(off)["potential_caching"] == 1


def test_a_large_shard_streams_with_bounded_memory(tmp_path: Path) -> None:
    shard = 256 * 1024 * 1024
    cfg = WorkloadConfig(
        model=ModelConfig(model_size_bytes=shard),
        checkpoint=Checkpoint(num_checkpoints_write=1, num_checkpoints_read=1, fsync=True),
    )

    async def go() -> tuple[Any, Any]:
        async with open_store(tmp_path.as_uri()) as store:
            return (
                await write_checkpoints(cfg, store, comm=SingleComm()),
                await read_checkpoints(cfg, store, comm=SingleComm()),
            )

    tracemalloc.start()
    try:
        w, r = asyncio.run(go())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert w.failure is None and r.failure is None
    assert (tmp_path / "global_epoch1_step1" / "model_states-0.pt").stat().st_size == shard
    assert peak < shard // 3, f"peak {peak / 2**20:.0f} MiB for a {shard >> 20} MiB shard"


def test_training_saves_can_be_read_back_by_epoch_and_step(tmp_path: Path) -> None:
    cfg = tiny(num_checkpoints_write=-1, num_checkpoints_read=-1)

    async def go() -> tuple[Any, Any]:
        async with open_store(tmp_path.as_uri()) as store:
            ck = Checkpointer(cfg, store, comm=SingleComm())
            for epoch in (1, 3):
                await ck.save(epoch, 25)
            good = await read_checkpoints(cfg, store, comm=SingleComm(), epoch_steps=ck.saved)
            with pytest.raises(DlioError, match=r"global_epoch2_step25"):
                await read_checkpoints(cfg, store, comm=SingleComm(), epoch_steps=[(2, 25)])
            return ck.saved, good

    saved, good = asyncio.run(go())
    assert saved == [(1, 25), (3, 25)]
    assert good.failure is None and props(good)["load_checkpoint_count"] == 2


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_damage_in_any_range_of_a_multi_range_file_is_found_at_its_byte(tmp_path: Path, where: str) -> None:
    # 1 MiB ranges, read ahead while one is compared: the damaged range is named at its own offset, whichever
    # range of the file it is in
    cfg = WorkloadConfig(
        model=ModelConfig(model_size_bytes=5 * 2**20 + 4096),
        checkpoint=Checkpoint(num_checkpoints_write=1, num_checkpoints_read=1),
    )

    async def write() -> None:
        async with open_store(tmp_path.as_uri()) as store:
            await Checkpointer(cfg, store, comm=SingleComm(), chunk=1 << 20).save(1, 1)

    asyncio.run(write())
    victim = tmp_path / "global_epoch1_step1" / "model_states-0.pt"
    size = victim.stat().st_size
    at = {"first": 17, "middle": 3 * 2**20 + 5, "last": size - 3}[where]
    with open(victim, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0x5A]))

    async def read() -> Any:
        async with open_store(tmp_path.as_uri()) as store:
            return await read_checkpoints(cfg, store, comm=SingleComm())

    stats = asyncio.run(read())
    assert stats.failure is not None
    assert f"content differs from what was written at byte {at}" in stats.failure
    assert stats.metric["checkpoint_rank_bytes"] == size  # every byte read, none skipped after the damage


@pytest.mark.parametrize("length", [1 << 20, (1 << 20) - 8, 4096 * 3 + 5, 4096 * 512 + 3])
@pytest.mark.parametrize("writable", [True, False])
def test_difference_agrees_with_regenerating_the_chunk(length: int, writable: bool) -> None:
    from pytest_dlio.checkpointing.content import ChunkSource, first_difference

    writer, checker = ChunkSource(11, chunk=4 << 20), ChunkSource(11, chunk=4 << 20)
    for n, damage in ((3, None), (4, 0), (5, 4096), (6, length - 1), (7, 4096 * 512 + 9)):
        data = bytearray(writer.at(n, length))
        if damage is not None and damage < length:
            data[damage] ^= 0x10
        want = first_difference(bytes(data), writer.at(n, length))
        got = checker.difference(data if writable else bytes(data), n)
        assert got == want == (-1 if damage is None or damage >= length else damage)
