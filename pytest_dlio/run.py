"""One object per pytest session holding what the items share: options, loaded configs, stores, results.

Items call into it; it calls the phases. The plugin only wires it up (``config.stash``).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from pytest_dlio.config.load import load, normalised
from pytest_dlio.config.scale import factor_for, scale_config
from pytest_dlio.config.secrets import SECRET_KEYS
from pytest_dlio.errors import DlioError
from pytest_dlio.options import SCALE_PRESETS
from pytest_dlio.phases import PhaseResult
from pytest_dlio.ranks import Comm, RankOfWorld, SingleComm

if TYPE_CHECKING:
    from collections.abc import Callable

    from pytest_dlio.config.model import WorkloadConfig
    from pytest_dlio.items import DlioItem, SchemaItem
    from pytest_dlio.metrics import TrainMetrics
    from pytest_dlio.storage.base import ObjectStore
    from pytest_dlio.storage.session import StorageSession

STASH_KEY = pytest.StashKey["DlioRun"]()


def redact(data: Any) -> Any:
    """A copy of plain data with every credential value replaced by ``***``."""
    if isinstance(data, dict):
        return {k: ("***" if k in SECRET_KEYS and v else redact(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [redact(v) for v in data]
    return data


class DlioRun:
    """Session state shared by every workload item."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        opt = config.getoption
        self.overrides: list[str] = list(opt("dlio_set") or [])
        self.scale: float | str | None = opt("dlio_scale")
        self.ranks_explicit = opt("dlio_ranks") is not None
        self.ranks: int = opt("dlio_ranks") or 1
        self.show_config: str | None = opt("dlio_show_config")
        self.plan_only: bool = opt("dlio_plan")
        self.generate_mode: str = opt("dlio_generate")
        self.verify: bool = not opt("dlio_no_verify")
        self.drop_caches: bool = opt("dlio_drop_caches")
        root = opt("dlio_data_root")
        self.data_root = Path(root).resolve() if root else Path(config.rootpath) / ".dlio"
        out = opt("dlio_output")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.output_root = Path(out).resolve() if out else self.data_root / "output" / stamp
        self.results: dict[str, dict[str, PhaseResult]] = {}
        self.metrics: dict[str, TrainMetrics] = {}  # per workload file, for its au item
        self.checkpoints_saved: dict[str, list[tuple[int, int]]] = {}
        self.rows: list[dict[str, Any]] = []  # terminal summary rows, filled from reports (xdist-safe)
        self.texts: list[tuple[str, str, str]] = []  # (nodeid, title, text) for config/plan sections

    # ---- configs ----
    def load(self, path: Path) -> WorkloadConfig:
        cfg = load(path, self.overrides)
        if self.scale is not None:
            factor = factor_for(cfg, SCALE_PRESETS[self.scale]) if isinstance(self.scale, str) else self.scale
            cfg = scale_config(cfg, factor, ranks=self.ranks, smoke=self.scale == "smoke")
        return cfg

    def world_problems(self, cfg: WorkloadConfig) -> list[str]:
        """Rules that depend on the world size (--dlio-ranks)."""
        try:
            from pytest_dlio.checkpointing.sizes import check_world
        except ImportError:  # pragma: no cover - during development only
            return []
        if not self.ranks_explicit:
            return []  # one process: model-parallel checkpoints run as rank 0 of their smallest world
        return list(check_world(cfg, self.ranks))

    def checkpoint_comm(self, cfg: WorkloadConfig) -> tuple[Comm, str | None]:
        """The world a checkpoint phase runs in, and a note when one process stands in for rank 0 of more."""
        par = cfg.model.parallelism
        mp = max(1, par.tensor) * max(1, par.pipeline)
        if self.ranks_explicit or mp == 1 or cfg.checkpoint.mode != "default":
            return SingleComm(), None
        return RankOfWorld(0, mp), (f"one process emulates rank 0 of {mp} (tensor {par.tensor} x pipeline "
                                    f"{par.pipeline}): rank 0's files and sizes exactly; GB/s are this rank's")

    def after_schema(self, item: SchemaItem) -> None:
        cfg = item.cfg
        if self.show_config:
            data = redact(normalised(cfg))
            text = (json.dumps(data, indent=2) if self.show_config == "json"
                    else yaml.safe_dump(data, sort_keys=False, default_flow_style=None))
            item.add_report_section("call", "dlio config", text)
        if self.plan_only:
            from pytest_dlio.checkpointing.plan import plan_lines

            item.add_report_section("call", "dlio plan", "\n".join(plan_lines(cfg, self.ranks)))

    def output_dir(self, item: DlioItem) -> Path:
        return self.output_root / item.path.stem

    def record(self, item: DlioItem, result: PhaseResult) -> None:
        self.results.setdefault(str(item.path), {})[item.name] = result

    def record_named(self, item: DlioItem, name: str, result: PhaseResult) -> None:
        self.results.setdefault(str(item.path), {})[name] = result

    def result(self, item: DlioItem, name: str) -> PhaseResult | None:
        return self.results.get(str(item.path), {}).get(name)

    def _single_rank(self) -> None:
        if self.ranks > 1:
            raise DlioError(f"--dlio-ranks {self.ranks}: running several ranks at once is not supported yet; "
                            "use --dlio-ranks N with --dlio-plan to plan for N ranks")

    # ---- phases ----
    def storage(self) -> StorageSession:
        from pytest_dlio.storage.pytest_plugin import get_storage_session

        return get_storage_session(self.config)

    async def open_data(self, cfg: WorkloadConfig) -> ObjectStore:
        """The store rooted at the dataset folder (O_DIRECT when ``reader.odirect`` on local files)."""
        uri = self.storage().resolve(cfg.dataset.data_folder, cfg.storage)
        if cfg.reader.odirect and uri.startswith("file://"):
            uri = "direct://" + uri.removeprefix("file://")
        return await self.storage().open(uri, cfg.storage, threads=max(1, cfg.reader.read_threads))

    async def open_checkpoints(self, cfg: WorkloadConfig) -> ObjectStore:
        uri = self.storage().resolve(cfg.checkpoint.checkpoint_folder, cfg.storage)
        return await self.storage().open(uri, cfg.storage, threads=8)

    def datagen(self, item: DlioItem) -> PhaseResult:
        from pytest_dlio.phases.datagen import generate

        self._single_rank()
        cfg = item.cfg

        async def go() -> PhaseResult:
            async with await self.open_data(cfg) as store:
                return await generate(cfg, store, comm=SingleComm(), mode=self.generate_mode,
                                      progress=self._progress(item))

        return item.arun(go)

    def train(self, item: DlioItem) -> PhaseResult:
        from pytest_dlio.checkpointing.plan import checkpoint_epochs
        from pytest_dlio.phases.checkpoint import Checkpointer
        from pytest_dlio.phases.train import result_of, run_training
        from pytest_dlio.report.dlio_json import merge_summary, write_rank_files, write_summary

        self._single_rank()
        cfg, comm, out = item.cfg, SingleComm(), self.output_dir(item)

        async def go() -> PhaseResult:
            async with await self.open_data(cfg) as store:
                if not cfg.workflow.checkpoint:
                    run = await run_training(cfg, store, comm=comm)
                    saves = None
                else:
                    async with await self.open_checkpoints(cfg) as ckstore:
                        ck_comm, note = self.checkpoint_comm(cfg)
                        ckpt = Checkpointer(cfg, ckstore, comm=ck_comm)
                        saved: list[tuple[int, int]] = []
                        steps = cfg.steps_per_epoch(comm.size)
                        due = set(checkpoint_epochs(cfg)) if cfg.checkpoint.steps_between_checkpoints < 0 else set()

                        async def on_step(epoch: int, step: int) -> None:
                            await ckpt.save(epoch, step)
                            saved.append((epoch, step))

                        async def on_epoch(epoch: int) -> None:
                            if epoch in due:  # DLIO names the epoch-end checkpoint step max_steps + 1
                                await on_step(epoch, steps + 1)

                        run = await run_training(cfg, store, comm=comm, on_checkpoint=on_step, on_epoch_end=on_epoch)
                        saves = ckpt.result()
                        if note:
                            saves.lines.append(note)
                        self.checkpoints_saved[str(item.path)] = saved
                await self._cleanup(cfg, store)
            write_rank_files(out, run.timeline, run.metrics)
            write_summary(out, cfg, run.metrics, run.t_start, run.t_end)
            if saves is not None:
                merge_summary(out / "summary.json", saves.summary)
                self.record_named(item, "checkpoint_write", saves)
            result = result_of(cfg, run)
            result.lines.append(f"DLIO output: {out}")
            self.metrics[str(item.path)] = run.metrics
            return result

        return item.arun(go)

    def au(self, item: DlioItem) -> PhaseResult:
        from pytest_dlio.metrics import au_verdict

        metrics = self.metrics.get(str(item.path))
        if metrics is None:
            raise DlioError("no training metrics: the train item did not run")
        threshold = item.cfg.metric.au
        props: list[tuple[str, int | float | str]] = [
            ("train_au_mean_percentage", float(metrics.train_au_mean_percentage)),
            ("au_threshold_percentage", float(threshold * 100)),
            ("train_au_meet_expectation", "success" if metrics.train_au_mean_percentage >= threshold * 100
             else "fail")]
        return PhaseResult(properties=props, failure=au_verdict(metrics, threshold))

    def checkpoint(self, item: DlioItem, which: str) -> PhaseResult:
        from pytest_dlio.phases.checkpoint import read_checkpoints, write_checkpoints

        self._single_rank()
        cfg, key = item.cfg, str(item.path)
        comm, note = self.checkpoint_comm(cfg)
        if which == "write" and cfg.workflow.train:
            saved = self.result(item, "checkpoint_write")
            if saved is None:
                raise DlioError("no checkpoint was written during training (check checkpoint_after_epoch, "
                                "epochs_between_checkpoints and steps_between_checkpoints against train.epochs)")
            return saved

        async def go() -> PhaseResult:
            async with await self.open_checkpoints(cfg) as store:
                if which == "write":
                    return await write_checkpoints(cfg, store, comm=comm)
                saved = self.checkpoints_saved.get(key) if cfg.workflow.train else None
                return await read_checkpoints(cfg, store, comm=comm, verify=self.verify,
                                              drop_caches=self.drop_caches, epoch_steps=saved)

        result = item.arun(go)
        if note:
            result.lines.append(note)
        summary = self.output_dir(item) / "summary.json"
        if summary.parent.exists() or not cfg.workflow.train:
            from pytest_dlio.report.dlio_json import merge_summary

            summary.parent.mkdir(parents=True, exist_ok=True)
            merge_summary(summary, result.summary)
        return result

    async def _cleanup(self, cfg: WorkloadConfig, store: ObjectStore) -> None:
        if not cfg.dataset.keep_files:
            from pytest_dlio.phases.datagen import cleanup

            await cleanup(cfg, store, SingleComm())

    def _progress(self, item: DlioItem) -> Callable[[str], None]:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")

        def say(text: str) -> None:
            if reporter is not None and self.config.getoption("verbose") >= 0:
                reporter.write_line(f"[dlio] {item.path.name}::{item.name}: {text}")

        return say

    # ---- reporting (controller side; fed from reports so it works under xdist) ----
    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        for title, text in report.sections:
            name = title.removeprefix("Captured ").removesuffix(" call")
            if name in ("dlio config", "dlio plan"):
                self.texts.append((report.nodeid, name, text))
        props = dict(report.user_properties)
        if props:
            self.rows.append({"nodeid": report.nodeid, "outcome": report.outcome, **props})

    def summary_lines(self) -> list[tuple[str, list[str]]]:
        out = []
        for nodeid, title, text in self.texts:
            out.append((f"{title}: {nodeid.split('::')[0]}", text.rstrip("\n").split("\n")))
        return out


def as_plain(obj: Any) -> Any:
    """Dataclasses to plain data (for JSON)."""
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj
