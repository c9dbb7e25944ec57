"""pytest-dlio: MLCommons DLIO workloads as pytest items."""

from pytest_dlio.errors import ConfigError, DlioError, NotFound, StorageError

__all__ = ["ConfigError", "DlioError", "NotFound", "StorageError"]
__version__ = "0.1.0"
