"""Fast incompressible bytes with no repeated 4 KiB block across a dataset.

Each 4 KiB output block is a block of a 1 MiB random pool XOR-ed with a fresh random 64-bit key per
block (keys drawn from a per-file PCG64 seeded by ``(nonce, file index)``), starting at a random pool
offset. That is one memory pass instead of a full RNG draw per byte (about 2x numpy's raw rate), zlib
finds nothing to match (the same pool block recurs only 1 MiB later, beyond deflate's 32 KiB window,
and under a different key), and two blocks are equal only if both pool offset and 64-bit key agree.

The same construction gives the CRC-32 of what was made without reading it (:class:`RandomCrc`): CRC-32 is
affine over GF(2), so a block's CRC is its pool block's CRC XOR a linear function of its key, and a run
of block CRCs combines into the run's CRC by linear maps, applied a table lookup per byte. npz datagen
needs the CRC of every member; computed so, it costs ~1.4 ms per 32 MiB instead of a 3.6 ms pass over
bytes that have already left the cache. ``crc32`` here is the one every npz CRC uses (generated, patched
or checked on read), so the two can never disagree on the implementation.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from functools import cache, lru_cache

import numpy as np

try:  # ISA-L's CRC-32 is ~3x zlib's here; the same checksum
    from isal.isal_zlib import crc32
except ImportError:  # pragma: no cover - the formats extra installs isal
    from zlib import crc32

BLOCK = 4096
POOL_BYTES = 1 << 20
_WORDS = BLOCK // 8


def new_nonce() -> int:
    """A fresh run nonce (DLIO's contents differ between runs too)."""
    return secrets.randbits(63)


def file_rng(nonce: int, index: int) -> np.random.Generator:
    """The generator for one file's contents: distinct per (run nonce, file list index)."""
    return np.random.Generator(np.random.PCG64([nonce, index]))


_POOL: list[np.ndarray] = []
_POOL_LOCK = threading.Lock()


def _pool() -> np.ndarray:
    """The process's pool, made once: generation threads that start together must share one (the CRC of
    what they make is computed from it)."""
    if not _POOL:
        with _POOL_LOCK:
            if not _POOL:
                raw = np.random.Generator(np.random.PCG64(secrets.randbits(64))).bytes(POOL_BYTES)
                _POOL.append(np.frombuffer(raw, dtype=np.uint64).reshape(-1, _WORDS))
    return _POOL[0]


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


def random_chunks(
    n: int, rng: np.random.Generator, buf: np.ndarray, crc: RandomCrc | None = None
) -> Iterator[np.ndarray]:
    """``n`` random bytes as consecutive fills of ``buf`` (each view valid until the next is drawn), their
    CRC-32 accumulated in ``crc`` when given."""
    done = 0
    while done < n:
        k = min(buf.nbytes, n - done)
        out = buf[:k]
        fill_random(out, rng, crc)
        yield out
        done += k


def fill_random(out: np.ndarray, rng: np.random.Generator, crc: RandomCrc | None = None) -> None:
    """Fill a contiguous uint8 array in place (8-byte aligned start: no copy); ``crc`` takes in its CRC-32."""
    n = out.nbytes
    full = n // BLOCK
    if full and out.__array_interface__["data"][0] % 8 == 0:
        _xor_blocks(out[: full * BLOCK].view(np.uint64).reshape(full, _WORDS), rng, crc)
    else:
        full = 0
    rest = n - full * BLOCK
    if rest:
        tmp = np.empty((-(-rest // BLOCK), _WORDS), dtype=np.uint64)
        _xor_blocks(tmp, rng)
        out[full * BLOCK :] = tmp.reshape(-1).view(np.uint8)[:rest]
        if crc is not None:
            crc.update(out[full * BLOCK :])


def _xor_blocks(out: np.ndarray, rng: np.random.Generator, crc: RandomCrc | None = None) -> None:
    """Each row of ``out`` (nblocks, 512 words) = a pool block XOR a fresh random 64-bit key.

    Keys and the start block are raw PCG64 outputs (uniform 64-bit words; the pool's 256 blocks divide
    2**64, so the start is unbiased): ``Generator.integers`` costs ~20 us a call, which at a chunk a
    call was a third of a 1 MiB chunk's fill."""
    pool = _pool()
    size, nblocks = pool.shape[0], out.shape[0]
    raw = rng.bit_generator.random_raw
    keys = np.asarray(raw(nblocks))[:, None]
    k, s = 0, int(raw()) % size
    if crc is not None:
        crc.blocks(s, keys[:, 0])
    while k < nblocks:
        m = min(size - s, nblocks - k)
        np.bitwise_xor(pool[s : s + m], keys[k : k + m], out=out[k : k + m])
        k, s = k + m, 0


class RandomCrc:
    """The CRC-32 (zlib's) of a byte stream, fed bytes (``update``) and blocks made by :func:`fill_random`
    (from their pool offset and keys, never read); ``value()`` is ``crc32`` of the whole stream."""

    def __init__(self, value: int = 0) -> None:
        self._value = value
        self._starts: list[int] = []
        self._keys: list[np.ndarray] = []

    def update(self, data: np.ndarray | bytes | memoryview) -> None:
        """Take in bytes as they are (read)."""
        self._flush()
        self._value = crc32(data, self._value)

    def blocks(self, start: int, keys: np.ndarray) -> None:
        """Take in ``len(keys)`` blocks made from pool blocks ``start``, ``start + 1``, … (wrapping)."""
        self._starts.append(start)
        self._keys.append(keys)

    def value(self) -> int:
        self._flush()
        return self._value

    def _flush(self) -> None:
        if not self._keys:
            return
        t = _crc_tables()
        size = t.pool.size
        offsets = np.concatenate(
            [
                (np.arange(len(k), dtype=np.int64) + s) % size
                for s, k in zip(self._starts, self._keys, strict=True)
            ]
        )
        keys = np.concatenate(self._keys)
        self._starts.clear()
        self._keys.clear()
        kb = keys.view(np.uint8).reshape(-1, 8)
        c = t.pool[offsets]
        for j in range(8):
            c ^= t.key[j][kb[:, j]]
        # c[i] is block i's CRC. The stream's CRC after them is the fold "shift by a block, XOR the next"
        # over the CRC so far followed by c, done pairwise: level l joins runs of 2**l blocks.
        c = np.concatenate((np.array([self._value], dtype=np.uint32), c))
        level = 0
        while len(c) > 1:
            if len(c) % 2:
                c = np.concatenate((np.zeros(1, dtype=np.uint32), c))  # a zero CRC in front changes nothing
            c = _apply(_shift(level), c[0::2]) ^ c[1::2]
            level += 1
        self._value = int(c[0])


def _apply(m: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The GF(2)-linear map given by byte tables ``m`` (4, 256) applied to each uint32 in ``c``."""
    return m[0][c & 0xFF] ^ m[1][(c >> 8) & 0xFF] ^ m[2][(c >> 16) & 0xFF] ^ m[3][c >> 24]


def _byte_tables(columns: list[int], nbytes: int) -> np.ndarray:
    """Byte lookup tables (nbytes, 256) of the linear map whose value at bit ``i`` is ``columns[i]``."""
    out = np.zeros((nbytes, 256), dtype=np.uint32)
    for j in range(nbytes):
        for b in range(8):
            bit = np.uint32(columns[8 * j + b])
            sel = (np.arange(256) >> b) & 1 == 1
            out[j][sel] ^= bit
    return out


@cache
def _shift(level: int) -> np.ndarray:
    """Byte tables of the map taking crc32(A) to crc32(A + Z) XOR crc32(Z), Z = BLOCK * 2**level zero
    bytes (zlib's crc32_combine shift), by squaring the map of half as many."""
    if level == 0:
        z = bytes(BLOCK)
        base = crc32(z)
        return _byte_tables([crc32(z, 1 << i) ^ base for i in range(32)], 4)
    half = _shift(level - 1)
    cols = _apply(half, _apply(half, np.uint32(1) << np.arange(32, dtype=np.uint32)))
    return _byte_tables([int(v) for v in cols], 4)


class _CrcTables:
    def __init__(self, pool: np.ndarray) -> None:
        blocks = pool.view(np.uint8).reshape(pool.shape[0], BLOCK)
        self.pool = np.array([crc32(b) for b in blocks], dtype=np.uint32)
        zero = crc32(bytes(BLOCK))
        key_cols = [crc32(np.full(_WORDS, 1 << i, dtype=np.uint64)) ^ zero for i in range(64)]
        self.key = _byte_tables(key_cols, 8)  # block CRC = pool CRC ^ key map (key as 8 little-endian bytes)


@lru_cache(maxsize=1)
def _crc_tables() -> _CrcTables:
    return _CrcTables(_pool())


def random_array(shape: tuple[int, ...], dtype: str | np.dtype, rng: np.random.Generator) -> np.ndarray:
    """A C-contiguous array of ``shape``/``dtype`` filled with random bits (floats may hold NaN/inf)."""
    dt = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if dt == np.bool_:
        return (random_bytes(count, rng) & 1).astype(np.bool_).reshape(shape)
    return random_bytes(count * dt.itemsize, rng).view(dt).reshape(shape)
