"""tfrecord: one tf.train.Example{image: bytes, size: int64} per sample, TFRecord framing, DALI index.

Framing per record: uint64 length, uint32 masked CRC-32C of the length, data, uint32 masked CRC-32C of
the data (little endian). The index ``index/{split}/{basename}.idx`` holds "offset length" lines.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_dlio.errors import DlioError
from pytest_dlio.formats.base import DataFile, Encoded, Format
from pytest_dlio.formats.example_proto import (
    bytes_feature_prefix,
    example_prefix,
    int64_feature,
    parse_example,
)
from pytest_dlio.randbytes import POOL, random_bytes
from pytest_dlio.storage.base import Buffer

if TYPE_CHECKING:
    from pytest_dlio.config.model import Dataset

_MASK_DELTA = 0xA282EAD8


def _crc32c(data: Any, value: int = 0) -> int:
    """CRC-32C (the ``crc32c`` package of the ``formats`` extra, imported on first use so that registering
    the formats, as every run does, never needs it)."""
    try:
        import crc32c
    except ImportError:
        raise DlioError("tfrecord needs CRC-32C: pip install 'pytest-dlio[formats]'") from None
    return int(crc32c.crc32c(data, value))


def masked_crc(data: Buffer, crc: int | None = None) -> int:
    """TFRecord's masked CRC-32C (of ``data``, or of an already computed ``crc``)."""
    c = _crc32c(data) if crc is None else crc
    return (((c >> 15) | (c << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def _encode(f: DataFile, ds: Dataset, rng: np.random.Generator) -> Encoded:
    size = f.sample_bytes
    buf = POOL.take(size * f.samples)
    payload = random_bytes(size * f.samples, rng, buf).data
    size_entry = int64_feature("size", [size])
    img_prefix = bytes_feature_prefix("image", size)
    head = example_prefix(len(size_entry) + len(img_prefix) + size) + size_entry + img_prefix
    length = len(head) + size
    len_bytes = struct.pack("<Q", length)
    frame_head = len_bytes + struct.pack("<I", masked_crc(len_bytes))
    head_crc = _crc32c(head)
    parts: list[Buffer] = []
    for i in range(f.samples):
        img = payload[i * size : (i + 1) * size]
        parts += [frame_head, head, img, struct.pack("<I", masked_crc(b"", _crc32c(img, head_crc)))]
    record = 16 + length
    return Encoded(parts, {f.sidecars[0]: index(record, f.samples)}, [buf])


def index(record: int, n: int) -> bytes:
    """The DALI index: one "offset length" line per record."""
    return "".join(f"{k * record} {record}\n" for k in range(n)).encode()


def index_len(record: int, n: int) -> int:
    """``len(index(record, n))`` without building it (counts the digits of each offset)."""
    total, k, digits = n * (len(str(record)) + 2), 0, 1
    while k < n:
        upto = min(n, max(k, -(-(10**digits) // record)))  # first k whose offset has more digits
        total += (upto - k) * digits
        k, digits = upto, digits + 1
    return total


def _varint_len(v: int) -> int:
    return max(1, (v.bit_length() + 6) // 7)


def example_len(payload: int, size_value: int) -> int:
    """Bytes of a serialized tf.train.Example with ``image`` (payload bytes) and ``size`` (one int64)."""
    blist = 1 + _varint_len(payload) + payload
    f_img = 1 + _varint_len(blist) + blist
    e_img = (1 + 1 + 5) + 1 + _varint_len(f_img) + f_img
    packed = _varint_len(size_value)
    ilist = 1 + _varint_len(packed) + packed
    f_size = 1 + _varint_len(ilist) + ilist
    e_size = (1 + 1 + 4) + 1 + _varint_len(f_size) + f_size
    features = 1 + _varint_len(e_size) + e_size + 1 + _varint_len(e_img) + e_img
    return 1 + _varint_len(features) + features


def record_len(dims: tuple[int, ...], dtype: str) -> int:
    """One framed record: u64 length, u32 CRC, the Example, u32 CRC."""
    sample = int(np.prod(dims, dtype=np.int64)) * np.dtype(dtype).itemsize
    return 16 + example_len(sample, sample)


def records(data: Buffer, key: str = "") -> Iterator[memoryview]:
    """Each record's data, with length and data CRCs checked."""
    view = memoryview(data)
    pos, end = 0, view.nbytes
    while pos < end:
        if pos + 12 > end:
            raise DlioError(f"{key}: truncated TFRecord header at byte {pos}; regenerate the dataset")
        (length,) = struct.unpack_from("<Q", view, pos)
        (lcrc,) = struct.unpack_from("<I", view, pos + 8)
        if masked_crc(view[pos : pos + 8]) != lcrc:
            raise DlioError(
                f"{key}: TFRecord length CRC mismatch at byte {pos}; the file is corrupt, regenerate it"
            )
        start = pos + 12
        stop = start + length
        if stop + 4 > end:
            raise DlioError(f"{key}: truncated TFRecord at byte {pos}; regenerate the dataset")
        body = view[start:stop]
        (dcrc,) = struct.unpack_from("<I", view, stop)
        if masked_crc(body) != dcrc:
            raise DlioError(
                f"{key}: TFRecord data CRC mismatch at byte {pos}; the file is corrupt, regenerate it"
            )
        yield body
        pos = stop + 4


def samples(data: Buffer, key: str = "") -> list[Any]:
    """Each record's ``image`` feature as uint8 (lengths and CRCs checked).

    A record whose bytes before the image equal an earlier record's, at the same length, parses the same
    way up to an image of the same place and size (the structure is all in those bytes; the image is a
    length-delimited field's payload), so only the first record of each layout is parsed field by field:
    parsing every record in Python cost ~25 µs each, more than resnet50's compute per sample at smoke."""
    out: list[Any] = []
    head, size = b"", -1  # the bytes before the image in a parsed record whose image is its tail
    last: tuple[memoryview, bytes] | None = None  # the last parsed record and its image
    for body in records(data, key):
        if size == body.nbytes and body[: len(head)] == head:
            out.append(np.frombuffer(bytes(body[len(head) :]), dtype=np.uint8))
            continue
        if last is not None and size == -1 and last[0].nbytes == body.nbytes:  # a second record like it:
            prev, img = last  # learn the layout once (one memcmp), not for one-record files
            tail = prev.nbytes - len(img)
            head, size = (
                (bytes(prev[:tail]), prev.nbytes) if img and prev[tail:].tobytes() == img else (b"", -2)
            )
            if size >= 0:
                if body[:tail] == head:
                    out.append(np.frombuffer(bytes(body[tail:]), dtype=np.uint8))
                    continue
        image = parse_example(body).get("image", b"")
        if not isinstance(image, bytes):
            out.append(image)
            continue
        last = (body, image)
        out.append(np.frombuffer(image, dtype=np.uint8))
    return out


class TfRecord(Format):
    name = "tfrecord"

    def predicted_size(self, ds: Dataset, dims: tuple[int, ...], dtype: str, position: int) -> int | None:
        return ds.num_samples_per_file * record_len(dims, dtype)

    def sidecar_keys(self, ds: Dataset, key: str, split: str) -> tuple[str, ...]:
        return (f"index/{split}/{key.rsplit('/', 1)[-1]}.idx",)

    def sidecar_sizes(self, ds: Dataset, dims: tuple[int, ...], dtype: str) -> tuple[int | None, ...]:
        return (index_len(record_len(dims, dtype), ds.num_samples_per_file),)

    def encode(self, f: DataFile, ds: Dataset, rng: np.random.Generator) -> Encoded:
        return _encode(f, ds, rng)

    def decode(
        self, data: Buffer, f: DataFile, ds: Dataset, sidecars: Mapping[str, Buffer] | None = None
    ) -> Sequence[Any]:
        return samples(data, f.key)


FORMAT = TfRecord()
