"""Startup cost: a pytest session that uses no DLIO option imports nothing heavy from pytest-dlio.

The plugin is installed for every pytest run in the environment, so its import cost is paid by sessions
that never touch a workload. A real subprocess runs pytest on a folder with one plain test; an import
hook records every heavy module imported while a ``pytest_dlio`` frame is on the stack.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = (
    "numpy",
    "yaml",
    "pyarrow",
    "h5py",
    "PIL",
    "aiobotocore",
    "botocore",
    "moto",
    "azure",
    "aiohttp",
    "crc32c",
    "isal",
)

_PROBE = r"""
import json, sys
import pytest

HEAVY = set(sys.argv[2].split(","))
blamed = []

class Blame:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HEAVY and name not in sys.modules:
            f = sys._getframe(1)
            while f is not None:
                mod = f.f_globals.get("__name__", "")
                if mod.startswith("pytest_dlio"):
                    blamed.append((name, mod))
                    break
                f = f.f_back
        return None

sys.meta_path.insert(0, Blame())
code = pytest.main(["-q", "-p", "no:cacheprovider", sys.argv[1]])
print(json.dumps({"code": int(code), "blamed": blamed,
                  "plugin_loaded": "pytest_dlio.plugin" in sys.modules,
                  "numpy": "numpy" in sys.modules}))
"""


def test_plain_pytest_session_imports_nothing_heavy_from_the_plugin(tmp_path: Path) -> None:
    (tmp_path / "test_plain.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTEST_ADDOPTS", None)
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(tmp_path), ",".join(HEAVY)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["code"] == 0
    assert got["plugin_loaded"], "the probe must run with the pytest-dlio plugin active"
    assert got["blamed"] == [], f"pytest-dlio imported heavy modules in a plain session: {got['blamed']}"
    assert not got["numpy"], "numpy was imported in a plain pytest session"
