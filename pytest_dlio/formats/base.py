"""The ``Format`` protocol every DLIO format implements, and the records formats and the plan share.

A format knows everything about its files: their name suffix, their exact size when that is
computable, their sidecar objects, how to encode one, and how DLIO's reader reads one (its read unit,
how to decode, whether decoding is heavy). ``layout`` plans with it, datagen encodes with it and the
training loader reads with it; none of them branches on a format name. Nothing here imports
``layout`` (the plan imports the formats, never the other way round).
"""

from __future__ import annotations

import enum
import functools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from pytest_dlio.errors import DlioError
from pytest_dlio.storage.base import Buffer

if TYPE_CHECKING:
    from pytest_dlio.config.model import Dataset


@dataclass(frozen=True)
class DataFile:
    """One generated file: where it goes, what it holds and how big it will be."""

    key: str  # relative to the data folder
    split: str  # "train" or "valid"
    index: int  # index within its split (the number in the name)
    position: int  # index in DLIO's combined list (train files then eval files): rank split and seeds
    dims: tuple[int, ...]  # one sample's shape
    dtype: str  # element type
    samples: int  # samples in the file
    expected_size: int | None  # exact bytes of ``key``, None when only known after encoding
    sidecars: tuple[str, ...] = ()  # extra keys written with it (tfrecord index, indexed_binary idx)
    sidecar_sizes: tuple[int | None, ...] = ()  # their exact bytes (None: unknown), aligned with ``sidecars``
    #: what the bytes encode, for a file whose size is known only after encoding (``expected_size`` None):
    #: a token of its samples, shape and the dataset's format settings, kept in its size marker so a file
    #: written for other settings (another --dlio-scale, say) is not taken for this one's; "" otherwise
    plan: str = ""

    @property
    def sample_bytes(self) -> int:
        return math.prod(self.dims) * np.dtype(self.dtype).itemsize

    @property
    def raw_bytes(self) -> int:
        """Payload bytes before any container overhead (spf × sample bytes)."""
        return self.sample_bytes * self.samples


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


def _no_patches() -> list[tuple[int, bytes]]:
    return []


@dataclass
class Stream:
    """A file's bytes made chunk by chunk (``Format.stream``): ``chunks`` in order, each valid only until
    the next is drawn (they may share one buffer), ``size`` bytes in all; once they are exhausted,
    ``patches()`` gives ``(offset, bytes)`` that overwrite what they cover (values known only at the end,
    such as a checksum in the header). The bytes are the ones ``encode`` would make, contents aside."""

    size: int
    chunks: Iterator[Buffer]
    patches: Callable[[], list[tuple[int, bytes]]] = _no_patches


class ReadUnit(enum.Enum):
    """What DLIO's reader fetches from storage for a format."""

    FILE = "file"  # the whole object; samples are decoded from it
    SAMPLE_RANGE = "sample_range"  # one ranged read per sample, located by the file's index (sidecars)
    ROW_GROUP = "row_group"  # one ranged read per row group (selected column chunks), located by the footer


@dataclass(frozen=True)
class Spans:
    """Byte ranges of a file's read units: unit ``u`` holds samples ``first[u]`` … ``first[u+1]-1``."""

    first: np.ndarray  # first sample of each unit (ascending, starts at 0)
    spans: list[tuple[int, int]]  # (offset, length) of each unit
    rows: int = -1  # the samples the file holds, where its footer says (parquet); -1: not known

    @functools.cached_property
    def starts(self) -> list[int]:
        """``first`` as Python ints, made on first use, for ``bisect``: the row-group window looks units up
        a few times a batch, and a scalar ``np.searchsorted`` costs ~2.6 us against bisect's ~0.3."""
        return self.first.tolist()

    def unit_of(self, sample: int) -> int:
        return int(np.searchsorted(self.first, sample, side="right") - 1)


class Format(Protocol):
    """One DLIO format. Subclass it (the defaults below fit a whole-file, single-object format)."""

    name: str
    #: What a read fetches (whole file, one range per sample, one range per row group).
    read_unit: ReadUnit = ReadUnit.FILE
    #: Decoding is real work (decompress, parse): the loader runs it in its thread pool. Otherwise it
    #: runs inline on the event loop (a zero-copy view beats a thread hop for large records).
    heavy: bool = False

    def extension(self, ds: Dataset) -> str:
        """The file name suffix after the dot."""
        return self.name

    def dtype(self, ds: Dataset) -> str:
        """Element type of a sample."""
        return str(np.dtype(ds.record_element_type))

    def dims(self, ds: Dataset, drawn: tuple[int, ...]) -> tuple[int, ...]:
        """A sample's shape, from the shape DLIO's seeded draw gives."""
        return drawn

    def predicted_size(self, ds: Dataset, dims: tuple[int, ...], dtype: str, position: int) -> int | None:
        """Exact bytes DLIO's generator writes for one file, or None when it depends on the content."""
        return None

    def sidecar_keys(self, ds: Dataset, key: str, split: str) -> tuple[str, ...]:
        """Keys of the extra objects written with the file ``key``."""
        return ()

    def sidecar_sizes(self, ds: Dataset, dims: tuple[int, ...], dtype: str) -> tuple[int | None, ...]:
        """Exact bytes of each sidecar (aligned with ``sidecar_keys``; None when unknown)."""
        return ()

    def encode(self, f: DataFile, ds: Dataset, rng: np.random.Generator) -> Encoded:
        """What DLIO's generator writes for file ``f`` (random contents from ``randbytes``)."""
        ...

    def stream(self, f: DataFile, ds: Dataset, rng: np.random.Generator, buf: np.ndarray) -> Stream | None:
        """File ``f`` made chunk by chunk in ``buf`` (a reused, 8-byte aligned uint8 array), for a writer that
        writes each chunk before drawing the next, while it is still in cache; None when the format can
        only ``encode`` whole (sidecars, content-dependent sizes). Streamed or encoded, the file is the same
        but for its random contents."""
        return None

    def decode(
        self, data: Buffer, f: DataFile, ds: Dataset, sidecars: Mapping[str, Buffer] | None = None
    ) -> Sequence[Any]:
        """What DLIO's reader makes of a whole opened file: its samples (parquet: its row groups, the
        read unit), lazily where that is free (npy/npz slice one array). ``sidecars`` maps the file's
        sidecar keys to their bytes."""
        ...

    # ---- ranged read units (SAMPLE_RANGE, ROW_GROUP) ----
    def sample_spans(self, f: DataFile, sidecars: Mapping[str, Buffer]) -> Spans:
        """SAMPLE_RANGE: each sample's byte range, from the file's index objects (unit i is sample i)."""
        raise DlioError(f"{self.name}: has no sample index")

    #: ROW_GROUP: bytes at the end of a file that give the footer's length (``footer_length``).
    footer_tail: int = 0

    def footer_length(self, tail: bytes) -> int:
        """ROW_GROUP: bytes of the footer (including ``tail``), from the last ``footer_tail`` bytes."""
        raise DlioError(f"{self.name}: has no footer")

    def row_group_spans(self, footer: bytes, ds: Dataset, columns: Sequence[str] | None) -> Spans:
        """ROW_GROUP: each row group's byte span of the columns read (offsets in the file), from the
        footer bytes at the file's end (its size is not needed: a footer holds absolute offsets, so a
        reader takes it from one suffix read); ``columns`` overrides the dataset's own choice
        (``storage_options.columns``). Runs on a loader thread, off the event loop (a full-size dlrm
        footer holds 250 row groups x 200 columns)."""
        raise DlioError(f"{self.name}: has no row groups")

    def prepare_reads(self) -> None:
        """Load what reading this format needs (parquet: pyarrow, ~0.3 s to import), so the first
        training step does not pay it. Default: nothing."""
        return None

    #: Whether ``decode_span``'s value views the bytes it was given (a view: they must outlive it). When
    #: not (a count), the loader reads ranges into reused buffers and hands each back after decoding.
    span_views_data: bool = True

    def decode_span(self, data: Buffer, f: DataFile, ds: Dataset) -> Any:
        """What DLIO's reader makes of one ranged read (a sample, or a row group's column chunks); runs
        inline on the event loop, so it must be cheap (a view, a count)."""
        raise DlioError(f"{self.name}: is not read in ranges")


def sample_of(samples: Sequence[Any], f: DataFile, sample: int) -> Any:
    """Sample ``sample`` of a decoded file (DlioError naming the file when it has fewer)."""
    if not 0 <= sample < len(samples):
        raise DlioError(
            f"{f.key}: has no sample {sample} (it holds {len(samples)}); "
            "regenerate it with --dlio-generate auto"
        )
    return samples[sample]


class Slices(Sequence[Any]):
    """Samples of an array stored as (*dims, spf): sample ``i`` is the view ``x[..., i]`` (no copy)."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = x

    def __len__(self) -> int:
        return int(self.x.shape[-1]) if self.x.ndim else 1

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        return self.x[..., i] if self.x.ndim else self.x
