"""Every bad config in fixtures/bad_configs fails its schema item with the promised text and line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_dlio.config.secrets import secret_path
from tests._junit import read_cases
from tests.conftest import BAD, CONFIGS, run

CASES = sorted(BAD.glob("*.yaml"))


def _expectation(path: Path) -> tuple[str, str | None, list[str]]:
    text = path.read_text()
    expect = re.search(r"^# expect: (.*)$", text, re.M)
    assert expect, f"{path.name} lacks '# expect:'"
    line = re.search(r"^# line: (\d+)$", text, re.M)
    return expect.group(1), line.group(1) if line else None, re.findall(r"^# set: (.*)$", text, re.M)


def test_bad_configs_in_one_session(pytester: pytest.Pytester) -> None:
    files = [c for c in CASES if not _expectation(c)[2]]
    assert files, f"no bad configs found under {BAD}"  # an empty glob must not pass vacuously
    valid = [CONFIGS / "dlio" / "unet3d_h100.yaml", CONFIGS / "mlperf_storage_v3.0" / "dlrm_b200.yaml"]
    args = [a for f in [*files, *valid] for a in ("--dlio-config", str(f))]
    result = run(pytester, "-k", "schema", "--junitxml=out.xml", *args)
    text = result.stdout.str()
    assert "INTERNALERROR" not in text and "Traceback" not in text
    result.assert_outcomes(
        failed=len(files), passed=len(valid), deselected=result.parseoutcomes().get("deselected", 0)
    )
    # each file's own schema item carries its message (and line), not merely some item of the session
    cases = read_cases(pytester.path / "out.xml")
    schema = {c.classname.removesuffix(".yaml").rsplit(".", 1)[-1]: c for c in cases if c.name == "schema"}
    for case in files:
        expect, line, _ = _expectation(case)
        assert expect in text, f"{case.name}: {expect!r} not in the terminal output"
        item = schema.get(case.stem)
        assert item is not None, f"{case.name}: no schema item in the JUnit XML ({sorted(schema)})"
        assert item.outcome == "failed", f"{case.name}: schema item {item.outcome}"
        assert expect in item.message, f"{case.name}: {expect!r} not in its item's failure: {item.message!r}"
        if line:
            assert f"{case.name}:{line}:" in item.message, f"{case.name}: line {line} not cited"
    for ok in valid:
        assert schema[ok.stem].outcome == "passed", ok.name


@pytest.mark.parametrize("case", [c for c in CASES if _expectation(c)[2]], ids=lambda p: p.stem)
def test_bad_overrides(pytester: pytest.Pytester, case: Path) -> None:
    expect, _, sets = _expectation(case)
    args = [a for s in sets for a in ("--dlio-set", s)]
    result = run(pytester, "-k", "schema", "--dlio-config", str(case), *args)
    text = result.stdout.str()
    assert "INTERNALERROR" not in text and "Traceback" not in text
    result.assert_outcomes(failed=1, deselected=result.parseoutcomes().get("deselected", 0))
    assert expect in text
    for key, _, value in (s.partition("=") for s in sets):
        if secret_path(tuple(key.split("."))):  # a credential's value is never echoed, even misspelt
            assert value not in text
