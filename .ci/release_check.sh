#!/usr/bin/env bash
# Release check: build the sdist and wheel, install only the wheel (with its s3 + emulators extras) into a
# fresh venv outside the clone, and from an empty folder run a shipped MLPerf Storage v3.0 workload by name
# and the storage conformance suite from the package (against embedded moto); check that the s3 client
# extra alone does not pull moto; run the same with the oldest pytest we claim (7.2.0).
# Exits non-zero on the first failure. Reuses pip's cache; about 1-2 minutes on 2 cores with a warm cache.
set -euo pipefail
cd "$(dirname "$0")/.."
CLONE="$PWD"
PY="${PYTHON:-python3}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/pytest-dlio-release.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
step() { echo "release_check: $*"; }
trap 'echo "release_check: FAILED at line $LINENO" >&2' ERR
PIP=(--disable-pip-version-check -q)
pip_quiet() {  # pip's output only on failure
    if ! "$V/pip" "$@" >"$WORK/pip.log" 2>&1; then cat "$WORK/pip.log" >&2; return 1; fi
}

step "building sdist and wheel (the wheel from the sdist)"
"$PY" -m build --version >/dev/null 2>&1 || { echo "release_check: needs 'build' (pip install build)" >&2; exit 1; }
if ! "$PY" -m build --outdir "$WORK/dist" . >"$WORK/build.log" 2>&1; then tail -40 "$WORK/build.log" >&2; exit 1; fi
rm -rf build pytest_dlio.egg-info  # setuptools' working folders in the clone (ignored by git)
WHEEL="$(ls "$WORK"/dist/*.whl)"
SDIST="$(ls "$WORK"/dist/*.tar.gz)"
"$PY" - "$WHEEL" "$SDIST" "$CLONE" <<'EOF'
import pathlib, sys, tarfile, zipfile
wheel, sdist, clone = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
names = zipfile.ZipFile(wheel).namelist()
shipped = sorted(str(p.relative_to(clone)) for p in (clone / "pytest_dlio" / "workloads").rglob("*.yaml"))
missing = [p for p in shipped if p not in names]
for need in ("pytest_dlio/suites/storage/test_store.py", "pytest_dlio/suites/storage/conftest.py",
             "pytest_dlio/storage/azurite_npm.py", "pytest_dlio/__main__.py"):
    if need not in names:
        missing.append(need)
if not any(n.endswith(".dist-info/licenses/LICENSE") for n in names):
    missing.append("LICENSE")
if not any(n.endswith("/LICENSE") for n in tarfile.open(sdist).getnames()):
    missing.append("LICENSE (sdist)")
if missing:
    sys.exit(f"release_check: the wheel lacks {missing}")
print(f"release_check: wheel has {len(shipped)} workload YAMLs, the storage suite and LICENSE")
EOF

step "fresh venv outside the clone with only the wheel [s3,emulators]"
"$PY" -m venv "$WORK/venv"
V="$WORK/venv/bin"
pip_quiet install "${PIP[@]}" "$WHEEL[s3,emulators]"
mkdir "$WORK/empty"
cd "$WORK/empty"
export PYTHONDONTWRITEBYTECODE=1
unset PYTHONPATH DLIO_AZURITE AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 PYTEST_ADDOPTS

"$V/python" -m pytest_dlio --version
"$V/python" -m pytest --dlio-list-configs >list.log
grep -q "^mlperf-v3.0 (folder mlperf_storage_v3.0)" list.log || { cat list.log >&2; exit 1; }

check_items() {  # JUnit file, then item names that must have passed; `au` may fail (a smoke-scale verdict)
    "$V/python" - "$@" <<'EOF'
import sys, xml.etree.ElementTree as ET
path, required = sys.argv[1], sys.argv[2:]
got = {}
for case in ET.parse(path).getroot().iter("testcase"):
    state = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "passed")
    got[case.get("name")] = state
bad = {n: got.get(n, "missing") for n in required if got.get(n) != "passed"}
if bad or got.get("au", "passed") == "error":
    sys.exit(f"release_check: items {got}, expected passed: {required}")
print(f"release_check: items {got}")
EOF
}

step "shipped workload by name at smoke scale: mlperf-v3.0/unet3d_h100"
rc=0
"$V/python" -m pytest -p no:cacheprovider --dlio-config mlperf-v3.0/unet3d_h100 --dlio-scale smoke \
    --junitxml=unet3d.xml >unet3d.log 2>&1 || rc=$?
if [[ $rc -gt 1 ]] || ! grep -q "^pytest-dlio " unet3d.log; then cat unet3d.log >&2; exit 1; fi
check_items unet3d.xml schema datagen train
"$V/python" -c "import glob, json; s = json.load(open(glob.glob('.dlio/output/*/mlperf_storage_v3.0__unet3d_h100/summary.json')[0])); \
assert 'train_au_percentage' in s['metric'], s"

step "storage conformance suite from the package against embedded moto"
if ! "$V/python" -m pytest -p no:cacheprovider --pyargs pytest_dlio.suites.storage \
        --dlio-storage s3://dlio-release/suite >suite.log 2>&1; then cat suite.log >&2; exit 1; fi
grep -q "S3: embedded moto at http://127.0.0.1:" suite.log || { cat suite.log >&2; exit 1; }
tail -1 suite.log

step "the s3 client extra alone does not install moto"
pip_quiet install "${PIP[@]}" --dry-run --ignore-installed --report "$WORK/s3.json" "$WHEEL[s3]"
"$V/python" - "$WORK/s3.json" <<'EOF'
import json, sys
names = sorted(i["metadata"]["name"].lower() for i in json.load(open(sys.argv[1]))["install"])
if "moto" in names or "flask" in names or "aiobotocore" not in names:
    sys.exit(f"release_check: pytest-dlio[s3] would install {names}")
print(f"release_check: pytest-dlio[s3] installs {len(names)} packages, no moto")
EOF

step "oldest supported pytest (7.2.0): named workload and the suite on files"
pip_quiet install "${PIP[@]}" "pytest==7.2.0"
rm -rf .dlio
"$V/python" -m pytest -p no:cacheprovider --dlio-config mlperf-v3.0/unet3d_h100 --dlio-scale smoke \
    -k "schema or datagen or train" --junitxml=old.xml -q >old.log 2>&1 || { cat old.log >&2; exit 1; }
"$V/python" -c "import pytest; assert pytest.__version__ == '7.2.0', pytest.__version__"
check_items old.xml schema datagen train
"$V/python" -m pytest -p no:cacheprovider --pyargs pytest_dlio.suites.storage -q >old-suite.log 2>&1 \
    || { cat old-suite.log >&2; exit 1; }
tail -1 old-suite.log
step "ok"
