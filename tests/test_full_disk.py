"""A disk that fills up mid-write: a clear StorageError naming the fix, and no temp or partial file left.
Uses a real 1 MiB tmpfs (needs the right to mount, as root in CI containers)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_dlio.errors import StorageError
from pytest_dlio.storage.factory import open_store


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "fs"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_full_disk_fails_the_write_and_leaves_nothing(tiny_fs: Path) -> None:
    async def main() -> None:
        async with open_store(f"file://{tiny_fs}") as store:
            await store.put("small.bin", b"x" * 1000)
            with pytest.raises(StorageError, match="No space left on device; free space"):
                await store.put("big.bin", os.urandom(2 << 20))
            with pytest.raises(StorageError, match="No space left on device"):
                async with await store.open_writer("streamed.bin") as w:
                    for _ in range(4):
                        await w.write(os.urandom(512 << 10))

    asyncio.run(main())
    assert sorted(p.name for p in tiny_fs.rglob("*")) == ["small.bin"]  # no temp file, no partial final file
