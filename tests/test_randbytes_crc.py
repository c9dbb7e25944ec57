"""npz datagen takes the CRC-32 of each x member from how its bytes were made (``RandomCrc``: pool block
CRCs, key maps, pairwise folding), never from the bytes. What must hold: for any length, any chunk buffer
(not a multiple of 4 KiB, not 8-byte aligned), any CRC so far, and bytes taken in between, the value is
zlib's ``crc32`` of exactly the bytes that came out."""

from __future__ import annotations

import subprocess
import sys
import zlib

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_dlio.randbytes import BLOCK, RandomCrc, file_rng, random_chunks


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 40 * BLOCK + 5),
    chunk=st.sampled_from([BLOCK, 2 * BLOCK, 3 * BLOCK + 8, 5 * BLOCK + 1, 1 << 16, 1 << 20]),
    misalign=st.sampled_from([0, 1, 4]),
    prefix=st.binary(max_size=64),
    between=st.binary(max_size=16),
    seed=st.integers(0, 2**32),
)
def test_random_crc_is_zlibs_crc32_of_what_came_out(
    n: int, chunk: int, misalign: int, prefix: bytes, between: bytes, seed: int
) -> None:
    raw = np.empty(chunk + 16, dtype=np.uint8)
    buf = raw[misalign : misalign + chunk]
    acc = RandomCrc(zlib.crc32(prefix))
    made = bytearray(prefix)
    for c in random_chunks(n, file_rng(seed, 1), buf, acc):
        made += c.tobytes()
    acc.update(between)
    made += between
    for c in random_chunks(n % (3 * BLOCK), file_rng(seed, 2), buf, acc):  # more blocks after the bytes
        made += c.tobytes()
    assert len(made) == len(prefix) + n + len(between) + n % (3 * BLOCK)
    assert acc.value() == zlib.crc32(bytes(made))


def test_a_large_stream_of_whole_chunks_matches_too() -> None:
    # 64 MiB in 1 MiB chunks: 16384 block CRCs folded over 15 levels, the datagen case
    buf = np.empty(1 << 20, dtype=np.uint8)
    acc, real = RandomCrc(7), 7
    for c in random_chunks(64 << 20, file_rng(9, 9), buf, acc):
        real = zlib.crc32(c, real)
    assert acc.value() == real


def test_threads_that_start_together_share_one_pool_and_their_crcs_hold() -> None:
    # datagen's generation threads first touch the pool at the same moment; two pools would make CRCs
    # computed from one of them wrong for bytes made from the other (a fresh process: no pool yet)
    code = """
import threading, zlib, numpy as np
from pytest_dlio.randbytes import RandomCrc, file_rng, random_chunks
start, bad = threading.Barrier(8), []
def one(i):
    buf = np.empty(1 << 16, dtype=np.uint8)
    start.wait()
    acc, real = RandomCrc(), 0
    for c in random_chunks(1 << 18, file_rng(1, i), buf, acc):
        real = zlib.crc32(c, real)
    bad.extend([i] if acc.value() != real else [])
ts = [threading.Thread(target=one, args=(i,)) for i in range(8)]
[t.start() for t in ts]
[t.join() for t in ts]
print(bad)
"""
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "[]", out
