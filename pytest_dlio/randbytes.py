"""Fast incompressible bytes with no repeated 4 KiB block across a dataset.

Each 4 KiB output block is a block of a 1 MiB random pool XOR-ed with a fresh random 64-bit key per
block (keys drawn from a per-file PCG64 seeded by ``(nonce, file index)``), starting at a random pool
offset. That is one memory pass instead of a full RNG draw per byte (about 2x numpy's raw rate), zlib
finds nothing to match (the same pool block recurs only 1 MiB later, beyond deflate's 32 KiB window,
and under a different key), and two blocks are equal only if both pool offset and 64-bit key agree.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from functools import lru_cache

import numpy as np

BLOCK = 4096
POOL_BYTES = 1 << 20
_WORDS = BLOCK // 8


def new_nonce() -> int:
    """A fresh run nonce (DLIO's contents differ between runs too)."""
    return secrets.randbits(63)


def file_rng(nonce: int, index: int) -> np.random.Generator:
    """The generator for one file's contents: distinct per (run nonce, file list index)."""
    return np.random.Generator(np.random.PCG64([nonce, index]))


@lru_cache(maxsize=1)
def _pool() -> np.ndarray:
    raw = np.random.Generator(np.random.PCG64(secrets.randbits(64))).bytes(POOL_BYTES)
    return np.frombuffer(raw, dtype=np.uint64).reshape(-1, _WORDS)


class BufferPool:
    """Reusable 8-byte aligned buffers: a fresh buffer costs a page fault and a kernel zeroing per page,
    which halves the generation rate. Encoders ``take``; datagen ``give``s back after the write."""

    def __init__(self, max_bytes: int = 1 << 30) -> None:
        self.max_bytes = max_bytes
        self._free: list[np.ndarray] = []
        self._lock = threading.Lock()

    def take(self, n: int) -> np.ndarray:
        """A uint8 array of at least ``n`` bytes (slice it to ``n``); its contents are garbage."""
        with self._lock:
            fits = [i for i, b in enumerate(self._free) if n <= b.nbytes <= 2 * n + (1 << 20)]
            if fits:
                return self._free.pop(min(fits, key=lambda i: self._free[i].nbytes))
        return np.empty(-(-n // BLOCK) * _WORDS, dtype=np.uint64).view(np.uint8)

    def give(self, buf: np.ndarray) -> None:
        """Return a buffer from ``take`` (no one may use it afterwards)."""
        with self._lock:
            self._free.append(buf)
            while sum(b.nbytes for b in self._free) > self.max_bytes:
                self._free.pop(min(range(len(self._free)), key=lambda i: self._free[i].nbytes))


#: The process-wide pool the encoders draw from.
POOL = BufferPool()


def random_bytes(n: int, rng: np.random.Generator, buf: np.ndarray | None = None) -> np.ndarray:
    """``n`` random bytes as a writable uint8 array (bulk numpy, no per-byte Python), in ``buf`` if given."""
    out = (buf if buf is not None else np.empty(-(-n // BLOCK) * _WORDS, dtype=np.uint64).view(np.uint8))[:n]
    fill_random(out, rng)
    return out


def random_chunks(n: int, rng: np.random.Generator, buf: np.ndarray) -> Iterator[np.ndarray]:
    """``n`` random bytes as consecutive fills of ``buf`` (each view valid until the next is drawn)."""
    done = 0
    while done < n:
        k = min(buf.nbytes, n - done)
        out = buf[:k]
        fill_random(out, rng)
        yield out
        done += k


def fill_random(out: np.ndarray, rng: np.random.Generator) -> None:
    """Fill a contiguous uint8 array in place (8-byte aligned start: no copy)."""
    n = out.nbytes
    full = n // BLOCK
    if full and out.ctypes.data % 8 == 0:
        _xor_blocks(out[: full * BLOCK].view(np.uint64).reshape(full, _WORDS), rng)
    else:
        full = 0
    rest = n - full * BLOCK
    if rest:
        tmp = np.empty((-(-rest // BLOCK), _WORDS), dtype=np.uint64)
        _xor_blocks(tmp, rng)
        out[full * BLOCK :] = tmp.reshape(-1).view(np.uint8)[:rest]


def _xor_blocks(out: np.ndarray, rng: np.random.Generator) -> None:
    """Each row of ``out`` (nblocks, 512 words) = a pool block XOR a fresh random 64-bit key."""
    pool = _pool()
    size, nblocks = pool.shape[0], out.shape[0]
    keys = np.asarray(rng.integers(0, np.iinfo(np.uint64).max, size=nblocks, dtype=np.uint64, endpoint=True))
    k, start = 0, int(rng.integers(0, size))
    while k < nblocks:
        s = (start + k) % size
        m = min(size - s, nblocks - k)
        np.bitwise_xor(pool[s : s + m], keys[k : k + m, None], out=out[k : k + m])
        k += m


def random_array(shape: tuple[int, ...], dtype: str | np.dtype, rng: np.random.Generator) -> np.ndarray:
    """A C-contiguous array of ``shape``/``dtype`` filled with random bits (floats may hold NaN/inf)."""
    dt = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if dt == np.bool_:
        return (random_bytes(count, rng) & 1).astype(np.bool_).reshape(shape)
    return random_bytes(count * dt.itemsize, rng).view(dt).reshape(shape)
