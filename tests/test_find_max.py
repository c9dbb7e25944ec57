"""--dlio-find-max: the search (doubling, then bisection) against deterministic AU-of-N oracles, an
end-to-end run to the dataset's cap, and the headline case: on a throttled store the count found is the
one bandwidth ÷ per-accelerator demand predicts."""

from __future__ import annotations

import json

import pytest

from pytest_dlio.engine.findmax import Search, Trial, describe, limit_of, search
from tests._junit import properties_by_name as _props
from tests.conftest import run
from tests.test_e2e_items import SMALL


def oracle(best: int, *, cpu: float = 0.1, high: float = 95.0, low: float = 87.2):
    calls: list[int] = []

    def trial(n: int) -> Trial:
        calls.append(n)
        return Trial(n, high if n <= best else low, cpu)

    return trial, calls


@pytest.mark.parametrize("best", [1, 2, 3, 5, 6, 7, 8, 13, 31, 32])
def test_search_finds_the_largest_count_meeting_the_threshold(best):
    trial, calls = oracle(best)
    s = search(trial, 90.0, cap=64)
    assert s.best == best and s.first_fail == best + 1
    assert len(calls) == len(set(calls))  # every count tried once
    assert len(calls) <= 2 * best.bit_length() + 2  # doubling then bisection, not a linear scan


def test_search_stops_at_the_cap_and_at_zero():
    trial, _ = oracle(100)
    capped = search(trial, 90.0, cap=12)
    assert capped.best == 12 and capped.capped and limit_of(capped) == "search cap"
    trial, calls = oracle(0)
    none = search(trial, 90.0, cap=12)
    assert none.best == 0 and none.first_fail == 1 and calls == [1]


def test_the_limit_is_host_cpu_when_the_ranks_kept_the_cores_busy():
    for cpu, expect in ((0.95, "host CPU"), (0.3, "storage")):
        trial, _ = oracle(6, cpu=cpu)
        assert limit_of(search(trial, 90.0, cap=64)) == expect


def test_the_terminal_line_reads_as_documented():
    s = Search(6, 7, 64, {6: Trial(6, 93.0), 7: Trial(7, 87.24)})
    assert (
        describe("unet3d_h100", "file:///data", s, 90)
        == "unet3d_h100 on file:///data: 6 accelerators at AU ≥ 90 % (7: 87.2 %)"
    )


def test_find_max_item_end_to_end(pytester: pytest.Pytester) -> None:
    # au 0: every count meets it, so the search runs to the cap the dataset allows — 16 samples / batch 2
    # give 3 or more steps per rank up to 2 ranks — with real rank processes at 1 and 2
    pytester.makefile(".yaml", tiny=SMALL)
    result = run(
        pytester,
        "--dlio-config",
        "tiny.yaml",
        "--dlio-find-max",
        "--junitxml=out.xml",
        "--dlio-output",
        "out",
        "-k",
        "datagen or max_accelerators",
    )
    result.assert_outcomes(passed=2, deselected=5)
    props = _props(pytester.path / "out.xml")["max_accelerators"]
    assert props["max_accelerators"] == "2" and props["max_accelerators_limit"] == "search cap"
    assert 0 < float(props["max_accelerators_au_percentage"]) <= 100
    result.stdout.fnmatch_lines(["*tiny on file://*: 2 accelerators at AU ≥ 0 % (search capped at 2*"])
    summary = json.loads(
        (
            pytester.path / "out" / "tiny" / "max_accelerators" / "2_accelerators" / "tiny" / "summary.json"
        ).read_text()
    )
    assert summary["num_accelerators"] == 2


def test_find_max_item_only_for_training_workloads(pytester: pytest.Pytester) -> None:
    pytester.makefile(
        ".yaml",
        tiny=SMALL.replace("train: true", "train: false").replace(
            "generate_data: true", "generate_data: false"
        ),
    )
    result = run(pytester, "--dlio-config", "tiny.yaml", "--dlio-find-max", "--co", "-q")
    assert "max_accelerators" not in result.stdout.str()


# 1 MiB per step and 0.1 s of compute: each accelerator needs 10 MiB/s to stay busy
THROTTLED = """
model:
  name: thr
framework: pytorch
workflow:
  generate_data: true
  train: true
dataset:
  data_folder: data/thr
  format: npy
  num_files_train: 60
  num_samples_per_file: 1
  record_length_bytes: 1048576
reader:
  data_loader: pytorch
  batch_size: 1
  read_threads: 2
  prefetch_size: 2
train:
  epochs: 1
  computation_time: 0.1
metric:
  au: 0.9
"""


def test_find_max_on_a_throttled_store_finds_the_predicted_count(pytester: pytest.Pytester) -> None:
    bandwidth, demand = 25.0, 10.0  # MiB/s: the store's cap (shared by all ranks), one accelerator's need
    predicted = int(bandwidth // (0.9 * demand))  # 2: two keep 90 % busy on 25 MiB/s, three would need 27
    pytester.makefile(".yaml", thr=THROTTLED)
    store = f"file://{pytester.path}/store?bandwidth_mib_s={bandwidth:g}"
    result = run(
        pytester,
        "--dlio-config",
        "thr.yaml",
        "--dlio-find-max",
        "--dlio-storage",
        store,
        "--junitxml=out.xml",
        "-k",
        "datagen or max_accelerators",
    )
    result.assert_outcomes(passed=2, deselected=3)
    props = _props(pytester.path / "out.xml")["max_accelerators"]
    assert abs(int(props["max_accelerators"]) - predicted) <= 1, props
    assert props["max_accelerators_limit"] == "storage"  # the ranks idled on the store, not on the cores
    assert float(props["max_accelerators_first_fail_au_percentage"]) < 90
