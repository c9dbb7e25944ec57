"""The sampler: which global sample indices each rank reads in an epoch, and the check that proves it.

DLIO HEAD's index sampler after its barrier-deadlock fix (dlio.md §3.4, mlcommons/storage #455): the
(shuffled) sample list split into equal per-rank shards, every rank the same number of steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pytest_dlio.config.model import WorkloadConfig
from pytest_dlio.errors import DlioError


def _rng(mode: str, seed: int, salt: tuple[int, ...]) -> np.random.Generator | None:
    if mode == "off":
        return None
    if mode == "seed":
        return np.random.default_rng([seed, *salt])
    return np.random.default_rng()  # random: unseeded


def epoch_order(
    cfg: WorkloadConfig,
    epoch: int,
    rank: int,
    size: int,
    *,
    shared_seed: int,
    steps: int | None = None,
    split: str = "train",
) -> np.ndarray:
    """Global sample indices this rank reads in ``epoch``, in order (``steps * batch_size`` of them).

    ``file_shuffle`` permutes the file list (identically on every rank: seeded by ``train.seed``,
    ``+epoch`` when ``seed_change_epoch``; ``random`` uses ``shared_seed``, drawn once per run and
    shared by all ranks) before the rank takes its contiguous block of floor(N/P) samples;
    ``sample_shuffle`` then permutes the rank's block. Flooring is DLIO's fix for the barrier deadlock
    of mlcommons/storage #455 (ceil gave the last rank a batch fewer): every rank owns the same number
    of samples, at least ``steps * batch_size``, and the N mod P left over are not read that epoch.
    """
    ds, rd, tr = cfg.dataset, cfg.reader, cfg.train
    spf = ds.num_samples_per_file
    nfiles = ds.num_files_train if split == "train" else ds.num_files_eval
    bs = rd.batch_size if split == "train" else rd.batch_size_eval
    if steps is None:
        steps = cfg.steps_per_epoch(size) if split == "train" else cfg.eval_steps(size)
    seed = tr.seed + (epoch if tr.seed_change_epoch else 0)
    shuffle = split == "train"
    files = np.arange(nfiles, dtype=np.int64)
    if shuffle and rd.file_shuffle != "off":
        frng = np.random.default_rng([seed if rd.file_shuffle == "seed" else shared_seed + epoch, 1])
        files = frng.permutation(files)
    # the rank's contiguous block of the (file-shuffled) sample list, built from the files it spans only:
    # every sample of the epoch took 8 bytes on every rank (12.6 GB each for full-size dlrm_b200's 1.57
    # billion rows, on each of 8 local ranks)
    spp = nfiles * spf // size
    lo, hi = rank * spp, (rank + 1) * spp
    first, last = lo // spf, -(-hi // spf)
    span = (files[first:last, None] * spf + np.arange(spf, dtype=np.int64)[None, :]).ravel()
    mine = span[lo - first * spf : hi - first * spf]
    srng = _rng(rd.sample_shuffle if shuffle else "off", seed, (rank, 2))
    if srng is not None:
        mine = srng.permutation(mine)
    need = steps * bs
    if need > mine.size:
        raise DlioError(
            f"{steps} steps of batch {bs} need {need} samples per rank but each of {size} ranks "
            f"owns {mine.size} of {nfiles * spf}; lower train.total_training_steps or the rank count"
        )
    return mine[:need]


@dataclass(frozen=True, eq=False)  # arrays: no field-wise == or hash
class SampleRuns:
    """A rank's reads for the coverage check as runs of consecutive sample numbers, in read order:
    ``starts[i] .. starts[i] + lengths[i] - 1``. Unshuffled rows come in about one run a file, so a rank
    sends a few numbers to rank 0 instead of every sample (full-size dlrm_b200 on 8 local ranks: 1.57 GB
    from each, every epoch)."""

    starts: np.ndarray
    lengths: np.ndarray

    @property
    def size(self) -> int:
        return int(self.lengths.sum())

    def samples(self) -> np.ndarray:
        """The runs written out (only to name a repeated sample)."""
        if not len(self.starts):
            return np.empty(0, dtype=np.int64)
        return np.concatenate(
            [np.arange(s, s + n, dtype=np.int64) for s, n in zip(self.starts, self.lengths, strict=True)]
        )


#: samples read_summary looks at a time (bounded temporaries at full size), and the most runs it keeps
SUMMARY_CHUNK, MAX_RUNS = 1 << 16, 1 << 16


def read_summary(idx: np.ndarray) -> SampleRuns | np.ndarray:
    """What a rank hands the coverage check: its reads as :class:`SampleRuns` when they form at most
    ``MAX_RUNS`` runs of consecutive samples (found ``SUMMARY_CHUNK`` at a time), else the samples."""
    idx = np.asarray(idx, dtype=np.int64)
    if len(idx) and (int(idx.min()) < 0 or int(idx.max()) == np.iinfo(np.int64).max):
        return idx  # np.diff could wrap between the extremes: the samples, as read, for the check to judge
    starts: list[int] = []
    ends: list[int] = []  # exclusive
    for a in range(0, len(idx), SUMMARY_CHUNK):
        chunk = idx[a : a + SUMMARY_CHUNK]
        cut = np.flatnonzero(np.diff(chunk) != 1) + 1
        if len(cut) >= MAX_RUNS:  # shuffled rows: the samples themselves
            return idx
        heads = chunk[[0, *cut.tolist()]].tolist()
        tails = (chunk[[*(cut - 1).tolist(), len(chunk) - 1]] + 1).tolist()
        if ends and heads[0] == ends[-1]:  # the run goes on across the chunk's edge
            ends[-1] = tails[0]
            heads, tails = heads[1:], tails[1:]
        if len(starts) + len(heads) > MAX_RUNS:
            return idx
        starts += heads
        ends += tails
    lo = np.asarray(starts, dtype=np.int64)
    return SampleRuns(lo, np.asarray(ends, dtype=np.int64) - lo)


def coverage_problem(
    read: Sequence[np.ndarray | SampleRuns], total: int, steps: int, batch_size: int, epoch: int
) -> str | None:
    """None when, over all ranks, every sample was read at most once and each rank read ``steps`` full
    batches (the shard maths: floor(N/P) samples per rank, ``steps * batch_size`` of them read), else what
    was wrong — DLIO's sharding check, exact instead of a sum of indices. A rank's reads come as their
    samples or as :class:`SampleRuns` (:func:`read_summary`)."""
    for r, idx in enumerate(read):
        if idx.size != steps * batch_size:
            return (
                f"coverage check, epoch {epoch}: rank {r} read {idx.size} samples, expected "
                f"{steps} steps x batch {batch_size} = {steps * batch_size}"
            )
        if isinstance(idx, SampleRuns):
            # (no sum that could wrap: starts >= 0 is checked first)
            outside = len(idx.starts) and (
                idx.starts.min() < 0
                or idx.lengths.min() < 1
                or bool((idx.lengths > total - idx.starts).any())
            )
        else:
            outside = idx.size and (idx.min() < 0 or idx.max() >= total)
        if outside:
            return f"coverage check, epoch {epoch}: rank {r} read a sample outside 0..{total - 1}"
    if all(isinstance(idx, SampleRuns) for idx in read):  # judged, and a repeat named, on the runs alone
        return _repeated_in_runs([idx for idx in read if isinstance(idx, SampleRuns)], epoch)
    # one byte a sample, marked rank by rank: fewer marks than reads means a sample was read twice. (A
    # bincount over every rank's reads concatenated took 8 bytes a sample twice over: ~25 GB an epoch for
    # full-size dlrm's 1.57 billion rows; this takes 1.6 GB, and 1.0 ms against 2.2 ms for 350,000.)
    seen = np.zeros(total, dtype=np.bool_)
    for idx in read:
        if isinstance(idx, SampleRuns):
            for s, n in zip(idx.starts.tolist(), idx.lengths.tolist(), strict=True):
                seen[s : s + n] = True
        else:
            seen[idx] = True
    if int(np.count_nonzero(seen)) == sum(idx.size for idx in read):
        return None
    del seen
    every = [idx.samples() if isinstance(idx, SampleRuns) else idx for idx in read]
    counts = np.bincount(np.concatenate(every), minlength=total)  # only to name the repeated sample
    twice = np.flatnonzero(counts > 1)
    if twice.size:
        who = [r for r, idx in enumerate(every) if np.isin(twice[0], idx)]
        return _repeated(epoch, int(twice.size), int(twice[0]), int(counts[twice[0]]), who)
    return None


def _repeated(epoch: int, many: int, sample: int, times: int, who: list[int]) -> str:
    return (
        f"coverage check, epoch {epoch}: {many} samples were read more than once (sample "
        f"{sample} {times} times, by ranks {who}); each sample belongs to one rank"
    )


def _repeated_in_runs(runs: list[SampleRuns], epoch: int) -> str | None:
    """None when no sample is in two runs, else the repeated samples named from the runs alone: how many
    runs cover each stretch between consecutive run edges (a run adds one where it starts, takes it away
    where it ends), so a full-size check neither writes 1.57 billion samples out per rank nor marks a byte
    for each."""
    lo = np.concatenate([x.starts for x in runs]) if runs else np.empty(0, dtype=np.int64)
    hi = np.concatenate([x.starts + x.lengths for x in runs]) if runs else lo
    edges, at = np.unique(np.concatenate([lo, hi]), return_inverse=True)
    step = np.bincount(
        at, weights=np.concatenate([np.ones(len(lo)), -np.ones(len(hi))]), minlength=len(edges)
    )
    depth = np.cumsum(step)[:-1].astype(np.int64)  # runs covering edges[i] .. edges[i + 1] - 1
    dup = np.flatnonzero(depth > 1)
    if not dup.size:
        return None
    many = int((edges[dup + 1] - edges[dup]).sum())
    sample = int(edges[dup[0]])
    who = [
        r for r, x in enumerate(runs) if bool(np.any((x.starts <= sample) & (sample < x.starts + x.lengths)))
    ]
    return _repeated(epoch, many, sample, int(depth[dup[0]]), who)
