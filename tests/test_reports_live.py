"""What a user sees while and after a run: live progress, node ids, selection, options anywhere."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from tests.conftest import run
from tests.test_e2e_items import SMALL, run_two_on_xdist


@pytest.fixture
def tiny(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makefile(".yaml", tiny=SMALL)
    return pytester


def test_progress_lines_for_every_phase_without_s(tiny: pytest.Pytester) -> None:
    result = run(tiny, "--dlio-config", "tiny.yaml", "--dlio-progress-interval", "0", "--junitxml=out.xml")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(
        [
            "[[]dlio] tiny datagen: 20/20 files, *MiB, * MiB/s, ETA 0:00",
            "[[]dlio] tiny train: epoch 2/2 step 8/8, * samples/s, AU * % so far, ETA 0:00",
            "[[]dlio] tiny checkpoint: load 2: */* GB, * GB/s, ETA 0:00",
        ],
        consecutive=False,
    )
    assert "tiny checkpoint: save 1:" in result.stdout.str()
    assert "[dlio] tiny eval: after epoch 2: step 4/4," in result.stdout.str()  # 4 eval files, batch 1
    xml = (tiny.path / "out.xml").read_text()
    assert "[dlio]" not in xml and "ETA" not in xml  # never in JUnit (not a captured section)
    root = ET.fromstring(xml)
    assert all("ETA" not in (e.text or "") for e in root.iter())


def test_quiet_has_no_progress(tiny: pytest.Pytester) -> None:
    result = run(tiny, "--dlio-config", "tiny.yaml", "--dlio-progress-interval", "0", "-q")
    result.assert_outcomes(passed=6)
    assert "[dlio]" not in result.stdout.str()


def test_verbose_shows_real_node_ids(tiny: pytest.Pytester) -> None:
    result = run(tiny, "--dlio-config", "tiny.yaml", "-v", "-k", "schema or datagen")
    result.stdout.fnmatch_lines(["tiny.yaml::schema PASSED*", "tiny.yaml::datagen PASSED*"])
    assert "tiny::yaml" not in result.stdout.str()


def test_one_item_alone_runs_what_it_needs(tiny: pytest.Pytester) -> None:
    result = run(tiny, "--dlio-config", "tiny.yaml", "tiny.yaml::checkpoint_read", "-rA")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*ran first (not selected in this session): datagen, train, checkpoint_write*"]
    )
    assert (
        tiny.path / ".dlio" / "checkpoints" / "tiny" / "global_epoch2_step9" / "model_states-0.pt"
    ).exists()


def test_one_item_alone_skips_naming_the_failed_prerequisite(tiny: pytest.Pytester) -> None:
    result = run(tiny, "tiny.yaml::au", "--dlio-generate", "never", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        [
            "*prerequisite datagen*failed: Not enough training dataset*"
            "run tiny.yaml::datagen to see it as an item*"
        ]
    )


def test_last_failed_reruns_the_failed_gate_with_its_inputs(tiny: pytest.Pytester) -> None:
    (tiny.path / "tiny.yaml").write_text(
        SMALL.replace("au: 0.0", "au: 1.0").replace("checkpoint: true", "checkpoint: false")
    )
    opts = ("-p", "no:hypothesispytest", "--dlio-config", "tiny.yaml")
    tiny.runpytest(*opts).assert_outcomes(passed=3, failed=1)
    again = tiny.runpytest(*opts, "--lf")
    again.assert_outcomes(failed=1, deselected=3)
    again.stdout.fnmatch_lines(["*training AU * % is below the required 100.00 %*"])


def test_show_config_anywhere_runs_only_the_schema(tiny: pytest.Pytester) -> None:
    for args in (
        ("--dlio-show-config", "tiny.yaml"),
        ("--dlio-config", "tiny.yaml", "--dlio-show-config"),
        ("--dlio-show-config", "--dlio-config", "tiny.yaml"),
    ):
        result = run(tiny, *args)
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(["*dlio config: tiny.yaml*", "*record_length_bytes: 16384*"])
    assert not (tiny.path / ".dlio").exists()  # nothing touched storage


def test_show_config_rejects_an_unknown_format(tiny: pytest.Pytester) -> None:
    result = run(tiny, "--dlio-config", "tiny.yaml", "--dlio-show-config=toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--dlio-show-config=toml: expected*yaml*json*"])


def test_positional_hydra_override_is_applied(tiny: pytest.Pytester) -> None:
    result = run(tiny, "--dlio-config", "tiny.yaml", "++workload.reader.batch_size=4", "--dlio-show-config")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*batch_size: 4*"])


def test_stray_positional_with_dlio_config_is_refused(tiny: pytest.Pytester) -> None:
    (tiny.path / "notes.txt").write_text("x")
    result = run(tiny, "--dlio-config", "tiny.yaml", "notes.txt")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*positional argument 'notes.txt' is not one of the --dlio-config workloads*"]
    )


def test_progress_from_xdist_workers_reaches_the_terminal(tiny: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    result = run_two_on_xdist(tiny, "tiny", "other", "--dlio-progress-interval", "0")
    result.assert_outcomes(passed=12)
    err = result.stderr.str()
    for name in ("tiny", "other"):  # one workload per worker, each with its own lines
        assert f"[dlio] {name} train: epoch 2/2 step 8/8" in err
    assert "(gw0)" in err and "(gw1)" in err


def test_plan_and_show_config_start_no_emulator(tiny: pytest.Pytester) -> None:
    pytest.importorskip("aiobotocore")
    for opt in ("--dlio-plan", "--dlio-show-config"):
        result = run(tiny, "--dlio-config", "tiny.yaml", "--dlio-storage", "s3://dlio-plan/x", opt)
        result.assert_outcomes(passed=1)
        assert "embedded moto" not in result.stdout.str()
    assert not (tiny.path / ".dlio").exists()


def test_yaml_outside_the_rootdir_keeps_its_name(tiny: pytest.Pytester) -> None:
    (tiny.path / "root").mkdir()
    result = run(tiny, "--rootdir", "root", "--dlio-config", "tiny.yaml", "-v", "-k", "schema or datagen")
    result.assert_outcomes(passed=2, deselected=4)
    result.stdout.fnmatch_lines(
        ["tiny.yaml::schema PASSED*", "tiny.yaml::datagen PASSED*", "tiny::datagen *passed*"]
    )
    assert "\n::schema" not in result.stdout.str()
