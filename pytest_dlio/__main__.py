"""``python -m pytest_dlio``: ``--version``, and ``install-azurite`` (the pinned Azure Blob emulator from npm)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pytest_dlio import __version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_dlio",
        description="pytest-dlio helpers; workloads run through pytest "
        "(pytest --dlio-config NAME, pytest --dlio-list-configs).",
    )
    parser.add_argument("--version", action="version", version=f"pytest-dlio {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    azurite = sub.add_parser(
        "install-azurite", help="install the pinned Azurite from npm (needs Node.js 20+ and npm)"
    )
    azurite.add_argument(
        "--prefix",
        type=Path,
        default=None,
        help="install here (npm --prefix) instead of the per-user cache "
        "($XDG_CACHE_HOME or ~/.cache)/pytest-dlio/azurite-VERSION",
    )
    args = parser.parse_args(argv)
    if args.command != "install-azurite":
        parser.print_help()
        return 2
    from pytest_dlio.errors import StorageError
    from pytest_dlio.storage import azurite_npm

    try:
        path = azurite_npm.install(args.prefix, progress=print)
    except StorageError as exc:
        print(f"install-azurite: {exc}", file=sys.stderr)
        return 1
    print(f"azurite {azurite_npm.AZURITE_VERSION}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
