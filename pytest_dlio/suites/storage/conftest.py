"""Storage conformance suite, checks any backend: ``pytest --pyargs pytest_dlio.suites.storage --dlio-storage URI``
(from a clone: ``pytest pytest_dlio/suites/storage --dlio-storage URI``).

Without ``--dlio-storage`` it runs against a temporary ``file://`` folder. Objects go under a unique
prefix per test and are deleted afterwards; nothing else in the target is touched.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URI under test: --dlio-storage, else a temp folder."""
    uri = request.config.getoption("dlio_storage", None)
    return uri or f"file://{tmp_path}/store"
