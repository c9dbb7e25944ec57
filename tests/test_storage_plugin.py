"""The storage pytest plugin: header lines, one emulator per session, shared with xdist workers."""

from __future__ import annotations

import time

import pytest

from pytest_dlio.storage.emulators import port_open

_USES_S3 = """
import asyncio, os, pathlib
from pytest_dlio.storage.pytest_plugin import get_storage_session

def _record(config, n):
    session = get_storage_session(config)
    async def main():
        async with await session.open("s3://plugin-bucket/run") as store:
            await store.put(f"k{n}", b"x")
            return sorted([k async for k, _ in store.list("")])
    keys = asyncio.run(main())
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    out = pathlib.Path(os.environ["DLIO_TEST_OUT"])
    (out / f"{worker}-{n}.txt").write_text(session.emulators.running()["moto"])
    assert f"k{n}" in keys
"""
# Unrelated plugins installed here (hypothesis, benchmark) cost seconds of start-up per process.
_LEAN = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:benchmark")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, pytester: pytest.Pytester) -> None:
    # The inner run must not think it is an xdist worker of an outer -n run, nor see a real endpoint.
    for var in (
        "PYTEST_XDIST_WORKER",
        "PYTEST_XDIST_WORKER_COUNT",
        "PYTEST_XDIST_TESTRUNUID",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "PYTEST_ADDOPTS",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DLIO_TEST_OUT", str(pytester.path))


def _tests(n: int) -> str:
    return _USES_S3 + "".join(
        f"\ndef test_{i}(request):\n    _record(request.config, {i})\n" for i in range(n)
    )


def test_header_names_embedded_moto_and_session_stops_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_s3=_tests(2))
    # -p no:xdist: the optional xdist hooks must not break a run without xdist.
    result = pytester.runpytest_subprocess(
        "--dlio-storage", "s3://plugin-bucket/run", "-p", "no:xdist", *_LEAN
    )
    result.assert_outcomes(passed=2)
    result.stdout.re_match_lines(
        [
            r"dlio storage: s3://plugin-bucket/run",
            r"S3: embedded moto at http://127\.0\.0\.1:\d+ — emulator, not real storage",
        ]
    )
    endpoints = {p.read_text() for p in pytester.path.glob("main-*.txt")}
    assert len(endpoints) == 1
    assert not port_open(int(endpoints.pop().rsplit(":", 1)[1]))


def test_no_dlio_header_in_a_session_that_does_not_use_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_x():\n    pass\n")
    result = pytester.runpytest(*_LEAN)
    result.assert_outcomes(passed=1)
    assert "dlio data root" not in result.stdout.str() and "dlio storage:" not in result.stdout.str()


def test_xdist_workers_share_one_lazily_started_moto(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_s3=_tests(4))
    result = pytester.runpytest_subprocess("-n", "2", *_LEAN)
    result.assert_outcomes(passed=4)
    files = list(pytester.path.glob("gw*-*.txt"))
    assert {p.name.split("-")[0] for p in files} == {"gw0", "gw1"}
    endpoints = {p.read_text() for p in files}
    assert len(endpoints) == 1, endpoints
    assert not port_open(int(endpoints.pop().rsplit(":", 1)[1]))


def test_emulator_dies_with_its_owner(tmp_path: object) -> None:
    import subprocess
    import sys

    code = (
        "from pytest_dlio.storage.emulators import Emulators; e = Emulators(); "
        "print(e.s3_endpoint(), flush=True); import time; time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    endpoint = proc.stdout.readline().strip()  # type: ignore[union-attr]
    port = int(endpoint.rsplit(":", 1)[1])
    assert port_open(port)
    proc.kill()  # no cleanup runs in the owner
    proc.wait()
    deadline = time.monotonic() + 10
    while port_open(port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not port_open(port)
