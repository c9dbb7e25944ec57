"""``--dlio-scale``: shrink a workload so its total bytes scale by a factor, keeping it meaningful.

- Samples and record sizes both shrink; at least ``min_steps`` steps per rank and epoch remain: 4 (DLIO's
  throughput formula needs ≥ 3: its numerator is ``steps - 2``) and more than twice the read-ahead depth,
  so most batches are read while measured steps run, not all during the unmeasured first one.
- Fewer steps rather than tinier ones: samples shrink first (down to ``min_steps`` steps), records only
  when the budget still demands it.
- Compute, eval and preprocess times scale with bytes per step, so the I/O-to-compute ratio (the
  bandwidth an accelerator demands), and so AU, keeps its meaning.
- Floor on compute per step: records shrink only as far as compute per step stays >= ``MIN_STEP_COMPUTE``
  (10 ms): below it the harness's fixed per-step cost (the step loop, waking a reader, ~0.1–0.5 ms on a
  loaded 2-core machine) would be a visible share of the step, and AU would measure the harness, not the
  storage. The byte budget gives way (unet3d at ``smoke`` is 0.2–0.7 GB, not 8 MiB); a workload
  whose full-size compute per step is already below the floor (dlrm: 0.375 ms) keeps full-size records.
- Floor on compute per read (``MIN_READ_COMPUTE``, 2 ms): records also stop shrinking where the compute
  that one read serves (compute per sample × the samples one read unit holds: the file, a parquet row
  group, one sample) would fall below it. Each read pays fixed costs — an open, a request, an executor
  hop, a decoder's setup — that do not shrink with the record, so tiny records make the harness, not
  the storage, the bottleneck: retinanet_b200 at 0.21 of full-size records showed AU 60–71 %, at full
  size 95–99 % (same bandwidth per step, about the same JPEG decoding CPU per byte). A workload whose
  full-size compute per read is below the floor keeps full-size records.
- Floor on compute per sample (``MIN_SAMPLE_COMPUTE``, 0.25 ms): a file of many samples is one read,
  but each sample still costs the harness something on the event loop (a TFRecord frame's CRCs and
  slice, ~7 µs; its place in the batch): resnet50 at smoke had 25 µs of compute per sample.
- Floor on compute per epoch (``MIN_EPOCH_COMPUTE``, 0.2 s): more steps where an epoch would hold less
  compute, as far as the dataset stays within ``EPOCH_FLOOR_BYTES`` (256 MiB). Each
  epoch starts its read pipeline empty; in a 55 ms epoch (cosmoflow_a100 at 10 steps) that start-up
  is a visible share of AU: 85 % at 10 steps, 93 % at 30, 97 % at 100 on local files.
- Checkpoints scale too: ``model_size_bytes`` by the factor; transformer widths by √factor, so the
  parameter count scales by about the factor while layers, parallelism and file names stay DLIO's.
- Parquet's read-ahead window (MLPerf v3.0 DLIO's ``prefetch_window``, 64 row groups per reader) is cut
  to at most ``1 / WINDOW_SHARE`` of an epoch's row groups (and no fewer than one batch's): DLIO starts
  the whole window's reads at once, the first step, which AU leaves out, waits for them, and a window as
  large as the epoch would read all of it there.
- ``smoke`` also caps epochs at 2 (checkpoint triggers move inside them).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re

from pytest_dlio.config.model import ParquetColumn, WorkloadConfig

MIN_STEPS = 4
SMOKE_EPOCHS = 2
MIN_RECORD = 64  # bytes: below this, per-request overhead is all a run would measure
#: seconds of compute per training step below which records stop shrinking (see the module docstring)
MIN_STEP_COMPUTE = 0.010
#: seconds of compute per read (one read unit's samples) below which records stop shrinking
MIN_READ_COMPUTE = 0.002
#: seconds of compute per sample below which records stop shrinking
MIN_SAMPLE_COMPUTE = 0.00025
#: seconds of compute per epoch below which steps are added, while the dataset stays within EPOCH_FLOOR_BYTES
MIN_EPOCH_COMPUTE = 0.2
EPOCH_FLOOR_BYTES = 256 * 2**20
#: a scaled parquet read-ahead window holds at most this fraction (1/N) of an epoch's row groups
WINDOW_SHARE = 8


def workload_bytes(cfg: WorkloadConfig) -> float:
    """About how many bytes a workload moves once: its dataset, or (checkpoint only) one checkpoint."""
    ds = cfg.dataset
    if cfg.workflow.train or cfg.workflow.generate_data:
        return float((ds.num_files_train + ds.num_files_eval) * ds.num_samples_per_file * ds.sample_bytes)
    m = cfg.model
    if m.type == "transformer" and m.num_layers > 0:
        t = m.transformer
        kv = t.hidden_size // t.num_attention_heads * t.num_kv_heads
        per_layer = (
            2 * t.hidden_size
            + t.hidden_size * (2 * t.hidden_size + 2 * kv)
            + 3 * t.ffn_hidden_size * t.hidden_size
        )
        params = 2 * t.vocab_size * t.hidden_size + m.num_layers * per_layer + t.hidden_size
        return float(params * (2 + 12))  # fp16 model + about 12 bytes/param of fp32 optimizer state
    return float(m.model_size_bytes + sum(m.optimization_groups) + sum(m.layer_parameters))


def min_steps(cfg: WorkloadConfig) -> int:
    """Steps per epoch a scaled workload keeps: ``MIN_STEPS``, and more than twice the loader's read-ahead
    (``max(prefetch_size, read_threads)`` batches) plus the excluded first step — with fewer, every batch is
    read ahead while the first, unmeasured step waits, and AU measures nothing."""
    rd = cfg.reader
    return max(MIN_STEPS, 2 * max(rd.prefetch_size, rd.read_threads, 1) + 2)


def samples_per_read(cfg: WorkloadConfig) -> int:
    """Samples one read serves: a parquet row group, one indexed_binary sample (ranged reads on demand),
    else the whole file (what ``formats``' read units fetch; config cannot import formats)."""
    ds = cfg.dataset
    spf = max(1, ds.num_samples_per_file)
    if ds.format == "parquet":
        return max(1, min(ds.parquet.row_group_size, spf))
    if ds.format in ("indexed_binary", "mmap_indexed_binary") and cfg.reader.read_type != "memory":
        return 1
    return spf


def _floor(full: float, record_factor: float, floor: float) -> float | None:
    """The smallest record factor that keeps ``full * factor`` >= ``floor`` (None when not binding)."""
    if full <= 0 or full * record_factor >= floor:
        return None
    return min(1.0, floor / full)


def factor_for(cfg: WorkloadConfig, budget: float) -> float:
    """The factor that brings ``cfg`` to about ``budget`` bytes (1.0 when it is already smaller)."""
    total = workload_bytes(cfg)
    return min(1.0, budget / total) if total > 0 else 1.0


def scale_config(
    cfg: WorkloadConfig, factor: float, *, ranks: int = 1, smoke: bool = False
) -> WorkloadConfig:
    """A copy of ``cfg`` whose dataset and checkpoints hold ``factor`` times the bytes (see module doc)."""
    if factor >= 1.0:
        return cfg
    have = min_steps(cfg)
    out = _scaled(cfg, factor, ranks, smoke, have)
    cap = max(EPOCH_FLOOR_BYTES, workload_bytes(out))
    for _ in range(4):  # more steps shrink records to the floors, which may ask for more steps again
        per_step = out.train.computation_time.expected()
        steps = out.steps_per_epoch(ranks)
        if per_step <= 0 or steps <= 0 or steps * per_step >= MIN_EPOCH_COMPUTE:
            break
        step_bytes = workload_bytes(out) / steps
        want = min(math.ceil(MIN_EPOCH_COMPUTE / per_step), int(cap / step_bytes) if step_bytes else steps)
        if want <= have:
            break
        have = want
        out = _scaled(cfg, factor, ranks, smoke, have)
    if have > min_steps(cfg):
        notes = out.source.notes
        note = (
            f"{notes[-1]}; {out.steps_per_epoch(ranks)} steps per epoch so an epoch holds "
            f"{out.steps_per_epoch(ranks) * out.train.computation_time.expected():.2f} s of compute "
            f"(floor {MIN_EPOCH_COMPUTE:g} s, as far as the dataset stays within "
            f"{EPOCH_FLOOR_BYTES / 2**20:.0f} MiB)"
        )
        out = dataclasses.replace(out, source=dataclasses.replace(out.source, notes=(*notes[:-1], note)))
    return _own_folder(cfg, _scaled_window(out, ranks))


_SCALED_SUFFIX = re.compile(r"-scaled-[0-9a-f]{10}$")


def _own_folder(full: WorkloadConfig, out: WorkloadConfig) -> WorkloadConfig:
    """A scaled dataset other than the full-size one gets a folder of its own, named after its settings.

    Workloads that share ``dataset.data_folder`` at full size share it because they read the same files;
    scaled, each plans its own (unet3d_b200 and unet3d_h100 at smoke: 70 files of the same names, 12.08
    and 6.06 MiB), so running the set regenerated one with the other's settings every time, and side by
    side they had to take turns. Workloads whose scaled datasets are the same still share a folder."""
    a, b = full.dataset, out.dataset
    base = _SCALED_SUFFIX.sub("", a.data_folder.rstrip("/"))
    if dataclasses.replace(b, data_folder=a.data_folder) == a:
        return out
    digest = hashlib.sha256(repr(dataclasses.replace(b, data_folder="")).encode()).hexdigest()[:10]
    folder = f"{base}-scaled-{digest}"
    notes = out.source.notes
    note = f"{notes[-1]}; the scaled dataset has a folder of its own: {folder}/"
    return dataclasses.replace(
        out,
        dataset=dataclasses.replace(b, data_folder=folder),
        source=dataclasses.replace(out.source, notes=(*notes[:-1], note)),
    )


def _scaled_window(cfg: WorkloadConfig, ranks: int) -> WorkloadConfig:
    """Parquet's read-ahead window (``prefetch_window`` row groups per reader) cut to at most
    ``1 / WINDOW_SHARE`` of an epoch's row groups: DLIO starts the window's reads at once, and the first
    step, which AU leaves out, waits for them. A 64-row-group window over a smoke epoch of 56 row groups
    reads the whole epoch while that step waits, and AU comes out 65-70 % where the full-size workload
    (64 of 256,000 row groups ahead) is bound by bandwidth at ~20 %. At least a batch's row groups stay
    in flight."""
    window = cfg.row_group_window
    if window <= 0:
        return cfg
    rd, ds = cfg.reader, cfg.dataset
    group = max(1, min(ds.parquet.row_group_size, ds.num_samples_per_file))
    per_batch = math.ceil(rd.batch_size / group)
    units = cfg.steps_per_epoch(ranks) * rd.batch_size // group
    cut = max(per_batch, units // (WINDOW_SHARE * max(1, rd.read_threads)))
    if cut >= window:
        return cfg
    st = cfg.storage
    raw = tuple((k, v) for k, v in st.storage_options if k != "prefetch_window")
    storage = dataclasses.replace(st, storage_options=tuple(sorted((*raw, ("prefetch_window", cut)))))
    notes = cfg.source.notes
    note = (
        f"{notes[-1]}; parquet read-ahead cut from {window} to {cut} row groups per reader "
        f"(an epoch has {units}; at most 1/{WINDOW_SHARE} of them are read ahead, as at full size, so the "
        "unmeasured first step does not read the epoch)"
    )
    return dataclasses.replace(
        cfg, storage=storage, source=dataclasses.replace(cfg.source, notes=(*notes[:-1], note))
    )


def _scaled(cfg: WorkloadConfig, factor: float, ranks: int, smoke: bool, steps: int) -> WorkloadConfig:
    """``scale_config`` with at least ``steps`` steps per epoch."""
    ds, rd, tr = cfg.dataset, cfg.reader, cfg.train
    spf = ds.num_samples_per_file
    samples = ds.num_files_train * spf
    min_samples = steps * rd.batch_size * ranks + cfg.output.metric.exclude_end_steps * rd.batch_size * ranks
    new_samples = min(samples, max(min_samples, math.ceil(samples * factor)))
    sample_factor = new_samples / samples if samples else 1.0
    record_factor = factor / sample_factor if sample_factor else factor
    record = max(MIN_RECORD, ds.sample_bytes * record_factor)
    record_factor = record / ds.sample_bytes if ds.sample_bytes else record_factor
    # compute floors: records shrink only as far as compute per step stays >= MIN_STEP_COMPUTE and
    # compute per read >= MIN_READ_COMPUTE (bytes per step and compute keep their ratio; the byte budget
    # gives way). A workload whose full-size compute is below a floor keeps its full-size records.
    full_compute = tr.computation_time.expected()
    per_sample = full_compute / max(1, rd.batch_size)
    per_read = per_sample * samples_per_read(cfg)
    floors = [
        (f, what)
        for f, what in (
            (_floor(full_compute, record_factor, MIN_STEP_COMPUTE), "step"),
            (_floor(per_read, record_factor, MIN_READ_COMPUTE), "read"),
            (_floor(per_sample, record_factor, MIN_SAMPLE_COMPUTE), "sample"),
        )
        if f is not None
    ]
    floored = bool(floors) and bool(ds.sample_bytes)
    if floored:
        record_factor = max(record_factor, *(f for f, _ in floors))
        record = max(MIN_RECORD, ds.sample_bytes * record_factor)
    new_spf = max(1, min(spf, new_samples // max(1, min(8, ds.num_files_train))))
    files = max(1, math.ceil(new_samples / new_spf))
    eval_files = 0
    if ds.num_files_eval:
        eval_samples = max(rd.batch_size_eval * ranks, math.ceil(ds.num_files_eval * spf * sample_factor))
        eval_files = max(1, math.ceil(eval_samples / new_spf))
    steps_cap = tr.total_training_steps
    if steps_cap > 0:
        steps_cap = max(steps, round(steps_cap * sample_factor))
    dims = ds.record_dims
    if dims:
        first = max(1, round(dims[0] * record_factor))
        dims = (first, *dims[1:])
    columns = tuple(
        dataclasses.replace(c, size=max(1, round(c.size * record_factor))) if c.size > 1 else c
        for c in ds.parquet.columns
    )
    dataset = dataclasses.replace(
        ds,
        num_files_train=files,
        num_files_eval=eval_files,
        num_samples_per_file=new_spf,
        record_length_bytes=float(round(record)) if not dims else ds.record_length_bytes,
        record_length_bytes_stdev=ds.record_length_bytes_stdev * record_factor,
        record_length_bytes_resize=int(ds.record_length_bytes_resize * record_factor),
        record_dims=dims,
        num_subfolders_train=min(ds.num_subfolders_train, files),
        num_subfolders_eval=min(ds.num_subfolders_eval, eval_files),
        parquet=dataclasses.replace(
            ds.parquet,
            columns=_tuple(columns),
            row_group_size=max(1, min(ds.parquet.row_group_size, new_spf)),
        ),
    )
    epochs = min(tr.epochs, SMOKE_EPOCHS) if smoke else tr.epochs
    train = dataclasses.replace(
        tr,
        epochs=epochs,
        total_training_steps=steps_cap,
        computation_time=tr.computation_time.scaled(record_factor),
    )
    evaluation = dataclasses.replace(
        cfg.evaluation,
        eval_time=cfg.evaluation.eval_time.scaled(record_factor),
        eval_after_epoch=min(cfg.evaluation.eval_after_epoch, epochs),
    )
    reader = dataclasses.replace(rd, preprocess_time=rd.preprocess_time.scaled(record_factor))
    ck = cfg.checkpoint
    checkpoint = dataclasses.replace(
        ck,
        checkpoint_after_epoch=min(ck.checkpoint_after_epoch, epochs),
        # steps shrink with the samples: keep the number of step-based checkpoints per epoch
        steps_between_checkpoints=max(1, round(ck.steps_between_checkpoints * sample_factor))
        if ck.steps_between_checkpoints > 0
        else ck.steps_between_checkpoints,
        time_between_checkpoints=ck.time_between_checkpoints * factor
        if ck.time_between_checkpoints > 0
        else ck.time_between_checkpoints,
    )
    model = _scale_model(cfg, factor)
    note = _describe(cfg, dataset, factor, epochs)
    if floored:
        note += (
            f"; records kept at {record_factor:.3g} of full size so compute stays "
            f"{full_compute * record_factor * 1000:.1f} ms per step (floor {MIN_STEP_COMPUTE * 1000:.0f} ms)"
            f", {per_read * record_factor * 1000:.2f} ms per read (floor {MIN_READ_COMPUTE * 1000:.0f} ms) "
            f"and {per_sample * record_factor * 1000:.3f} ms per sample (floor {MIN_SAMPLE_COMPUTE * 1000:.2f} ms)"
        )
    source = dataclasses.replace(cfg.source, scale=factor, notes=(*cfg.source.notes, note))
    return dataclasses.replace(
        cfg,
        dataset=dataset,
        train=train,
        evaluation=evaluation,
        reader=reader,
        checkpoint=checkpoint,
        model=model,
        source=source,
    )


def _tuple(columns: tuple[ParquetColumn, ...]) -> tuple[ParquetColumn, ...]:
    return tuple(columns)


def _scale_model(cfg: WorkloadConfig, factor: float):  # noqa: ANN202 - returns ModelConfig
    m = cfg.model
    size = max(1024, int(m.model_size_bytes * factor))
    if m.type != "transformer" or m.num_layers <= 0:
        groups = tuple(max(1, int(g * factor)) for g in m.optimization_groups)
        layers = tuple(max(1, int(p * factor)) for p in m.layer_parameters)
        return dataclasses.replace(
            m, model_size_bytes=size, optimization_groups=groups, layer_parameters=layers
        )
    t, root = m.transformer, math.sqrt(factor)
    heads = t.num_attention_heads
    hidden = max(heads, round(t.hidden_size * root / heads) * heads)
    tp = m.parallelism.tensor
    transformer = dataclasses.replace(
        t,
        hidden_size=hidden,
        ffn_hidden_size=max(tp, round(t.ffn_hidden_size * root / tp) * tp),
        vocab_size=max(tp, round(t.vocab_size * root / tp) * tp),
    )
    return dataclasses.replace(m, model_size_bytes=size, transformer=transformer)


def _describe(cfg: WorkloadConfig, ds: object, factor: float, epochs: int) -> str:
    old, new = cfg.dataset, ds
    return (
        f"scaled by {factor:g} (--dlio-scale): {old.num_files_train} → {new.num_files_train} train files, "  # type: ignore[attr-defined]
        f"{old.num_samples_per_file} → {new.num_samples_per_file} samples/file, "  # type: ignore[attr-defined]
        f"{old.sample_bytes:.0f} → {new.sample_bytes:.0f} B/sample, epochs {cfg.train.epochs} → {epochs}; "  # type: ignore[attr-defined]
        "compute times scaled with bytes per step"
    )
