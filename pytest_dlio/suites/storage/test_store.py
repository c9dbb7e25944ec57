"""Every StoreTests case against the store named by --dlio-storage (default: a temp file:// folder)."""

from __future__ import annotations

from pytest_dlio.testing import StoreTests


class TestStore(StoreTests):
    """Conformance of the configured store."""
