"""One workload at a time per dataset on this host.

Workloads that name the same ``dataset.data_folder`` but plan different files — MLPerf v3.0's unet3d_b200
and unet3d_h100 at ``--dlio-scale smoke`` write 70 files of the same names, 12.08 and 6.06 MiB — would, run
side by side (``pytest -n 2`` puts each YAML on its own worker), regenerate each other's files while the
other trains: one train item failed with "47 of 70 files have the wrong size", the other judged AU on
files being rewritten under it. So a runner holds an exclusive ``flock`` on a lock file named after the
dataset's URI, under the data root, from its first dataset phase (datagen or train) until the workload's
items are done; another process wanting the same dataset waits, says so, and then finds the files as the
holder left them (``datagen auto`` regenerates what its own plan needs).

The kernel drops a ``flock`` when its holder's process ends however it ends, so a crashed run never
leaves a stale lock. Within one process workloads run one after another, so a second hold on a lock the
process has already is counted, not waited for (waiting would wait for itself).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from pytest_dlio.errors import DlioError

LOCK_DIR = ".locks"  # under the data root
POLL_SECONDS = 0.2

_HELD: dict[Path, list[int]] = {}  # lock file -> [fd, holds in this process]


def lock_path(data_root: Path, uri: str) -> Path:
    """The lock file of the dataset at ``uri`` (``direct://`` and ``file://`` name the same folder)."""
    digest = hashlib.sha256(_dataset_name(uri).encode()).hexdigest()[:24]
    return Path(data_root) / LOCK_DIR / f"dataset-{digest}.lock"


def _dataset_name(uri: str) -> str:
    """The dataset a URI names, as the store opens it: its query (harness options such as a throttle)
    left out, %-escapes decoded, and a local folder by its real path (``file://localhost/d``, a symlink,
    ``direct://`` and ``file://`` of one folder are one dataset). A URI the stores refuse is its text."""
    from pytest_dlio.storage.uri import parse_uri, split_query

    base = split_query(uri)[0]
    try:
        p = parse_uri(base)
        if p.scheme in ("file", "direct"):
            return "file://" + os.path.realpath(p.path)
        return f"{p.scheme}://{p.netloc}/{p.path}"
    except (DlioError, ValueError, OSError):
        return base


class DatasetLock:
    """An exclusive, host-wide hold on one dataset; :meth:`acquire` waits for another process's hold."""

    def __init__(self, data_root: Path, uri: str, who: str) -> None:
        self.path = lock_path(data_root, uri)
        self.uri, self.who = uri, who
        self.held = False
        self.waited = 0.0  # seconds the last acquire waited for another process
        self.waited_for: str | None = None  # whom it waited for ("workload x (pid n)")
        self.unavailable: str | None = None  # why the lock could not be taken (the run went on without)

    def acquire(self, notify: Callable[[str], None] | None = None) -> None:
        """Hold the dataset (once per instance; nested holds in one process are counted)."""
        if self.held:
            return
        entry = _HELD.get(self.path)
        if entry is not None:
            entry[1] += 1
            self.held = True
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise DlioError(
                f"cannot create the dataset lock {self.path}: {exc.strerror or exc}; pick a writable "
                "--dlio-data-root"
            ) from exc
        t0 = time.monotonic()
        self.waited, self.waited_for, self.unavailable = 0.0, None, None
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if self.waited_for is None:
                        self.waited_for = _holder(fd)
                        if notify is not None:
                            notify(
                                f"waiting for the dataset {self.uri}: {self.waited_for} in another process "
                                "on this host uses it (workloads sharing a dataset run one at a time)"
                            )
                    time.sleep(POLL_SECONDS)
            if self.waited_for is not None:
                self.waited = time.monotonic() - t0
            info = json.dumps({"pid": os.getpid(), "workload": self.who, "since": time.time()}).encode()
            with contextlib.suppress(OSError):  # who holds it is for waiters' messages only
                os.ftruncate(fd, 0)
                os.pwrite(fd, info, 0)
        except OSError as exc:
            # a filesystem without flock (Lustre mounted without -o flock: ENOSYS; NFS without its lock
            # service: ENOLCK): the run goes on unlocked, as before the lock existed, and says so
            os.close(fd)
            self.unavailable = f"{exc.strerror or type(exc).__name__} (errno {exc.errno})"
            return
        except BaseException:
            os.close(fd)  # closing drops the lock if it was taken
            raise
        _HELD[self.path] = [fd, 1]
        self.held = True

    def release(self) -> None:
        """Give the hold back (the lock goes when the process's last hold does)."""
        if not self.held:
            return
        self.held = False
        entry = _HELD.get(self.path)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del _HELD[self.path]
            os.close(entry[0])  # drops the flock


def _holder(fd: int) -> str:
    """Who holds the lock, from what the holder wrote into it."""
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"workload {info['workload']} (pid {int(info['pid'])})"
    except (OSError, ValueError, KeyError, TypeError):
        return "a workload"


__all__ = ["DatasetLock", "lock_path"]
