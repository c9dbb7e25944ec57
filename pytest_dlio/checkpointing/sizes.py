"""DLIO's checkpoint sizes and per-rank file layout (dlio.md §3.5.3–3.5.5), computed without I/O.

Follows DLIO HEAD's ``base_checkpointing.py``: parameter count, TP/PP/DP ranks, ZeRO 0–3, subset mode,
layer distribution over pipeline ranks and the DeepSpeed-style file names. A file's size is the bytes of
its tensors (no pickle framing). ``reported_*`` reproduce the figure DLIO logs as ``checkpoint_size``
(e.g. ZeRO 2 counts model layers on every data-parallel rank although only ``dp_rank == 0`` writes them,
and legacy ``optimization_groups``/``layer_parameters`` are not counted); ``*_bytes`` are what is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from pytest_dlio.config.model import WorkloadConfig
from pytest_dlio.errors import ConfigError

GIB = 1024**3
DTYPE_BYTES = {"int8": 1, "uint8": 1, "fp16": 2, "bf16": 2, "fp32": 4, "fp64": 8}
EXT = "pt"


def dtype_bytes(name: str, key: str = "model.model_datatype") -> int:
    """Bytes per element of a DLIO checkpoint datatype."""
    try:
        return DTYPE_BYTES[name]
    except KeyError:
        raise ConfigError(
            f"{key}: unsupported datatype {name!r}; use one of {', '.join(DTYPE_BYTES)}"
        ) from None


def folder_name(epoch: int, step: int) -> str:
    """The per-save folder, as DLIO names it."""
    return f"global_epoch{epoch}_step{step}"


@dataclass(frozen=True)
class Ranks:
    """One rank's place in the 3-D (TP × PP × DP) grid."""

    rank: int
    tp: int
    pp: int
    dp: int

    @property
    def mp(self) -> int:
        return self.tp * self.pp

    @property
    def tp_rank(self) -> int:
        return self.rank % self.tp

    @property
    def pp_rank(self) -> int:
        return (self.rank // self.tp) % self.pp

    @property
    def dp_rank(self) -> int:
        return self.rank // self.mp

    @property
    def mp_rank(self) -> int:
        return self.rank % self.mp


def ranks_of(cfg: WorkloadConfig, world: int, rank: int) -> Ranks:
    """TP/PP/DP of ``rank`` in a world of ``world`` processes (DP from ``parallelism.data`` in subset mode)."""
    par = cfg.model.parallelism
    tp, pp = max(1, par.tensor), max(1, par.pipeline)
    dp = par.data if par.data > 0 else max(1, world // (tp * pp))
    return Ranks(rank=rank, tp=tp, pp=pp, dp=dp)


def num_parameters(cfg: WorkloadConfig) -> int:
    """Transformer parameter count (DLIO ``get_num_parameters``; 0 without layers)."""
    m, t = cfg.model, cfg.model.transformer
    if m.num_layers <= 0:
        return 0
    h = t.hidden_size
    dim_kv = (h // t.num_attention_heads) * t.num_kv_heads
    emb = t.vocab_size * h
    per_layer = h + h * (h + 2 * dim_kv) + h * h + h + 2 * t.ffn_hidden_size * h + t.ffn_hidden_size * h
    return emb + m.num_layers * per_layer + h + emb


def layer_range(cfg: WorkloadConfig, r: Ranks, *, legacy: bool = False) -> range:
    """Layer indices held by ``r``'s pipeline stage: 0 = embedding, 1..L, L+1 = lm_head, L+2 = final norm."""
    n = cfg.model.num_layers
    per, rem = divmod(n, r.pp) if n > 0 else (n // r.pp, n % r.pp)
    if r.pp_rank < rem:
        start = r.pp_rank * (per + 1) + 1
        end = start + per
    else:
        start = rem * (per + 1) + (r.pp_rank - rem) * per + 1
        end = start + per - 1
    if not legacy:
        if r.pp_rank == r.pp - 1:
            end = n + 2
        if r.pp_rank == 0:
            start = 0
    return range(start, end + 1)


def layer_elements(cfg: WorkloadConfig, r: Ranks, index: int) -> list[int]:
    """Element counts of one layer's tensors on ``r`` (divided by TP, and by DP under ZeRO 3)."""
    m, t = cfg.model, cfg.model.transformer
    h, n = t.hidden_size, m.num_layers
    dim_kv = (h // t.num_attention_heads) * t.num_kv_heads
    shard = r.dp if m.parallelism.zero_stage >= 3 else 1
    if index in (0, n + 1):
        return [h * t.vocab_size // r.tp // shard]
    if index == n + 2:
        return [h // shard]
    return [
        h // shard,
        h * (h + 2 * dim_kv) // r.tp // shard,
        h * h // r.tp // shard,
        h // shard,
        h * 2 * t.ffn_hidden_size // r.tp // shard,
        h * t.ffn_hidden_size // r.tp // shard,
    ]


def optimizer_elements(cfg: WorkloadConfig, r: Ranks) -> list[int]:
    """Computed optimizer groups ``[n, 5H] × 3`` (DLIO ``get_optimization_groups``)."""
    m = cfg.model
    if m.num_layers <= 0:
        return []
    n = num_parameters(cfg) // (r.dp * r.mp if m.parallelism.zero_stage > 0 else r.mp)
    if n <= 0:
        return []
    five_h = m.transformer.hidden_size * 5
    return [n, five_h, n, five_h, n, five_h]


@dataclass(frozen=True)
class CkptFile:
    """One file a rank writes in a checkpoint folder: name relative to the folder, bytes, kind."""

    name: str
    nbytes: int
    kind: str  # "model" or "optimizer"
    dtype: str = "int8"  # element type of its tensors (what ``randomize_tensor: false`` fills with ones)


@dataclass(frozen=True)
class RankLayout:
    """What one rank writes per checkpoint, and what DLIO counts for it in ``checkpoint_size``."""

    rank: int
    files: tuple[CkptFile, ...]
    reported_model_bytes: int
    reported_optimizer_bytes: int

    @property
    def model_bytes(self) -> int:
        return sum(f.nbytes for f in self.files if f.kind == "model")

    @property
    def optimizer_bytes(self) -> int:
        return sum(f.nbytes for f in self.files if f.kind == "optimizer")

    @property
    def total_bytes(self) -> int:
        return self.model_bytes + self.optimizer_bytes

    @property
    def writes(self) -> bool:
        return bool(self.files)


def rank_layout(cfg: WorkloadConfig, world: int, rank: int) -> RankLayout:
    """The files ``rank`` of ``world`` writes per checkpoint, with their sizes (DLIO §3.5.5 names)."""
    m = cfg.model
    r = ranks_of(cfg, world, rank)
    zero = m.parallelism.zero_stage
    if zero == 0 and rank >= r.mp:
        return RankLayout(rank, (), 0, 0)
    mbytes = dtype_bytes(m.model_datatype)
    obytes = dtype_bytes(m.optimizer_datatype, "model.optimizer_datatype")
    files: list[CkptFile] = []
    rep_model = rep_opt = 0
    tag = f"zero_pp_rank_{r.dp_rank}_mp_rank_{r.mp_rank}"

    if m.model_size_bytes > 0 and m.type != "transformer":
        files.append(CkptFile(f"model_states-{rank}.{EXT}", m.model_size_bytes, "model", "int8"))

    # model layers: {layer index: bytes}
    layers: dict[int, int] = {}
    ldtype = "int8" if m.layer_parameters else m.model_datatype
    if m.layer_parameters:
        per_layer = sum(p // r.tp for p in m.layer_parameters if p > 0)  # int8 tensors
        layers = {i: per_layer for i in layer_range(cfg, r, legacy=True)}
    elif m.num_layers > 0 and not (zero == 1 and r.dp_rank != 0):
        for i in layer_range(cfg, r):
            layers[i] = sum(e for e in layer_elements(cfg, r, i) if e > 0) * mbytes
        rep_model = sum(layers.values())
    if layers:
        if 0 < zero < 3:
            if r.dp_rank == 0 and m.num_layers > 0:
                if r.pp > 1:
                    files += [
                        CkptFile(f"layer_{i}-model_{r.mp_rank}_model_states.{EXT}", b, "model", ldtype)
                        for i, b in layers.items()
                    ]
                else:
                    files.append(
                        CkptFile(
                            f"model_{r.mp_rank}_model_states.{EXT}", sum(layers.values()), "model", ldtype
                        )
                    )
        else:
            files.append(CkptFile(f"{tag}_model_states.{EXT}", sum(layers.values()), "model", ldtype))

    if m.optimization_groups:
        groups = [g for g in m.optimization_groups if g > 0]
        if groups:  # legacy: {'a': t(n), 'b': t(n)} per group plus combined t(sum), int8
            files.append(CkptFile(f"{tag}_optim_states.{EXT}", 3 * sum(groups), "optimizer", "int8"))
    else:
        groups = [g for g in optimizer_elements(cfg, r) if g > 0]
        if groups:
            rep_opt = sum(groups) * obytes
            files.append(CkptFile(f"{tag}_optim_states.{EXT}", rep_opt, "optimizer", m.optimizer_datatype))
    return RankLayout(rank, tuple(files), rep_model, rep_opt)


@dataclass(frozen=True)
class CheckpointSizes:
    """Checkpoint sizes over a whole world: per-rank layouts, totals, and DLIO's GiB figures."""

    world: int
    num_parameters: int
    layouts: tuple[RankLayout, ...]
    dlio_model_gib: float
    dlio_optimizer_gib: float

    @property
    def checkpoint_size_gib(self) -> float:
        """DLIO's ``checkpoint_size`` (GB = GiB): model + optimizer as DLIO logs them."""
        return self.dlio_model_gib + self.dlio_optimizer_gib

    @cached_property
    def model_bytes(self) -> int:
        return sum(lay.model_bytes for lay in self.layouts)

    @cached_property
    def optimizer_bytes(self) -> int:
        return sum(lay.optimizer_bytes for lay in self.layouts)

    @property
    def total_bytes(self) -> int:
        return self.model_bytes + self.optimizer_bytes

    @cached_property
    def max_rank_bytes(self) -> int:
        return max((lay.total_bytes for lay in self.layouts), default=0)

    @cached_property
    def max_file_bytes(self) -> int:
        return max((f.nbytes for lay in self.layouts for f in lay.files), default=0)

    @property
    def writer_ranks(self) -> int:
        return sum(1 for lay in self.layouts if lay.writes)

    @property
    def files(self) -> int:
        return sum(len(lay.files) for lay in self.layouts)


def checkpoint_sizes(cfg: WorkloadConfig, world: int) -> CheckpointSizes:
    """Every rank's layout and the totals for a world of ``world`` processes."""
    layouts = tuple(rank_layout(cfg, world, rank) for rank in range(world))
    m = cfg.model
    model_gib = sum(lay.reported_model_bytes for lay in layouts) / GIB
    if m.type != "transformer" and m.model_size_bytes > 0:
        model_gib = m.model_size_bytes / GIB
    opt_gib = sum(lay.reported_optimizer_bytes for lay in layouts) / GIB
    return CheckpointSizes(world, num_parameters(cfg), layouts, model_gib, opt_gib)


def check_world(cfg: WorkloadConfig, world: int) -> list[str]:
    """Problems that depend on the number of processes (DLIO validate rules 12 and 13)."""
    par = cfg.model.parallelism
    tp, pp = max(1, par.tensor), max(1, par.pipeline)
    problems: list[str] = []
    if cfg.checkpoint.mode == "subset":
        if par.data > 0 and par.data * tp * pp < world:
            problems.append(
                f"model.parallelism: {world} processes exceed the 3-D parallelism size "
                f"data {par.data} x tensor {tp} x pipeline {pp} = {par.data * tp * pp} for checkpoint.mode subset; "
                f"raise model.parallelism.data or run at most {par.data * tp * pp} ranks"
            )
    elif world % (tp * pp) != 0:
        problems.append(
            f"model.parallelism: {world} processes is not a multiple of the model-parallel size "
            f"tensor {tp} x pipeline {pp} = {tp * pp}; run a multiple of {tp * pp} ranks (--dlio-ranks) "
            "or change model.parallelism"
        )
    return problems
