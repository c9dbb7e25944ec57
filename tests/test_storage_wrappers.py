"""Wrapper stores: the throttle (bandwidth cap shared per backend, latency per request) and the read timer.

Timing checks are lower bounds only (a cap can make a transfer slower, never faster); no upper bounds.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from pytest_dlio.errors import StorageError
from pytest_dlio.storage import open_store
from pytest_dlio.storage.base import ObjectStore
from pytest_dlio.storage.emulators import Emulators
from pytest_dlio.storage.session import StorageSession
from pytest_dlio.storage.throttle import ThrottledStore
from pytest_dlio.storage.timed import TimedStore
from pytest_dlio.testing import StoreTests
from pytest_dlio.testing.store import payload
from pytest_dlio.timeline import Reads
from tests.conftest import CONFIGS, run

MiB = 2**20


class TestThrottledMemoryStore(StoreTests):
    """The whole contract holds through the throttle (a cap high enough to keep the suite quick)."""

    @pytest.fixture
    def store_uri(self) -> str:
        return f"mem://throttled-{uuid.uuid4().hex[:8]}/root?bandwidth_mib_s=4000&latency_ms=0.05"

    def test_is_throttled(self, make_store: Callable[[], Awaitable[ObjectStore]]) -> None:
        async def body(store: ObjectStore, p: str) -> None:
            assert isinstance(store, ThrottledStore) and store.throttle.latency_ms == 0.05

        self.run(make_store, body)


class TestTimedFileStore(StoreTests):
    """The whole contract holds through the read timer."""

    @pytest.fixture
    def make_store(self, tmp_path: Path) -> Callable[[], Awaitable[ObjectStore]]:
        async def make() -> ObjectStore:
            return TimedStore(open_store(f"file://{tmp_path}/store"), Reads())

        return make


def _elapsed(coro: Awaitable[object]) -> float:
    async def main() -> float:
        t = time.monotonic()
        await coro
        return time.monotonic() - t

    return asyncio.run(main())


def test_bandwidth_cap_is_a_lower_bound_on_time(tmp_path: Path) -> None:
    """8 MiB through a 20 MiB/s cap, read by 4 concurrent readers, takes at least 0.4 s."""
    data = payload(2 * MiB, 1)
    for i in range(4):
        (tmp_path / f"f{i}").write_bytes(data)

    async def go() -> None:
        async with open_store(f"file://{tmp_path}?bandwidth_mib_s=20") as store:
            got = await asyncio.gather(*(store.get(f"f{i}") for i in range(4)))
        assert all(bytes(g) == data for g in got)

    assert _elapsed(go()) >= 8 / 20 - 0.02


def test_stores_on_one_uri_share_one_budget(tmp_path: Path) -> None:
    """Two stores (two event loops in two threads) on the same capped URI split the cap between them."""
    data = payload(3 * MiB, 2)
    (tmp_path / "a").write_bytes(data)
    uri = f"file://{tmp_path}?bandwidth_mib_s=30"

    async def reader(key: str) -> None:
        async with open_store(uri) as store:
            for _ in range(2):
                assert bytes(await store.get(key)) == data

    async def both() -> None:
        await asyncio.gather(
            asyncio.to_thread(asyncio.run, reader("a")), asyncio.to_thread(asyncio.run, reader("a"))
        )

    assert _elapsed(both()) >= 12 / 30 - 0.02  # 4 reads of 3 MiB at 30 MiB/s in total


def test_writes_count_against_the_cap(tmp_path: Path) -> None:
    async def go() -> None:
        async with open_store(f"file://{tmp_path}?bandwidth_mib_s=25") as store:
            await store.put("p", payload(2 * MiB, 3))
            async with await store.open_writer("w") as w:
                for _ in range(3):
                    await w.write(payload(MiB, 4))
        assert (tmp_path / "p").stat().st_size == 2 * MiB and (tmp_path / "w").stat().st_size == 3 * MiB

    assert _elapsed(go()) >= 5 / 25 - 0.02


def test_latency_is_added_to_every_request(tmp_path: Path) -> None:
    (tmp_path / "k").write_bytes(b"0123456789")

    async def go() -> None:
        async with open_store(f"file://{tmp_path}?latency_ms=25") as store:
            for _ in range(4):
                assert await store.size("k") == 10
            assert bytes(await store.get_range("k", 2, 3)) == b"234"
            assert bytes(await store.get_suffix("k", 2)) == b"89"
            assert [k async for k, _ in store.list("")] == ["k"]
            assert await store.exists("k")

    assert _elapsed(go()) >= 8 * 0.025 - 0.005


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            "bandwith_mib_s=10",
            "unknown URI query parameter 'bandwith_mib_s'; valid: bandwidth_mib_s=a number > 0",
        ),
        ("bandwidth_mib_s=0", "bandwidth_mib_s='0': must be a number > 0 (MiB/s)"),
        ("latency_ms=-1", "latency_ms='-1': must be a number >= 0 (milliseconds)"),
        ("latency_ms=fast", "latency_ms='fast': must be a number >= 0"),
        ("bandwidth_mib_s=inf", "bandwidth_mib_s='inf': must be a number > 0"),
        ("latency_ms=1&latency_ms=2", "latency_ms given twice"),
        ("&", "names no parameter; valid: bandwidth_mib_s"),
    ],
)
@pytest.mark.parametrize("scheme", ["file:///tmp/x", "mem://space", "s3://bucket/p", "az://container/p"])
def test_bad_query_is_a_clear_error(scheme: str, query: str, message: str) -> None:
    with pytest.raises(StorageError, match=f"^open {scheme}: ") as info:
        open_store(f"{scheme}?{query}")
    assert message in str(info.value)


def test_session_keeps_the_query_on_resolved_folders(tmp_path: Path) -> None:
    session = StorageSession(tmp_path, f"file://{tmp_path}/x/?bandwidth_mib_s=100&latency_ms=1", Emulators())
    assert session.resolve("./data/", None) == f"file://{tmp_path}/x/data?bandwidth_mib_s=100&latency_ms=1"
    assert (
        session.resolve("s3://b/ckpt", None) == f"file://{tmp_path}/x/ckpt?bandwidth_mib_s=100&latency_ms=1"
    )

    async def go() -> None:
        store = await session.open(session.resolve("data", None))
        async with store:
            assert isinstance(store, ThrottledStore)
            assert store.local_root == tmp_path / "x" / "data" and store.page_cached
            await store.put("a", b"x")
        assert (tmp_path / "x" / "data" / "a").read_bytes() == b"x"

    asyncio.run(go())
    with pytest.raises(StorageError, match="unknown URI query parameter 'speed'"):
        StorageSession(tmp_path, f"file://{tmp_path}?speed=1", Emulators())


def test_timed_store_records_the_bytes_moved(tmp_path: Path) -> None:
    data = payload(10_000, 5)
    (tmp_path / "o").write_bytes(data)
    reads = Reads()

    async def go() -> None:
        async with TimedStore(open_store(f"file://{tmp_path}"), reads) as store:
            assert bytes(await store.get("o")) == data
            assert bytes(await store.get_range("o", 9_000, 5_000)) == data[9_000:]
            parts = await store.get_ranges("o", [(0, 10), (100, 20)])
            assert [bytes(p) for p in parts] == [data[:10], data[100:120]]
            assert bytes(await store.get_suffix("o", 8)) == data[-8:]
            assert bytes(await store.get_range("o", 5, 0)) == b""  # no bytes moved: a size check, not a read
            await store.put("n", b"new")
            assert dict(store.calls) == {
                "get": 1,
                "get_range": 1,
                "get_ranges": 1,
                "get_suffix": 1,
                "size": 1,
                "put": 1,
            }

    asyncio.run(go())
    assert reads.nbytes == [10_000, 1_000, 30, 8]
    assert len(reads.latency) == 4 and all(s > 0 for s in reads.latency)


def test_workload_runs_on_a_throttled_storage_uri(pytester: pytest.Pytester) -> None:
    """--dlio-storage with a throttle query: every item passes and the data lands under the plain path."""
    store = pytester.path / "store"
    result = run(
        pytester,
        "--dlio-config",
        str(CONFIGS / "dlio" / "unet3d_h100.yaml"),
        "--dlio-scale",
        "1e-9",
        "--dlio-storage",
        f"file://{store}?bandwidth_mib_s=500&latency_ms=0.2",
        "--dlio-data-root",
        str(pytester.path / ".dlio"),
        "-k",
        "not au",
    )
    text = result.stdout.str()
    assert "Traceback" not in text and "INTERNALERROR" not in text
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 4 and not outcomes.get("failed"), text[-3000:]
    assert any(store.rglob("*.npz")), "the dataset is under the path without the query"
    assert not [p for p in pytester.path.rglob("*") if "?" in p.name]


_RANK = """
import asyncio, sys, time
from pytest_dlio.storage import open_store

async def main(uri, start_at):
    async with open_store(uri) as store:
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        t0 = time.monotonic()
        for _ in range(3):
            assert len(await store.get("a")) == 2**20
        print(t0, time.monotonic())

asyncio.run(main(sys.argv[1], float(sys.argv[2])))
"""


def test_processes_share_a_budget_through_the_budget_folder(tmp_path: Path) -> None:
    """Two processes given one $DLIO_THROTTLE_DIR move 6 MiB through a 20 MiB/s cap in >= 0.3 s together."""
    import os
    import subprocess
    import sys

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a").write_bytes(payload(MiB, 6))
    (tmp_path / "budgets").mkdir()
    env = {
        **os.environ,
        "DLIO_THROTTLE_DIR": str(tmp_path / "budgets"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    start_at = time.monotonic() + 3.0  # both start together, after their imports
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RANK, f"file://{tmp_path}/data?bandwidth_mib_s=20", str(start_at)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    spans = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        spans.append([float(x) for x in out.split()])
    assert max(end for _, end in spans) - min(start for start, _ in spans) >= 6 / 20 - 0.02
    assert [p.name for p in (tmp_path / "budgets").iterdir()][0].startswith("budget-")


def test_budget_folder_missing_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLIO_THROTTLE_DIR", str(tmp_path / "nope"))
    with pytest.raises(
        StorageError, match=r"\$DLIO_THROTTLE_DIR .*nope: No such file or directory; point it"
    ):
        open_store(f"file://{tmp_path}?bandwidth_mib_s=7.5")
