#!/usr/bin/env bash
# Install the Azurite Blob emulator into a project-local prefix (.ci/node/) for pytest-dlio's Azure tests.
# Idempotent: does nothing when the pinned version is already there. Needs node >= 20 and npm on PATH.
# 3.35.0 is the last Azurite that declares node >= 10 (3.36 wants >= 21, 3.37 wants >= 22).
set -euo pipefail
VERSION="${AZURITE_VERSION:-3.35.0}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PREFIX="${AZURITE_PREFIX:-$HERE/node}"
BIN="$PREFIX/bin/azurite-blob"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "install_azurite: node and npm are required (Node 20+); install nodejs first" >&2
    exit 1
fi
echo "install_azurite: node $(node --version), npm $(npm --version)"

installed=""
pkg="$PREFIX/lib/node_modules/azurite/package.json"
if [[ -x "$BIN" && -f "$pkg" ]]; then
    installed="$(node -p "require('$pkg').version" 2>/dev/null || true)"
fi
if [[ "$installed" == "$VERSION" ]]; then
    echo "install_azurite: azurite $VERSION already installed"
else
    npm install -g --prefix "$PREFIX" "azurite@$VERSION" --no-audit --no-fund --loglevel=error
fi
"$BIN" --version >/dev/null
echo "install_azurite: azurite $VERSION at $BIN"
