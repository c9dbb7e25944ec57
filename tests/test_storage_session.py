"""StorageSession: folder → URI rules, option precedence, emulator swap-in, header lines."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pytest_dlio.config.model import StorageConfig
from pytest_dlio.errors import ConfigError, StorageError
from pytest_dlio.storage import StoreOptions, join_uri, parse_uri
from pytest_dlio.storage.credentials import Environment
from pytest_dlio.storage.emulators import Emulators
from pytest_dlio.storage.session import StorageSession


def _s3(root: str = "bucket", **options: object) -> StorageConfig:
    return StorageConfig(storage_type="s3", storage_root=root, storage_options=tuple(sorted(options.items())))


@pytest.fixture
def session(tmp_path: Path) -> StorageSession:
    return StorageSession(tmp_path / "root", None, Emulators())


@pytest.mark.parametrize(
    ("folder", "storage", "expected"),
    [
        ("./data/unet3d", None, "file://{root}/data/unet3d"),
        ("data/unet3d/", StorageConfig(storage_type="parallel_fs"), "file://{root}/data/unet3d"),
        ("/abs/data", None, "file:///abs/data"),
        ("./data", StorageConfig(storage_type="direct_fs"), "direct://{root}/data"),
        ("./data/unet3d", _s3("mybucket"), "s3://mybucket/data/unet3d"),
        ("data", _s3("s3://mybucket/pre/"), "s3://mybucket/pre/data"),
        ("s3://other/x", _s3("mybucket"), "s3://other/x"),
        ("data", _s3("cont", uri_scheme="az"), "az://cont/data"),
        ("mem://space/x", None, "mem://space/x"),
        ("az://c/p", StorageConfig(), "az://c/p"),
    ],
)
def test_resolve_from_config(
    session: StorageSession, folder: str, storage: StorageConfig | None, expected: str
) -> None:
    assert session.resolve(folder, storage) == expected.format(root=session.data_root)


@pytest.mark.parametrize(
    ("folder", "expected"),
    [
        ("./data/unet3d/", "s3://b/run/data/unet3d"),
        ("/abs/ckpt", "s3://b/run/abs/ckpt"),
        ("s3://other/x/y", "s3://b/run/x/y"),
        ("./", "s3://b/run"),
    ],
)
def test_resolve_with_storage_option(tmp_path: Path, folder: str, expected: str) -> None:
    session = StorageSession(tmp_path, "s3://b/run/", Emulators())
    assert session.resolve(folder, _s3("ignored")) == expected


def test_resolve_file_storage_option(tmp_path: Path) -> None:
    session = StorageSession(tmp_path, f"file://{tmp_path}/x", Emulators())
    assert session.resolve("./data/", None) == f"file://{tmp_path}/x/data"


def test_resolve_rejects_unknown_storage_type(session: StorageSession) -> None:
    with pytest.raises(StorageError, match="storage_type 'aistore' has no backend here"):
        session.resolve("data", StorageConfig(storage_type="aistore"))


def test_resolve_s3_needs_bucket(session: StorageSession) -> None:
    with pytest.raises(StorageError, match="storage_root must name the bucket"):
        session.resolve("data", _s3("./"))


@pytest.mark.parametrize("bad", ["http://x/y", "file://relative/path", "s3:///nobucket", "nope"])
def test_parse_uri_rejects(bad: str) -> None:
    with pytest.raises(StorageError, match=r"needs|not a storage URI"):
        parse_uri(bad)


def test_bad_storage_option_fails_early(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="not a storage URI"):
        StorageSession(tmp_path, "ftp://x", Emulators())


def test_join_uri() -> None:
    assert join_uri("file:///a/b/", "./c/d/") == "file:///a/b/c/d"
    assert join_uri("s3://bkt", "") == "s3://bkt"


@pytest.mark.parametrize(
    ("value", "expected"), [(True, True), ("false", False), ("True", True), (False, False)]
)
def test_path_style_accepts_bool_or_string(value: object, expected: bool) -> None:
    opts = StoreOptions.from_storage_options(
        {"s3_force_path_style": value, "endpoint_url": "http://127.0.0.1:1"}
    )
    assert opts.s3.path_style is expected


def test_path_style_defaults_to_endpoint_given() -> None:
    assert StoreOptions.from_storage_options({"endpoint_url": "http://127.0.0.1:1"}).s3.path_style is True
    assert StoreOptions.from_storage_options({}).s3.path_style is False


def test_path_style_rejects_garbage() -> None:
    with pytest.raises(
        ConfigError, match="storage.storage_options.s3_force_path_style: must be true or false, got 'maybe'"
    ):
        StoreOptions.from_storage_options({"s3_force_path_style": "maybe"})


def test_s3_settings_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "AWS_REGION=eu-west-3\nAWS_ACCESS_KEY_ID=from-dotenv\nAWS_SESSION_TOKEN=tok-dotenv\n"
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-env")
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    env = Environment.capture(tmp_path)
    s = StoreOptions.from_storage_options({"s3_max_attempts": 3}, env).s3
    assert (s.access_key_id, s.region, s.max_attempts, s.session_token) == (
        "from-env",
        "eu-west-3",
        3,
        "tok-dotenv",
    )
    s = StoreOptions.from_storage_options({"access_key_id": "from-options"}, env).s3
    assert s.access_key_id == "from-options"
    assert "tok-dotenv" in StoreOptions.from_storage_options({}, env).secrets()


def test_azure_settings_precedence(tmp_path: Path) -> None:
    env = Environment(
        {"AZURE_STORAGE_ACCOUNT": "envacct", "AZURE_STORAGE_KEY": "a2V5"},
        {"AZURE_STORAGE_SAS_TOKEN": "sv=1&sig=x", "AZURE_STORAGE_ACCOUNT": "dotenvacct"},
    )
    a = StoreOptions.from_storage_options({}, env).azure
    assert (a.account, a.account_key, a.sas_token, a.configured) == ("envacct", "a2V5", "sv=1&sig=x", True)
    conn = "AccountName=connacct;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:1/connacct"
    a = StoreOptions.from_storage_options({"connection_string": conn}, env).azure
    assert (a.connection_string, a.account) == (conn, "connacct")
    a = StoreOptions.from_storage_options(
        {"account_name": "optacct", "endpoint_url": "http://127.0.0.1:2"}, env
    ).azure
    assert (a.account, a.account_url) == ("optacct", "http://127.0.0.1:2")
    assert not StoreOptions.from_storage_options({}, Environment()).azure.configured


def test_session_reads_the_environment_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:7")
    session = StorageSession(tmp_path, None, Emulators())
    assert session.options_for("s3://b/p", _s3()).s3.endpoint_url == "http://127.0.0.1:7"
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:8")
    assert session.options_for("s3://b/p", _s3()).s3.endpoint_url == "http://127.0.0.1:7"
    assert (
        session.options_for("s3://b/p", _s3(endpoint_url="http://127.0.0.1:9")).s3.endpoint_url
        == "http://127.0.0.1:9"
    )


def test_embedded_moto_swapped_in_only_without_endpoint(
    session: StorageSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    given = session.options_for("s3://b/p", _s3(endpoint_url="http://127.0.0.1:9"))
    assert given.emulator is None and not given.create_missing
    assert session.emulators.running() == {}
    try:
        opts = session.options_for("s3://b/p", _s3())
        assert opts.emulator == "moto" and opts.create_missing
        assert opts.s3.endpoint_url == session.emulators.running()["moto"] and opts.s3.path_style
        lines = session.header_lines()
        assert any(
            line.startswith("S3: embedded moto at http://127.0.0.1:") and "not real storage" in line
            for line in lines
        )
        assert lines[0] == f"dlio data root: {session.data_root}"
    finally:
        session.close()
    assert session.emulators.running() == {}


def test_open_file_store_roundtrip(session: StorageSession) -> None:
    async def main() -> bytes:
        store = await session.open(session.resolve("./data", None), threads=2)
        async with store:
            await store.put("a/b", b"hello")
            return bytes(await store.get("a/b"))

    assert asyncio.run(main()) == b"hello"
    assert (session.data_root / "data" / "a" / "b").read_bytes() == b"hello"
