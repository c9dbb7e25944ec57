"""Runs an emulator and stops it when the owning pytest process disappears (even after SIGKILL).

python -m pytest_dlio.storage._watchdog OWNER_PID -- command ...
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main(argv: list[str]) -> int:
    """Start ``argv[2:]``; poll the owner twice a second; end the child when the owner is gone."""
    owner, cmd = int(argv[0]), argv[2:]
    child = subprocess.Popen(cmd)

    def _stop(*_: object) -> None:
        child.terminate()
        try:
            child.wait(5)
        except subprocess.TimeoutExpired:
            child.kill()
        sys.exit(0)

    signal.signal(signal.SIGTERM, _stop)
    while child.poll() is None:
        if not _alive(owner):
            _stop()
        time.sleep(0.5)
    return child.returncode or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
