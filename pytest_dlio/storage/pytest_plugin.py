"""pytest glue for storage: one StorageSession per session in config.stash; emulators shared with xdist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_dlio.storage.emulators import Emulators
from pytest_dlio.storage.session import StorageSession

SESSION_KEY = pytest.StashKey[StorageSession]()
_WORKER_KEY = "dlio_emulators_dir"


def _option(config: pytest.Config, name: str) -> Any:
    try:
        return config.getoption(name)
    except ValueError:
        return None


def _build(config: pytest.Config) -> StorageSession:
    root = _option(config, "dlio_data_root")
    data_root = Path(root) if root else Path(config.rootpath) / ".dlio"
    workerinput = getattr(config, "workerinput", None)
    state = workerinput.get(_WORKER_KEY) if workerinput else None
    emulators = Emulators(Path(state)) if state else Emulators()
    return StorageSession(data_root, _option(config, "dlio_storage"), emulators)


def get_storage_session(config: pytest.Config) -> StorageSession:
    """The session's StorageSession (built on first use when this plugin's configure has not run)."""
    session = config.stash.get(SESSION_KEY, None)
    if session is None:
        session = config.stash[SESSION_KEY] = _build(config)
    return session


@pytest.hookimpl
def pytest_configure(config: pytest.Config) -> None:
    session = get_storage_session(config)
    # --dlio-plan / --dlio-show-config run only schema items: nothing to store, so no emulator either
    if not hasattr(config, "workerinput") and not (
        _option(config, "dlio_plan") or _option(config, "dlio_show_config")
    ):
        session.start_needed_emulators()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    node.workerinput[_WORKER_KEY] = str(get_storage_session(node.config).emulators.state_dir)


@pytest.hookimpl
def pytest_report_header(config: pytest.Config) -> list[str]:
    # Only sessions that use pytest-dlio get its lines: a plain `pytest` elsewhere stays as it was.
    if not (
        _option(config, "dlio_storage") or _option(config, "dlio_config") or config.getini("dlio_configs")
    ):
        return []
    return get_storage_session(config).header_lines()


@pytest.hookimpl
def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.close()
