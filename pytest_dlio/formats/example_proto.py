"""A minimal protobuf codec for ``tf.train.Example`` (bytes_list / float_list / int64_list features).

Wire format (protobuf encoding spec): Example{1: Features{1: repeated map entry{1: key, 2: Feature}}},
Feature oneof {1: BytesList{1: repeated bytes}, 2: FloatList{1: packed float}, 3: Int64List{1: packed int64}}.
"""

from __future__ import annotations

import struct

from pytest_dlio.errors import DlioError
from pytest_dlio.storage.base import Buffer

Value = bytes | list[int] | list[float]


def varint(v: int) -> bytes:
    """Encode a non-negative int (negative int64 as two's complement, 10 bytes)."""
    v &= (1 << 64) - 1
    out = bytearray()
    while v > 0x7F:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _len_field(num: int, payload_len: int) -> bytes:
    return varint(num << 3 | 2) + varint(payload_len)


def _entry_prefix(name: str, feature_len: int) -> bytes:
    key = name.encode()
    entry_len = 1 + len(varint(len(key))) + len(key) + 1 + len(varint(feature_len)) + feature_len
    return _len_field(1, entry_len) + _len_field(1, len(key)) + key + _len_field(2, feature_len)


def int64_feature(name: str, values: list[int]) -> bytes:
    packed = b"".join(varint(v) for v in values)
    ilist = _len_field(1, len(packed)) + packed
    feature = _len_field(3, len(ilist)) + ilist
    return _entry_prefix(name, len(feature)) + feature


def bytes_feature_prefix(name: str, payload_len: int) -> bytes:
    """Everything of a one-value bytes feature entry up to (not including) the payload."""
    blist_len = 1 + len(varint(payload_len)) + payload_len
    feature_head = _len_field(1, blist_len) + _len_field(1, payload_len)
    return _entry_prefix(name, len(feature_head) + payload_len) + feature_head


def example_prefix(features_len: int) -> bytes:
    return _len_field(1, features_len)


def read_varint(buf: Buffer, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise DlioError("tf.train.Example: truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


Field = tuple[int, int, "int | memoryview"]


def fields(buf: memoryview) -> list[Field]:
    """(field number, wire type, value) for each field of one message: VARINT values as ints, the
    others (I64, LEN, I32) as memoryviews of their bytes."""
    out: list[Field] = []
    pos, end = 0, len(buf)
    while pos < end:
        tag, pos = read_varint(buf, pos)
        num, wt = tag >> 3, tag & 7
        val: int | memoryview
        if wt == 0:
            val, pos = read_varint(buf, pos)
        elif wt in (1, 5):
            n = 8 if wt == 1 else 4
            val, pos = buf[pos : pos + n], pos + n
        elif wt == 2:
            n, pos = read_varint(buf, pos)
            if pos + n > end:
                raise DlioError("tf.train.Example: field runs past the end of the message")
            val, pos = buf[pos : pos + n], pos + n
        else:
            raise DlioError(f"tf.train.Example: unsupported wire type {wt}")
        out.append((num, wt, val))
    return out


def _bytes(v: int | memoryview) -> memoryview:
    if isinstance(v, int):
        raise DlioError("tf.train.Example: a varint where a length-delimited field belongs")
    return v


def _feature(buf: memoryview) -> Value:
    for num, _wt, val in fields(buf):
        items = fields(_bytes(val))
        if num == 1:
            vals = [bytes(_bytes(v)) for _, _, v in items]
            return vals[0] if len(vals) == 1 else b"".join(vals)
        if num == 2:
            floats: list[float] = []
            for _, wt, v in items:
                data = bytes(_bytes(v)) if wt in (2, 5) else b""
                floats.extend(struct.unpack(f"<{len(data) // 4}f", data))
            return floats
        if num == 3:
            ints: list[int] = []
            for _, _, v in items:
                if isinstance(v, int):
                    ints.append(_signed(v))
                else:
                    pos = 0
                    while pos < len(v):
                        x, pos = read_varint(v, pos)
                        ints.append(_signed(x))
            return ints
    return b""


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def parse_example(data: Buffer) -> dict[str, Value]:
    """Feature name → value (one bytes value as bytes; ints and floats as lists)."""
    out: dict[str, Value] = {}
    for num, _, features in fields(memoryview(data)):
        if num != 1:
            continue
        for fnum, _, entry in fields(_bytes(features)):
            if fnum != 1:
                continue
            key, value = "", memoryview(b"")
            for enum, _, v in fields(_bytes(entry)):
                if enum == 1:
                    key = bytes(_bytes(v)).decode()
                elif enum == 2:
                    value = _bytes(v)
            out[key] = _feature(value)
    return out
