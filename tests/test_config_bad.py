"""Every bad config in fixtures/bad_configs fails its schema item with the promised text and line."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_dlio.config.secrets import secret_path
from tests.conftest import BAD, CONFIGS, run

CASES = sorted(BAD.glob("*.yaml"))


def _expectation(path: Path) -> tuple[str, str | None, list[str]]:
    text = path.read_text()
    expect = re.search(r"^# expect: (.*)$", text, re.M)
    assert expect, f"{path.name} lacks '# expect:'"
    line = re.search(r"^# line: (\d+)$", text, re.M)
    return expect.group(1), line.group(1) if line else None, re.findall(r"^# set: (.*)$", text, re.M)


def test_at_least_forty_cases() -> None:
    assert len(CASES) >= 40


def _failures(xml_path: Path) -> dict[str, str]:
    out = {}
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        failure = case.find("failure")
        if failure is not None:
            out[case.get("classname", "") + "::" + case.get("name", "")] = (failure.get("message") or "") + (
                failure.text or "")
    return out


def test_bad_configs_in_one_session(pytester: pytest.Pytester) -> None:
    files = [c for c in CASES if not _expectation(c)[2]]
    valid = [CONFIGS / "dlio" / "unet3d_h100.yaml", CONFIGS / "mlperf_storage_v3.0" / "dlrm_b200.yaml"]
    args = [a for f in [*files, *valid] for a in ("--dlio-config", str(f))]
    result = run(pytester, "-k", "schema", "--junitxml=out.xml", *args)
    text = result.stdout.str()
    assert "INTERNALERROR" not in text and "Traceback" not in text
    result.assert_outcomes(failed=len(files), passed=len(valid), deselected=result.parseoutcomes().get("deselected", 0))
    failures = "\n".join(_failures(pytester.path / "out.xml").values())
    for case in files:
        expect, line, _ = _expectation(case)
        assert expect in text, f"{case.name}: {expect!r} not in output"
        if line:
            assert f"{case.name}:{line}:" in text, f"{case.name}: line {line} not cited"
        assert expect in failures, f"{case.name}: message missing from JUnit XML"


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
