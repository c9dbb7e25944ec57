"""Shared fixtures for pytest-dlio's own tests."""

from __future__ import annotations

from pathlib import Path

# In-process pytester runs drop modules first imported inside them; numpy (a C extension) cannot be
# imported twice in one process, and the plugin now imports it only when a workload runs. Import it here.
import numpy  # noqa: F401
import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "pytest_dlio" / "workloads"
BAD = ROOT / "fixtures" / "bad_configs"


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture(autouse=True)
def _inner_runs_are_not_xdist_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pytester sessions inside an xdist worker must not think they are workers themselves."""
    for var in (
        "PYTEST_XDIST_WORKER",
        "PYTEST_XDIST_WORKER_COUNT",
        "PYTEST_XDIST_TESTRUNUID",
        "PYTEST_ADDOPTS",
    ):
        monkeypatch.delenv(var, raising=False)


#: Settings that would point the S3 / Azure clients at a real endpoint or account instead of the session's
#: embedded moto / Azurite.
ENDPOINT_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_ACCOUNT",
    "AZURE_BLOB_ACCOUNT",
)


def use_embedded_emulators(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset :data:`ENDPOINT_ENV`: s3:// and az:// URIs then reach the embedded emulators, never a real
    service configured on the machine."""
    for var in ENDPOINT_ENV:
        monkeypatch.delenv(var, raising=False)


#: Options for every pytester run: hypothesis' plugin (preinstalled here) costs ~2 s per session.
FAST = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """Run pytest in-process on ``args`` with the plugin installed, without the slow extras."""
    return pytester.runpytest(*FAST, *args)
