"""Test helpers shipped in the wheel: the storage conformance suite users subclass for their backend."""

from __future__ import annotations

from pytest_dlio.testing.store import StoreTests

__all__ = ["StoreTests"]
