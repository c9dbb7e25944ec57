"""Checkpoint sizes and layouts against DLIO's arithmetic (dlio.md §3.5.3-3.5.5, mlperf_v3.md §7)."""

from __future__ import annotations

import pytest

from pytest_dlio.checkpointing.sizes import (
    GIB,
    check_world,
    checkpoint_sizes,
    dtype_bytes,
    layer_range,
    num_parameters,
    rank_layout,
    ranks_of,
)
from pytest_dlio.config.model import (
    Checkpoint,
    ModelConfig,
    Parallelism,
    Transformer,
    WorkloadConfig,
)
from pytest_dlio.errors import ConfigError

LLAMA3 = {  # layers, vocab, hidden, ffn, heads, kv heads, TP, PP, ZeRO, MLPerf world
    "8b": (32, 128256, 4096, 14336, 32, 8, 1, 1, 3, 8),
    "70b": (80, 128256, 8192, 28672, 128, 8, 8, 1, 3, 64),
    "405b": (126, 128256, 16384, 53248, 128, 8, 8, 32, 1, 512),
    "1t": (128, 128256, 25872, 98304, 192, 32, 8, 64, 1, 1024),
}


def llama(name: str, **par: int) -> WorkloadConfig:
    layers, voc, h, ffn, heads, kv, tp, pp, zero, _ = LLAMA3[name]
    p = {"tensor": tp, "pipeline": pp, "zero_stage": zero, **par}
    return WorkloadConfig(
        model=ModelConfig(
            name=f"llama_{name}",
            type="transformer",
            num_layers=layers,
            parallelism=Parallelism(**p),
            transformer=Transformer(voc, h, ffn, heads, kv),
        )
    )


def world(name: str) -> int:
    return LLAMA3[name][-1]


@pytest.mark.parametrize(
    ("name", "params", "model", "opt", "total"),
    [
        ("8b", 8_030_261_248, 14.96, 89.75, 104.70),
        ("70b", 69_882_617_856, 130.18, 781.03, 911.21),
        ("405b", 405_853_388_800, 756.01, 4536.23, 5292.25),
        ("1t", 1_183_035_102_480, 2203.66, 13222.93, 15426.59),
    ],
)
def test_llama3_sizes_match_the_mlperf_table(
    name: str, params: int, model: float, opt: float, total: float
) -> None:
    cfg = llama(name)
    sizes = checkpoint_sizes(cfg, world(name))
    assert num_parameters(cfg) == params == sizes.num_parameters
    assert round(sizes.dlio_model_gib, 2) == model
    assert round(sizes.dlio_optimizer_gib, 2) == opt
    assert round(sizes.checkpoint_size_gib, 2) == total
    # for these layouts every counted byte is also written
    assert sizes.total_bytes / GIB == pytest.approx(sizes.checkpoint_size_gib, rel=1e-12)


def test_zero1_pipeline_rank_writes_layer_files() -> None:
    cfg = llama("405b")  # TP8 PP32 DP2 ZeRO1: 126 layers over 32 stages, 30 stages get 4
    r0 = rank_layout(cfg, 512, 0)
    names = [f.name for f in r0.files]
    # stage 0 holds the embedding (0) and layers 1..4; one optimizer shard
    assert names == [f"layer_{i}-model_0_model_states.pt" for i in range(0, 5)] + [
        "zero_pp_rank_0_mp_rank_0_optim_states.pt"
    ]
    emb = 16384 * 128256 // 8 * 2
    assert r0.files[0].nbytes == emb
    h, kv = 16384, (16384 // 128) * 8
    per_layer = (h + h * (h + 2 * kv) // 8 + h * h // 8 + h + h * 2 * 53248 // 8 + h * 53248 // 8) * 2
    assert {f.nbytes for f in r0.files[1:5]} == {per_layer}
    n = 405_853_388_800 // 512
    assert r0.files[-1].nbytes == (3 * n + 3 * 5 * h) * 4
    # the last stage (pp_rank 31 → ranks 248..255) holds layers 124..126 + lm_head 127 + final norm 128
    last = rank_layout(cfg, 512, 255)
    idx = [int(f.name.split("_")[1].split("-")[0]) for f in last.files if f.name.startswith("layer_")]
    assert idx == [124, 125, 126, 127, 128]
    assert last.files[-2].nbytes == h * 2  # final norm is not split by TP
    # dp_rank 1 (ranks 256..511) writes only its optimizer shard under ZeRO 1
    r256 = rank_layout(cfg, 512, 256)
    assert [f.name for f in r256.files] == ["zero_pp_rank_1_mp_rank_0_optim_states.pt"]


def test_zero1_without_pipeline_writes_one_model_file() -> None:
    cfg = llama("8b", zero_stage=1)
    r0, r1 = rank_layout(cfg, 4, 0), rank_layout(cfg, 4, 1)
    assert [f.name for f in r0.files] == [
        "model_0_model_states.pt",
        "zero_pp_rank_0_mp_rank_0_optim_states.pt",
    ]
    assert r0.files[0].nbytes == num_parameters(cfg) * 2  # whole model, fp16
    assert [f.name for f in r1.files] == ["zero_pp_rank_1_mp_rank_0_optim_states.pt"]


def test_zero3_shards_the_model_over_data_parallel_ranks() -> None:
    cfg = llama("8b")
    lays = [rank_layout(cfg, 8, r) for r in range(8)]
    assert [f.name for f in lays[5].files] == [
        "zero_pp_rank_5_mp_rank_0_model_states.pt",
        "zero_pp_rank_5_mp_rank_0_optim_states.pt",
    ]
    assert len({lay.model_bytes for lay in lays}) == 1
    assert sum(lay.model_bytes for lay in lays) == pytest.approx(num_parameters(cfg) * 2, rel=1e-6)


def test_zero0_only_model_parallel_ranks_write() -> None:
    cfg = llama("8b", zero_stage=0, tensor=2)
    sizes = checkpoint_sizes(cfg, 8)
    assert sizes.writer_ranks == 2
    assert [f.name for f in sizes.layouts[1].files] == [
        "zero_pp_rank_0_mp_rank_1_model_states.pt",
        "zero_pp_rank_0_mp_rank_1_optim_states.pt",
    ]
    assert sizes.layouts[2].files == ()
    n = num_parameters(cfg) // 2  # optimizer not split over DP without ZeRO
    assert sizes.layouts[0].optimizer_bytes == (3 * n + 15 * 4096) * 4


def test_cnn_model_states_size() -> None:
    cfg = WorkloadConfig(model=ModelConfig(name="unet3d", model_size_bytes=499_153_191))
    sizes = checkpoint_sizes(cfg, 4)
    assert [f.name for f in sizes.layouts[0].files] == ["model_states-0.pt"]
    assert sizes.layouts[0].files[0].nbytes == 499_153_191
    assert sizes.writer_ranks == 1  # ZeRO 0 default, mp 1: only rank 0 writes
    assert sizes.checkpoint_size_gib == pytest.approx(499_153_191 / GIB)


def test_legacy_groups_and_layers() -> None:
    cfg = WorkloadConfig(
        model=ModelConfig(
            model_size_bytes=0,
            num_layers=2,
            layer_parameters=(10, 20),
            optimization_groups=(100, 0, 50),
            parallelism=Parallelism(tensor=2, zero_stage=0),
        )
    )
    lay = rank_layout(cfg, 2, 1)
    files = {f.name: f.nbytes for f in lay.files}
    assert files == {
        "zero_pp_rank_0_mp_rank_1_model_states.pt": 2 * (5 + 10),
        "zero_pp_rank_0_mp_rank_1_optim_states.pt": 3 * 150,
    }
    assert lay.reported_model_bytes == lay.reported_optimizer_bytes == 0  # DLIO does not count legacy tensors


def test_subset_mode_uses_configured_data_parallelism() -> None:
    cfg = llama("8b", data=8)
    cfg = WorkloadConfig(model=cfg.model, checkpoint=Checkpoint(mode="subset"))
    assert ranks_of(cfg, 2, 1).dp == 8
    sizes = checkpoint_sizes(cfg, 2)
    assert sizes.layouts[1].model_bytes == checkpoint_sizes(llama("8b"), 8).layouts[1].model_bytes
    assert check_world(cfg, 8) == []
    assert "exceed" in check_world(cfg, 16)[0]


def test_layer_distribution_with_remainder() -> None:
    cfg = llama("405b")
    spans = [layer_range(cfg, ranks_of(cfg, 512, pp * 8)) for pp in range(32)]
    covered = [i for s in spans for i in s]
    assert covered == list(range(0, 129))


def test_check_world_model_parallel_multiple() -> None:
    cfg = llama("70b")
    assert check_world(cfg, 64) == []
    (msg,) = check_world(cfg, 12)
    assert "12 processes" in msg and "multiple of" in msg and "8" in msg


def test_unknown_datatype_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="model.model_datatype"):
        dtype_bytes("fp8")
    assert [dtype_bytes(d) for d in ("int8", "uint8", "fp16", "bf16", "fp32", "fp64")] == [1, 1, 2, 2, 4, 8]


def test_zero2_dlio_counts_model_on_every_dp_rank_but_only_dp0_writes() -> None:
    cfg = llama("8b", zero_stage=2)
    sizes = checkpoint_sizes(cfg, 4)
    assert [f.name for f in sizes.layouts[1].files] == ["zero_pp_rank_1_mp_rank_0_optim_states.pt"]
    assert (
        sizes.layouts[1].reported_model_bytes == sizes.layouts[0].model_bytes
    )  # DLIO allocates, never writes
    assert sizes.dlio_model_gib * GIB == pytest.approx(4 * sizes.model_bytes)
