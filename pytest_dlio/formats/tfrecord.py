"""tfrecord: one tf.train.Example{image: bytes, size: int64} per sample, TFRecord framing, DALI index.

Framing per record: uint64 length, uint32 masked CRC-32C of the length, data, uint32 masked CRC-32C of
the data (little endian). The index ``index/{split}/{basename}.idx`` holds "offset length" lines.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping

import crc32c
import numpy as np

from pytest_dlio.config.model import Dataset
from pytest_dlio.errors import DlioError
from pytest_dlio.formats import Encoded
from pytest_dlio.formats.example_proto import (
    bytes_feature_prefix,
    example_prefix,
    int64_feature,
    parse_example,
)
from pytest_dlio.layout import DataFile
from pytest_dlio.randbytes import POOL, random_bytes
from pytest_dlio.storage.base import Buffer

_MASK_DELTA = 0xA282EAD8


def masked_crc(data: Buffer, crc: int | None = None) -> int:
    """TFRecord's masked CRC-32C (of ``data``, or of an already computed ``crc``)."""
    c = crc32c.crc32c(data) if crc is None else crc
    return (((c >> 15) | (c << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def encode(f: DataFile, ds: Dataset, rng: np.random.Generator) -> Encoded:
    size = f.sample_bytes
    buf = POOL.take(size * f.samples)
    payload = memoryview(random_bytes(size * f.samples, rng, buf))
    size_entry = int64_feature("size", [size])
    img_prefix = bytes_feature_prefix("image", size)
    head = example_prefix(len(size_entry) + len(img_prefix) + size) + size_entry + img_prefix
    length = len(head) + size
    len_bytes = struct.pack("<Q", length)
    frame_head = len_bytes + struct.pack("<I", masked_crc(len_bytes))
    head_crc = crc32c.crc32c(head)
    parts: list[Buffer] = []
    for i in range(f.samples):
        img = payload[i * size:(i + 1) * size]
        parts += [frame_head, head, img, struct.pack("<I", masked_crc(b"", crc32c.crc32c(img, head_crc)))]
    record = 16 + length
    index = "".join(f"{k * record} {record}\n" for k in range(f.samples)).encode()
    return Encoded(parts, {f.sidecars[0]: index}, [buf])


def records(data: Buffer, key: str = "") -> Iterator[memoryview]:
    """Each record's data, with length and data CRCs checked."""
    view = memoryview(data)
    pos, end = 0, view.nbytes
    while pos < end:
        if pos + 12 > end:
            raise DlioError(f"{key}: truncated TFRecord header at byte {pos}; regenerate the dataset")
        (length,) = struct.unpack_from("<Q", view, pos)
        (lcrc,) = struct.unpack_from("<I", view, pos + 8)
        if masked_crc(view[pos:pos + 8]) != lcrc:
            raise DlioError(f"{key}: TFRecord length CRC mismatch at byte {pos}; the file is corrupt, regenerate it")
        start = pos + 12
        stop = start + length
        if stop + 4 > end:
            raise DlioError(f"{key}: truncated TFRecord at byte {pos}; regenerate the dataset")
        body = view[start:stop]
        (dcrc,) = struct.unpack_from("<I", view, stop)
        if masked_crc(body) != dcrc:
            raise DlioError(f"{key}: TFRecord data CRC mismatch at byte {pos}; the file is corrupt, regenerate it")
        yield body
        pos = stop + 4


def read_samples(data: Buffer, f: DataFile, ds: Dataset, sidecars: Mapping[str, Buffer] | None = None) -> Iterator:
    for body in records(data, f.key):
        ex = parse_example(body)
        image = ex.get("image", b"")
        yield np.frombuffer(image, dtype=np.uint8) if isinstance(image, bytes) else image
