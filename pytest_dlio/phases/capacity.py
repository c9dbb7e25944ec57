"""Plan-time refusal of datasets and checkpoint plans the target can never hold: arithmetic on the
config (nothing is listed or enumerated), in microseconds, before anything is written.

What "can hold" means per target:

- a local folder (file://, direct://): the size of the filesystem it is on — the whole filesystem, not
  its free space, because the data may already be there from an earlier run (whether the *missing* part
  fits in the free space is datagen's own preflight, after its listing);
- ``mem://``: the host's physical memory (``os.sysconf``), which a memory store can never exceed;
- an object store (s3://, az://): :data:`OBJECT_STORE_CAP`, a guard against a typo writing petabytes to
  a bucket; ``--dlio-max-bytes`` raises (or lowers) it.

``--dlio-max-bytes`` also caps every other target.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pytest_dlio.checkpointing.plan import checkpoint_counts, human
from pytest_dlio.checkpointing.sizes import rank_layout
from pytest_dlio.config.model import WorkloadConfig
from pytest_dlio.errors import DlioError
from pytest_dlio.storage.base import ObjectStore

OBJECT_STORE_CAP = 10 * 2**40  # 10 TiB


def dataset_bytes(cfg: WorkloadConfig) -> int:
    """The dataset's nominal bytes (train + eval files x samples x sample bytes), without enumerating."""
    ds = cfg.dataset
    return int((ds.num_files_train + ds.num_files_eval) * ds.num_samples_per_file * ds.sample_bytes)


def checkpoint_bytes(cfg: WorkloadConfig, world: int, rank: int) -> int:
    """Bytes this rank's checkpoint saves write in total (every save is kept, as in DLIO)."""
    saves, _ = checkpoint_counts(cfg, world)
    return rank_layout(cfg, world, rank).total_bytes * saves


def host_memory() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def _filesystem(root: Path) -> tuple[int, Path]:
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).total, probe


def limit(store: ObjectStore, max_bytes: int | None) -> tuple[int, str, str] | None:
    """(bytes the target can hold at most, why, how to go beyond), None when unbounded."""
    root = store.local_root
    found: tuple[int, str, str] | None
    if root is not None:
        total, probe = _filesystem(root)
        found = (
            total,
            f"the filesystem of {probe} is {human(total)} in all",
            "point --dlio-storage elsewhere",
        )
    elif store.uri.startswith("mem://"):
        mem = host_memory()
        found = (
            (
                mem,
                f"mem:// keeps everything in this host's {human(mem)} of memory",
                "use file:// or an object store",
            )
            if mem
            else None
        )
    else:
        cap = OBJECT_STORE_CAP if max_bytes is None else max_bytes
        how = "raise the cap with --dlio-max-bytes SIZE" if max_bytes is None else "raise --dlio-max-bytes"
        found = (
            cap,
            f"object stores are capped at {human(cap)}"
            + (" (--dlio-max-bytes)" if max_bytes is not None else ""),
            how,
        )
    if max_bytes is not None and (found is None or max_bytes < found[0]):
        found = (max_bytes, f"--dlio-max-bytes is {human(max_bytes)}", "raise --dlio-max-bytes")
    return found


def check_fits(what: str, need: int, store: ObjectStore, max_bytes: int | None) -> None:
    """DlioError naming both sizes when ``need`` bytes can never fit on ``store``."""
    bound = limit(store, max_bytes)
    if bound is None or need <= bound[0]:
        return
    cap, why, how = bound
    raise DlioError(
        f"{what}: {human(need)} to write, but {store.uri} can hold at most {human(cap)}: {why}; "
        f"shrink it (--dlio-scale, --dlio-set) or {how}"
    )
