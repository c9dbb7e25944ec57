"""pytest hooks only (wiring); the work lives in items, config, phases and report."""

from __future__ import annotations

import pytest

from pytest_dlio.options import add_dlio_options


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dlio", "DLIO workloads (pytest-dlio)")
    add_dlio_options(group.addoption, parser.addini)
