"""TensorBoard event files (``events.out.tfevents.*``): TFRecord framing and the ``Event`` fields used.

A private, pure decoder shared by the tensorboard and lightning crawlers: it reads bytes the
context maps (``ctx.mapped``) and reports problems through ``ctx.warn``; it never opens a file.

TFRecord framing, per record::

    uint64 length | uint32 masked crc32c(length) | data[length] | uint32 masked crc32c(data)

Fields read (everything else is skipped)::

    Event        wall_time=1 double, step=2 int64, summary=5
    Summary      value=1 repeated
    Value        tag=1, simple_value=2 float, tensor=8, metadata=9
    Metadata     plugin_data=1 {plugin_name=1, content=2}
    TensorProto  dtype=1, tensor_content=4, float_val=5, double_val=6, int_val=7, int64_val=10
    HParams      session_start_info=3 {hparams=1 map<string, Value>, group_name=4,
                 start_time_secs=5}, session_end_info=4 {status=1}, experiment=2

A small reader instead of the ``tensorboard`` package: no 180 MB dependency (numpy, grpcio,
protobuf), no sampling, and only the few fields we need are decoded.  The length CRC is
checked on every record; the data CRC (pure-Python crc32c, 4-8 MB/s here) only on the records we
use, so large image/histogram records cost a slice, not a checksum.
"""

from __future__ import annotations

import mmap
import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from mlcrawl.api import CrawlContext, Metric, Param, from_epoch_s, to_text

from .. import _protowire as wire

EVENT_PREFIX = "events.out.tfevents."
HPARAMS_PLUGIN = "hparams"
SCALARS_PLUGIN = "scalars"
# Lightning's TensorBoardLogger logs hp_metric=-1 before any real value exists.
LIGHTNING_PLACEHOLDER = ("hp_metric", -1.0)

_HEADER = struct.Struct("<QI")
_U32 = struct.Struct("<I")
_NONZERO = re.compile(rb"[^\x00]")
#: Protobuf messages are at most 2 GiB: a longer record with a valid length CRC is forged.
_MAX_RECORD = (1 << 31) - 1
_MASK_DELTA = 0xA282EAD8
_SESSION_STATUS = {1: "FINISHED", 2: "FAILED", 3: "RUNNING"}

# TensorFlow DataType codes -> struct format of one element in tensor_content.
_DTYPE_FORMATS = {1: "f", 2: "d", 3: "i", 4: "B", 5: "h", 6: "b", 9: "q", 10: "?", 17: "H",
                  22: "I", 23: "Q"}
_DT_HALF = 19
_DT_BFLOAT16 = 14


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes | memoryview) -> int:
    """CRC-32C (Castagnoli), the checksum TFRecord uses; table-driven pure Python."""
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes | memoryview) -> int:
    """The masked CRC TFRecord stores (so that CRCs of CRCs stay well distributed)."""
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


class TFRecord(NamedTuple):
    """One framed record: its offset, payload and the payload CRC the writer stored."""

    offset: int
    data: bytes
    stored_crc: int

    def is_intact(self) -> bool:
        """True when the payload matches its stored CRC."""
        return masked_crc32c(self.data) == self.stored_crc


class SummaryValue(NamedTuple):
    """The parts of one ``Summary.Value`` the reader uses."""

    tag: str
    simple_value: float | None
    plugin: str | None
    plugin_content: bytes | None
    tensor_value: float | None


class Event(NamedTuple):
    """One decoded ``Event`` (only events that carry a summary are of interest)."""

    wall_time: float | None
    step: int
    values: list[SummaryValue]


@dataclass
class HParams:
    """What the hparams plugin said about a run."""

    values: dict[str, Any] = field(default_factory=dict)
    group_name: str | None = None
    start_time: float | None = None
    status: str | None = None
    metric_tags: list[str] = field(default_factory=list)


@dataclass
class EventScan:
    """Facts gathered while the scalars of a folder stream out."""

    hparams: HParams = field(default_factory=HParams)
    first_wall_time: float | None = None
    last_wall_time: float | None = None
    storage: dict[str, str] = field(default_factory=dict)


# --- TFRecord framing -------------------------------------------------------------------------


def iter_tfrecords(buf: bytes | mmap.mmap, ctx: CrawlContext, path: Path) -> Iterator[TFRecord]:
    """Yield the framed records of ``buf``; corrupt headers are skipped with a warning.

    A truncated last record is a writer still at work: the complete records are yielded and
    nothing is reported.  Payloads are copied out so no view outlives an mmap.
    """
    pos, end = 0, len(buf)
    while end - pos >= _HEADER.size:
        length, length_crc = _HEADER.unpack_from(buf, pos)
        if masked_crc32c(buf[pos:pos + 8]) != length_crc:
            resumed = find_next_header(buf, pos + 1)
            ctx.warn(f"bad length CRC at offset {pos}; skipped to offset {resumed}", path,
                     "corrupt_record")
            pos = resumed
            continue
        if length > _MAX_RECORD:
            ctx.warn(f"record at offset {pos} claims {length} bytes, more than a protobuf message can hold; "
                     "the rest of the file is not read", path, "corrupt_record")
            return
        data_end = pos + _HEADER.size + length
        if data_end + 4 > end:
            return
        yield TFRecord(pos, buf[pos + _HEADER.size:data_end], _U32.unpack_from(buf, data_end)[0])
        pos = data_end + 4


def find_next_header(buf: bytes | mmap.mmap, start: int) -> int:
    """The next offset from ``start`` whose 12 bytes are a valid record header, else the end.

    A plausible length fits the bytes left, so its high bytes are zero: those are searched for
    with ``find`` (C speed), and a window of twelve zero bytes is never a header (the CRC of a
    zero length is not zero), so zero runs are jumped over.  Only the few offsets left pay for a
    CRC.  A per-offset Python loop took minutes over a 64 MiB run of zeros or of random bytes.
    """
    end = len(buf)
    width = max(1, (end.bit_length() + 7) // 8)  # bytes a length that fits the file can use
    high_zeros = b"\0" * (8 - width)
    pos = start
    while pos <= end - _HEADER.size:
        if high_zeros:
            hit = buf.find(high_zeros, pos + width)
            if hit < 0:
                return end
            pos = hit - width
            if pos > end - _HEADER.size:
                return end
        if not any(buf[pos:pos + _HEADER.size]):
            nonzero = _NONZERO.search(buf, pos + _HEADER.size)
            if nonzero is None:
                return end
            pos = nonzero.start() - _HEADER.size + 1
            continue
        length, length_crc = _HEADER.unpack_from(buf, pos)
        # Most offsets fail the cheap plausibility test before any CRC is computed.
        if pos + _HEADER.size + length + 4 <= end and masked_crc32c(buf[pos:pos + 8]) == length_crc:
            return pos
        pos += 1
    return end


# --- Event decoding -----------------------------------------------------------------------------


def decode_event(data: memoryview) -> Event | None:
    """The summary-carrying part of an ``Event``, or None for other events (graphs, logs)."""
    wall_time, step, summary = None, 0, None
    for number, kind, value in wire.iter_fields(data):
        if number == 1 and kind == wire.FIXED64:
            wall_time = wire.as_double(value)  # type: ignore[arg-type]
        elif number == 2 and kind == wire.VARINT:
            step = wire.as_int64(value)  # type: ignore[arg-type]
        elif number == 5 and kind == wire.BYTES:
            summary = value
    if summary is None:
        return None
    values = [decode_value(v) for n, k, v in wire.iter_fields(summary) if n == 1 and k == wire.BYTES]
    return Event(wall_time, step, values)  # type: ignore[arg-type]


def decode_value(data: memoryview) -> SummaryValue:
    """Decode one ``Summary.Value``: tag, legacy scalar, plugin metadata and scalar tensor."""
    tag, simple, plugin, content, tensor = "", None, None, None, None
    for number, kind, value in wire.iter_fields(data):
        if number == 1 and kind == wire.BYTES:
            tag = wire.as_text(value)  # type: ignore[arg-type]
        elif number == 2 and kind == wire.FIXED32:
            simple = wire.as_float(value)  # type: ignore[arg-type]
        elif number == 9 and kind == wire.BYTES:
            plugin, content = decode_plugin_data(value)  # type: ignore[arg-type]
        elif number == 8 and kind == wire.BYTES:
            tensor = decode_scalar_tensor(value)  # type: ignore[arg-type]
    return SummaryValue(tag, simple, plugin, content, tensor)


def decode_plugin_data(metadata: memoryview) -> tuple[str | None, bytes | None]:
    """``SummaryMetadata.plugin_data`` as (plugin name, content bytes)."""
    for number, kind, value in wire.iter_fields(metadata):
        if number == 1 and kind == wire.BYTES:
            name, content = None, b""
            for n, k, v in wire.iter_fields(value):  # type: ignore[arg-type]
                if n == 1 and k == wire.BYTES:
                    name = wire.as_text(v)  # type: ignore[arg-type]
                elif n == 2 and k == wire.BYTES:
                    content = bytes(v)  # type: ignore[arg-type]
            return name, content
    return None, None


def decode_scalar_tensor(data: memoryview) -> float | None:
    """The single number of a ``TensorProto``, or None when it holds no single number."""
    dtype, content, numbers = 0, None, []
    for number, kind, value in wire.iter_fields(data):
        if number == 1 and kind == wire.VARINT:
            dtype = value
        elif number == 4 and kind == wire.BYTES:
            content = bytes(value)  # type: ignore[arg-type]
        elif number == 5:
            numbers += wire.packed_or_single(kind, value, "f")
        elif number == 6:
            numbers += wire.packed_or_single(kind, value, "d")
        elif number in (7, 10, 13):  # int_val, int64_val, half_val (as raw bits)
            numbers += wire.packed_or_single(kind, value, "v")
    if content is not None:
        return decode_tensor_content(dtype, content)  # type: ignore[arg-type]
    if len(numbers) != 1:
        return None
    if dtype == _DT_HALF:
        return struct.unpack("<e", struct.pack("<H", int(numbers[0]) & 0xFFFF))[0]
    return float(numbers[0])


def decode_tensor_content(dtype: int, content: bytes) -> float | None:
    """A one-element ``tensor_content`` as float (little-endian, as TensorFlow writes it)."""
    if dtype == _DT_HALF and len(content) == 2:
        return struct.unpack("<e", content)[0]
    if dtype == _DT_BFLOAT16 and len(content) == 2:
        return struct.unpack("<f", b"\0\0" + content)[0]
    code = _DTYPE_FORMATS.get(dtype)
    if code is None or len(content) != struct.calcsize(code):
        return None
    return float(struct.unpack(f"<{code}", content)[0])


# --- hparams plugin -----------------------------------------------------------------------------


def apply_hparams(content: bytes, hparams: HParams) -> None:
    """Fold one ``HParamsPluginData`` message into ``hparams``."""
    for number, kind, value in wire.iter_fields(content):
        if kind != wire.BYTES:
            continue
        if number == 3:
            apply_session_start(value, hparams)  # type: ignore[arg-type]
        elif number == 4:
            for n, k, v in wire.iter_fields(value):  # type: ignore[arg-type]
                if n == 1 and k == wire.VARINT:
                    hparams.status = _SESSION_STATUS.get(v)  # type: ignore[arg-type]
        elif number == 2:
            hparams.metric_tags += read_experiment_metrics(value)  # type: ignore[arg-type]


def apply_session_start(data: memoryview, hparams: HParams) -> None:
    """``SessionStartInfo``: the hparam values, group name and start time."""
    for number, kind, value in wire.iter_fields(data):
        if number == 1 and kind == wire.BYTES:
            key, item = None, None
            for n, k, v in wire.iter_fields(value):  # type: ignore[arg-type]
                if n == 1 and k == wire.BYTES:
                    key = wire.as_text(v)  # type: ignore[arg-type]
                elif n == 2 and k == wire.BYTES:
                    item = decode_struct_value(v)  # type: ignore[arg-type]
            if key is not None:
                hparams.values[key] = item
        elif number == 4 and kind == wire.BYTES:
            hparams.group_name = wire.as_text(value) or None  # type: ignore[arg-type]
        elif number == 5 and kind == wire.FIXED64:
            hparams.start_time = wire.as_double(value)  # type: ignore[arg-type]


def decode_struct_value(data: memoryview) -> Any:
    """A ``google.protobuf.Value``: number, string, bool or null (lists/structs as None)."""
    for number, kind, value in wire.iter_fields(data):
        if number == 2 and kind == wire.FIXED64:
            return wire.as_double(value)  # type: ignore[arg-type]
        if number == 3 and kind == wire.BYTES:
            return wire.as_text(value)  # type: ignore[arg-type]
        if number == 4 and kind == wire.VARINT:
            return bool(value)
    return None


def read_experiment_metrics(data: memoryview) -> list[str]:
    """The metric tags an hparams ``Experiment`` declares (``metric_infos.name.tag``)."""
    tags = []
    for number, kind, info in wire.iter_fields(data):
        if number != 5 or kind != wire.BYTES:
            continue
        for n, k, name in wire.iter_fields(info):  # type: ignore[arg-type]
            if n == 1 and k == wire.BYTES:
                tags += [wire.as_text(t) for m, j, t in wire.iter_fields(name)  # type: ignore
                         if m == 2 and j == wire.BYTES]
    return tags


# --- scanning a folder or file ------------------------------------------------------------------


def list_event_files(path: Path) -> list[Path]:
    """``path`` itself when it is a file, else the event files directly in the folder, by name.

    Names start with the writer's start time, so name order is write order.
    """
    if path.is_file():
        return [path]
    return sorted(p for p in path.iterdir() if p.name.startswith(EVENT_PREFIX) and p.is_file())


def scan_events(path: Path, ctx: CrawlContext, run_id: str, scan: EventScan) -> Iterator[Metric]:
    """Yield every scalar point under ``path`` (a file or a folder); fill ``scan`` on the way."""
    plugins: dict[str, str] = {}
    for event_file in list_event_files(path):
        with ctx.mapped(event_file) as buf:
            if not buf:
                ctx.warn("empty event file (no records)", event_file, "empty_file")
                continue
            for record in iter_tfrecords(buf, ctx, event_file):
                yield from scan_record(record, ctx, event_file, run_id, scan, plugins)


def scan_record(record: TFRecord, ctx: CrawlContext, path: Path, run_id: str, scan: EventScan,
                plugins: dict[str, str]) -> Iterator[Metric]:
    """The scalar points of one record; its CRC is checked only when it carries something used."""
    try:
        event = decode_event(record.data)
    except wire.WireError as exc:
        problem = "bad data CRC" if not record.is_intact() else f"undecodable event ({exc})"
        ctx.warn(f"{problem} at offset {record.offset}; record skipped", path, "corrupt_record")
        return
    if event is None:
        return
    points = []
    hparams_content = []
    for value in event.values:
        if value.plugin is not None:
            plugins[value.tag] = value.plugin  # TF2 writers send metadata on a tag's first event only
        plugin = plugins.get(value.tag)
        if value.simple_value is not None:
            points.append((value.tag, value.simple_value, "simple_value"))
        elif plugin == SCALARS_PLUGIN and value.tensor_value is not None:
            points.append((value.tag, value.tensor_value, "tensor"))
        elif plugin == HPARAMS_PLUGIN and value.plugin_content:
            hparams_content.append(value.plugin_content)
    if not points and not hparams_content:
        return
    if not record.is_intact():
        ctx.warn(f"bad data CRC at offset {record.offset}; record skipped", path, "corrupt_record")
        return
    note_wall_time(scan, event.wall_time)
    for content in hparams_content:
        apply_hparams(content, scan.hparams)
    timestamp = from_epoch_s(event.wall_time)
    for tag, number, storage in points:
        scan.storage[tag] = storage
        if (tag, number) != LIGHTNING_PLACEHOLDER:
            yield Metric(run_id, tag, number, step=event.step, timestamp=timestamp)


def note_wall_time(scan: EventScan, wall_time: float | None) -> None:
    """Track the first and last wall time seen (the run's start and end)."""
    if wall_time is None:
        return
    if scan.first_wall_time is None or wall_time < scan.first_wall_time:
        scan.first_wall_time = wall_time
    if scan.last_wall_time is None or wall_time > scan.last_wall_time:
        scan.last_wall_time = wall_time


def hparam_records(hparams: HParams, run_id: str) -> Iterator[Param]:
    """The hparams plugin's values as params."""
    for key, value in hparams.values.items():
        yield Param(run_id, key, to_text(value), origin="hparams")


def read_scalars(path: Path, ctx: CrawlContext, run_id: str) -> Iterator[Metric]:
    """Every scalar point of an event file or of a folder's event files (public, stable API)."""
    yield from scan_events(path, ctx, run_id, EventScan())


def read_hparams(path: Path, ctx: CrawlContext, run_id: str) -> Iterator[Param]:
    """The hparams plugin values of an event file or folder as params (public, stable API)."""
    scan = EventScan()
    for _ in scan_events(path, ctx, run_id, scan):
        pass
    yield from hparam_records(scan.hparams, run_id)


def has_event_files(names: Iterable[str]) -> bool:
    """True when one of ``names`` is a TensorBoard event file."""
    return any(name.startswith(EVENT_PREFIX) for name in names)
