"""How a run is set up: everything the engine needs from the command line, as one frozen value."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

#: Byte budgets of the scale presets: each workload gets the factor that brings it to about this size.
SCALE_PRESETS = {"smoke": 8 * 2**20, "small": 512 * 2**20}
GENERATE_MODES = ("auto", "always", "never")


@dataclass(frozen=True)
class RunSettings:
    """One run's settings, shared by every workload in it.

    ``ranks`` is the world size the run plans for; ``ranks_explicit`` says whether the user chose it
    (a model-parallel checkpoint workload on one process otherwise runs as rank 0 of its smallest world).
    """

    data_root: Path = Path(".dlio")
    output_root: Path | None = None  # default: <data_root>/output/<timestamp>
    overrides: tuple[str, ...] = ()
    scale: float | str | None = None  # a factor in (0, 1], or a preset name (SCALE_PRESETS)
    ranks: int = 1
    ranks_explicit: bool = False
    generate: str = "auto"  # GENERATE_MODES
    verify: bool = True
    drop_caches: bool = False
    storage_uri: str | None = None
    runs: int = 1  # measured phases (train, checkpoints) run this many scored times, a new seed each
    warmup: bool = False  # and once more first, unscored (MLPerf: one warm-up, then five)
    results_dir: Path | None = None  # mlpstorage's results tree (report/results_tree.py), when given
    rank_timeout: float = 60.0  # seconds a local rank may go silent before it counts as hung
    mpi: bool = False  # this process is one rank of an MPI job (ranks = the MPI world size)
    verify_data: bool = False  # datagen auto reads every complete file whole to check its content
    max_bytes: int | None = None  # cap on a dataset / a run's checkpoints on any target (phases/capacity.py)

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_root", Path(self.data_root).resolve())
        if self.output_root is None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            object.__setattr__(self, "output_root", self.data_root / "output" / stamp)
        else:
            object.__setattr__(self, "output_root", Path(self.output_root).resolve())

    @property
    def output(self) -> Path:
        assert self.output_root is not None  # set in __post_init__
        return self.output_root
