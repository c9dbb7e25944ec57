"""The pinned Azurite (Azure Blob emulator) from npm, installed once into a per-user cache on first need.

The one place the version is pinned: ``.ci/install_azurite.sh`` and ``python -m pytest_dlio install-azurite``
call :func:`install`. Installing takes a file lock beside the prefix, so xdist workers and parallel sessions
install once; into the cache it goes through a temporary folder renamed into place, so an interrupted
install never looks complete.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from pytest_dlio.errors import StorageError

#: 3.35.0 is the last Azurite that declares node >= 10 (3.36 wants >= 21, 3.37 wants >= 22).
AZURITE_VERSION = "3.35.0"
MIN_NODE = 20
INSTALL_COMMAND = "python -m pytest_dlio install-azurite"
_NPM_TIMEOUT = 900.0


def cache_prefix() -> Path:
    """``$XDG_CACHE_HOME/pytest-dlio/azurite-VERSION`` (default ``~/.cache``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pytest-dlio" / f"azurite-{AZURITE_VERSION}"


def binary(prefix: Path) -> Path:
    """Where ``npm install -g --prefix`` puts ``azurite-blob``."""
    return prefix / "bin" / "azurite-blob"


def installed_version(prefix: Path) -> str | None:
    """The Azurite version installed under ``prefix`` (with a runnable ``azurite-blob``), else None."""
    if not os.access(binary(prefix), os.X_OK):
        return None
    try:
        meta = json.loads((prefix / "lib" / "node_modules" / "azurite" / "package.json").read_text())
    except (OSError, ValueError):
        return None
    return str(meta.get("version")) if isinstance(meta, dict) else None


def cached_binary() -> str | None:
    """``azurite-blob`` of the pinned version in the per-user cache, if installed."""
    prefix = cache_prefix()
    return str(binary(prefix)) if installed_version(prefix) == AZURITE_VERSION else None


def cannot_install_reason() -> str | None:
    """Why Azurite can't be installed from npm here (no Node >= 20, no npm), or None when it can."""
    node = shutil.which("node")
    if node is None:
        return f"Node.js {MIN_NODE}+ is not on PATH"
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`node --version` failed ({exc})"
    match = re.match(r"v(\d+)\.", out.strip())
    if match is None or int(match.group(1)) < MIN_NODE:
        return f"Node.js {MIN_NODE}+ is needed, found {out.strip() or 'an unknown version'}"
    if shutil.which("npm") is None:
        return "npm is not on PATH"
    return None


def _stderr(line: str) -> None:
    # The real stderr: a progress line must show even while pytest captures the item's output.
    print(line, file=sys.__stderr__ or sys.stderr, flush=True)


def install(prefix: Path | None = None, progress: Callable[[str], None] = _stderr) -> Path:
    """Install the pinned Azurite under ``prefix`` (default: the per-user cache) unless there; its binary."""
    target = (prefix or cache_prefix()).absolute()
    if installed_version(target) == AZURITE_VERSION:
        return binary(target)
    reason = cannot_install_reason()
    if reason is not None:
        raise StorageError(
            "az://",
            "install Azurite",
            reason=f"{reason}; install Node.js {MIN_NODE}+ with npm, then run `{INSTALL_COMMAND}`",
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if installed_version(target) == AZURITE_VERSION:
            return binary(target)
        progress(
            f"pytest-dlio: installing Azurite {AZURITE_VERSION} from npm into {target} (once; needs network)"
        )
        # The cache goes through a temporary folder renamed into place; an explicit prefix is updated in place.
        work = (
            Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-")) if prefix is None else target
        )
        try:
            _npm_install(work)
            if prefix is None:
                if target.exists():  # an incomplete or foreign earlier install in our own cache folder
                    shutil.rmtree(target)
                os.rename(work, target)
        finally:
            if prefix is None and work.exists():
                shutil.rmtree(work, ignore_errors=True)
        progress(f"pytest-dlio: Azurite {AZURITE_VERSION} installed at {binary(target)}")
        return binary(target)


def _npm_install(prefix: Path) -> None:
    cmd = [
        "npm",
        "install",
        "-g",
        "--prefix",
        str(prefix),
        f"azurite@{AZURITE_VERSION}",
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
    ]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=_NPM_TIMEOUT, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise StorageError(
            "az://",
            "install Azurite",
            reason=f"`{' '.join(cmd)}` did not finish in "
            f"{_NPM_TIMEOUT:.0f} s (no network to the npm registry?)",
        ) from None
    except OSError as exc:
        raise StorageError("az://", "install Azurite", reason=f"could not run npm: {exc.strerror}") from exc
    if proc.returncode != 0 or installed_version(prefix) != AZURITE_VERSION:
        tail = (proc.stderr or proc.stdout).strip()[-400:]
        raise StorageError(
            "az://",
            "install Azurite",
            reason=f"`{' '.join(cmd)}` failed (exit {proc.returncode}): {tail or 'no output'}",
        )
