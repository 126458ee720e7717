"""Protocol-buffer wire format: iterate a message's fields without generated classes.

Only what the TensorBoard reader needs: varints, 64/32-bit fixed fields and length-delimited
fields.  A message is walked as ``(field number, wire type, value)`` triples; unknown fields
are skipped, which is what protobuf itself does, so newer writers stay readable.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

VARINT, FIXED64, BYTES, FIXED32 = 0, 1, 2, 5

_DOUBLE = struct.Struct("<d")
_FLOAT = struct.Struct("<f")
_INT64_RANGE = 1 << 64


class WireError(ValueError):
    """A message that does not follow the protobuf wire format."""


def read_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """The unsigned varint at ``pos`` and the offset after it."""
    result = shift = 0
    end = len(buf)
    while True:
        if pos >= end or shift > 63:
            raise WireError(f"varint runs past the message at offset {pos}")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def iter_fields(buf: bytes | memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """Yield ``(field_number, wire_type, value)``; BYTES/FIXED values are memoryview slices."""
    view = memoryview(buf)
    pos, end = 0, len(view)
    while pos < end:
        # One-byte varints (field keys, short lengths) are the common case: skip the call.
        key = view[pos]
        if key < 0x80:
            pos += 1
        else:
            key, pos = read_varint(view, pos)
        number, wire = key >> 3, key & 7
        if wire == BYTES:
            size = view[pos] if pos < end else 0x80
            if size < 0x80:
                pos += 1
            else:
                size, pos = read_varint(view, pos)
            value, pos = view[pos:pos + size], pos + size
        elif wire == VARINT:
            value, pos = read_varint(view, pos)
        elif wire == FIXED64:
            value, pos = view[pos:pos + 8], pos + 8
        elif wire == FIXED32:
            value, pos = view[pos:pos + 4], pos + 4
        else:
            raise WireError(f"unsupported wire type {wire} for field {number}")
        if pos > end:
            raise WireError(f"field {number} runs past the end of the message")
        yield number, wire, value


def as_double(value: memoryview) -> float:
    """A FIXED64 field as a double."""
    return _DOUBLE.unpack(value)[0]


def as_float(value: memoryview) -> float:
    """A FIXED32 field as a float."""
    return _FLOAT.unpack(value)[0]


def as_int64(value: int) -> int:
    """A VARINT field as a signed int64 (negative numbers are written as 10-byte varints)."""
    return value - _INT64_RANGE if value >= 1 << 63 else value


def as_text(value: memoryview) -> str:
    """A BYTES field as UTF-8 text (undecodable bytes replaced)."""
    return bytes(value).decode("utf-8", errors="replace")


def packed_or_single(wire: int, value: int | memoryview, width: str) -> list[float]:
    """A repeated numeric field occurrence as a list: packed (BYTES) or a single element.

    ``width`` is a struct code: ``f``/``d`` for fixed floats, ``v`` for varints.
    """
    if wire == BYTES:
        data = bytes(value)  # type: ignore[arg-type]
        if width == "v":
            out, pos = [], 0
            while pos < len(data):
                number, pos = read_varint(data, pos)
                out.append(as_int64(number))
            return out
        count = len(data) // struct.calcsize(width)
        return list(struct.unpack(f"<{count}{width}", data[: count * struct.calcsize(width)]))
    if wire == VARINT:
        return [as_int64(value)]  # type: ignore[arg-type]
    if wire == FIXED32:
        return [as_float(value)]  # type: ignore[arg-type]
    return [as_double(value)]  # type: ignore[arg-type]
