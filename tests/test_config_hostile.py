"""Hostile and absurd configs: every one is a located schema failure of its own file, never a traceback,
a hang, a write outside the run's roots, or an echoed secret."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_dlio.checkpointing.plan import checkpoint_counts, checkpoint_epochs, plan_lines
from pytest_dlio.config.load import load, load_text
from pytest_dlio.config.model import Train, Workflow, WorkloadConfig
from pytest_dlio.config.yamlread import MAX_BYTES
from pytest_dlio.errors import ConfigError, StorageError
from pytest_dlio.storage.session import StorageSession
from pytest_dlio.storage.uri import join_uri, parse_uri, relative_folder
from tests.conftest import CONFIGS, run

GOOD = CONFIGS / "dlio" / "unet3d_h100.yaml"
DS = "dataset:\n  format: npz\n  num_files_train: 8\n  record_length_bytes: 4096\n"


def _bomb(levels: int) -> str:
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def _problem(text: str, overrides: list[str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_text(text, "h.yaml", overrides)
    return str(info.value)


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        (_bomb(9), "expands to more than 5,000 values"),  # 254-ish bytes that would expand to 387 M strings
        (_bomb(30), "expands to more than 5,000 values"),
        ("a: &a [*a]\n", "a.0: recursive alias"),
        ("a: &a {b: *a}\n", "a.b: recursive alias"),
        ("a: &a {<<: *a}\n", "a: recursive alias"),
        (
            "a: " + "[" * 3000 + "]" * 3000 + "\n",
            "nests more than 64 levels deep (DLIO's keys are at most 4); is this the right file? (h.yaml:1:68)",
        ),
        (
            "a:\n" + "".join(" " * i + "- \n" for i in range(100)),
            "nests more than 64 levels deep (DLIO's keys are at most 4); is this the right file? (h.yaml:",
        ),
        (
            "a: [" + "1," * 20_000 + "]\n",
            "holds more than 5,000 values (a DLIO config has a few hundred); is this the right file? (h.yaml:1:",
        ),
        (
            "train:\n  epochs: " + "9" * 5000 + "\n",
            "train.epochs: an integer of 5,000 digits is too long to be a setting (h.yaml:2:11)",
        ),
        (
            "train:\n  epochs: !!int abc\n",
            "train.epochs: 'abc' is not a whole number (fix it, or remove the tag) (h.yaml:2:11)",
        ),
        ("train:\n  computation_time: !!float x\n", "train.computation_time: 'x' is not a number"),
        ("dataset:\n  data_folder: !!timestamp 2024-99-99\n", "'2024-99-99' is not a date"),
        (
            "train: !!python/object:os.system {}\n",
            "train: YAML tag !!python/object:os.system is not accepted",
        ),
        (
            "train:\n  epochs: !!python/object/apply:os.system [ls]\n",
            "YAML tag !!python/object/apply:os.system",
        ),
        ("dataset: !!set {a, b}\n", "YAML tag !!set is not accepted"),
        ("dataset:\n  data_folder: !!binary aGVsbG8=\n", "YAML tag !!binary is not accepted"),
        ("dataset:\n  data_folder: !custom x\n", "YAML tag !custom is not accepted"),
        ('dataset:\n  "a\\x1b[31mb\\u202e": 1\n', "dataset.a\\x1b[31mb\\u202e: unknown key (h.yaml:2:3)"),
        (
            "dataset:\n  format: np\x07z\n",
            "character U+0007 is not allowed in YAML (inside double quotes it can be written as an "
            "escape) (h.yaml:2:13)",
        ),
        (
            "a: 1\n---\nb: 2\n",
            "expected a single YAML document, found more than one (remove the extra '---') (h.yaml:2:1)",
        ),
        ("a: *nope\n", "found undefined alias"),
        ("x: &x 1\n<<: *x\n", "'<<' merges mappings only"),
    ],
)
def test_hostile_yaml_is_a_located_config_error(text: str, expect: str) -> None:
    assert expect in _problem(text)


def test_merge_keys_still_work_and_own_keys_win() -> None:
    doc = DS.replace(
        "dataset:",
        "dataset:\n  <<: [{num_files_train: 99, format: npy}, {num_samples_per_file: 2, num_files_train: 7}]",
    )
    cfg = load_text(doc, "m.yaml")
    assert cfg.dataset.num_files_train == 8 and cfg.dataset.format == "npz"  # own keys win over merged ones
    assert cfg.dataset.num_samples_per_file == 2  # a merged key nobody overrides is kept


def test_fifty_megabytes_of_unknown_keys_fails_on_size_without_reading_it(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    line = b"unknown_key_%08d: 1\n"
    with big.open("wb") as fh:
        for i in range(2_400_000):  # 50 MB
            fh.write(line % i)
    assert big.stat().st_size > 50 * 10**6
    with pytest.raises(ConfigError) as info:
        load(big)
    assert f"config is {big.stat().st_size:,} bytes; at most {MAX_BYTES:,} are read" in str(info.value)
    assert str(big) in str(info.value)


def test_hostile_override_values() -> None:
    assert "nests more than 64 levels deep" in _problem(DS, ["train.epochs=" + "[" * 5000])
    assert "YAML tag !!python/object/apply:os.system is not accepted" in _problem(
        DS, ["train.epochs=!!python/object/apply:os.system [ls]"]
    )
    assert "train.epochs: an integer of 5,000 digits" in _problem(DS, ["train.epochs=" + "1" * 5000])
    assert "train.epochs: 'x' is not a whole number" in _problem(DS, ["train.epochs=!!int x"])
    bomb = "[&a [1,1,1,1,1,1,1,1,1,1], &b [" + ",".join(["*a"] * 10) + "], [" + ",".join(["*b"] * 60) + "]]"
    assert "expands to more than 5,000 values" in _problem(DS, ["train.epochs=" + bomb])


# ---- a hostile file fails alone ----


def test_hostile_files_fail_their_own_schema_item_and_the_good_one_passes(pytester: pytest.Pytester) -> None:
    wl = pytester.path / "wl"
    (wl / "folder.yaml").mkdir(parents=True)  # a folder named like a workload
    (wl / "good.yaml").write_text(GOOD.read_text())
    (wl / "bomb.yaml").write_text(_bomb(9))
    (wl / "deep.yaml").write_text("a: " + "[" * 3000 + "]" * 3000)
    (wl / "tag.yaml").write_text("train:\n  epochs: !!int abc\n")
    (wl / "nan.yaml").write_text(DS + "train:\n  computation_time: .nan\n")
    result = run(pytester, "--dlio-config", str(wl), "--dlio-plan", "--junitxml=out.xml")
    text = result.stdout.str()
    assert "Traceback" not in text and "INTERNALERROR" not in text
    result.assert_outcomes(passed=1, failed=5)
    assert result.ret == 1
    assert "folder.yaml: is a folder, not a workload YAML" in text
    assert "bomb.yaml:" in text and "deep.yaml:1:" in text and "tag.yaml:2:11" in text
    assert "train.computation_time: must be a finite number, got nan" in text
    assert "dlio plan" in text  # the good workload still planned


def test_a_folder_named_yaml_given_directly(pytester: pytest.Pytester) -> None:
    (pytester.path / "x.yaml").mkdir()
    result = run(pytester, "--dlio-config", str(pytester.path / "x.yaml"))
    assert result.ret == 1
    result.assert_outcomes(failed=1)
    assert "x.yaml: is a folder, not a workload YAML" in result.stdout.str()


# ---- absurd sizes ----


@pytest.mark.parametrize(
    ("extra", "expect"),
    [
        (
            "train:\n  computation_time: .inf\n",
            "train.computation_time: must be a finite number, got inf (valid: ≥ 0 and ≤ 3,600)",
        ),
        (
            "train:\n  computation_time: {type: normal, mean: 1, stdev: .nan}\n",
            "train.computation_time.stdev: must be a finite",
        ),
        ("train:\n  computation_time_stdev: .inf\n", "train.computation_time_stdev: must be a finite number"),
        ("reader:\n  preprocess_time: .nan\n", "reader.preprocess_time: must be a finite number, got nan"),
        ("evaluation:\n  eval_time: -.inf\n", "evaluation.eval_time: must be a finite number, got -inf"),
        ("metric:\n  au: .nan\n", "metric.au: must be a finite number, got nan (valid: ≥ 0 and ≤ 1)"),
        ("metric:\n  au: 1.5\n", "metric.au: must be ≤ 1, got 1.5"),
        (
            "checkpoint:\n  time_between_checkpoints: .inf\n",
            "checkpoint.time_between_checkpoints: must be a finite number",
        ),
        (
            "train:\n  computation_time: 1.0e+9\n",
            "train.computation_time: 1,000,000,000.0 is above the cap of 3,600",
        ),
        (
            "train:\n  epochs: 1000000000000\n",
            "train.epochs: 1,000,000,000,000 is above the cap of 1,000,000 (DLIO's largest",
        ),
        (
            "reader:\n  batch_size: 100000000\n",
            "reader.batch_size: 100,000,000 is above the cap of 10,000,000",
        ),
        (
            "reader:\n  read_threads: 5000\n",
            "reader.read_threads: 5,000 is above the cap of 1,024 (threads per rank",
        ),
        ("train:\n  seed: -1\n", "train.seed: must be ≥ 0, got -1"),
        (
            "storage:\n  storage_root: ../outside\n",
            "storage.storage_root: '../outside' leaves its root through '..'",
        ),
    ],
)
def test_absurd_values_are_refused_with_the_range(extra: str, expect: str) -> None:
    assert expect in _problem(DS + extra)


def test_absurd_file_count_and_dataset_size_refused_by_arithmetic() -> None:
    msg = _problem(DS.replace("num_files_train: 8", "num_files_train: 1000000000000000"))
    assert (
        "dataset.num_files_train: 1,000,000,000,000,000 is above the cap of 100,000,000" in msg
        and "h.yaml:3:20" in msg
    )
    msg = _problem(DS.replace("num_files_train: 8", "num_files_train: 50000000").replace("4096", "100000000"))
    assert (
        "dataset: 50,000,000 files x 1 samples x 100,000,000 bytes = 4.4 PiB is above the cap of 4 PiB" in msg
    )
    msg = _problem(DS + "  record_dims: [100000, 100000, 100]\n")
    assert "dataset.record_dims: a sample of 1,000,000,000,000 bytes is above the cap" in msg


def test_the_largest_shipped_workloads_stay_within_the_caps() -> None:
    assert load(CONFIGS / "dlio_2.0.0" / "megatron_deepspeed.yaml").train.epochs == 311541
    assert load(CONFIGS / "dlio_2.0.0" / "dlrm.yaml").dataset.num_samples_per_file == 4195198976


def test_plan_counts_epochs_without_enumerating_them() -> None:
    cfg = WorkloadConfig(workflow=Workflow(train=True, checkpoint=True), train=Train(epochs=10**12))
    assert len(checkpoint_epochs(cfg)) == 10**12 and checkpoint_counts(cfg, 1) == (10**12, 0)
    assert any("1000000000000 write(s)" in line for line in plan_lines(cfg, 1))


def test_plan_of_absurd_epochs_is_a_schema_failure(pytester: pytest.Pytester) -> None:
    path = pytester.path / "e.yaml"
    path.write_text(DS + "train:\n  epochs: 1000000000000\n")
    result = run(pytester, "--dlio-config", str(path), "--dlio-plan")
    result.assert_outcomes(failed=1)
    assert "train.epochs: 1,000,000,000,000 is above the cap of 1,000,000" in result.stdout.str()
    assert "MemoryError" not in result.stdout.str()


# ---- folders stay inside their root ----


def test_dotdot_is_refused_by_the_storage_layer_too(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=r"\.\./x: '\.\.' would leave the data root"):
        relative_folder("../x")
    with pytest.raises(StorageError, match="'..' would leave"):
        join_uri("s3://bucket/root", "a/../../b")
    with pytest.raises(StorageError, match="'..' in a storage path is refused"):
        parse_uri("file:///data/../etc")
    session = StorageSession(tmp_path)
    with pytest.raises(StorageError, match="'..' in a folder is refused"):
        session.resolve("/abs/../etc")
    with pytest.raises(StorageError, match="'..' would leave"):
        StorageSession(tmp_path, f"file://{tmp_path}").resolve("../escape")
    assert session.resolve("/abs/elsewhere") == "file:///abs/elsewhere"  # absolute folders stay a user choice


SMALL = """framework: pytorch
workflow: {generate_data: true, train: false}
dataset: {format: npz, num_files_train: 2, record_length_bytes: 1024, data_folder: data/ok}
"""


@pytest.mark.parametrize(
    ("where", "args", "expect"),
    [
        ("yaml data", [], "dataset.data_folder: '../../escape_data' leaves its root through '..'"),
        ("yaml checkpoint", [], "checkpoint.checkpoint_folder: 'ck/../../../escape_ck' leaves its root"),
        ("yaml output", [], "output.folder: '../escape_out' leaves its root"),
        (
            "set data",
            ["--dlio-set", "dataset.data_folder=../../escape_data"],
            "dataset.data_folder: '../../escape_data'",
        ),
        (
            "set checkpoint",
            ["--dlio-set", "checkpoint.checkpoint_folder=../escape_ck"],
            "'../escape_ck' leaves its root",
        ),
        (
            "set output",
            ["--dlio-set", "output.folder=data/../../escape_out"],
            "output.folder: 'data/../../escape_out'",
        ),
    ],
)
def test_dotdot_folders_are_refused_and_nothing_is_written_outside(
    pytester: pytest.Pytester, where: str, args: list[str], expect: str
) -> None:
    text = SMALL
    if where == "yaml data":
        text = text.replace("data/ok", "../../escape_data")
    elif where == "yaml checkpoint":
        text += "checkpoint: {checkpoint_folder: ck/../../../escape_ck}\n"
    elif where == "yaml output":
        text += "output: {folder: ../escape_out}\n"
    inner = pytester.path / "a" / "b"
    inner.mkdir(parents=True)
    cfg = inner / "w.yaml"
    cfg.write_text(text)
    before = {p for p in pytester.path.parent.rglob("*")}
    result = run(pytester, "--dlio-config", str(cfg), "--dlio-data-root", str(inner / "root"), *args)
    assert expect in result.stdout.str()
    result.assert_outcomes(failed=1)
    after = {p for p in pytester.path.parent.rglob("*")}
    assert not [p for p in after - before if "escape" in p.name]
    assert not (inner / "root").exists()  # nothing generated at all: schema failed first


def test_dotdot_in_the_storage_uri_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = run(
        pytester, "--dlio-storage", f"file://{pytester.path}/../elsewhere", "--dlio-config", str(GOOD)
    )
    assert result.ret == 4
    assert "'..' in a storage path is refused" in result.stderr.str()


# ---- secrets ----

SECRET = "wJalrXUtnFEMIK7MDENGbPxRfiCYSECRETVALUE1"
KEY_ID = "AKIAIOSFODNN7EXAMPLE"
URI_SECRET = "uriSecretNeverShown42"
SET_SECRET = "setSecretNeverShown77"


def test_secrets_never_echoed_from_config_overrides_or_uris(pytester: pytest.Pytester) -> None:
    good = pytester.path / "good.yaml"
    good.write_text(
        SMALL.replace(
            "workflow:",
            f"storage:\n  storage_options:\n    secret_access_key: {SECRET}\n"
            f"    access_key_id: {KEY_ID}\nworkflow:",
        )
    )
    bad_type = pytester.path / "bad_type.yaml"
    bad_type.write_text(
        SMALL + f"storage:\n  storage_options:\n    account_key: [{SECRET}]\n    sas_token: 12345678901\n"
    )
    bad_uri = pytester.path / "bad_uri.yaml"
    bad_uri.write_text(SMALL.replace("data/ok", f"s3://{KEY_ID}:{URI_SECRET}@bucket/data"))
    sets = [
        f"storage.storage_options.secret_acess_key={SET_SECRET}",  # misspelt
        f"storage.storage_options.session_token=[{SET_SECRET}",  # malformed YAML
        f"storage.storage_options.connection_string=!!int {SET_SECRET}",  # a tag that cannot read it
        f"storage.storage_options={{secret_acess_key: {SET_SECRET}}}",
    ]  # nested under a plain key
    for s in sets:
        result = run(
            pytester,
            "--dlio-config",
            str(good),
            "--dlio-config",
            str(bad_type),
            "--dlio-config",
            str(bad_uri),
            "--dlio-set",
            s,
            "--dlio-plan",
            "--dlio-show-config",
            "--junitxml=out.xml",
            "-rA",
        )
        out = result.stdout.str() + result.stderr.str() + (pytester.path / "out.xml").read_text()
        result.assert_outcomes(failed=3)
        assert "--dlio-set storage.storage_options" in out and "=***" in out
        for secret in (SECRET, KEY_ID, URI_SECRET, SET_SECRET, "12345678901"):
            assert secret not in out, f"{secret} echoed with --dlio-set {s.split('=')[0]}"
    result = run(
        pytester, "--dlio-config", str(good), "--dlio-plan", "--dlio-show-config", "--junitxml=out.xml", "-rA"
    )
    result.assert_outcomes(passed=1)
    out = result.stdout.str() + (pytester.path / "out.xml").read_text()
    assert SECRET not in out and KEY_ID not in out and "secret_access_key: '***'" in out
    result = run(
        pytester, "--dlio-storage", f"s3://{KEY_ID}:{URI_SECRET}@bucket/p", "--dlio-config", str(good)
    )
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == 4 and "credentials in a URI (user:secret@…) are refused" in out
    assert URI_SECRET not in out and KEY_ID not in out


# ---- smaller ----


def test_plugin_classnames_are_noted_as_not_loaded(pytester: pytest.Pytester) -> None:
    path = pytester.path / "c.yaml"
    path.write_text(
        DS + "reader:\n  reader_classname: my.pkg.Reader\n  data_loader_classname: my.pkg.Loader\n"
        "  data_loader_sampler: index\ncheckpoint:\n  checkpoint_mechanism_classname: my.pkg.Ckpt\n"
    )
    result = run(pytester, "--dlio-config", str(path), "--dlio-plan", "--junitxml=out.xml", "-rA")
    result.assert_outcomes(passed=1)
    props = {p.get("name"): p.get("value") for p in ET.parse(pytester.path / "out.xml").iter("property")}
    notes = props["config_notes"]
    assert (
        "reader.reader_classname: my.pkg.Reader is not loaded: pytest-dlio emulates DLIO's reader; the class "
        "is ignored (" in notes
    )
    assert "reader.data_loader_classname: my.pkg.Loader is not loaded" in notes
    assert "checkpoint.checkpoint_mechanism_classname: my.pkg.Ckpt is not loaded" in notes
    assert "note: reader.reader_classname: my.pkg.Reader is not loaded" in result.stdout.str()


def test_an_unexpected_error_reading_one_file_fails_only_that_file(pytester: pytest.Pytester) -> None:
    """The safety net in collection: a bug (here: scaling raises for one file) is that file's schema failure."""
    pytester.makeconftest("""
import pytest_dlio.engine.load as run_module

_real = run_module.scale_config


def _buggy(cfg, factor, **kw):
    if cfg.source.path.endswith("buggy.yaml"):
        raise ZeroDivisionError("simulated bug")
    return _real(cfg, factor, **kw)


def pytest_configure(config):
    run_module.scale_config = _buggy


def pytest_unconfigure(config):
    run_module.scale_config = _real
""")
    (pytester.path / "good.yaml").write_text(GOOD.read_text())
    (pytester.path / "buggy.yaml").write_text(GOOD.read_text())
    result = run(
        pytester,
        "--dlio-config",
        str(pytester.path / "good.yaml"),
        "--dlio-config",
        str(pytester.path / "buggy.yaml"),
        "--dlio-scale",
        "0.5",
        "--dlio-plan",
    )
    text = result.stdout.str()
    result.assert_outcomes(passed=1, failed=1)
    assert "buggy.yaml: could not be read (ZeroDivisionError); this is a pytest-dlio bug" in text
    assert "Traceback" not in text and "INTERNALERROR" not in text


def test_every_number_in_the_schema_must_be_finite() -> None:
    """A key added later gets the NaN/inf refusal too (schema.py marks every number rule)."""
    from pytest_dlio.config.schema import SCHEMA

    missing = []

    def walk(rules: dict, path: tuple[str, ...]) -> None:
        for key, rule in rules.items():
            kinds = rule.get("type")
            if "number" in (kinds if isinstance(kinds, list) else [kinds]) and not rule.get("finite"):
                missing.append(".".join((*path, key)))
            sub = rule.get("schema")
            if isinstance(sub, dict):
                walk(sub if not isinstance(sub.get("type"), str) else {"[]": sub}, (*path, key))

    walk(SCHEMA, ())
    assert not missing
    assert "train.computation_time.stdev: must be a finite number" in _problem(
        DS + "train:\n  computation_time: {mean: 1, stdev: .nan}\n"
    )
