"""Every failure is a StorageError naming URI, operation and key, with no secret in its text."""

from __future__ import annotations

import asyncio
import base64
import sys
from pathlib import Path

import pytest

from pytest_dlio.errors import DlioError, NotFound, StorageError
from pytest_dlio.storage import StoreOptions, open_store
from pytest_dlio.storage.emulators import AZURITE_ACCOUNT, Emulators, azurite_connection_string, free_port
from pytest_dlio.storage.pytest_plugin import get_storage_session
from pytest_dlio.storage.uri import scrub

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"


@pytest.fixture
def emulators(request: pytest.FixtureRequest) -> Emulators:
    return get_storage_session(request.config).emulators  # the session's moto/Azurite, started once


def _raise(coro_fn):  # noqa: ANN001, ANN202
    async def main() -> BaseException:
        try:
            await coro_fn()
        except BaseException as exc:  # noqa: BLE001
            return exc
        raise AssertionError("no error raised")

    return asyncio.run(main())


def test_scrub_removes_known_and_pattern_secrets() -> None:
    text = (
        f"AccountKey={SECRET};x https://a.blob/c?sv=1&sig=abc%2Fdef&se=2 "
        f"Credential=AKIA/x, Signature=deadbeef {SECRET}"
    )
    out = scrub(text, [SECRET])
    assert SECRET not in out and "abc%2Fdef" not in out and "deadbeef" not in out and "AKIA" not in out
    assert "sig=***" in out and "AccountKey=***" in out


def test_s3_unreachable_endpoint(tmp_path: Path) -> None:
    port = free_port()
    opts = StoreOptions.from_storage_options(
        {
            "endpoint_url": f"http://127.0.0.1:{port}",
            "access_key_id": "AKIAEXAMPLEKEYID",
            "secret_access_key": SECRET,
            "s3_max_attempts": 1,
            "timeout": 2,
        }
    )

    async def go() -> None:
        async with open_store("s3://bkt/pre", opts) as store:
            await store.get("some/key")

    exc = _raise(go)
    assert isinstance(exc, StorageError) and not isinstance(exc, NotFound)
    assert str(exc).startswith("get s3://bkt/pre/some/key: ")
    assert SECRET not in str(exc) and "AKIAEXAMPLEKEYID" not in str(exc)


def test_s3_missing_bucket_is_not_created_for_real_endpoints(emulators: Emulators) -> None:
    opts = StoreOptions.from_storage_options(
        {
            "endpoint_url": emulators.s3_endpoint(),
            "access_key_id": "testing",
            "secret_access_key": SECRET,
            "s3_force_path_style": "true",
        }
    )

    async def go() -> None:
        async with open_store("s3://no-such-bucket-here/p", opts) as store:
            await store.put("k", b"x")

    exc = _raise(go)
    assert isinstance(exc, StorageError)
    assert str(exc) == (
        "put s3://no-such-bucket-here/p/k: bucket 'no-such-bucket-here' does not exist; "
        "create it or fix the URI"
    )


def test_azure_bad_key_names_credentials_not_the_key(emulators: Emulators) -> None:
    wrong = base64.b64encode(b"definitely-not-the-key" * 3).decode()
    conn = azurite_connection_string(emulators.azure_endpoint()).replace(
        azurite_connection_string("x").split("AccountKey=")[1].split(";")[0], wrong
    )
    opts = StoreOptions.from_storage_options({"connection_string": conn})

    async def go() -> None:
        async with open_store("az://somecontainer/p", opts) as store:
            await store.get("k")

    exc = _raise(go)
    assert isinstance(exc, StorageError)
    assert str(exc).startswith("get az://somecontainer/p/k: ")
    assert "check the credentials" in str(exc)
    assert wrong not in str(exc) and wrong[:20] not in str(exc)


def test_azure_missing_container(emulators: Emulators) -> None:
    opts = StoreOptions.from_storage_options(
        {"connection_string": azurite_connection_string(emulators.azure_endpoint())}
    )

    async def go() -> None:
        async with open_store(f"az://{AZURITE_ACCOUNT}/nocontainer/p", opts) as store:
            await store.size("k")

    exc = _raise(go)
    assert str(exc) == (
        "size az://devstoreaccount1/nocontainer/p/k: container 'nocontainer' does not exist; "
        "create it or fix the URI"
    )


def test_missing_extra_names_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aiobotocore", None)
    with pytest.raises(StorageError, match=r"pip install 'pytest-dlio\[s3\]'"):
        open_store("s3://b/p")


def test_file_key_clash_explained(tmp_path: Path) -> None:
    async def go() -> None:
        async with open_store(f"file://{tmp_path}") as store:
            await store.put("a", b"x")
            await store.put("a/b", b"y")

    exc = _raise(go)
    assert isinstance(exc, StorageError) and not isinstance(exc, NotFound)
    assert "cannot be both an object and a folder" in str(exc)


def test_errors_are_dlio_errors_and_file_not_found(tmp_path: Path) -> None:
    async def go() -> None:
        async with open_store(f"direct://{tmp_path}") as store:
            await store.get("x/y")

    exc = _raise(go)
    assert isinstance(exc, NotFound) and isinstance(exc, DlioError) and isinstance(exc, FileNotFoundError)
    assert str(exc) == f"get direct://{tmp_path}/x/y: no such key"


@pytest.mark.parametrize(
    "key", ["", "/etc/passwd", "a//b", "a/", ".", "..", "../x", "a/../../x", "a/./b", "a/..", "x\x00y", "/"]
)
def test_a_bad_key_is_refused_before_it_reaches_the_filesystem(tmp_path: Path, key: str) -> None:
    async def go() -> None:
        async with open_store(f"file://{tmp_path}/root") as store:
            await store.put(key, b"x")

    exc = _raise(go)
    assert isinstance(exc, StorageError) and "keys are relative" in str(exc), exc
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == []  # nothing written, inside or out


def test_names_made_of_dots_are_keys(tmp_path: Path) -> None:
    async def go() -> list[str]:
        async with open_store(f"file://{tmp_path}/root") as store:
            for key in ("...", "a..b/.c", ".hidden/..x", "x/.../y"):
                await store.put(key, key.encode())
                assert await store.get(key) == key.encode()
            return sorted([k async for k, _ in store.list("")])

    assert asyncio.run(go()) == sorted(["...", "a..b/.c", ".hidden/..x", "x/.../y"])
