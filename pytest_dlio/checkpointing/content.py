"""Checkpoint bytes: bounded, reused chunk buffers of random data (or DLIO's ones) and a streamed checksum."""

from __future__ import annotations

import crc32c
import numpy as np

CHUNK = 32 * 1024 * 1024  # bytes handed to a writer / read per get_range: bounds memory per file
_STAMP = 512  # one uint64 stamped every 4 KiB so no two chunks are equal (no dedup), data stays random
_GOLDEN = 0x9E3779B97F4A7C15
_MASK = (1 << 64) - 1
_ONES = {"int8": np.int8, "uint8": np.uint8, "fp16": np.float16, "fp32": np.float32, "fp64": np.float64}


def checksum(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """CRC-32C of ``data`` continuing from ``value`` (hardware accelerated; streams chunk by chunk)."""
    return crc32c.crc32c(data, value)


def ones_pattern(dtype: str, nbytes: int) -> np.ndarray:
    """``nbytes`` bytes of tensors of ones in ``dtype`` (what ``randomize_tensor: false`` writes)."""
    if dtype == "bf16":
        return np.full(nbytes // 2, 0x3F80, dtype=np.uint16).view(np.uint8)
    kind = _ONES.get(dtype, np.int8)
    return np.ones(nbytes // np.dtype(kind).itemsize, dtype=kind).view(np.uint8)


class ChunkSource:
    """Fills one reused buffer per chunk: random bytes made once, re-stamped per chunk; or constant ones.

    The buffer returned by :meth:`next` is valid until the following call (writers copy or consume it
    before their ``write`` returns), so memory stays at two chunk-sized arrays whatever the file size.
    """

    def __init__(self, seed: int, *, randomize: bool = True, chunk: int = CHUNK) -> None:
        self.chunk, self.randomize = chunk - chunk % 8, randomize
        self._counter = 0
        self._ones: dict[str, np.ndarray] = {}
        if randomize:
            rng = np.random.default_rng(seed)
            self._buf = np.frombuffer(bytearray(rng.bytes(self.chunk)), dtype=np.uint8)
            self._words = self._buf.view(np.uint64)[::_STAMP]
            self._base = self._words.copy()

    def next(self, nbytes: int, dtype: str = "int8") -> memoryview:
        """The next ``nbytes`` (at most one chunk) of content for a tensor of ``dtype``."""
        if not self.randomize:
            pattern = self._ones.get(dtype)
            if pattern is None:
                pattern = self._ones[dtype] = ones_pattern(dtype, self.chunk)
            return memoryview(pattern)[:nbytes]
        self._counter += 1
        np.bitwise_xor(self._base, np.uint64((self._counter * _GOLDEN) & _MASK), out=self._words)
        return memoryview(self._buf)[:nbytes]
