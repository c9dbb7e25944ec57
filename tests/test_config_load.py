"""Loading: shipped workloads, dialects, aliases, overrides, derived values, show-config, scale."""

from __future__ import annotations

import json

import pytest

from pytest_dlio.config.load import load, load_text, parse_override
from pytest_dlio.config.scale import (
    EPOCH_FLOOR_BYTES,
    MIN_EPOCH_COMPUTE,
    MIN_READ_COMPUTE,
    MIN_SAMPLE_COMPUTE,
    MIN_STEP_COMPUTE,
    factor_for,
    samples_per_read,
    scale_config,
    workload_bytes,
)
from pytest_dlio.errors import ConfigError
from tests.conftest import CONFIGS, ROOT, run

SHIPPED = sorted(CONFIGS.rglob("*.yaml"))


def test_every_shipped_workload_is_valid() -> None:
    assert len(SHIPPED) >= 70
    for path in SHIPPED:
        load(path)


def test_unet3d_values_and_alias() -> None:
    cfg = load(CONFIGS / "dlio" / "unet3d_h100.yaml")
    assert cfg.dataset.num_files_train == 168 and cfg.reader.batch_size == 7
    assert cfg.model.model_size_bytes == 499153191
    assert cfg.reader.file_shuffle == "seed" and cfg.train.computation_time.mean == pytest.approx(0.323)
    assert cfg.steps_per_epoch(1) == 24 and cfg.steps_per_epoch(2) == 12
    assert cfg.reader.data_loader == "pytorch" and cfg.source.dialect == "dlio"


def test_model_size_alias_is_honoured_and_said() -> None:
    text = (
        "model:\n  name: u\n  model_size: 1000\nworkflow:\n  train: false\n  checkpoint: true\n"
        "checkpoint:\n  num_checkpoints_write: 1\n"
    )
    cfg = load_text(text, "u.yaml")
    assert cfg.model.model_size_bytes == 1000
    assert any("model.model_size read as model.model_size_bytes" in n for n in cfg.source.notes)


def test_dlio_2_0_0_dialect() -> None:
    cfg = load(CONFIGS / "dlio_2.0.0" / "unet3d_h100.yaml")
    assert cfg.source.dialect == "dlio-2.0.0"
    assert cfg.model.name == "unet3d" and cfg.dataset.record_length_bytes == 146600628
    assert cfg.dataset.record_length_bytes_stdev == 68341808


def test_dldriver_dialect_maps_keys() -> None:
    cfg = load(ROOT / "fixtures" / "dialects" / "dldriver_unet3d.yaml")
    assert cfg.source.dialect == "dl-driver"
    assert (
        cfg.framework == "pytorch" and cfg.reader.prefetch_size == 4 and cfg.reader.computation_threads == 2
    )
    assert cfg.reader.file_shuffle == "off" and cfg.model.model_size_bytes == 499153191
    assert (
        cfg.metric.au == pytest.approx(0.9)
        and cfg.checkpoint.checkpoint_folder == "file:///tmp/dlio_unet3d_ckpt"
    )
    assert any("pytorch_config ignored" in n for n in cfg.source.notes)


def test_dldriver_percent_au() -> None:
    text = (
        "checkpointing:\n  checkpoint_folder: c\nmetric:\n  au: 90\nworkflow:\n  train: false\n"
        "  checkpoint: true\ncheckpoint:\n  num_checkpoints_write: 1\n"
    )
    cfg = load_text(text, "d.yaml")
    assert cfg.metric.au == pytest.approx(0.9) and cfg.checkpoint.checkpoint_folder == "c"


def test_off_means_off() -> None:
    cfg = load_text(
        "reader:\n  file_shuffle: off\n  sample_shuffle: OFF\n  data_loader: tensorflow\n"
        "dataset:\n  format: npz\n",
        "s.yaml",
    )
    assert cfg.reader.file_shuffle == "off" and cfg.reader.sample_shuffle == "off"


def test_s3_path_style_boolean_accepted() -> None:
    cfg = load(CONFIGS / "dlio" / "unet3d_h100_s3.yaml")
    assert cfg.storage.storage_type == "s3" and cfg.storage.options.s3.force_path_style is False


@pytest.mark.parametrize(
    ("text", "path", "value"),
    [
        ("dataset.num_files_train=16", ("dataset", "num_files_train"), 16),
        ("++workload.reader.read_threads=2", ("reader", "read_threads"), 2),
        ("workload.dataset.format=npy", ("dataset", "format"), "npy"),
        ("dataset.record_dims=[4, 4]", ("dataset", "record_dims"), [4, 4]),
    ],
)
def test_parse_override(text: str, path: tuple[str, ...], value: object) -> None:
    assert parse_override(text) == (path, value)


def test_overrides_apply() -> None:
    cfg = load(
        CONFIGS / "dlio" / "unet3d_h100.yaml", ["dataset.num_files_train=16", "++workload.train.epochs=1"]
    )
    assert cfg.dataset.num_files_train == 16 and cfg.train.epochs == 1


def test_time_distribution() -> None:
    cfg = load_text(
        "dataset:\n  format: npz\nreader:\n  data_loader: tensorflow\ntrain:\n  computation_time:\n"
        "    type: uniform\n    min: 0.1\n    max: 0.3\n",
        "t.yaml",
    )
    assert cfg.train.computation_time.expected() == pytest.approx(0.2)


def test_errors_are_all_reported_with_positions() -> None:
    with pytest.raises(ConfigError) as info:
        load_text("dataset:\n  num_files_train: -1\n  format: npzz\n", "x.yaml")
    assert info.value.problems == [
        "dataset.num_files_train: must be ≥ 0, got -1 (valid: ≥ 0 and ≤ 100,000,000) (x.yaml:2:20)",
        "dataset.format: 'npzz' is not valid; expected one of tfrecord, hdf5, csv, npz, npy, hdf5_opt, jpeg, png, "
        "indexed_binary, mmap_indexed_binary, synthetic, parquet; did you mean npz? (x.yaml:3:11)",
    ]


def test_scale_keeps_steps_and_ratio() -> None:
    cfg = load(CONFIGS / "dlio" / "unet3d_h100.yaml")
    factor = factor_for(cfg, 8 * 2**20)
    small = scale_config(cfg, factor, smoke=True)
    total = small.dataset.num_files_train * small.dataset.num_samples_per_file * small.dataset.sample_bytes
    assert small.steps_per_epoch(1) >= 4 and small.train.epochs == 2
    ratio_before = cfg.train.computation_time.mean / (cfg.reader.batch_size * cfg.dataset.sample_bytes)
    ratio_after = small.train.computation_time.mean / (small.reader.batch_size * small.dataset.sample_bytes)
    assert ratio_after == pytest.approx(ratio_before, rel=1e-3)
    assert small.source.scale == pytest.approx(factor) and "scaled by" in small.source.notes[-1]
    # 8 MiB would leave unet3d 1 ms of compute per step: records stop shrinking at the floors instead —
    # here the per-read one (7 one-sample files per step: 10 ms per step would be 1.4 ms per read)
    per_step = small.train.computation_time.mean
    assert per_step == pytest.approx(MIN_READ_COMPUTE * small.reader.batch_size, rel=1e-3)
    assert per_step > MIN_STEP_COMPUTE
    assert total > 8 * 2**20 and f"floor {MIN_READ_COMPUTE * 1000:.0f} ms" in small.source.notes[-1]
    # more steps than twice the read-ahead: not every batch can be read during the unmeasured first step
    ahead = max(cfg.reader.prefetch_size, cfg.reader.read_threads)
    assert small.steps_per_epoch(1) > 2 * ahead + 1
    # a factor that leaves compute above the floor scales bytes exactly, as before
    big = scale_config(cfg, factor * 200, smoke=True)
    big_total = big.dataset.num_files_train * big.dataset.num_samples_per_file * big.dataset.sample_bytes
    assert big.train.computation_time.mean > MIN_STEP_COMPUTE and "floor" not in big.source.notes[-1]
    assert big_total == pytest.approx(200 * 8 * 2**20, rel=0.05)


def test_a_scaled_dataset_gets_a_folder_named_after_its_settings() -> None:
    """unet3d_b200 and unet3d_h100 share data/unet3d/ at full size (the same files); at smoke each plans
    70 files of the same names at another size, so each gets a folder of its own, stable from run to run,
    never nested when a scaled config is scaled again, and the full-size configs keep DLIO's folder."""
    v3 = CONFIGS / "mlperf_storage_v3.0"
    b200, h100 = load(v3 / "unet3d_b200.yaml"), load(v3 / "unet3d_h100.yaml")
    assert b200.dataset.data_folder.rstrip("/") == h100.dataset.data_folder.rstrip("/") == "data/unet3d"
    small = {n: scale_config(c, factor_for(c, 8 * 2**20), smoke=True) for n, c in (("b", b200), ("h", h100))}
    folders = {n: c.dataset.data_folder for n, c in small.items()}
    assert folders["b"] != folders["h"] and all(f.startswith("data/unet3d-scaled-") for f in folders.values())
    assert small["b"].dataset.record_length_bytes != small["h"].dataset.record_length_bytes
    again = scale_config(b200, factor_for(b200, 8 * 2**20), smoke=True)
    assert (
        again.dataset.data_folder == folders["b"]
    )  # the same settings, the same folder: datasets are reused
    twice = scale_config(small["b"], 0.5, smoke=True)
    assert twice.dataset.data_folder.count("-scaled-") == 1
    assert f"a folder of its own: {folders['b']}/" in small["b"].source.notes[-1]
    assert scale_config(b200, 1.0).dataset.data_folder == b200.dataset.data_folder


@pytest.mark.parametrize(
    ("name", "per_read"),
    [("retinanet_b200", 1), ("resnet50_h100", 1251), ("flux_b200", 1024), ("dlrm_mi355", 6144)],
)
def test_scale_floor_on_compute_per_read(name: str, per_read: int) -> None:
    """Records stop shrinking where one read would serve < MIN_READ_COMPUTE of compute; a workload already
    below it at full size (retinanet: 1.98 ms per 323 KB JPEG) keeps full-size records and compute."""
    cfg = load(CONFIGS / "mlperf_storage_v3.0" / f"{name}.yaml")
    small = scale_config(cfg, factor_for(cfg, 8 * 2**20), smoke=True)
    assert samples_per_read(small) == min(per_read, small.dataset.num_samples_per_file)
    full_per_read = cfg.train.computation_time.mean / cfg.reader.batch_size * samples_per_read(cfg)
    got_per_read = small.train.computation_time.mean / small.reader.batch_size * samples_per_read(small)
    assert got_per_read >= min(full_per_read, MIN_READ_COMPUTE) * (1 - 1e-3)
    # and per sample (resnet50: 400 TFRecord frames per step, each with a cost of its own)
    full_per_sample = cfg.train.computation_time.mean / cfg.reader.batch_size
    got_per_sample = small.train.computation_time.mean / small.reader.batch_size
    assert got_per_sample >= min(full_per_sample, MIN_SAMPLE_COMPUTE) * (1 - 1e-3)
    if full_per_read <= MIN_READ_COMPUTE:  # kept at full size
        assert small.dataset.sample_bytes == pytest.approx(cfg.dataset.sample_bytes, rel=1e-3)
        assert small.train.computation_time.mean == pytest.approx(cfg.train.computation_time.mean)
        assert small.dataset.num_files_train < cfg.dataset.num_files_train  # fewer steps instead
    # bandwidth per step is the full-size workload's at every scale
    ratio = cfg.train.computation_time.mean / (cfg.reader.batch_size * cfg.dataset.sample_bytes)
    got = small.train.computation_time.mean / (small.reader.batch_size * small.dataset.sample_bytes)
    assert got == pytest.approx(ratio, rel=1e-2)


def test_show_config_json_redacts_secrets(pytester: pytest.Pytester) -> None:
    pytester.makefile(
        ".yaml",
        s3wl="dataset:\n  format: npz\n  num_files_train: 4\nframework: pytorch\n"
        "reader:\n  data_loader: pytorch\nstorage:\n  storage_type: s3\n  storage_root: bucket1\n"
        "  storage_options:\n    secret_access_key: TOPSECRET123\n",
    )
    result = run(pytester, "-k", "schema", "--dlio-show-config=json", "--dlio-config", "s3wl.yaml")
    out = result.stdout.str()
    assert "TOPSECRET123" not in out
    start = out.index("{", out.index("dlio config"))
    data = json.loads(out[start : out.index("\n}", start) + 2])
    assert data["storage"]["storage_options"]["secret_access_key"] == "***"
    assert data["dataset"]["num_samples_per_file"] == 1  # defaults filled


def test_folder_collects_subfolders_and_only_yaml(pytester: pytest.Pytester) -> None:
    sub = pytester.mkdir("wl") / "deep"
    sub.mkdir()
    (sub / "a.yaml").write_text(
        "workflow:\n  train: false\n  checkpoint: true\ncheckpoint:\n  num_checkpoints_write: 1\n"
    )
    (pytester.path / "wl" / "test_not_collected.py").write_text("def test_x():\n    assert False\n")
    result = run(pytester, "-k", "schema", "--dlio-config", "wl")
    result.assert_outcomes(passed=1, deselected=result.parseoutcomes().get("deselected", 0))


def test_ini_option_lists_configs(pytester: pytest.Pytester) -> None:
    pytester.makefile(
        ".yaml", wl="workflow:\n  train: false\n  checkpoint: true\ncheckpoint:\n  num_checkpoints_write: 1\n"
    )
    pytester.makeini("[pytest]\ndlio_configs = wl.yaml\n")
    result = run(pytester, "-k", "schema")
    result.assert_outcomes(passed=1, deselected=result.parseoutcomes().get("deselected", 0))


def test_missing_config_path_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--dlio-config", "nope.yaml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--dlio-config nope.yaml: no such file, folder or glob match*"])


def test_scale_floor_on_compute_per_epoch() -> None:
    """An epoch of a few short steps is mostly its read pipeline starting: cosmoflow (3.5 ms per step at
    full size, kept) gets steps until an epoch holds MIN_EPOCH_COMPUTE, while the dataset stays within
    EPOCH_FLOOR_BYTES; a workload already past that size (unet3d_b200 at smoke) gets none."""
    cfg = load(CONFIGS / "mlperf_storage_v3.0" / "cosmoflow_h100.yaml")
    small = scale_config(cfg, factor_for(cfg, 8 * 2**20), smoke=True)
    per_step = small.train.computation_time.mean
    assert per_step == pytest.approx(cfg.train.computation_time.mean)  # full-size records and compute
    assert (
        small.steps_per_epoch(1) * per_step >= MIN_EPOCH_COMPUTE > (small.steps_per_epoch(1) - 1) * per_step
    )
    assert (
        workload_bytes(small) <= EPOCH_FLOOR_BYTES and "s of compute (floor 0.2 s" in small.source.notes[-1]
    )
    big = load(CONFIGS / "mlperf_storage_v3.0" / "unet3d_b200.yaml")
    scaled = scale_config(big, factor_for(big, 8 * 2**20), smoke=True)
    assert workload_bytes(scaled) > EPOCH_FLOOR_BYTES and scaled.steps_per_epoch(1) == 10  # 2 x 4 + 2
    assert "floor 0.2 s" not in scaled.source.notes[-1]
