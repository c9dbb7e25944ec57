"""indexed_binary / mmap_indexed_binary: raw samples plus uint64 ``.off.idx`` and ``.sz.idx`` files.

The indexed reader copies each sample out (DLIO seeks and reads); the mmap reader takes zero-copy views.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from pytest_dlio.config.model import Dataset
from pytest_dlio.errors import DlioError
from pytest_dlio.formats import Encoded
from pytest_dlio.layout import DataFile
from pytest_dlio.randbytes import POOL, random_bytes
from pytest_dlio.storage.base import Buffer


def encode(f: DataFile, ds: Dataset, rng: np.random.Generator) -> Encoded:
    size = f.sample_bytes
    buf = POOL.take(size * f.samples)
    data = random_bytes(size * f.samples, rng, buf)
    offsets = np.arange(f.samples, dtype=np.uint64) * np.uint64(size)
    sizes = np.full(f.samples, size, dtype=np.uint64)
    off_key, sz_key = f.sidecars
    return Encoded([memoryview(data)], {off_key: offsets.tobytes(), sz_key: sizes.tobytes()}, [buf])


def read_samples(data: Buffer, f: DataFile, ds: Dataset, sidecars: Mapping[str, Buffer] | None = None) -> Iterator:
    off_key, sz_key = f.sidecars
    if not sidecars or off_key not in sidecars or sz_key not in sidecars:
        raise DlioError(f"{f.key}: the index files {off_key} and {sz_key} are needed to read indexed_binary; "
                        "regenerate the dataset with --dlio-generate auto")
    offsets = np.frombuffer(sidecars[off_key], dtype=np.uint64)
    sizes = np.frombuffer(sidecars[sz_key], dtype=np.uint64)
    view = memoryview(data)
    mmap = ds.format == "mmap_indexed_binary"
    for off, sz in zip(offsets.tolist(), sizes.tolist(), strict=True):
        if off + sz > view.nbytes:
            raise DlioError(f"{f.key}: sample at offset {off} (+{sz}) is past the end ({view.nbytes} bytes); "
                            "the file is truncated: regenerate it with --dlio-generate auto")
        chunk = view[off:off + sz]
        yield np.frombuffer(chunk if mmap else bytes(chunk), dtype=np.uint8)
