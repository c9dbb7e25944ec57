"""MLPerf v3.0's ``storage_library`` choices (s3dlio, minio, s3torchconnector): each passes the conformance
suite against the embedded moto, reports itself, and fails with the extra to install when it is missing."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from pytest_dlio.config.model import StorageConfig
from pytest_dlio.errors import StorageError
from pytest_dlio.storage.factory import open_store
from pytest_dlio.storage.session import StorageSession
from pytest_dlio.storage.settings import StoreOptions
from pytest_dlio.testing import StoreTests
from tests._junit import not_passed, read_cases
from tests.conftest import CONFIGS, FAST, ROOT, use_embedded_emulators

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
        use_embedded_emulators(monkeypatch)
        return f"s3://dlio-conformance-{self.library.lower()}/suite"  # the embedded moto server


class TestS3dlioStore(_LibraryStore):
    library = "s3dlio"


class TestMinioStore(_LibraryStore):
    library = "minio"


LIBRARIES = ["s3dlio", "minio", "s3torchconnector"]


@pytest.mark.parametrize("library", LIBRARIES)
def test_library_objects_are_plain_s3_objects(
    library: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    # what one library writes (single PUT and multipart) the default aiobotocore client reads back unchanged
    from pytest_dlio.storage.pytest_plugin import get_storage_session
    from pytest_dlio.storage.s3 import S3Store
    from pytest_dlio.testing.store import payload

    use_embedded_emulators(monkeypatch)
    session = get_storage_session(request.config)
    uri = f"s3://dlio-interop/{library}"
    small, large = payload(1000, 1), payload(11 * 2**20, 2)

    async def go() -> None:
        cfg = StorageConfig(storage_options=(("storage_library", library),))
        ours, plain = await session.open(uri, cfg), await session.open(uri)
        assert type(ours).__name__ != "S3Store" and isinstance(plain, S3Store)
        try:
            await ours.put("small", small)
            async with await ours.open_writer("large") as w:
                for i in range(0, len(large), 3 * 2**20):
                    await w.write(memoryview(large)[i : i + 3 * 2**20])
            assert {k: n async for k, n in plain.list()} == {"small": 1000, "large": len(large)}
            assert bytes(await plain.get("small")) == small and bytes(await plain.get("large")) == large
        finally:
            await plain.delete_prefix("")
            await ours.close()
            await plain.close()

    asyncio.run(go())


@pytest.mark.parametrize(
    ("library", "module", "extra"),
    [
        ("s3dlio", "s3dlio", "s3dlio"),
        ("minio", "minio", "minio"),
        ("s3torchconnector", "s3torchconnectorclient", "s3torchconnector"),
    ],
)
def test_missing_library_names_its_extra(
    library: str, module: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    opts = StoreOptions(library=library)
    with pytest.raises(
        StorageError, match=rf"{module} is not installed; pip install 'pytest-dlio\[{extra}\]'"
    ):
        open_store("s3://b/p", opts)


def test_flat_storage_library_key_is_honoured(tmp_path: Path) -> None:
    # DLIO's flat storage.storage_library works like storage.storage_options.storage_library
    session = StorageSession(tmp_path)
    flat = StorageConfig(storage_type="s3", storage_library="minio")
    nested = StorageConfig(storage_options=(("storage_library", "s3dlio"),), storage_library="minio")
    assert session.library("s3://b/p", flat) == "minio"
    assert session.library("s3://b/p", nested) == "s3dlio"  # the storage_options key wins
    assert session.library("s3://b/p") == "aiobotocore"
    assert session.library(f"file://{tmp_path}", flat) == "posix"


def test_v3_workload_runs_end_to_end_on_s3dlio(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real subprocess: s3dlio keeps one S3 client per process, bound to that run's own embedded moto.
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    result = pytester.runpytest_subprocess(
        *FAST,
        "-p",
        "no:xdist",
        "--dlio-config",
        str(CONFIGS / "mlperf_storage_v3.0/unet3d_h100.yaml"),
        "--dlio-scale",
        "smoke",
        "--dlio-storage",
        "s3://dlio-e2e-s3dlio/run",
        "--dlio-set",
        "storage.storage_options.storage_library=s3dlio",
        "--dlio-data-root",
        str(pytester.path / ".dlio"),
        "--junitxml=out.xml",
    )
    out = result.stdout.str()
    assert not not_passed(pytester.path / "out.xml"), out[-4000:]
    props = {c.name: c.properties for c in read_cases(pytester.path / "out.xml")}
    assert set(props) == {"schema", "datagen", "train", "au"}, out[-4000:]
    assert props["datagen"]["storage_library"] == props["train"]["storage_library"] == "s3dlio"
    assert int(props["datagen"]["datagen_files_written"]) > 0 and int(props["datagen"]["datagen_bytes"]) > 0
    assert float(props["train"]["train_io_mean_MB_per_second"]) > 0
    assert "S3: embedded moto" in out and "Traceback" not in out


class TestS3TorchConnectorStore(_LibraryStore):
    library = "s3torchconnector"


def test_exported_settings_are_not_mistaken_for_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    # s3dlio gets the embedded moto's endpoint through AWS_ENDPOINT_URL; a later session must still see
    # "no endpoint configured" (and start its own emulator), and the user's own values as they were
    from pytest_dlio.storage import _awsenv
    from pytest_dlio.storage.credentials import Environment

    monkeypatch.setattr(_awsenv, "_EXPORTED", {})
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    _awsenv.export(
        "s3://b/p", "s3dlio", {"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_REGION": "us-east-1"}
    )
    assert os.environ["AWS_ENDPOINT_URL"] == "http://127.0.0.1:1" and os.environ["AWS_REGION"] == "us-east-1"
    env = Environment.capture()
    assert env.get("AWS_ENDPOINT_URL") is None and env.get("AWS_REGION") == "eu-west-3"
    monkeypatch.setenv("AWS_REGION", "ap-south-1")  # changed since: the user's (or a test's) value counts
    assert Environment.capture().get("AWS_REGION") == "ap-south-1"


def test_second_set_of_settings_fails_naming_variables_not_values(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_dlio.storage import _awsenv

    monkeypatch.setattr(_awsenv, "_EXPORTED", {})
    for var in ("AWS_ENDPOINT_URL", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var, raising=False)
    first = {"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_SECRET_ACCESS_KEY": "s3cr3t-one"}
    _awsenv.export("s3://a/p", "s3dlio", first)
    _awsenv.export("s3://a/q", "s3dlio", first)  # the same settings again: fine
    with pytest.raises(StorageError) as info:
        _awsenv.export(
            "s3://b/p",
            "s3dlio",
            {"AWS_ENDPOINT_URL": "http://127.0.0.1:2", "AWS_SECRET_ACCESS_KEY": "s3cr3t-two"},
        )
    text = str(info.value)
    assert "AWS_ENDPOINT_URL, AWS_SECRET_ACCESS_KEY" in text and "once per process" in text
    assert "s3cr3t" not in text and "127.0.0.1" not in text


@pytest.mark.parametrize("library", LIBRARIES)
def test_workloads_run_on_each_library(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, library: str
) -> None:
    # parquet (footers, row-group ranges), indexed binary (many ranges) and llama3 checkpoints (streamed
    # writes of numpy buffers): what the conformance suite does not exercise the way workloads do
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    configs = [
        "mlperf_storage_v3.0/flux_b200.yaml",
        "mlperf_storage_v3.0/llama3_8b.yaml",
        "dlio/megatron_deepspeed_LLNL.yaml",
    ]
    args = [a for c in configs for a in ("--dlio-config", str(CONFIGS / c))]
    result = pytester.runpytest_subprocess(
        *FAST,
        "-p",
        "no:xdist",
        *args,
        "--dlio-scale",
        "1e-9",
        "--dlio-storage",
        f"s3://dlio-e2e-{library}/run",
        "--dlio-set",
        f"storage.storage_options.storage_library={library}",
        "--dlio-data-root",
        str(pytester.path / ".dlio"),
        "--junitxml=out.xml",
    )
    out = result.stdout.str()
    cases = read_cases(pytester.path / "out.xml")
    assert not not_passed(pytester.path / "out.xml"), out[-4000:]
    io_items = [c for c in cases if c.name in ("datagen", "train", "checkpoint_write", "checkpoint_read")]
    assert len(io_items) == 8, out[-4000:]  # flux: datagen+train; llama3: write+read; megatron: all four
    assert {c.properties["storage_library"] for c in io_items} == {library}
