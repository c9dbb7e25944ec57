"""An installed package without a clone: Azurite from npm into the per-user cache, errors naming the extra.

The npm test runs npm with ``npm_config_offline=true`` (its local cache only; .ci/install_azurite.sh filled
it), so the test talks to no registry. The clone's ``.ci/node`` is hidden by pointing the repo root at an
empty folder — that is what an installed package sees.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_dlio import __version__
from pytest_dlio.errors import StorageError
from pytest_dlio.storage import azurite_npm, emulators
from pytest_dlio.storage.factory import require_extra
from pytest_dlio.storage.session import StorageSession

_FIRST_NEED = """
import sys
from pathlib import Path
from pytest_dlio.storage import emulators
emulators._REPO_ROOT = Path(sys.argv[1])  # no clone: only the per-user cache can provide Azurite
em = emulators.Emulators()
try:
    print("endpoint", em.azure_endpoint(), flush=True)
finally:
    em.close()
"""


@pytest.fixture
def no_clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cwd and repo root without .ci/node, an empty per-user cache, no DLIO_AZURITE."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(emulators, "_REPO_ROOT", tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("DLIO_AZURITE", raising=False)
    return tmp_path


def test_first_need_installs_pinned_azurite_once_for_concurrent_sessions(no_clone: Path) -> None:
    env = {**os.environ, "npm_config_offline": "true", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _FIRST_NEED, str(no_clone)],
            cwd=no_clone,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    err = "".join(e for _, e in outs)
    assert "ENOTCACHED" not in err, "npm's cache lacks azurite: run bash .ci/install_azurite.sh once (online)"
    assert [p.returncode for p in procs] == [0, 0], err
    assert all(o.startswith("endpoint http://127.0.0.1:") for o, _ in outs), outs
    prefix = no_clone / "cache" / "pytest-dlio" / f"azurite-{azurite_npm.AZURITE_VERSION}"
    assert err.count(f"installing Azurite {azurite_npm.AZURITE_VERSION} from npm into {prefix}") == 1, err
    assert azurite_npm.installed_version(prefix) == azurite_npm.AZURITE_VERSION
    assert emulators.find_azurite() == str(prefix / "bin" / "azurite-blob")  # later sessions reuse the cache
    version = subprocess.run(
        [str(prefix / "bin" / "azurite-blob"), "--version"], capture_output=True, text=True
    )
    assert version.stdout.strip() == azurite_npm.AZURITE_VERSION
    assert not [p for p in prefix.parent.iterdir() if p.is_dir() and p != prefix]  # no temporary folder left


def test_without_node_the_error_names_the_command_that_works(
    no_clone: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(no_clone))  # no node, npm or azurite-blob
    with pytest.raises(StorageError) as exc:
        StorageSession(no_clone / ".dlio").options_for("az://container/data")
    msg = str(exc.value)
    assert msg.startswith("start emulator az://container/data: Azure Blob emulator Azurite not found")
    assert "Node.js 20+ is not on PATH" in msg and "`python -m pytest_dlio install-azurite`" in msg
    assert "AZURE_STORAGE_CONNECTION_STRING" in msg
    assert not (no_clone / "cache").exists()


def test_install_command_without_node_fails_saying_why(no_clone: Path) -> None:
    env = {**os.environ, "PATH": str(no_clone), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_dlio", "install-azurite"],
        cwd=no_clone,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert "Node.js 20+ is not on PATH; install Node.js 20+ with npm" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_embedded_s3_without_moto_names_the_emulators_extra(
    no_clone: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setitem(sys.modules, "moto", None)  # as if only the [s3] client extra were installed
    session = StorageSession(no_clone / ".dlio")
    with pytest.raises(StorageError) as exc:
        session.options_for("s3://bucket/data")
    assert str(exc.value) == (
        "open s3://bucket/data: no S3 endpoint is configured and the embedded emulator "
        "needs moto, which is not installed; "
        "pip install 'pytest-dlio[emulators]'; or point at a real endpoint "
        "(storage_options.endpoint_url or AWS_ENDPOINT_URL)"
    )
    assert session.emulators.running() == {}
    require_extra("s3://bucket/data", "s3")  # the client itself is there


def test_storage_suite_runs_by_package_name(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--pyargs",
        "pytest_dlio.suites.storage",
        "--dlio-storage",
        "mem://suite",
        "-p",
        "no:xdist",
    )
    outcomes = result.parseoutcomes()
    assert result.ret == 0 and outcomes.get("passed", 0) >= 20 and "failed" not in outcomes, (
        result.stdout.str()
    )
    result.stdout.fnmatch_lines([f"pytest-dlio {__version__}", "dlio storage: mem://suite"])
