"""storage.storage_options parsed once in config/ into typed settings; bad values never echo secrets."""

from __future__ import annotations

import re

import pytest

from pytest_dlio.config.load import load, load_text, normalised
from pytest_dlio.config.model import StorageConfig
from pytest_dlio.config.secrets import SECRET_KEYS
from pytest_dlio.config.storage_options import StorageOptions, parse_storage_options
from pytest_dlio.errors import ConfigError
from tests.conftest import BAD, CONFIGS, run

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYSECRETKEY"
WORKLOAD = (
    "framework: pytorch\nreader:\n  data_loader: pytorch\n  batch_size: 2\n"
    "dataset:\n  format: npz\n  num_files_train: 8\n  record_length_bytes: 4096\n"
)


def test_shipped_s3_config_is_typed() -> None:
    cfg = load(CONFIGS / "dlio" / "unet3d_h100_s3.yaml")
    s3 = cfg.storage.options.s3
    assert (s3.region, s3.force_path_style, s3.max_attempts) == ("us-east-1", False, 5)
    assert cfg.storage.options.tuning.part_size is None


def test_every_key_lands_in_its_typed_place() -> None:
    conn = (
        "DefaultEndpointsProtocol=http;AccountName=acct;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:1/acct"
    )
    raw = {
        "endpoint_url": "http://127.0.0.1:9000",
        "region": "eu-west-1",
        "access_key_id": "AK",
        "secret_access_key": SECRET,
        "session_token": "tok",
        "s3_force_path_style": "True",
        "s3_max_attempts": 3,
        "connection_string": conn,
        "account_name": "acct",
        "account_key": "a2V5",
        "sas_token": "?sv=1&sig=abc",
        "api_version": "2023-11-03",
        "max_attempts": 2,
        "part_size": 16 * 2**20,
        "concurrency": 4,
        "timeout": 5,
        "list_page_size": 100,
        "columns": ["a", "b"],
        "storage_library": "s3dlio",
        "uri_scheme": "az",
        "prefetch_workers": 4,
        "prefetch_window": 0,
        "footer_cap": 8,
        "account_url": None,
    }
    options, problems = parse_storage_options(raw)
    assert problems == []
    assert (
        options.s3.endpoint_url,
        options.s3.region,
        options.s3.secret_access_key,
        options.s3.force_path_style,
        options.s3.max_attempts,
    ) == ("http://127.0.0.1:9000", "eu-west-1", SECRET, True, 3)
    a = options.azure
    assert (
        a.connection_string,
        a.account_key,
        a.sas_token,
        a.api_version,
        a.max_attempts,
        a.account_url,
    ) == (conn, "a2V5", "?sv=1&sig=abc", "2023-11-03", 2, "http://127.0.0.1:9000")
    t = options.tuning
    assert (t.part_size, t.concurrency, t.timeout, t.list_page_size) == (16 * 2**20, 4, 5.0, 100)
    assert (options.columns, options.storage_library, options.uri_scheme) == (("a", "b"), "s3dlio", "az")
    assert (options.prefetch_workers, options.prefetch_window) == (4, 0)
    assert options.accepted == (("footer_cap", 8),)
    assert SECRET not in repr(options) and "a2V5" not in repr(options)
    same, _ = parse_storage_options({**raw})
    assert same == options and hash(same) == hash(options)  # the session caches credentials by options


@pytest.mark.parametrize("key", sorted(SECRET_KEYS))
def test_bad_secret_values_are_not_echoed(key: str) -> None:
    bad: object = 12345678 if key in ("access_key_id", "secret_access_key", "session_token") else f"{SECRET}!"
    _, problems = parse_storage_options({key: bad})
    assert [k for k, _ in problems] == [key]
    assert str(bad) not in problems[0][1] and SECRET not in problems[0][1]


@pytest.mark.parametrize("value", ["12345678", "[12345678]", "{a: 12345678}", "yes"])
@pytest.mark.parametrize("key", sorted(SECRET_KEYS))
def test_bad_secret_in_yaml_is_not_echoed(key: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(f"storage:\n  storage_options:\n    {key}: {value}\n" + WORKLOAD, "w.yaml")
    text = str(info.value)
    assert re.fullmatch(rf"storage\.storage_options\.{key}: must be a string \(w\.yaml:3:\d+\)", text), text
    assert "12345678" not in text and "True" not in text and "true" not in text


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"endpoint_url": "http://user:pw@127.0.0.1:9"},
            "must not carry credentials in the URL (value not shown)",
        ),
        ({"endpoint_url": "http://127.0.0.1:99999"}, "has a bad port"),
        ({"part_size": 1024}, "must be between 5,242,880 and 5,368,709,120 bytes"),
        ({"concurrency": 0}, "must be between 1 and 1,024, got 0"),
        ({"list_page_size": 10_000}, "(S3 serves at most 1000, Azure 5000)"),
        ({"timeout": True}, "must be a number of seconds, got True"),
        ({"s3_max_attempts": "5"}, "must be a whole number, got '5'"),
        ({"columns": ["a", "a"]}, "names a more than once"),
        ({"api_version": "latest"}, "must be a date-like service version"),
        (
            {"storage_library": "boto"},
            "'boto' is not valid; expected one of s3dlio, minio, s3torchconnector, direct",
        ),
        ({"bogus": 1}, "unknown key; valid keys: endpoint_url, region"),
        ({"prefetch_workers": {"a": 1}}, "must be a whole number, got {'a': 1}"),
        ({"prefetch_workers": 0}, "must be between 1 and 1,024 threads, got 0"),
        ({"prefetch_window": 5000}, "must be between 0 and 4,096 row groups, got 5,000"),
        ({"prefetch": -1}, "must be true or false or a whole number (>= 0), got -1"),
        ({"decode": "pandas"}, "'pandas' is not valid; expected one of raw, arrow"),
        ({"s3_profile": ["x"]}, "must be a string, got ['x']"),
    ],
)
def test_bad_values(raw: dict[str, object], message: str) -> None:
    _, problems = parse_storage_options(raw)
    assert len(problems) == 1 and message in problems[0][1], problems


def test_config_built_in_code_fails_on_first_use() -> None:
    storage = StorageConfig(storage_options=(("concurrency", 0), ("sas_token", SECRET)))
    with pytest.raises(ConfigError) as info:
        _ = storage.options
    assert info.value.problems[0].startswith("storage.storage_options.concurrency: must be between 1")
    assert info.value.problems[1].startswith("storage.storage_options.sas_token: is not a SAS token")
    assert SECRET not in str(info.value)
    assert StorageConfig().options == StorageOptions()


def test_yaml_problem_cites_file_line_col() -> None:
    text = "storage:\n  storage_options:\n    sas_token: not-a-token-" + SECRET + "\n" + WORKLOAD
    with pytest.raises(ConfigError) as info:
        load_text(text, "w.yaml")
    assert str(info.value) == (
        "storage.storage_options.sas_token: is not a SAS token (a query string such as "
        "sv=…&sig=…; value not shown) (w.yaml:3:16)"
    )


def test_show_config_keeps_the_keys_as_written() -> None:
    cfg = load_text(
        "storage:\n  storage_options:\n    s3_max_attempts: 3\n    timeout: 7\n" + WORKLOAD, "w.yaml"
    )
    assert normalised(cfg)["storage"]["storage_options"] == {"s3_max_attempts": 3, "timeout": 7}


def test_bad_secret_never_reaches_terminal_or_junit(pytester: pytest.Pytester) -> None:
    case = BAD / "storage_option_account_key.yaml"
    result = run(pytester, "-k", "schema", "--dlio-config", str(case), "--junitxml=out.xml")
    result.assert_outcomes(failed=1, deselected=result.parseoutcomes().get("deselected", 0))
    text, xml = result.stdout.str(), (pytester.path / "out.xml").read_text()
    assert "storage.storage_options.account_key: is not base64" in text and "account_key" in xml
    for shown in (text, xml):
        assert "hunter2" not in shown and "my password" not in shown
