"""The workload engine: runs one workload (datagen, train with checkpoints, AU, checkpoint write/read)
from code, with no pytest. Items, scripts and rank workers all drive it.

Exports are loaded on first use, so importing :mod:`pytest_dlio.engine.settings` (as the plugin does at
startup) pulls in nothing heavy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_dlio.engine.load import load_workload
    from pytest_dlio.engine.settings import RunSettings
    from pytest_dlio.engine.workload import Phase, Workload, plan
    from pytest_dlio.report.results import PhaseResult

_EXPORTS = {
    "RunSettings": "pytest_dlio.engine.settings",
    "Workload": "pytest_dlio.engine.workload",
    "Phase": "pytest_dlio.engine.workload",
    "plan": "pytest_dlio.engine.workload",
    "load_workload": "pytest_dlio.engine.load",
    "PhaseResult": "pytest_dlio.report.results",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(name)


__all__ = ["Phase", "PhaseResult", "RunSettings", "Workload", "load_workload", "plan"]
