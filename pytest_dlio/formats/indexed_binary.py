"""indexed_binary / mmap_indexed_binary: raw samples plus uint64 ``.off.idx`` and ``.sz.idx`` files.

DLIO's indexed reader reads exactly one sample's bytes per sample (its read unit), located by the
index; with ``read_type: memory`` the whole file is read and the samples cut out of it. The indexed
reader copies each sample out (DLIO seeks and reads); the mmap reader takes zero-copy views.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_dlio.errors import DlioError
from pytest_dlio.formats.base import DataFile, Encoded, Format, ReadUnit, Spans
from pytest_dlio.randbytes import POOL, random_bytes
from pytest_dlio.storage.base import Buffer

if TYPE_CHECKING:
    from pytest_dlio.config.model import Dataset


class IndexedBinary(Format):
    read_unit = ReadUnit.SAMPLE_RANGE

    def __init__(self, name: str, mmap: bool) -> None:
        self.name, self.mmap = name, mmap

    def predicted_size(self, ds: Dataset, dims: tuple[int, ...], dtype: str, position: int) -> int | None:
        return int(np.prod(dims, dtype=np.int64)) * np.dtype(dtype).itemsize * ds.num_samples_per_file

    def sidecar_keys(self, ds: Dataset, key: str, split: str) -> tuple[str, ...]:
        return (f"{key}.off.idx", f"{key}.sz.idx")

    def sidecar_sizes(self, ds: Dataset, dims: tuple[int, ...], dtype: str) -> tuple[int | None, ...]:
        return (8 * ds.num_samples_per_file,) * 2

    def encode(self, f: DataFile, ds: Dataset, rng: np.random.Generator) -> Encoded:
        size = f.sample_bytes
        buf = POOL.take(size * f.samples)
        data = random_bytes(size * f.samples, rng, buf)
        offsets = np.arange(f.samples, dtype=np.uint64) * np.uint64(size)
        sizes = np.full(f.samples, size, dtype=np.uint64)
        off_key, sz_key = f.sidecars
        return Encoded([data.data], {off_key: offsets.tobytes(), sz_key: sizes.tobytes()}, [buf])

    def sample_spans(self, f: DataFile, sidecars: Mapping[str, Buffer] | None) -> Spans:
        off_key, sz_key = f.sidecars
        if not sidecars or off_key not in sidecars or sz_key not in sidecars:
            raise DlioError(
                f"{f.key}: the index files {off_key} and {sz_key} are needed to read "
                f"{self.name}; regenerate the dataset with --dlio-generate auto"
            )
        offsets = np.frombuffer(sidecars[off_key], dtype=np.uint64).tolist()
        sizes = np.frombuffer(sidecars[sz_key], dtype=np.uint64).tolist()
        if len(offsets) != len(sizes):
            raise DlioError(
                f"{f.key}: its index files disagree ({len(offsets)} offsets, {len(sizes)} "
                "sizes); regenerate the dataset with --dlio-generate auto"
            )
        return Spans(np.arange(len(offsets), dtype=np.int64), list(zip(offsets, sizes, strict=True)))

    def decode_span(self, data: Buffer, f: DataFile, ds: Dataset) -> Any:
        return np.frombuffer(data, dtype=np.uint8)

    def decode(
        self, data: Buffer, f: DataFile, ds: Dataset, sidecars: Mapping[str, Buffer] | None = None
    ) -> Sequence[Any]:
        view = memoryview(data)
        out = []
        for off, sz in self.sample_spans(f, sidecars).spans:
            if off + sz > view.nbytes:
                raise DlioError(
                    f"{f.key}: sample at offset {off} (+{sz}) is past the end ({view.nbytes} "
                    "bytes); the file is truncated: regenerate it with --dlio-generate auto"
                )
            chunk = view[off : off + sz]
            out.append(np.frombuffer(chunk if self.mmap else bytes(chunk), dtype=np.uint8))
        return out


INDEXED = IndexedBinary("indexed_binary", mmap=False)
MMAP = IndexedBinary("mmap_indexed_binary", mmap=True)
