"""A minimal ONNX reader: the protobuf wire format, only the fields the models table needs.

    ModelProto   1 ir_version  2 producer_name  3 producer_version  4 domain  5 model_version
                 7 graph: GraphProto   8 opset_import: {1 domain, 2 version}   14 metadata_props
    GraphProto   1 node (counted)  2 name  5 initializer: TensorProto {1 dims, 2 data_type, 8 name}
                 11 input / 12 output: ValueInfoProto {1 name, 2 type: TypeProto}
    TypeProto    1 tensor_type {1 elem_type, 2 shape {1 dim {1 dim_value, 2 dim_param}}}

Fields are located by seeking: weights (TensorProto.raw_data) are skipped, never read, so a
large model costs a few reads per graph element.  No ``onnx`` dependency.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

#: TensorProto.DataType
ELEM_TYPES = {
    1: "float32",
    2: "uint8",
    3: "int8",
    4: "uint16",
    5: "int16",
    6: "int32",
    7: "int64",
    8: "string",
    9: "bool",
    10: "float16",
    11: "float64",
    12: "uint32",
    13: "uint64",
    14: "complex64",
    15: "complex128",
    16: "bfloat16",
    17: "float8e4m3fn",
    18: "float8e4m3fnuz",
    19: "float8e5m2",
    20: "float8e5m2fnuz",
    21: "uint4",
    22: "int4",
    23: "float4e2m1",
}
MAX_STRING = 1 << 16
VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5


class OnnxFormatError(ValueError):
    """The bytes are not a well-formed ONNX ModelProto."""


@dataclass
class OnnxModel:
    """The facts read from one ModelProto."""

    ir_version: int | None = None
    producer_name: str | None = None
    producer_version: str | None = None
    domain: str | None = None
    model_version: int | None = None
    opset_imports: dict[str, int] = field(default_factory=dict)
    metadata_props: dict[str, str] = field(default_factory=dict)
    has_graph: bool = False
    graph_name: str | None = None
    node_count: int = 0
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    initializers: list[tuple[str, str | None, int]] = field(default_factory=list)


class Wire:
    """Reads protobuf fields from a seekable stream, one message span at a time."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def varint(self, limit: int) -> int:
        """One base-128 varint at the current position, not past ``limit``."""
        result = 0
        for shift in range(0, 70, 7):
            if self.stream.tell() >= limit:
                raise OnnxFormatError("varint runs past the end of its message")
            byte = self.stream.read(1)[0]
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
        raise OnnxFormatError("varint longer than 10 bytes")

    def fields(self, start: int, end: int) -> Iterator[tuple[int, int, int]]:
        """Yield ``(field, wire_type, value)`` in ``[start, end)``: the varint value, or for a
        length-delimited field its length, with the stream left at its first byte."""
        position = start
        while position < end:
            self.stream.seek(position)
            key = self.varint(end)
            number, wire_type = key >> 3, key & 7
            if number == 0:
                raise OnnxFormatError(f"field number 0 at offset {position}")
            if wire_type == VARINT:
                value = self.varint(end)
                position = self.stream.tell()
            elif wire_type == LENGTH:
                value = self.varint(end)
                position = self.stream.tell() + value
            elif wire_type in (FIXED64, FIXED32):
                value = 0
                position = self.stream.tell() + (8 if wire_type == FIXED64 else 4)
            else:
                raise OnnxFormatError(f"wire type {wire_type} at offset {position}")
            if position > end:
                raise OnnxFormatError(f"field {number} at offset {self.stream.tell()} runs past its message")
            yield number, wire_type, value

    def span(self, length: int) -> tuple[int, int]:
        """``(start, end)`` of the length-delimited field the stream is positioned at."""
        start = self.stream.tell()
        return start, start + length

    def string(self, length: int) -> str:
        """The length-delimited field at the current position as text (long strings cut)."""
        return self.stream.read(min(length, MAX_STRING)).decode("utf-8", "replace")


def read_onnx(stream: BinaryIO, size: int) -> OnnxModel:
    """Parse the ModelProto fields of an ONNX file; raise OnnxFormatError when it is not one."""
    wire, model = Wire(stream), OnnxModel()
    for number, wire_type, value in wire.fields(0, size):
        if wire_type == VARINT and number in (1, 5):
            setattr(model, "ir_version" if number == 1 else "model_version", value)
        elif wire_type == LENGTH and number in (2, 3, 4):
            setattr(
                model, {2: "producer_name", 3: "producer_version", 4: "domain"}[number], wire.string(value)
            )
        elif wire_type == LENGTH and number == 7:
            model.has_graph = True
            read_graph(wire, *wire.span(value), model)
        elif wire_type == LENGTH and number == 8:
            domain, version = read_pair(wire, *wire.span(value))
            model.opset_imports[str(domain or "")] = int(version or 0)
        elif wire_type == LENGTH and number == 14:
            key, text = read_pair(wire, *wire.span(value))
            model.metadata_props[str(key)] = str(text)
    if model.ir_version is None or not model.has_graph:
        raise OnnxFormatError("no ir_version or no graph: not an ONNX ModelProto")
    return model


def read_pair(wire: Wire, start: int, end: int) -> tuple[Any, Any]:
    """Fields 1 and 2 of a small message (OperatorSetIdProto, StringStringEntryProto)."""
    values: dict[int, Any] = {}
    for number, wire_type, value in wire.fields(start, end):
        if number in (1, 2):
            values[number] = wire.string(value) if wire_type == LENGTH else value
    return values.get(1), values.get(2)


def read_graph(wire: Wire, start: int, end: int, model: OnnxModel) -> None:
    """Graph name, node count, inputs, outputs and initializer shapes."""
    for number, wire_type, value in wire.fields(start, end):
        if wire_type != LENGTH:
            continue
        if number == 1:
            model.node_count += 1
        elif number == 2:
            model.graph_name = wire.string(value)
        elif number == 5:
            model.initializers.append(read_initializer(wire, *wire.span(value)))
        elif number in (11, 12):
            (model.inputs if number == 11 else model.outputs).append(read_value_info(wire, *wire.span(value)))


def read_initializer(wire: Wire, start: int, end: int) -> tuple[str, str | None, int]:
    """``(name, dtype, element count)`` of a TensorProto, its data skipped."""
    name, dtype, dims = "", None, []
    for number, wire_type, value in wire.fields(start, end):
        if number == 1 and wire_type == VARINT:
            dims.append(value)
        elif number == 1 and wire_type == LENGTH:
            dims.extend(read_packed(wire, *wire.span(value)))
        elif number == 2 and wire_type == VARINT:
            dtype = ELEM_TYPES.get(value, f"type{value}")
        elif number == 8 and wire_type == LENGTH:
            name = wire.string(value)
    return name, dtype, math.prod(dims)


def read_packed(wire: Wire, start: int, end: int) -> list[int]:
    """A packed repeated varint field."""
    values = []
    wire.stream.seek(start)
    while wire.stream.tell() < end:
        values.append(wire.varint(end))
    return values


def read_value_info(wire: Wire, start: int, end: int) -> dict[str, Any]:
    """``{name, dtype, shape}`` of a graph input or output; shape items are ints or names."""
    info: dict[str, Any] = {"name": "", "dtype": None, "shape": None}
    for number, wire_type, value in wire.fields(start, end):
        if number == 1 and wire_type == LENGTH:
            info["name"] = wire.string(value)
        elif number == 2 and wire_type == LENGTH:
            read_type(wire, *wire.span(value), info)
    return info


def read_type(wire: Wire, start: int, end: int, info: dict[str, Any]) -> None:
    """Element type and shape of a TypeProto.tensor_type (other kinds are left unset)."""
    for number, wire_type, value in wire.fields(start, end):
        if number != 1 or wire_type != LENGTH:
            continue
        for inner, inner_type, inner_value in wire.fields(*wire.span(value)):
            if inner == 1 and inner_type == VARINT:
                info["dtype"] = ELEM_TYPES.get(inner_value, f"type{inner_value}")
            elif inner == 2 and inner_type == LENGTH:
                info["shape"] = read_shape(wire, *wire.span(inner_value))


def read_shape(wire: Wire, start: int, end: int) -> list[int | str | None]:
    """Dimensions of a TensorShapeProto: a size, a symbolic name, or None when unknown."""
    shape: list[int | str | None] = []
    for number, wire_type, value in wire.fields(start, end):
        if number != 1 or wire_type != LENGTH:
            continue
        dim: int | str | None = None
        for inner, inner_type, inner_value in wire.fields(*wire.span(value)):
            if inner == 1 and inner_type == VARINT:
                dim = inner_value
            elif inner == 2 and inner_type == LENGTH:
                dim = wire.string(inner_value)
        shape.append(dim)
    return shape
