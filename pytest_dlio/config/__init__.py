"""YAML → validated, typed, frozen WorkloadConfig."""

from pytest_dlio.config.model import WorkloadConfig

__all__ = ["WorkloadConfig"]
