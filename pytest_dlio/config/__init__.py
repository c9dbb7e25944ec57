"""YAML → validated, typed, frozen WorkloadConfig.

Nothing is imported eagerly: storage settings import ``config.storage_options`` at pytest startup, and
``config.model`` pulls in numpy, which a session that runs no workload must not pay for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_dlio.config.model import WorkloadConfig


def __getattr__(name: str) -> Any:
    if name == "WorkloadConfig":
        from pytest_dlio.config.model import WorkloadConfig

        return WorkloadConfig
    raise AttributeError(name)


__all__ = ["WorkloadConfig"]
