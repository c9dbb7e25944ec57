"""The conformance suite against every built-in backend: real files, O_DIRECT, moto and Azurite."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from pytest_dlio.config.model import StorageConfig
from pytest_dlio.storage.direct import probe
from pytest_dlio.testing import StoreTests
from tests.conftest import use_embedded_emulators

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


class TestFileStore(StoreTests):
    @pytest.fixture
    def store_uri(self, tmp_path: Path) -> str:
        return f"file://{tmp_path}/store"


class TestDirectStore(StoreTests):
    @pytest.fixture
    def store_uri(self, tmp_path: Path) -> str:
        # tmp_path lives on the work disk (ext4), where O_DIRECT is enforced, not on tmpfs.
        assert probe(tmp_path) is None, "O_DIRECT must work on the test machine's temp disk"
        return f"direct://{tmp_path}/store"


class TestMemoryStore(StoreTests):
    @pytest.fixture
    def store_uri(self) -> str:
        return f"mem://conformance-{uuid.uuid4().hex[:8]}/root"


class TestS3Store(StoreTests):
    large_size = 20 * 2**20  # still 3 multipart parts; the 64 MiB cases run on the local backends
    many_keys = 300  # with 100 keys a page still 3 pages; each put costs ~5 ms of client CPU (60 s budget)

    @pytest.fixture
    def store_config(self) -> StorageConfig:
        return StorageConfig(storage_options=(("list_page_size", 100),))

    @pytest.fixture
    def store_uri(self, monkeypatch: pytest.MonkeyPatch) -> str:
        use_embedded_emulators(monkeypatch)
        return "s3://dlio-conformance/suite"  # no endpoint configured: the embedded moto server


class TestAzureStore(StoreTests):
    large_size = 20 * 2**20  # still 3 staged blocks; the 64 MiB cases run on the local backends
    many_keys = 300

    @pytest.fixture
    def store_config(self) -> StorageConfig:
        return StorageConfig(storage_options=(("list_page_size", 100),))

    @pytest.fixture
    def store_uri(self, monkeypatch: pytest.MonkeyPatch) -> str:
        use_embedded_emulators(monkeypatch)
        return "az://dlio-conformance/suite"  # no credentials configured: the embedded Azurite
