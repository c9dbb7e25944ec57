"""Storage faults through a loopback fault-injecting proxy in front of the real moto and Azurite servers.

Every fault is bounded (a count per kind); the proxy forwards everything else unchanged. Retries are
counted by cause on the store (``store.retries``) and reported per phase (``storage_retries``).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_dlio.config.model import Metric, Workflow
from pytest_dlio.engine import RunSettings, Workload
from pytest_dlio.errors import StorageError
from pytest_dlio.storage.base import ObjectStore
from pytest_dlio.storage.credentials import Environment
from pytest_dlio.storage.emulators import Emulators, azurite_connection_string, find_azurite, free_port
from pytest_dlio.storage.factory import open_store
from pytest_dlio.storage.pytest_plugin import get_storage_session
from pytest_dlio.storage.session import StorageSession
from pytest_dlio.storage.settings import StoreOptions
from pytest_dlio.testing.faultproxy import Fault, FaultProxy
from tests._junit import properties_by_name, read_cases
from tests.conftest import run
from tests.test_train_loop import make_cfg

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
BACKENDS = ["s3", pytest.param("az", marks=pytest.mark.skipif(find_azurite() is None, reason="no Azurite"))]
DATA = np.random.default_rng(7).integers(0, 256, 300_000, dtype=np.uint8).tobytes()


@pytest.fixture
def emulators(request: pytest.FixtureRequest) -> Emulators:
    """The test session's moto and Azurite (shared with the other storage tests and xdist workers)."""
    return get_storage_session(request.config).emulators


def upstream(emulators: Emulators, backend: str) -> str:
    return emulators.s3_endpoint() if backend == "s3" else emulators.azure_endpoint()


def options(backend: str, endpoint: str, **raw: Any) -> StoreOptions:
    """Store options pointing at ``endpoint`` the way a user would (endpoint_url / BlobEndpoint)."""
    if backend == "s3":
        raw |= {"endpoint_url": endpoint, "access_key_id": "testing", "secret_access_key": "testing"}
    else:
        raw |= {"connection_string": azurite_connection_string(endpoint)}
    return StoreOptions.from_storage_options(raw).with_(create_missing=True)


def uri(backend: str) -> str:
    return f"{backend}://dlio-faults/{uuid.uuid4().hex[:10]}"


def run_through(
    emulators: Emulators, backend: str, faults: list[Fault], body: Any, **raw: Any
) -> tuple[Any, FaultProxy]:
    """A store through a fresh proxy: write DATA under "obj", arm ``faults``, run ``body(store)`` (or
    ``body(store, proxy)`` when ``faults`` is empty), then disarm what is left and delete what was written.
    Returns (body's result, the proxy)."""
    with_proxy = not faults
    with FaultProxy(upstream(emulators, backend)) as proxy:

        async def go() -> Any:
            async with open_store(uri(backend), options(backend, proxy.endpoint, **raw)) as store:
                await store.put("obj", DATA)
                proxy.add(*faults)
                try:
                    return await (body(store, proxy) if with_proxy else body(store))
                finally:
                    proxy.disarm()
                    await store.delete_prefix("")

        return asyncio.run(go()), proxy


async def make_bucket(root: str, proxy: FaultProxy) -> None:
    """Create the bucket of ``root`` (a configured endpoint is never created by a run)."""
    async with open_store(root, options("s3", proxy.endpoint)) as store:
        await store.exists("any")  # the first request creates the bucket


@pytest.mark.parametrize("backend", BACKENDS)
def test_5xx_and_resets_are_survived_and_counted_by_cause(emulators, backend):
    rounds = [
        Fault("status", 2, method="GET", status=503, every=2),
        Fault("status", 1, method="GET", status=500),
        Fault("reset", 2, method="GET"),
    ]

    async def body(store: ObjectStore, proxy: FaultProxy) -> tuple[list[bytes], Any]:
        got = []
        for fault in rounds:  # one kind at a time, so each faulted request is retried once
            proxy.add(fault)
            got += [bytes(await store.get("obj")) for _ in range(2)]
        got.append(bytes(await store.get_range("obj", 1000, 5000)))
        proxy.add(Fault("status", 1, method="PUT", status=503))
        await store.put("again", DATA[::-1])  # an upload is retried too, its body sent again whole
        got.append(bytes(await store.get("again")))
        return got, store.retries.snapshot()

    (got, retries), proxy = run_through(emulators, backend, [], body)
    assert got[:6] == [DATA] * 6 and got[6] == DATA[1000:6000] and got[7] == DATA[::-1]
    assert proxy.injected == {"status": 4, "reset": 2} and proxy.remaining() == 0
    # each 5xx cost one retry; of the two resets of one GET, aiohttp re-sent the first by itself (unseen)
    assert dict(retries.by_cause) == {"503": 3, "500": 1, "reset": 1}


@pytest.mark.parametrize("backend", BACKENDS)
def test_truncated_bodies_are_retried_and_never_counted_as_good_reads(emulators, backend):
    async def body(store: ObjectStore) -> tuple[bytes, bytes, Any]:
        whole = bytes(await store.get("obj"))
        part = bytes(await store.get_range("obj", 4096, 100_000))
        return whole, part, store.retries.snapshot()

    faults = [Fault("truncate", 2, method="GET", every=2)]
    (whole, part, retries), proxy = run_through(emulators, backend, faults, body)
    assert proxy.injected == {"truncate": 2}
    assert whole == DATA and part == DATA[4096:104_096]
    assert dict(retries.by_cause) == {"truncated": 2}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("fault", "budget", "says"),
    [
        (Fault("truncate", 20, method="GET"), 2, "Truncated"),
        (Fault("status", 10, method="GET", status=503), 3, "SlowDown"),
    ],
    ids=["truncated", "503"],
)
def test_faults_beyond_the_budget_fail_naming_attempts_and_option(emulators, backend, fault, budget, says):
    async def body(store: ObjectStore) -> str:
        with pytest.raises(StorageError) as info:
            await store.get("obj")
        return str(info.value)

    option = "s3_max_attempts" if backend == "s3" else "max_attempts"
    message, proxy = run_through(emulators, backend, [fault], body, **{option: budget})
    if fault.kind == "status":
        assert proxy.injected == {"status": budget}  # that many attempts, then it gave up
    assert message.startswith(f"get {backend}://dlio-faults/") and "/obj" in message and says in message
    assert f"gave up after {budget} attempts" in message and f"storage_options.{option}={budget}" in message


@pytest.mark.parametrize("backend", BACKENDS)
def test_stalls_within_the_timeout_wait_and_longer_ones_are_retried(emulators, backend):
    async def body(store: ObjectStore) -> tuple[bytes, Any, bytes, Any]:
        first = bytes(await store.get("obj"))  # stalled 0.5 s: within the 2 s read timeout
        before = store.retries.snapshot()
        second = bytes(await store.get("obj"))  # stalled 4 s: times out, retried
        return first, before, second, store.retries.snapshot()

    faults = [Fault("stall", 1, method="GET", seconds=0.5), Fault("stall", 1, method="GET", seconds=4.0)]
    (first, before, second, after), _ = run_through(emulators, backend, faults, body, timeout=2)
    assert first == DATA and second == DATA
    assert before.total == 0
    assert dict(after.by_cause) == {"timeout": 1}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_refused_connection_fails_within_a_bounded_time_saying_what_to_change(backend):
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    raw = (
        {"endpoint_url": closed, "access_key_id": "k", "secret_access_key": "not-shown-1234"}
        if backend == "s3"
        else {"connection_string": azurite_connection_string(closed)}
    )

    option = "s3_max_attempts" if backend == "s3" else "max_attempts"

    async def go() -> tuple[str, str]:
        async with open_store(uri(backend), StoreOptions.from_storage_options(raw)) as store:
            with pytest.raises(StorageError) as got:
                await store.get("x")
        # a listing (datagen's first request) says the same; 2 attempts keep this part short
        async with open_store(uri(backend), StoreOptions.from_storage_options(raw | {option: 2})) as store:
            with pytest.raises(StorageError) as listed:
                [k async for k in store.list()]
        return str(got.value), str(listed.value)

    t0 = time.monotonic()
    message, listing = asyncio.run(go())
    elapsed = time.monotonic() - t0
    assert elapsed < 30, (
        f"a refused connection took {elapsed:.1f} s to report"
    )  # a hang guard, not a speed claim
    assert message.startswith(f"get {backend}://dlio-faults/")
    assert "gave up after 5 attempts" in message and f"storage_options.{option}=5" in message
    assert "connect_timeout=5 s" in message and closed.split("//")[1] in message
    assert listing.startswith(f"list {backend}://dlio-faults/") and f"storage_options.{option}=2" in listing
    assert "gave up after 2 attempts" in listing or "gave up after up to 2 attempts" in listing
    assert "not-shown-1234" not in message + listing


def test_storage_options_reject_a_bad_connect_timeout():
    from pytest_dlio.config.storage_options import parse_storage_options

    opts, problems = parse_storage_options({"connect_timeout": 0})
    assert problems == [("connect_timeout", "must be > 0 and at most 86400 seconds, got 0")]
    opts, problems = parse_storage_options({"connect_timeout": 1.5, "timeout": 30})
    assert not problems and StoreOptions.from_config(opts, StoreOptions().credentials).connect_timeout == 1.5
    assert (
        StoreOptions.from_config(
            parse_storage_options({"timeout": 2})[0], StoreOptions().credentials
        ).connect_timeout
        == 2
    )  # never above timeout


def test_a_workload_reports_retries_per_phase_and_au_blames_them(emulators, tmp_path: Path):
    """datagen and train through the proxy: the train item's storage_retries, its line, summary.json, and
    an AU verdict that says the storage was failing."""
    cfg = make_cfg(files=6, spf=2, bs=2, threads=2, epochs=1)
    cfg = replace(cfg, metric=Metric(au=0.99))
    with FaultProxy(emulators.s3_endpoint()) as proxy:
        env = Environment(
            environ={
                "AWS_ENDPOINT_URL": proxy.endpoint,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
            }
        )
        where = f"s3://dlio-faults/{uuid.uuid4().hex[:10]}"
        settings = RunSettings(data_root=tmp_path / "root", output_root=tmp_path / "out")
        wl = Workload(cfg, settings, StorageSession(settings.data_root, where, environment=env), name="w")

        async def go() -> tuple[Any, Any, Any]:
            await make_bucket(where, proxy)
            dg = await wl.run("datagen")
            proxy.add(Fault("status", 4, method="GET", status=503, every=2), Fault("reset", 2, method="GET"))
            tr = await wl.run("train")
            return dg, tr, wl.au()

        dg, tr, au = asyncio.run(go())
    assert dg.value("storage_retries") == 0
    injected = sum(proxy.injected.values())
    assert injected == 6
    # aiohttp re-sends the first of the two resets by itself, unseen: 4 + 1
    assert tr.value("storage_retries") == 5 and tr.value("storage_retries_503") == 4
    assert tr.value("storage_retries_reset") == 1
    assert "storage retries: 5 (503 ×4, reset ×1) — survived, but each one cost time" in tr.lines
    doc = json.loads((wl.output_dir / "summary.json").read_text())
    assert doc["pytest_dlio"]["storage_retries"]["train"]["by_cause"]["503"] == 4
    assert doc["pytest_dlio"]["storage_retries"]["datagen"]["total"] == 0
    assert au.failure is not None and "storage retries during training" in au.failure
    assert "the storage was failing, not just slow" in au.failure and "too slow" not in au.failure


TINY = """
model: {name: tiny}
framework: pytorch
workflow: {generate_data: true, train: true}
dataset: {data_folder: data/tiny, format: npz, num_files_train: 8, record_length_bytes: 4096}
reader: {data_loader: pytorch, batch_size: 2, read_threads: 2}
train: {epochs: 1, computation_time: 0.0}
metric: {au: 0.99}
"""


def test_retries_reach_junit_and_the_au_item_as_users_see_them(emulators, pytester, monkeypatch):
    with FaultProxy(emulators.s3_endpoint()) as proxy:
        root = f"s3://dlio-faults/{uuid.uuid4().hex[:10]}"

        asyncio.run(make_bucket(root, proxy))
        for var, value in {
            "AWS_ENDPOINT_URL": proxy.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }.items():
            monkeypatch.setenv(var, value)
        # only the training reads of data files (datagen lists and writes; it does not GET .npz files)
        proxy.add(Fault("status", 3, method="GET", path=".npz", status=503, every=2))
        pytester.makefile(".yaml", tiny=TINY)
        result = run(
            pytester,
            "--dlio-config",
            "tiny.yaml",
            "--dlio-storage",
            root,
            "--junitxml=out.xml",
            "--dlio-output",
            "out",
            "-rP",
        )  # -rP: the sections of passed items too
    assert proxy.injected == {"status": 3}
    result.assert_outcomes(passed=3, failed=1)  # schema, datagen, train pass; au fails (no compute at all)
    props = properties_by_name(pytester.path / "out.xml")
    assert props["datagen"]["storage_retries"] == "0"
    assert props["train"]["storage_retries"] == "3" and props["train"]["storage_retries_503"] == "3"
    result.stdout.fnmatch_lines(["*storage retries: 3 (503 ×3) — survived, but each one cost time*"])
    au = next(c for c in read_cases(pytester.path / "out.xml") if c.outcome == "failed")
    assert "3 (503 ×3) storage retries during training: the storage was failing, not just slow" in au.message


def test_checkpoint_phases_count_their_own_retries(emulators, tmp_path: Path):
    """checkpoint_write through PUT 503s and checkpoint_read through truncated bodies: both pass, each
    reports its own retries, and the verified read returned the bytes written."""
    from tests.test_checkpoint_backends import CFG

    cfg = replace(
        CFG,
        workflow=Workflow(train=False, checkpoint=True),
        checkpoint=replace(
            CFG.checkpoint, checkpoint_folder="ckpt", num_checkpoints_write=1, num_checkpoints_read=1
        ),
    )
    with FaultProxy(emulators.s3_endpoint()) as proxy:
        env = Environment(
            environ={
                "AWS_ENDPOINT_URL": proxy.endpoint,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
            }
        )
        where = f"s3://dlio-faults/{uuid.uuid4().hex[:10]}"
        settings = RunSettings(data_root=tmp_path / "root", output_root=tmp_path / "out")  # verify: on
        wl = Workload(cfg, settings, StorageSession(settings.data_root, where, environment=env), name="ck")

        async def go() -> tuple[Any, Any]:
            await make_bucket(where, proxy)
            proxy.add(Fault("status", 2, method="PUT", status=503, every=2))
            write = await wl.run("checkpoint_write")
            proxy.add(Fault("truncate", 2, method="GET", every=2))
            return write, await wl.run("checkpoint_read")

        write, read = asyncio.run(go())
    assert proxy.injected == {"status": 2, "truncate": 2}
    assert write.ok and read.ok, (write.failure, read.failure)
    assert write.value("storage_retries") == 2 and write.value("storage_retries_503") == 2
    assert read.value("storage_retries") == 2 and read.value("storage_retries_truncated") == 2
    assert read.value("checkpoint_size_GB") == write.value("checkpoint_size_GB") > 0
