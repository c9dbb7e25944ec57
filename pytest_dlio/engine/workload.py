"""One workload, run from code: datagen, training with checkpoints interleaved, the AU gate, checkpoint
write and read — in order, with the workload's state (metrics, saved checkpoints, the summary being
built) held here in memory. DLIO's files (``summary.json``, per-rank files) are written from that state
after each phase and never read back.

Pytest items drive a :class:`Workload` one phase per item; a script, a local rank worker or an MPI rank
drives it the same way::

    settings = RunSettings(data_root=Path(".dlio"), scale="smoke")
    storage = StorageSession(settings.data_root)
    wl = Workload.load("unet3d_h100.yaml", settings, storage)
    results = asyncio.run(wl.run_all())

With ``settings.runs`` > 1 or ``settings.warmup``, ``run`` repeats the measured phases (train; checkpoint
write/read of checkpoint-only workloads) with a new seed each (:meth:`Workload.repeat`) and returns each
figure's mean, ``_stdev`` and ``_cov``. With ``settings.results_dir``, each run's DLIO files go to a
timestamp folder of mlpstorage's results tree (``report/results_tree.py``) instead of ``home``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_dlio.engine.load import load_workload, world_problems
from pytest_dlio.engine.settings import RunSettings
from pytest_dlio.errors import DlioError, StorageError
from pytest_dlio.progress import ProgressFn
from pytest_dlio.ranks import Comm, RankOfWorld, SingleComm
from pytest_dlio.report import results as report
from pytest_dlio.report.dlio_json import (
    EXTRA_KEY,
    deep_merge,
    host_info,
    run_summary,
    summary_dict,
    write_json,
    write_rank_files,
    write_summary,
)
from pytest_dlio.report.dlio_json import stamp as dlio_stamp
from pytest_dlio.report.results import PhaseResult
from pytest_dlio.report.series import latency_histogram, time_series

if TYPE_CHECKING:
    from pytest_dlio.config.model import WorkloadConfig
    from pytest_dlio.metrics import ReaderCosts, TrainMetrics
    from pytest_dlio.phases.checkpoint import Checkpointer, CheckpointStats
    from pytest_dlio.phases.datagen import DatagenStats
    from pytest_dlio.phases.train import TrainRun
    from pytest_dlio.report.identity import RunIdentity
    from pytest_dlio.storage.base import ObjectStore
    from pytest_dlio.storage.session import StorageSession
    from pytest_dlio.storage.stats import Retries


@dataclass(frozen=True)
class Phase:
    """One step of a workload's plan: its name and the phases that must have passed before it."""

    name: str
    needs: tuple[str, ...]


def plan(cfg: WorkloadConfig) -> list[Phase]:
    """The phases a valid workload runs, in order (each becomes one pytest item)."""
    wf = cfg.workflow
    out: list[Phase] = []
    if wf.train or wf.generate_data:
        out.append(Phase("datagen", ()))
    if wf.train:
        out += [Phase("train", ("datagen",)), Phase("au", ("datagen", "train"))]
    if wf.checkpoint:
        if cfg.checkpoint_only:
            if cfg.checkpoint.num_checkpoints_write > 0:
                out.append(Phase("checkpoint_write", ()))
            if cfg.checkpoint.num_checkpoints_read > 0:
                out.append(Phase("checkpoint_read", ()))
        elif wf.train:
            out += [
                Phase("checkpoint_write", ("datagen", "train")),
                Phase("checkpoint_read", ("datagen", "train", "checkpoint_write")),
            ]
    return out


#: Phases --dlio-runs repeats (checkpoint_write only when checkpoint-only: training's saves repeat with train).
REPEATED = ("train", "checkpoint_write", "checkpoint_read")


#: Seed distance between repeated runs: larger than any epoch count, since DLIO adds the epoch to the seed
#: (``seed_change_epoch``) and run k's epoch 2 must not replay run k+1's epoch 1.
SEED_STRIDE = 10_007


def with_seed(cfg: WorkloadConfig, run: int) -> WorkloadConfig:
    """``cfg`` for repeated run ``run`` (0 = as written): ``train.seed`` moved so each run shuffles anew."""
    import dataclasses

    return dataclasses.replace(
        cfg, train=dataclasses.replace(cfg.train, seed=cfg.train.seed + SEED_STRIDE * run)
    )


class _TrainingCheckpoints:
    """Training's checkpoint hooks: step-based saves, and DLIO's epoch-end saves at step max_steps + 1."""

    def __init__(self, cfg: WorkloadConfig, ckpt: Checkpointer, steps_per_epoch: int) -> None:
        from pytest_dlio.checkpointing.plan import checkpoint_epochs

        self.ckpt, self.steps = ckpt, steps_per_epoch
        by_steps = cfg.checkpoint.steps_between_checkpoints >= 0
        self.due = set() if by_steps else set(checkpoint_epochs(cfg))

    async def on_step(self, epoch: int, step: int) -> None:
        await self.ckpt.save(epoch, step)

    async def on_epoch_end(self, epoch: int) -> None:
        if epoch in self.due:
            await self.ckpt.save(epoch, self.steps + 1)


class Workload:
    """One workload's run on one rank: its config, settings, storage, world and everything it found."""

    def __init__(
        self,
        cfg: WorkloadConfig,
        settings: RunSettings,
        storage: StorageSession,
        *,
        comm: Comm | None = None,
        name: str | None = None,
        progress: ProgressFn | None = None,
    ) -> None:
        self.cfg, self.settings, self.storage = cfg, settings, storage
        self.comm: Comm = comm or SingleComm()
        self.name = name or Path(cfg.source.path).stem or "workload"
        self._progress = progress
        self.home = settings.output / self.name  # this workload's folder under --dlio-output
        self._label: str | None = None  # the repeated run in progress ("warmup", "run1", ..), if any
        self._run_dirs: dict[str, Path] = {}  # --dlio-results-dir: each run's timestamped folder
        self._run_summaries: dict[str, dict[str, Any]] = {}  # each repeated run's own summary.json
        self._t_label: float | None = None  # when the repeated run in progress started
        self.results: dict[str, PhaseResult] = {}
        self.datagen_written: DatagenStats | None = None  # this rank's own generation (its written keys)
        self.datagen_stats: DatagenStats | None = None
        self.train_run: TrainRun | None = None
        self.saves: CheckpointStats | None = None  # written during training (or checkpoint-only writes)
        self.loads: CheckpointStats | None = None
        self.summary: dict[str, Any] = {}  # summary.json as built so far (written, never read back)
        # this rank's read time series and per-phase latency histograms (report/series.py), written beside
        # DLIO's files as {rank}_timeseries.json and {rank}_latency_histograms.json
        self.timeseries: dict[str, dict[str, Any]] = {}
        self.histograms: dict[str, dict[str, Any]] = {}
        #: Storage retries per phase (train: the dataset's store; checkpoint_write: the checkpoints' store,
        #: also when the saves happened during training).
        self.retries: dict[str, Retries] = {}
        self._checkpoint_note: str | None = None  # training's checkpoints: one process emulating rank 0
        # names what this run writes (the manifest of written keys): unique per process, rank and workload
        self.run_id = (
            f"{self.name}-{os.uname().nodename}-{os.getpid()}-{time.strftime('%Y%m%dT%H%M%S')}"
            f"-rank{self.comm.rank}"
        )
        self._identity: RunIdentity | None = None
        self._last_repeat = True  # False while a repeated train run is not the last (keep the dataset)
        self._train_metrics: list[TrainMetrics] = []  # each scored train run's metrics (--dlio-runs)
        self._save_results: list[PhaseResult] = []  # each train run's checkpoint saves (--dlio-runs)
        self._t_first: float | None = None  # when this workload's first phase started

    @classmethod
    def load(cls, path: str | Path, settings: RunSettings, storage: StorageSession, **kw: Any) -> Workload:
        """A workload from its YAML (ConfigError, every problem located, when it is not valid)."""
        return cls(load_workload(path, settings), settings, storage, **kw)

    # ---- the plan ----
    @property
    def phases(self) -> list[Phase]:
        return plan(self.cfg)

    def problems(self) -> list[str]:
        """What makes this workload impossible in this run's world (empty when it can run)."""
        return world_problems(self.cfg, self.settings)

    @property
    def progress(self) -> ProgressFn | None:
        """The progress callback phases get: rank 0's only, so a workload shows one line, not one per rank."""
        return self._progress if self.comm.rank == 0 else None

    @property
    def metrics(self) -> TrainMetrics | None:
        return self.train_run.metrics if self.train_run is not None else None

    async def run(self, phase: str) -> PhaseResult:
        """Run one phase (its prerequisites must have run) and remember its result."""
        if self._t_first is None:
            self._t_first = time.time()
        steps = {
            "datagen": self.datagen,
            "train": self.train,
            "checkpoint_write": self.checkpoint_write,
            "checkpoint_read": self.checkpoint_read,
        }
        if phase == "au":
            result = self.au()
        elif phase in steps and self.repeats > 1 and phase in REPEATED and not self._saved_in_training(phase):
            result = await self.repeat(phase, steps[phase])
        elif phase in steps:
            result = await steps[phase]()
        else:
            raise DlioError(f"unknown phase {phase!r}; phases are {', '.join(p.name for p in self.phases)}")
        if phase in steps:
            uri = self.checkpoint_uri() if phase.startswith("checkpoint") else self.data_uri()
            result.properties.append(("storage_library", self.storage.library(uri, self.cfg.storage)))
        self.results[phase] = result
        return result

    async def run_all(self) -> dict[str, PhaseResult | str]:
        """Every phase in order; a phase whose prerequisite failed is skipped (its value says why)."""
        out: dict[str, PhaseResult | str] = {}
        failed: set[str] = set()
        for p in self.phases:
            blocked = [n for n in p.needs if n in failed]
            if blocked:
                out[p.name] = f"not run: {blocked[0]} failed"
                failed.add(p.name)
                continue
            try:
                res = await self.run(p.name)
            except DlioError as exc:
                res = PhaseResult(p.name, failure=str(exc))
            out[p.name] = res
            if res.failure:
                failed.add(p.name)
        return out

    # ---- stores ----
    def data_uri(self) -> str:
        """The dataset folder's URI (direct:// when ``reader.odirect`` on local files)."""
        cfg = self.cfg
        uri = self.storage.resolve(cfg.dataset.data_folder, cfg.storage)
        if cfg.reader.odirect and uri.startswith("file://"):
            uri = "direct://" + uri.removeprefix("file://")
        return uri

    def checkpoint_uri(self) -> str:
        return self.storage.resolve(self.cfg.checkpoint.checkpoint_folder, self.cfg.storage)

    async def open_data(self) -> ObjectStore:
        """The store rooted at the dataset folder (O_DIRECT when ``reader.odirect`` on local files)."""
        return await self.storage.open(self.data_uri(), self.cfg.storage, threads=self.cfg.data_store_threads)

    async def open_checkpoints(self) -> ObjectStore:
        return await self.storage.open(self.checkpoint_uri(), self.cfg.storage, threads=8)

    def checkpoint_comm(self) -> tuple[Comm, str | None]:
        """The world a checkpoint phase runs in, and a note when one process stands in for rank 0 of more."""
        cfg = self.cfg
        par = cfg.model.parallelism
        mp = max(1, par.tensor) * max(1, par.pipeline)
        several = (
            self.settings.ranks_explicit and self.settings.ranks > 1
        )  # --dlio-ranks 1 emulates, like none
        if several or mp == 1 or cfg.checkpoint.mode != "default" or self.comm.size > 1:
            return self.comm, None
        return RankOfWorld(0, mp), (
            f"one process emulates rank 0 of {mp} (tensor {par.tensor} x pipeline "
            f"{par.pipeline}): rank 0's files and sizes exactly; GB/s are this rank's"
        )

    def _check_world(self) -> None:
        """The Comm must span the world the run planned for (``--dlio-ranks N`` needs N ranks running)."""
        want = self.settings.ranks if self.settings.ranks_explicit else 1
        if want != self.comm.size and not getattr(self.comm, "emulated", False):
            raise DlioError(
                f"--dlio-ranks {want}: this Workload runs in a world of {self.comm.size} rank(s); "
                "run it through pytest_dlio.engine.runner.make_runner (local rank processes) "
                "or under mpirun with one process per rank"
            )

    # ---- phases ----
    async def datagen(self) -> PhaseResult:
        from pytest_dlio.phases.datagen import generate, manifest_key

        self._check_world()
        # keep_files: false deletes what this run wrote, so the store keeps that list while it writes
        manifest = None if self.cfg.dataset.keep_files else manifest_key(self.run_id)
        async with await self.open_data() as store:
            if self.settings.generate != "never":
                self._check_fits("the dataset", store)
            stats = await generate(
                self.cfg,
                store,
                comm=self.comm,
                mode=self.settings.generate,
                progress=self.progress,
                manifest=manifest,
                verify_data=self.settings.verify_data,
            )
        self.datagen_written = stats  # this rank's own keys: what keep_files: false may delete
        # this rank's own series and histogram (the {rank}_*.json files are per rank) ...
        self.histograms["datagen_write"] = latency_histogram(stats.write_latencies)
        if stats.write_starts:
            from pytest_dlio.timeline import Reads

            writes = Reads(list(stats.write_bytes), list(stats.write_latencies), list(stats.write_starts))
            self.timeseries["datagen_write"] = time_series(writes)
        self._write_series()
        if self.comm.size > 1:  # ... and the report shows the whole dataset's generation, summed over ranks
            from pytest_dlio.phases.datagen import merge_stats

            everyone = await self.comm.gather(stats)
            stats = await self.comm.broadcast(merge_stats(everyone) if everyone else stats)
        self.datagen_stats = stats
        return report.with_retries(report.datagen_result(stats), self._retried("datagen", store))

    async def train(self) -> PhaseResult:
        from pytest_dlio.phases.train import run_training

        self._check_world()
        cfg = self.cfg
        async with await self.open_data() as store:
            if cfg.workflow.checkpoint:
                run = await self._train_with_checkpoints(store)
            else:
                run = await run_training(cfg, store, comm=self.comm, progress=self.progress)
            deleted: int | None = None
            if not cfg.dataset.keep_files and self._last_repeat:
                from pytest_dlio.phases.datagen import cleanup

                deleted = await cleanup(store, self.datagen_written, self.comm)
        self.train_run = run
        retries = self._retried("train", store)
        write_rank_files(self.output_dir, run.timeline)
        hosts = await self.comm.gather(host_info())
        self._add_to_summary(summary_dict(cfg, run.metrics, run.t_start, run.t_end, hosts=hosts))
        if self.saves is not None:
            self._add_to_summary({"metric": self.saves.metric})
        self._add_series("train", run.timeline.reads, run.t_end)
        if run.timeline.eval_reads.nbytes:
            self._add_series("eval", run.timeline.eval_reads, run.t_end)
        if self.saves is not None:
            self._add_checkpoint_histograms(self.saves)
        result = report.with_retries(report.train_result(run.metrics), retries)
        result.lines.append(f"DLIO output: {self.output_dir}")
        if deleted is not None:
            result.lines.append(
                f"dataset.keep_files: false: deleted the {deleted} objects this run wrote "
                "(its files, sidecars and markers; files that were there before are kept)"
            )
        return result

    async def _train_with_checkpoints(self, store: ObjectStore) -> TrainRun:
        from pytest_dlio.phases.checkpoint import Checkpointer
        from pytest_dlio.phases.train import run_training

        ck_comm, note = self.checkpoint_comm()
        async with await self.open_checkpoints() as ckstore:
            self._check_fits("the checkpoints", ckstore, ck_comm)
            ckpt = Checkpointer(self.cfg, ckstore, comm=ck_comm, progress=self.progress)
            hooks = _TrainingCheckpoints(self.cfg, ckpt, self.cfg.steps_per_epoch(self.comm.size))
            run = await run_training(
                self.cfg,
                store,
                comm=self.comm,
                on_checkpoint=hooks.on_step,
                on_epoch_end=hooks.on_epoch_end,
                progress=self.progress,
            )
        self.saves = ckpt.stats()
        self._retried("checkpoint_write", ckstore)
        self._checkpoint_note = note
        return run

    def au(self) -> PhaseResult:
        m = self.metrics
        if m is None:
            raise DlioError("no training metrics: the train phase did not run")
        if len(self._train_metrics) > 1:
            return report.au_runs_result(self._train_metrics, self.cfg.metric.au)
        return report.au_result(m, self.cfg.metric.au, self.retries.get("train"), self._reader_costs())

    def _reader_costs(self) -> ReaderCosts | None:
        """What this rank's training readers spent (the AU verdict names the probable cause from it)."""
        from pytest_dlio.formats import get_format
        from pytest_dlio.metrics import ReaderCosts

        if self.train_run is None:
            return None
        rd, fmt = self.cfg.reader, self.cfg.dataset.format
        return ReaderCosts(
            read_threads=rd.read_threads,
            decode_seconds=self.train_run.loader.decode_seconds,
            decode_inline=rd.read_threads <= 0 or not get_format(fmt).heavy,
            format=fmt,
            cores=os.cpu_count() or 1,
            window=self.train_run.loader.window,
            window_threads=self.cfg.data_store_threads if self.cfg.row_group_window > 0 else 0,
        )

    async def checkpoint_write(self) -> PhaseResult:
        from pytest_dlio.phases.checkpoint import write_checkpoints

        self._check_world()
        if self.cfg.workflow.train:  # saves happened during training
            if self.saves is None or not self.saves.counts.get("save"):
                raise DlioError(
                    "no checkpoint was written during training (check checkpoint_after_epoch, "
                    "epochs_between_checkpoints and steps_between_checkpoints against train.epochs)"
                )
            stats, note = self.saves, self._checkpoint_note
            if len(self._save_results) > 1:  # --dlio-runs: training (and its saves) ran several times
                done = [(self._run_label(i), r) for i, r in enumerate(self._save_results)]
                return self._aggregate("checkpoint_write", done)
            retries = self.retries["checkpoint_write"]
        else:
            comm, note = self.checkpoint_comm()
            async with await self.open_checkpoints() as store:
                self._check_fits("the checkpoints", store, comm)
                stats = await write_checkpoints(self.cfg, store, comm=comm, progress=self.progress)
            self.saves = stats
            self._add_checkpoint_histograms(stats)
            retries = self._retried("checkpoint_write", store)
        self._add_to_summary({"metric": stats.metric})
        return report.with_retries(
            report.checkpoint_result("checkpoint_write", stats, (note,) if note else ()), retries
        )

    async def checkpoint_read(self) -> PhaseResult:
        from pytest_dlio.phases.checkpoint import read_checkpoints

        self._check_world()
        comm, note = self.checkpoint_comm()
        saved = list(self.saves.saved) if self.cfg.workflow.train and self.saves is not None else None
        async with await self.open_checkpoints() as store:
            stats = await read_checkpoints(
                self.cfg,
                store,
                comm=comm,
                verify=self.settings.verify,
                drop_caches=self.settings.drop_caches,
                epoch_steps=saved,
                progress=self.progress,
            )
        self.loads = stats
        self._add_checkpoint_histograms(stats)
        retries = self._retried("checkpoint_read", store)
        self._add_to_summary({"metric": stats.metric})
        return report.with_retries(
            report.checkpoint_result("checkpoint_read", stats, (note,) if note else ()), retries
        )

    def _retried(self, phase: str, store: ObjectStore) -> Retries:
        """Record the retries ``store`` made as ``phase``'s (stores are opened per phase)."""
        self.retries[phase] = retries = store.retries.snapshot()
        return retries

    def _check_fits(self, what: str, store: ObjectStore, comm: Comm | None = None) -> None:
        """Refuse, before any write, a dataset or checkpoint plan the target can never hold."""
        from pytest_dlio.phases import capacity

        if what == "the dataset":
            need = capacity.dataset_bytes(self.cfg)
        else:
            c = comm or self.comm
            need = capacity.checkpoint_bytes(self.cfg, c.size, c.rank)
        capacity.check_fits(f"{self.name}: {what}", need, store, self.settings.max_bytes)

    @property
    def output_dir(self) -> Path:
        """Where DLIO's files for the run in progress go: ``home`` (and ``home/run1``.. when repeating), or
        with ``results_dir`` a fresh mlpstorage timestamp folder per run (made when first written).
        Across repeated runs the aggregate (``pytest_dlio.runs``) goes to ``home``."""
        if self._label is None and self.repeats > 1:
            return self.home
        if self.settings.results_dir is None:
            return self.home / self._label if self._label else self.home
        label = self._label or "single"
        if label not in self._run_dirs:
            from pytest_dlio.report.results_tree import new_run_dir, write_dlio_config, write_metadata

            path = self._run_dirs[label] = new_run_dir(self.settings.results_dir, self.cfg)
            write_dlio_config(path, self.cfg, self.settings.overrides)
            write_metadata(path, self.cfg, self.settings.ranks, self.identity().as_dict())
        return self._run_dirs[label]

    # ---- repeated runs (--dlio-runs N, --dlio-warmup) ----
    @property
    def repeats(self) -> int:
        return self.settings.runs + int(self.settings.warmup)

    def _saved_in_training(self, phase: str) -> bool:
        return phase == "checkpoint_write" and self.cfg.workflow.train

    async def repeat(self, phase: str, once: Callable[[], Any]) -> PhaseResult:
        """Run ``phase`` warm-up + N times, a new seed and output folder (``warmup``, ``run1``..) each run;
        the result holds each figure's mean, ``_stdev`` and ``_cov`` over the scored runs."""
        self.identity()  # from the config as written, before seeds move
        base_cfg = self.cfg
        done: list[tuple[str, PhaseResult]] = []
        warm = int(self.settings.warmup)
        try:
            for i in range(self.repeats):
                label = self._run_label(i)
                self.cfg, self._label, self._t_label = with_seed(base_cfg, i), label, time.time()
                self._last_repeat = i == self.repeats - 1
                result = await once()
                done.append((label, result))
                if phase == "train":
                    if i >= warm and self.metrics is not None:
                        self._train_metrics.append(self.metrics)
                    if self.saves is not None:
                        self._save_results.append(report.checkpoint_result("checkpoint_write", self.saves))
                if result.failure:
                    break
        finally:
            self.cfg, self._label, self._last_repeat = base_cfg, None, True
        return self._aggregate(phase, done)

    def _run_label(self, i: int) -> str:
        warm = int(self.settings.warmup)
        return "warmup" if i < warm else f"run{i + 1 - warm}"

    def _aggregate(self, phase: str, done: list[tuple[str, PhaseResult]]) -> PhaseResult:
        from pytest_dlio.gating.stats import repeated_result

        result = repeated_result(phase, done)
        self._add_to_summary({EXTRA_KEY: {"runs": {phase: dict(result.properties)}}})
        return result

    # ---- what the result is ----
    def storage_uri(self) -> str:
        """The URI this workload's data (or, checkpoint-only, its checkpoints) lives at (may hold no secret)."""
        cfg = self.cfg
        folder = cfg.checkpoint.checkpoint_folder if cfg.checkpoint_only else cfg.dataset.data_folder
        try:
            return self.storage.resolve(folder, cfg.storage)
        except DlioError as exc:
            return f"unresolved ({exc})"

    def identity(self, *, start_emulators: bool = True) -> RunIdentity:
        """Version, config hash, scale, ranks, hosts, storage URI and emulator (cached once storage is known).

        ``start_emulators=False`` (plans) never starts an emulator: it names one only if it is already up.
        """
        from pytest_dlio.report.identity import identify

        if self._identity is not None:
            return self._identity
        uri = self.storage_uri()
        emulator: str | None
        scheme = uri.split("://", 1)[0]
        if start_emulators:
            try:
                emulator = self.storage.options_for(uri, self.cfg.storage).emulator
            except DlioError:
                emulator = "unknown"
        else:
            running = self.storage.emulators.running()
            emulator = {"s3": "moto", "az": "azurite"}.get(scheme)
            emulator = emulator if emulator in running else None
        ident = identify(self.cfg, ranks=self.settings.ranks, hosts=1, storage_uri=uri, emulator=emulator)
        if start_emulators:
            self._identity = ident
        return ident

    # ---- what reports show (plain data) ----
    def _add_series(self, split: str, reads: Any, t_end: float) -> None:
        self.timeseries[f"{split}_read"] = time_series(reads, t_end)
        self.histograms[f"{split}_read"] = latency_histogram(reads.latency)
        self._write_series()

    def _add_checkpoint_histograms(self, stats: CheckpointStats) -> None:
        for kind, lat in stats.file_latencies.items():
            if lat:
                self.histograms[f"checkpoint_{kind}_file"] = latency_histogram(lat)
        self._write_series()

    def _write_series(self) -> None:
        rank = self.comm.rank
        if self.timeseries:
            write_json(self.output_dir / f"{rank}_timeseries.json", {"rank": rank, **self.timeseries})
        write_json(self.output_dir / f"{rank}_latency_histograms.json", {"rank": rank, **self.histograms})

    def run_info(self) -> dict[str, Any]:
        """What was run, for reports: config, scale, storage (no secrets), emulator, world. Touches no storage."""
        from pytest_dlio.storage.uri import parse_uri, scrub

        cfg, st = self.cfg, self.settings
        info: dict[str, Any] = {
            "name": self.name,
            "config": str(cfg.source.path),
            "dialect": cfg.source.dialect,
            "scale": cfg.source.scale,
            "scale_option": st.scale,
            "ranks": st.ranks,
            "rank": self.comm.rank,
            "world": self.comm.size,
            "model": cfg.model.name,
            "format": cfg.dataset.format,
            "epochs": cfg.train.epochs,
            "output": str(self.output_dir),
        }
        running = self.storage.emulators.running()
        for key, folder in (
            ("data", cfg.dataset.data_folder),
            ("checkpoints", cfg.checkpoint.checkpoint_folder),
        ):
            try:
                uri = self.storage.resolve(folder, cfg.storage)
            except (StorageError, DlioError) as exc:
                info[f"{key}_uri"] = f"unresolved: {exc}"
                continue
            info[f"{key}_uri"] = scrub(uri)
            scheme = parse_uri(uri).scheme
            emulator = {"s3": "moto", "az": "azurite"}.get(scheme)
            info[f"{key}_emulator"] = emulator if emulator in running else None
        return info

    def report_data(self, phase: str) -> dict[str, Any]:
        """The figures a report draws for ``phase`` (per-epoch AU, series, histograms, checkpoint timings)."""
        out: dict[str, Any] = {"run": self.run_info()}  # every phase: an emulator may have started since
        if phase == "datagen" and "datagen_write" in self.histograms:
            out["histograms"] = {"datagen_write": self.histograms["datagen_write"]}
            if "datagen_write" in self.timeseries:
                out["timeseries"] = {"datagen_write": self.timeseries["datagen_write"]}
        elif phase == "train" and self.metrics is not None:
            m = self.metrics
            out["epochs"] = [
                {"epoch": i + 1, "au_percentage": au, "samples_per_second": thr}
                for i, (au, thr) in enumerate(
                    zip(m.train_au_percentage, m.train_throughput_samples_per_second, strict=False)
                )
            ]
            if m.eval_au_percentage:
                out["eval_epochs"] = [
                    {"index": i + 1, "au_percentage": au, "samples_per_second": thr}
                    for i, (au, thr) in enumerate(
                        zip(m.eval_au_percentage, m.eval_throughput_samples_per_second, strict=False)
                    )
                ]
            out["timeseries"] = {k: v for k, v in self.timeseries.items() if k.endswith("_read")}
            out["histograms"] = {k: v for k, v in self.histograms.items() if k.endswith("_read")}
        elif phase in ("checkpoint_write", "checkpoint_read"):
            kind, stats = ("save", self.saves) if phase == "checkpoint_write" else ("load", self.loads)
            if stats is not None:
                out["checkpoint"] = {
                    "kind": kind,
                    "durations_seconds": list(stats.durations.get(kind, ())),
                    "saved": [list(p) for p in stats.saved],
                    "size_GB": stats.metric.get("checkpoint_size_GB"),
                }
                key = f"checkpoint_{kind}_file"
                if key in self.histograms:
                    out["histograms"] = {key: self.histograms[key]}
        return out

    def _add_to_summary(self, part: dict[str, Any]) -> None:
        """Merge a phase's part into the in-memory summary and write summary.json from it (rank 0 only).

        A repeated run (``--dlio-runs``) also has a summary of its own, written to its own folder;
        ``summary`` then holds the latest run's figures and, once the runs are done, their statistics."""
        now = time.time()
        docs = [self.summary]
        if self._label is not None:
            docs.append(self._run_summaries.setdefault(self._label, {}))
        for doc in docs:
            if not doc:  # what every summary says, training or checkpoint-only
                ident = self.identity().as_dict()
                start = self._t_label if self._label is not None and doc is docs[-1] else self._t_first
                deep_merge(doc, run_summary(self.cfg, self.settings.ranks, ident, start or now, now))
            elif self.cfg.checkpoint_only:
                doc["end"] = dlio_stamp(now)
            deep_merge(doc, part)
            doc.setdefault(EXTRA_KEY, {})["storage_retries"] = {
                phase: report.retries_json(r) for phase, r in self.retries.items()
            }
        if self.comm.rank == 0:
            write_summary(self.output_dir, docs[-1])
