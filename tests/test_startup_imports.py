"""Startup cost: a pytest session that uses no DLIO option imports nothing heavy from pytest-dlio.

The plugin is installed for every pytest run in the environment, so its import cost is paid by sessions
that never touch a workload. Real ``python -m pytest`` subprocesses run on a folder with one plain test
and the YAML files any project has lying around, alone and on two xdist workers. A probe plugin, loaded
with ``-p`` before the entry-point plugins (so before pytest-dlio), records in every process — controller
and workers — each heavy module imported while a ``pytest_dlio`` frame is on the stack, and whether numpy
was imported at all; each process writes its record when pytest unconfigures (last) and at exit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

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

_PROBE = r'''
"""-p dlio_import_probe: who imports heavy modules in this process (written to $DLIO_PROBE_OUT)."""
import atexit, json, os, sys

import pytest

HEAVY = set(os.environ["DLIO_PROBE_HEAVY"].split(","))
blamed = []


class Blame:
    def find_spec(self, name, path=None, target=None):
        if name in HEAVY and name not in sys.modules:  # a package, once (its submodules follow it)
            f = sys._getframe(1)
            while f is not None:
                mod = f.f_globals.get("__name__", "")
                if mod.startswith("pytest_dlio"):
                    blamed.append([name, mod])
                    break
                f = f.f_back
        return None


sys.meta_path.insert(0, Blame())
already = sorted(m for m in HEAVY if m in sys.modules)  # imported before the probe: it cannot blame them


def write(when):
    dlio = sys.modules.get("pytest_dlio")
    record = {
        "worker": os.environ.get("PYTEST_XDIST_WORKER", "controller"),
        "blamed": blamed,
        "already": already,
        "plugin_loaded": "pytest_dlio.plugin" in sys.modules,
        "pytest_dlio": getattr(dlio, "__file__", None),
        "numpy": "numpy" in sys.modules,
    }
    name = f"{record['worker']}-{os.getpid()}-{when}.json"
    with open(os.path.join(os.environ["DLIO_PROBE_OUT"], name), "w") as f:
        json.dump(record, f)


atexit.register(write, "exit")


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    write("unconfigure")
'''

#: Files a project without DLIO workloads may hold beside its tests: not collected, not parsed.
_PROJECT_YAML = {
    "docker-compose.yml": "services:\n  db:\n    image: postgres\n",
    "settings.yaml": "dataset:\n  format: npz\nreader:\n  batch_size: 4\n",
}


def _session(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    project, probe, out = tmp_path / "project", tmp_path / "probe", tmp_path / "out"
    for d in (project, probe, out):
        d.mkdir(exist_ok=True)
    (project / "test_plain.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
    for name, text in _PROJECT_YAML.items():
        (project / name).write_text(text)
    (probe / "dlio_import_probe.py").write_text(_PROBE)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DLIO_"))},
        "PYTHONPATH": os.pathsep.join((str(ROOT), str(probe))),
        "DLIO_PROBE_OUT": str(out),
        "DLIO_PROBE_HEAVY": ",".join(HEAVY),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "dlio_import_probe", "-p", "no:cacheprovider", *args, "."],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    return proc, [json.loads(p.read_text()) | {"file": p.name} for p in sorted(out.glob("*.json"))]


@pytest.mark.parametrize("args", [(), ("-n", "2")], ids=["one-process", "xdist-workers"])
def test_plain_pytest_session_imports_nothing_heavy_from_the_plugin(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    if args:
        pytest.importorskip("xdist")
    proc, records = _session(tmp_path, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout  # the plain test ran; the YAML files were not collected
    workers = {r["worker"] for r in records}
    assert workers == ({"controller", "gw0", "gw1"} if args else {"controller"}), records
    assert {r["file"].rsplit("-", 1)[1] for r in records if r["worker"] == "controller"} == {
        "unconfigure.json",
        "exit.json",
    }
    for r in records:
        where = f"{r['worker']} ({r['file']})"
        assert r["plugin_loaded"], (
            f"{where}: the pytest-dlio plugin must be active for the probe to mean anything"
        )
        assert r["pytest_dlio"] and Path(r["pytest_dlio"]).is_relative_to(ROOT), (
            f"{where}: {r['pytest_dlio']}"
        )
        assert r["already"] == [], f"{where}: imported before the probe could watch: {r['already']}"
        assert r["blamed"] == [], (
            f"{where}: pytest-dlio imported heavy modules in a plain session: {r['blamed']}"
        )
        assert not r["numpy"], f"{where}: numpy was imported in a plain pytest session"
