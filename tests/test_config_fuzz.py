"""Property: whatever YAML or ``--dlio-set`` a user gives, the loader returns a config or raises ConfigError —
never another exception (a traceback during collection would stop every other workload of the session).

Three generators: YAML token soup (what a broken editor or a fuzzer writes), structured documents built
from DLIO's real keys with hostile values, and overrides. Bounded examples, no deadline: a CI run.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_dlio.config.load import load_text
from pytest_dlio.config.schema import known_paths
from pytest_dlio.errors import ConfigError

FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

TOKENS = [
    "\n",
    "  ",
    " ",
    "- ",
    ": ",
    ":",
    "?",
    ",",
    "[",
    "]",
    "{",
    "}",
    "&a ",
    "*a",
    "&b ",
    "*b",
    "<<: ",
    "!!int ",
    "!!float ",
    "!!str ",
    "!!python/object:os.system ",
    "!!binary ",
    "!!timestamp ",
    "!custom ",
    "!",
    "'",
    '"',
    "\\x1b",
    "\\u202e",
    "#",
    "---\n",
    "...\n",
    "|\n",
    ">\n",
    "%YAML 1.1\n",
    "%TAG ! tag:x,2000:\n",
    "dataset",
    "train",
    "reader",
    "epochs",
    "format",
    "npz",
    "computation_time",
    "data_folder",
    "../..",
    "1",
    "-1",
    "0x1F",
    "0o17",
    "1e5",
    "1.0e+999",
    ".nan",
    ".inf",
    "-.inf",
    "~",
    "null",
    "yes",
    "off",
    "2024-13-45",
    "9" * 400,
    "\t",
    "\x00",
    "\x07",
    "\ufeff",
    "é",
    "\U0001f600",
    "\r\n",
    "=",
    "%",
]

KEYS = [p for p in known_paths() if len(p) <= 3]
VALUES = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=20),
    st.sampled_from(
        [
            ".nan",
            ".inf",
            "-.inf",
            "!!int abc",
            "!!python/object:os.system {}",
            "*undefined",
            "[*a]",
            "&a [*a]",
            "{a: 1",
            "../../x",
            "s3://K:S@b/p",
            "0" * 5000,
            "'",
            '"\\x1b"',
            "[" * 200,
            "!!binary aGk=",
            "2024-99-99",
            "{<<: 1}",
            "- a\n- b",
            "|\n  x",
        ]
    ),
)


def _never_other(text: str, overrides: list[str] | None = None) -> None:
    try:
        load_text(text, "fuzz.yaml", overrides)
    except ConfigError as exc:
        assert str(exc)  # a message, always
        assert "\x1b" not in str(exc) and "\x00" not in str(exc)  # control characters are escaped


@FUZZ
@given(st.lists(st.sampled_from(TOKENS), max_size=60))
def test_token_soup_only_ever_raises_config_error(tokens: list[str]) -> None:
    _never_other("".join(tokens))


@FUZZ
@given(st.text(alphabet=string.printable + "\x00\x1b\u202e\ufeff\U0001f600", max_size=200))
def test_random_text_only_ever_raises_config_error(text: str) -> None:
    _never_other(text)


def _yaml_value(value: object) -> str:
    if isinstance(value, str):
        return (
            value
            if value.startswith(("!", "*", "&", "[", "{", ".", "-", "|", "0", "'", '"', "s3"))
            else '"' + value.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'
        )
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return (
            ".nan"
            if value != value
            else ".inf"
            if value == float("inf")
            else "-.inf"
            if value == float("-inf")
            else repr(value).replace("e", ".0e" if "." not in repr(value) else "e")
        )
    return str(value)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(KEYS), VALUES), min_size=1, max_size=12))
def test_structured_documents_only_ever_raise_config_error(
    entries: list[tuple[tuple[str, ...], object]],
) -> None:
    lines = []
    for path, value in entries:
        for depth, key in enumerate(path[:-1]):
            lines.append("  " * depth + f"{key}:")
        lines.append("  " * (len(path) - 1) + f"{path[-1]}: {_yaml_value(value)}")
    _never_other("\n".join(lines) + "\n")


BASE = "dataset:\n  format: npz\n  num_files_train: 8\n  record_length_bytes: 4096\n"


@FUZZ
@given(
    st.lists(
        st.one_of(
            st.tuples(st.sampled_from(KEYS), VALUES).map(
                lambda kv: f"{'.'.join(kv[0])}={_yaml_value(kv[1])}"
            ),
            st.lists(
                st.sampled_from(
                    TOKENS + [".", "=", "++workload.", "storage.storage_options.secret_acess_key"]
                ),
                max_size=12,
            ).map("".join),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_overrides_only_ever_raise_config_error(overrides: list[str]) -> None:
    _never_other(BASE, overrides)


@pytest.mark.parametrize(
    "text",
    [
        "- a\n- b\n",
        "a: !!int\n",
        "? [a]\n: b\n",
        "a: &x\n  b: *x\n",
        "{<<: [1]}\n",
        "a: {? {b: c}: d}\n",
        "%YAML 2.0\n---\na: 1\n",
        "!!map\n",
        "a: !!null x\n",
        "a: !!timestamp :\n",
    ],
)
def test_known_corners(text: str) -> None:
    _never_other(text)
