"""Baselines: --dlio-save stores every figure with what the run was; --dlio-compare adds a regression item
that fails naming the metric, the baseline value, the new value, the change and the allowed change."""

from __future__ import annotations

import json

import pytest

from pytest_dlio.gating.compare import compare, parse_fail_on, refusal
from tests._junit import properties_by_name
from tests.conftest import run
from tests.test_e2e_items import SMALL

# Compute-bound (a 20 ms step for 2 samples caps samples/s near 100) so the fast runs agree closely even on
# a loaded machine. Three ways to slow a run about tenfold: a slower store with the same config (the
# throttled store URI ?latency_ms=200, and a latency proxy in front of moto), and a slower workload
# (200 ms more per sample read, reader.preprocess_time), whose other config hash must be forced.
FAST = (
    SMALL.replace("checkpoint: true", "checkpoint: false")
    .replace("evaluation: true", "evaluation: false")
    .replace("computation_time: 0.002", "computation_time: 0.02")
)
SLOW = "reader.preprocess_time=0.2"
RULE = "train_throughput_mean_samples_per_second:-60%"


def test_save_then_compare_fast_slow_fast(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", tiny=FAST)
    saved = run(pytester, "--dlio-config", "tiny.yaml", "--dlio-save", "fast")
    saved.assert_outcomes(passed=4)
    saved.stdout.fnmatch_lines(["*dlio baseline 'fast' saved: *baselines/fast.json (1 workloads)*"])
    doc = json.loads((pytester.path / ".dlio" / "baselines" / "fast.json").read_text())
    wl = doc["workloads"]["tiny"]
    assert wl["identity"]["storage_emulator"] == "none" and len(wl["identity"]["config_hash"]) == 16
    assert wl["figures"]["train_throughput_mean_samples_per_second"] > 0
    assert "datagen_files_written" in wl["figures"] and wl["items"]["au"] == "passed"
    assert doc["machine"]["cpu_count"] >= 1 and doc["pytest_dlio_version"]

    # the slowed run measures another config: refused unless forced
    refused = run(pytester, "--dlio-config", "tiny.yaml", "--dlio-compare", "fast", "--dlio-set", SLOW)
    refused.assert_outcomes(passed=4, failed=1)
    refused.stdout.fnmatch_lines(
        [
            "*refusing to compare with baseline 'fast': config_hash '*' in the baseline, "
            "'*' now*--dlio-compare-force*"
        ]
    )

    slow = run(
        pytester,
        "--dlio-config",
        "tiny.yaml",
        "--dlio-compare",
        "fast",
        "--dlio-set",
        SLOW,
        "--dlio-compare-force",
        "--dlio-fail-on",
        RULE,
        "--junitxml=slow.xml",
    )
    slow.assert_outcomes(passed=4, failed=1)
    slow.stdout.fnmatch_lines(
        [
            "*tiny::regression*",
            "*regression against baseline 'fast': train_throughput_mean_samples_per_second: "
            "baseline *, now *, change -*% (allowed -60 %)*",
        ]
    )
    assert "Traceback" not in slow.stdout.str()

    again = run(
        pytester, "--dlio-config", "tiny.yaml", "--dlio-compare", "fast", "--dlio-fail-on", RULE, "-rA"
    )
    again.assert_outcomes(passed=5)
    again.stdout.fnmatch_lines(["*ok train_throughput_mean_samples_per_second: baseline *"])


def test_defaults_and_missing_baseline(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", tiny=FAST)
    missing = run(pytester, "--dlio-config", "tiny.yaml", "--dlio-compare", "nosuch")
    missing.assert_outcomes(passed=4, failed=1)
    missing.stdout.fnmatch_lines(
        ["*baseline *nosuch.json: no such file; save one first with --dlio-save NAME*"]
    )
    # a scale change is refused too; the message names the field
    run(pytester, "--dlio-config", "tiny.yaml", "--dlio-save", "b.json", "-k", "schema").assert_outcomes(
        passed=1, deselected=3
    )
    other = run(
        pytester,
        "--dlio-config",
        "tiny.yaml",
        "--dlio-compare",
        "b.json",
        "--dlio-scale",
        "0.5",
        "-k",
        "schema or regression",
    )
    other.stdout.fnmatch_lines(["*refusing to compare*scale_factor 1.0 in the baseline, 0.5 now*"])


def test_bad_fail_on_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--dlio-fail-on", "checkpoint_size_GB:10%")
    result.stderr.fnmatch_lines(["*cannot tell whether a higher or a lower checkpoint_size_GB is worse*"])
    assert result.ret != 0
    planned = run(pytester, "--dlio-save", "x", "--dlio-plan")
    planned.stderr.fnmatch_lines(["*--dlio-save with --dlio-plan would save a baseline without figures*"])
    alone = run(pytester, "--dlio-fail-on", "read_latency_p99_ms:+5")
    alone.stderr.fnmatch_lines(["*--dlio-fail-on needs --dlio-compare NAME*"])
    assert alone.ret == pytest.ExitCode.USAGE_ERROR


def test_compare_is_direction_aware() -> None:
    then = {"train_au_mean_percentage": 90.0, "read_latency_p99_ms": 10.0, "checkpoint_size_GB": 2.0}
    now = {"train_au_mean_percentage": 95.0, "read_latency_p99_ms": 13.0, "checkpoint_size_GB": 2.5}
    rules = [
        parse_fail_on("train_au_mean_percentage:-1%"),
        parse_fail_on("read_latency_p99_ms:2"),
        parse_fail_on("checkpoint_size_GB:+10%"),
    ]
    result = compare(then, now, rules, explicit=True)
    assert [f.split(":")[0] for f in result.failures] == ["read_latency_p99_ms", "checkpoint_size_GB"]
    assert "baseline 10, now 13, change +3 (allowed +2)" in result.failures[0]
    assert "change +25.00 % (allowed +10 %)" in result.failures[1]
    from pytest_dlio.gating.compare import against_baseline

    doc = {"name": "b", "workloads": {"w": {"identity": {}, "figures": {"datagen_MiB_per_s": 5.0}}}}
    nothing = against_baseline(
        doc, "b.json", "w", {}, {"datagen_MiB_per_s": 4.0}, rules[:1], explicit=False, force=False
    )
    assert "nothing was compared" in nothing.failures[0]
    missing = compare(then, {}, rules[:1], explicit=True)
    assert "not measured in this run" in missing.failures[0]
    assert compare(then, {}, rules[:1], explicit=False).failures == ()


def test_refusal_names_each_difference() -> None:
    then = {"config_hash": "a", "scale_factor": 1.0, "ranks": 8, "hosts": 1, "storage_uri": "s3://x"}
    now = {**then, "ranks": 64, "storage_uri": "s3://y"}
    text = refusal("base", then, now)
    assert (
        text is not None and "ranks 8 in the baseline, 64 now" in text and "storage" not in text.split(".")[0]
    )
    assert refusal("base", then, {**then, "storage_uri": "file:///z"}) is None


def test_save_under_xdist_keeps_every_workload(pytester: pytest.Pytester) -> None:
    for name in ("one", "two"):
        pytester.makefile(".yaml", **{name: FAST.replace("data/tiny", f"data/{name}")})
    result = run(pytester, "--dlio-config", ".", "-n", "2", "-p", "no:benchmark", "--dlio-save", "par")
    result.assert_outcomes(passed=8)
    doc = json.loads((pytester.path / ".dlio" / "baselines" / "par.json").read_text())
    assert sorted(doc["workloads"]) == ["one", "two"]
    assert all(w["figures"]["train_au_mean_percentage"] > 0 for w in doc["workloads"].values())


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("not json", "cannot read it as JSON"),
        ("[1, 2]", "not a pytest-dlio baseline"),
        (
            '{"format": "pytest-dlio-baseline/1", "workloads": {"tiny": "x"}}',
            "workload 'tiny' is not an object",
        ),
        ('{"format": "pytest-dlio-baseline/1", "workloads": {"tiny": {"figures": [1]}}}', "is not an object"),
    ],
)
def test_hostile_baseline_is_a_failed_item(pytester: pytest.Pytester, text: str, says: str) -> None:
    pytester.makefile(".yaml", tiny=FAST)
    (pytester.path / "bad.json").write_text(text)
    result = run(
        pytester, "--dlio-config", "tiny.yaml", "--dlio-compare", "bad.json", "-k", "schema or regression"
    )
    result.assert_outcomes(passed=1, failed=1, deselected=3)
    result.stdout.fnmatch_lines([f"*baseline *bad.json: *{says}*"])
    assert "Traceback" not in result.stdout.str() and "INTERNALERROR" not in result.stdout.str()


@pytest.mark.parametrize(
    ("metric", "worse"),
    [
        ("train_au_mean_percentage", -1),
        ("train_throughput_mean_samples_per_second", -1),
        ("load_checkpoint_io_mean_GB_per_second", -1),
        ("datagen_MiB_per_s", -1),
        ("read_MB_per_second_actual", -1),
        ("read_latency_p99_ms", 1),
        ("save_checkpoint_duration_mean_seconds", 1),
        ("io_wait_mean_ms", 1),
        ("train_throughput_stdev_samples_per_second", 1),
        ("train_au_mean_percentage_cov", 1),
        ("checkpoint_size_GB", None),
        ("read_count", None),
    ],
)
def test_which_way_is_worse(metric: str, worse: int | None) -> None:
    from pytest_dlio.gating.compare import worse_direction

    assert worse_direction(metric) == worse


def test_a_slowed_store_fails_the_regression_item(
    pytester: pytest.Pytester, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same config, same URI: only the store changes (the fault proxy in front of moto holds every
    response 200 ms, up to its bound of 10 000)."""
    import asyncio

    from pytest_dlio.storage.emulators import MOTO_KEY
    from pytest_dlio.storage.factory import open_store
    from pytest_dlio.storage.pytest_plugin import get_storage_session
    from pytest_dlio.storage.settings import StoreOptions
    from pytest_dlio.testing.faultproxy import Fault, FaultProxy

    moto = get_storage_session(request.config).emulators.s3_endpoint()
    creds = {"access_key_id": MOTO_KEY, "secret_access_key": MOTO_KEY, "s3_force_path_style": True}

    async def make_bucket() -> None:  # a configured endpoint is real storage to us: nothing is created for it
        opts = StoreOptions.from_storage_options({"endpoint_url": moto, **creds}).with_(create_missing=True)
        async with open_store("s3://gating-slow/keep", opts) as store:
            await store.put("made", b"")

    asyncio.run(make_bucket())
    for name, value in (
        ("AWS_ACCESS_KEY_ID", MOTO_KEY),
        ("AWS_SECRET_ACCESS_KEY", MOTO_KEY),
        ("AWS_REGION", "us-east-1"),
    ):
        monkeypatch.setenv(name, value)
    pytester.makefile(".yaml", tiny=FAST)
    args = ("--dlio-config", "tiny.yaml", "--dlio-storage", "s3://gating-slow/run")

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto)
    run(pytester, *args, "--dlio-save", "store").assert_outcomes(passed=4)
    with FaultProxy(moto, [Fault("stall", 10_000, seconds=0.2)]) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        slow = run(pytester, *args, "--dlio-compare", "store", "--dlio-fail-on", RULE)
    assert proxy.injected["stall"] > 0 and proxy.remaining() > 0  # every request of the run was held
    slow.assert_outcomes(passed=4, failed=1)
    slow.stdout.fnmatch_lines(
        [
            "*regression against baseline 'store': train_throughput_mean_samples_per_second: "
            "baseline *, now *, change -*% (allowed -60 %)*"
        ]
    )
    assert "refusing" not in slow.stdout.str()  # same config hash, scale and world: compared as is
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto)
    run(pytester, *args, "--dlio-compare", "store", "--dlio-fail-on", RULE).assert_outcomes(passed=5)


def test_a_throttled_store_fails_the_regression_item(pytester: pytest.Pytester) -> None:
    """The throttled store URI (?latency_ms=): the same files and config behind 200 ms per request."""
    pytester.makefile(".yaml", tiny=FAST)
    root = pytester.path / "store"
    args = ("--dlio-config", "tiny.yaml", "--junitxml=r.xml")
    run(pytester, *args, "--dlio-storage", f"file://{root}", "--dlio-save", "fast").assert_outcomes(passed=4)
    slow = run(
        pytester,
        *args,
        "--dlio-storage",
        f"file://{root}?latency_ms=200",
        "--dlio-compare",
        "fast",
        "--dlio-fail-on",
        RULE,
    )
    slow.assert_outcomes(passed=4, failed=1)
    slow.stdout.fnmatch_lines(
        [
            "*regression against baseline 'fast': train_throughput_mean_samples_per_second: "
            "baseline *, now *, change -*% (allowed -60 %)*"
        ]
    )
    schema = properties_by_name(pytester.path / "r.xml")["schema"]
    assert (
        schema["storage_uri"] == f"file://{root}/data/tiny?latency_ms=200"
    )  # the store differs, nothing else
    run(
        pytester, *args, "--dlio-storage", f"file://{root}", "--dlio-compare", "fast", "--dlio-fail-on", RULE
    ).assert_outcomes(passed=5)
