"""Storage: one async ObjectStore interface, one module per backend, emulators and session glue."""

from __future__ import annotations

from pytest_dlio.storage.base import Buffer, ObjectStore, Writer
from pytest_dlio.storage.factory import open_store
from pytest_dlio.storage.settings import StoreOptions
from pytest_dlio.storage.uri import is_uri, join_uri, parse_uri

__all__ = ["Buffer", "ObjectStore", "StoreOptions", "Writer", "is_uri", "join_uri", "open_store", "parse_uri"]
