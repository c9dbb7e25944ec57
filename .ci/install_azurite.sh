#!/usr/bin/env bash
# Install the Azurite Blob emulator into a project-local prefix (.ci/node/) for pytest-dlio's Azure tests.
# Idempotent. Needs node >= 20 and npm on PATH, and pytest-dlio importable (.ci/run installs it first).
# The version is pinned in one place: pytest_dlio/storage/azurite_npm.py (AZURITE_VERSION).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PREFIX="${AZURITE_PREFIX:-$HERE/node}"
cd "$HERE/.."
python3 -m pytest_dlio install-azurite --prefix "$PREFIX"
"$PREFIX/bin/azurite-blob" --version >/dev/null
