"""Embedded emulators on 127.0.0.1: moto (S3) and Azurite (Azure Blob), started on first need.

Each runs as a child process in its own session, recorded in a state folder under a file lock, so one
instance serves the whole test session: the controller owns the folder, xdist workers get its path
through ``workerinput`` and reuse (or lazily start) the same servers; the owner stops them at the end.
A separate process also keeps the emulator's request handling off the GIL of the process being measured.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pytest_dlio.errors import StorageError
from pytest_dlio.storage import azurite_npm
from pytest_dlio.storage._watchdog import _alive

AZURITE_INSTALL = azurite_npm.INSTALL_COMMAND
# Azurite's well-known development account: a public constant documented by Microsoft, not a secret.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
MOTO_KEY = "testing"  # dummy credentials moto accepts
_START_TIMEOUT = 30.0
SCRATCH_PREFIX = "dlio-emulators-"
_UNOWNED_AFTER = 3600.0  # a scratch folder without an owner file this old was never set up: remove it
_REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def find_azurite(extra_roots: tuple[Path, ...] = ()) -> str | None:
    """Path of ``azurite-blob``: $DLIO_AZURITE, ``.ci/node/bin`` under the cwd/rootdir/repo, the per-user
    cache (``python -m pytest_dlio install-azurite``), else PATH."""
    if os.environ.get("DLIO_AZURITE"):
        return os.environ["DLIO_AZURITE"]
    for root in (*extra_roots, Path.cwd(), _REPO_ROOT):
        candidate = root / ".ci" / "node" / "bin" / "azurite-blob"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return azurite_npm.cached_binary() or shutil.which("azurite-blob")


def azurite_missing_reason(why: str | None = None) -> str:
    """The message given when Azurite is needed, not installed, and can't be installed (``why``) here."""
    because = f" and can't be installed here ({why})" if why else ""
    return (
        f"Azure Blob emulator Azurite not found{because}; install Node.js {azurite_npm.MIN_NODE}+ with npm "
        f"and run `{AZURITE_INSTALL}`, or configure real Azure credentials (AZURE_STORAGE_CONNECTION_STRING)"
    )


def ensure_azurite(uri: str = "az://") -> str:
    """``azurite-blob``, installing the pinned version from npm into the per-user cache on first need."""
    found = find_azurite()
    if found is not None:
        return found
    why = azurite_npm.cannot_install_reason()
    if why is not None:
        raise StorageError(uri, "start emulator", reason=azurite_missing_reason(why))
    return str(azurite_npm.install())


def azurite_connection_string(endpoint: str) -> str:
    """Connection string for the development account at ``endpoint``."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint={endpoint}/{AZURITE_ACCOUNT};"
    )


def _moto_cmd(port: int) -> list[str]:
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


def _azurite_cmd(port: int) -> list[str]:
    return [
        ensure_azurite(),
        "--silent",
        "--inMemoryPersistence",
        "--disableTelemetry",
        "--skipApiVersionCheck",
        "--loose",
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
    ]


class Emulators:
    """The session's emulators; ``owner`` is the process that stops them (controller or lone process)."""

    def __init__(self, state_dir: Path | None = None) -> None:
        self.owner = state_dir is None
        self._state_dir = state_dir
        self._lock = threading.Lock()
        self._started: dict[str, str] = {}

    @property
    def state_dir(self) -> Path:
        """The shared folder (pids, endpoints, lock), created on first use."""
        if self._state_dir is None:
            remove_dead_scratch()
            self._state_dir = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))
            (self._state_dir / "owner").write_text(str(os.getpid()))
        return self._state_dir

    def _owner_pid(self) -> int:
        try:
            return int((self.state_dir / "owner").read_text())
        except (OSError, ValueError):
            return os.getpid()

    # ---- public ----
    def s3_endpoint(self) -> str:
        """``http://127.0.0.1:PORT`` of the session's moto server (started now if needed)."""
        return self._ensure("moto", _moto_cmd)

    def azure_endpoint(self) -> str:
        """``http://127.0.0.1:PORT`` of the session's Azurite (started now if needed)."""
        return self._ensure("azurite", _azurite_cmd)

    def running(self) -> dict[str, str]:
        """``{"moto"|"azurite": endpoint}`` for every emulator up now."""
        out: dict[str, str] = {}
        if self._state_dir is None:
            return out
        for name in ("moto", "azurite"):
            info = self._read(name)
            if info and port_open(int(info["port"])):
                out[name] = str(info["endpoint"])
        return out

    def close(self) -> None:
        """Stop every emulator (owner only) and remove the state folder."""
        if not self.owner or self._state_dir is None:
            return
        for name in ("moto", "azurite"):
            info = self._read(name)
            if info:
                _stop(int(info["pid"]))
        shutil.rmtree(self.state_dir, ignore_errors=True)

    # ---- internals ----
    def _read(self, name: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.state_dir / f"{name}.json").read_text())
        except (OSError, ValueError):
            return None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock, open(self.state_dir / "lock", "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _ensure(self, name: str, cmd: object) -> str:
        if name in self._started:
            return self._started[name]
        with self._locked():
            info = self._read(name)
            if info and port_open(int(info["port"])):
                endpoint = str(info["endpoint"])
            else:
                endpoint = self._start(name, cmd)
            self._started[name] = endpoint
            return endpoint

    def _start(self, name: str, cmd: object) -> str:
        env = {
            **os.environ,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ACCESS_KEY_ID": MOTO_KEY,
            "AWS_SECRET_ACCESS_KEY": MOTO_KEY,
        }
        last = ""
        for _attempt in range(3):
            port = free_port()
            log = open(self.state_dir / f"{name}.log", "ab")
            try:
                # The watchdog ends the emulator if the owner dies without cleaning up (SIGKILL, timeout).
                watched = [
                    sys.executable,
                    "-m",
                    "pytest_dlio.storage._watchdog",
                    str(self._owner_pid()),
                    "--",
                    *cmd(port),  # type: ignore[operator]
                ]
                proc = subprocess.Popen(
                    watched,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            except OSError as exc:
                raise StorageError(f"{name}://", "start emulator", reason=str(exc.strerror)) from exc
            finally:
                log.close()
            deadline = time.monotonic() + _START_TIMEOUT
            while time.monotonic() < deadline and proc.poll() is None and not port_open(port):
                time.sleep(0.05)
            if proc.poll() is None and port_open(port):
                endpoint = f"http://127.0.0.1:{port}"
                tmp = self.state_dir / f"{name}.json.tmp"
                tmp.write_text(json.dumps({"pid": proc.pid, "port": port, "endpoint": endpoint}))
                os.replace(tmp, self.state_dir / f"{name}.json")
                return endpoint
            _stop(proc.pid)
            last = (self.state_dir / f"{name}.log").read_text(errors="replace")[-300:].strip()
        raise StorageError(f"{name}://", "start emulator", reason=f"did not come up on 127.0.0.1: {last}")


def remove_dead_scratch(tmp: Path | None = None) -> list[Path]:
    """Remove the emulator scratch folders (``dlio-emulators-*`` in the temp folder) of sessions whose
    owner process is dead (SIGKILL, a crash): our folders only, never one of a live session."""
    removed: list[Path] = []
    for folder in Path(tmp or tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*"):
        try:
            if not folder.is_dir() or folder.is_symlink() or folder.stat().st_uid != os.getuid():
                continue
            owner = folder / "owner"
            if owner.exists():
                text = owner.read_text().strip()
                if not text.isdigit() or _alive(int(text)):
                    continue
            elif time.time() - folder.stat().st_mtime < _UNOWNED_AFTER:
                continue  # being set up right now
        except OSError:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _stop(pid: int) -> None:
    """SIGTERM the emulator's process group, SIGKILL it after 5 s."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # not our child (started by an xdist worker): poll for existence
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
                done = 0
            if done:
                return
            time.sleep(0.05)
