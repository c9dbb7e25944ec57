"""One module per DLIO format, behind one interface; ``get_format(name)`` picks it.

Each format module defines::

    encode(f: DataFile, ds: Dataset, rng: numpy.random.Generator) -> Encoded
        What DLIO's generator writes for file ``f`` (contents from ``randbytes``).
    read_samples(data, f: DataFile, ds: Dataset, sidecars: Mapping[str, Buffer] | None = None) -> Iterator
        What DLIO's reader does to a file it has opened: one item per sample (the decoded sample),
        except parquet, which yields one ``pyarrow.Table`` per row group (DLIO's read unit there).
        ``sidecars`` maps the file's sidecar keys to their bytes (indexed_binary needs its idx files).

Both are pure functions on bytes, so every storage backend gets every format.
"""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from pytest_dlio.errors import ConfigError
from pytest_dlio.storage.base import Buffer

_MODULES = {
    "npz": "npz", "npy": "npy", "hdf5": "hdf5", "csv": "csvfmt", "jpeg": "image", "png": "image",
    "tfrecord": "tfrecord", "indexed_binary": "indexed_binary", "mmap_indexed_binary": "indexed_binary",
    "parquet": "parquet", "synthetic": "synthetic",
}
NAMES = tuple(_MODULES)


@dataclass
class Encoded:
    """A file's bytes as parts (concatenated in order, not copied) plus its sidecar objects by key."""

    parts: list[Buffer]
    sidecars: dict[str, bytes] = field(default_factory=dict)
    pooled: list[Any] = field(default_factory=list)  # randbytes.POOL buffers behind ``parts``

    def release(self) -> None:
        """Hand pooled buffers back once the bytes are written (``parts`` is invalid afterwards)."""
        from pytest_dlio.randbytes import POOL

        for buf in self.pooled:
            POOL.give(buf)
        self.pooled.clear()
        self.parts.clear()

    @property
    def size(self) -> int:
        return sum(memoryview(p).nbytes for p in self.parts)

    def data(self) -> Buffer:
        """The whole file as one buffer (no copy when there is one part)."""
        return self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)


def get_format(name: str) -> ModuleType:
    """The format module for DLIO format ``name`` (ConfigError for formats without a generator)."""
    try:
        mod = _MODULES[name]
    except KeyError:
        raise ConfigError(f"dataset.format: {name!r} is not a generated format; use one of "
                          f"{', '.join(NAMES)}") from None
    return importlib.import_module(f"pytest_dlio.formats.{mod}")


def read_samples(data: Buffer, f: object, ds: object, sidecars: Mapping[str, Buffer] | None = None) -> Iterator:
    """``get_format(ds.format).read_samples(...)``."""
    return get_format(ds.format).read_samples(data, f, ds, sidecars)  # type: ignore[attr-defined]


def read_sample(data: Buffer, f: object, ds: object, sample: int,
                sidecars: Mapping[str, Buffer] | None = None) -> object:
    """Sample ``sample`` of an opened file (parses the file as DLIO's reader does on every open)."""
    item = next(itertools.islice(read_samples(data, f, ds, sidecars), sample, None), None)
    if item is None:
        from pytest_dlio.errors import DlioError

        raise DlioError(f"{getattr(f, 'key', '?')}: has no sample {sample}; regenerate it with --dlio-generate auto")
    return item
