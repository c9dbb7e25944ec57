"""Storage: one async ObjectStore interface, one module per backend, wrappers, emulators and session glue."""

from __future__ import annotations

from pytest_dlio.storage.base import Buffer, ObjectStore, Writer
from pytest_dlio.storage.factory import open_store
from pytest_dlio.storage.settings import StoreOptions
from pytest_dlio.storage.throttle import Budget, ThrottledStore
from pytest_dlio.storage.timed import ReadRecorder, TimedStore
from pytest_dlio.storage.uri import Throttle, is_uri, join_uri, parse_throttle, parse_uri
from pytest_dlio.storage.wrapper import WrapperStore

__all__ = [
    "Budget",
    "Buffer",
    "ObjectStore",
    "ReadRecorder",
    "StoreOptions",
    "Throttle",
    "ThrottledStore",
    "TimedStore",
    "WrapperStore",
    "Writer",
    "is_uri",
    "join_uri",
    "open_store",
    "parse_throttle",
    "parse_uri",
]
