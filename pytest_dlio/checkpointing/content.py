"""Checkpoint bytes: bounded, reused chunk buffers of random data (or DLIO's ones), reproducible for verification.

Chunk ``n`` of a source is a fixed random pool (from ``seed``) with one uint64 every 4 KiB XOR-ed with a value
derived from ``n``: random (incompressible), different for every chunk (no dedup), nearly free to make, and
reproducible, so a reader verifies every byte by regenerating chunk ``n`` instead of checksumming on write.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable

import numpy as np

CHUNK = 16 * 1024 * 1024  # bytes handed to a writer / read per get_range: bounds memory per file
_STAMP = 512  # one uint64 stamped every 4 KiB
_GOLDEN = 0x9E3779B97F4A7C15
_MASK = (1 << 64) - 1
_ONES = {"int8": np.int8, "uint8": np.uint8, "fp16": np.float16, "fp32": np.float32, "fp64": np.float64}


def ones_pattern(dtype: str, nbytes: int) -> np.ndarray:
    """``nbytes`` bytes of tensors of ones in ``dtype`` (what ``randomize_tensor: false`` writes)."""
    if dtype == "bf16":
        return np.full(nbytes // 2, 0x3F80, dtype=np.uint16).view(np.uint8)
    kind = _ONES.get(dtype, np.int8)
    return np.ones(nbytes // np.dtype(kind).itemsize, dtype=kind).view(np.uint8)


class ChunkSource:
    """Fills one reused buffer per chunk; :meth:`next` for writing, :meth:`at` to regenerate for reading.

    A returned view is valid until the following call (writers copy or consume it before their ``write``
    returns), so memory stays at one chunk-sized array (plus its pool) whatever the file size.
    """

    def __init__(self, seed: int, *, randomize: bool = True, chunk: int = CHUNK) -> None:
        self.seed, self.chunk, self.randomize = seed, chunk - chunk % 8, randomize
        self.counter = 0  # number of the last chunk handed out
        self._ones: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        self._clean: np.ndarray | None = None
        if randomize:
            rng = np.random.default_rng(seed)
            self._buf = np.frombuffer(bytearray(rng.bytes(self.chunk)), dtype=np.uint8)
            self._words = self._buf.view(np.uint64)[::_STAMP]
            self._base = self._words.copy()

    def at(self, n: int, nbytes: int, dtype: str = "int8") -> memoryview:
        """Chunk number ``n`` (its first ``nbytes``) for a tensor of ``dtype``."""
        if not self.randomize:
            pattern = self._ones.get(dtype)
            if pattern is None:
                pattern = self._ones[dtype] = ones_pattern(dtype, self.chunk)
            return pattern.data[:nbytes]  # 1-D uint8: a byte-addressed view
        np.bitwise_xor(self._base, np.uint64((n * _GOLDEN) & _MASK), out=self._words)
        return self._buf.data[:nbytes]

    def next(self, nbytes: int, dtype: str = "int8") -> memoryview:
        """The next chunk of content (at most one chunk of bytes)."""
        self.counter += 1
        return self.at(self.counter, nbytes, dtype)

    def pristine(self) -> np.ndarray:
        """The pool without any chunk's stamps (made once, on first use; never changed afterwards)."""
        with self._lock:
            if self._clean is None:
                clean = self._buf.copy()
                clean.view(np.uint64)[::_STAMP] = self._base
                self._clean = clean
            return self._clean

    def difference(self, data: bytes | bytearray | memoryview, n: int, dtype: str = "int8") -> int:
        """``first_difference(data, at(n, len(data), dtype))`` without touching the shared buffer, so reader
        threads compare chunks concurrently. A writable ``data`` (a pooled read buffer) is changed: its
        stamps are undone in place and it is compared with the pristine pool (no copy of the chunk)."""
        view = memoryview(data).cast("B")
        k = view.nbytes
        if not self.randomize:
            pattern = self._ones.get(dtype)
            if pattern is None:
                pattern = self._ones[dtype] = ones_pattern(dtype, self.chunk)
            return first_difference(view, pattern.data[:k])
        stamp = np.uint64((n * _GOLDEN) & _MASK)
        clean = self.pristine()
        if view.readonly or k % 8 or k > self.chunk:
            expected = clean[: min(self.chunk, -(-k // 8) * 8)].copy()
            expected.view(np.uint64)[::_STAMP] ^= stamp
            return first_difference(view, expected.data[:k])
        got = np.frombuffer(view, dtype=np.uint8)
        got.view(np.uint64)[::_STAMP] ^= stamp
        return first_difference(got.data, clean.data[:k])


def _libc_memcmp() -> Callable[[int, int, int], int] | None:
    try:
        fn = ctypes.CDLL(None).memcmp
    except (OSError, AttributeError, TypeError):  # pragma: no cover - no C library to load (not POSIX)
        return None
    fn.restype, fn.argtypes = ctypes.c_int, [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    return fn


#: libc's memcmp: 2-4x ``np.array_equal`` on 16 MiB chunks (no temporary bool array), which made verified
#: loads compare-bound
_MEMCMP = _libc_memcmp()


def first_difference(data: bytes | bytearray | memoryview, expected: memoryview) -> int:
    """Offset of the first byte where ``data`` differs from ``expected`` (-1 when equal, same length)."""
    a = np.frombuffer(data, dtype=np.uint8)
    b = np.frombuffer(expected, dtype=np.uint8)
    if len(a) != len(b):
        return min(len(a), len(b))
    if _MEMCMP is not None:
        if _MEMCMP(a.ctypes.data, b.ctypes.data, len(a)) == 0:
            return -1
    elif len(a) % 8 == 0 and np.array_equal(a.view(np.uint64), b.view(np.uint64)):
        return -1
    diff = np.flatnonzero(a != b)
    return int(diff[0]) if len(diff) else -1
