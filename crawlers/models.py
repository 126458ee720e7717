"""Models crawler: model and checkpoint files read safely, never loaded or unpickled.

    *.safetensors   [8-byte LE header length][JSON header][tensor data]
                    -> tensor/parameter counts, dtypes, ``__metadata__`` (as ``metadata``)
    *.onnx          protobuf ModelProto -> inputs, outputs, opset, initializer counts
    *.pt *.pth *.ckpt *.bin   zip archive  <root>/data.pkl, data/<n>, byteorder, version
                    -> entry listing; tensors (count, elements, dtypes) and the classes
                    data.pkl names, from replaying its opcodes on placeholders (no unpickling)
                    a non-zip torch file is a legacy pickle: opaque, with a warning
    *.pkl *.pickle *.joblib   pickle (joblib: maybe compressed) -> opaque, with a warning,
                    plus the protocol and the classes the opcodes would import
    *.skops         zip archive  schema.json, <id>.npy -> listing + classes in schema.json

``parameter_count`` is the number of elements of every tensor in the file: a model's
parameters (and buffers) for weights files, more for a training checkpoint that also holds
optimizer state.  A ``.bin`` that is neither a zip nor a pickle is not a model format this
crawler knows, and yields nothing.  ``metadata`` holds the format's own facts.
"""

from __future__ import annotations

import bz2
import json
import lzma
import math
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from mlcrawl.api import BaseCrawler, Claims, CrawlContext, Model, Options, Record

from ._onnx import OnnxFormatError, read_onnx
from ._pickle_scan import PickleScan, scan_pickle

SAFETENSORS = ".safetensors"
ONNX = ".onnx"
TORCH_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
SKOPS = ".skops"
MODEL_SUFFIXES = (SAFETENSORS, ONNX, SKOPS) + TORCH_SUFFIXES + PICKLE_SUFFIXES

#: safetensors caps its own header at 100 MB; a longer claim means a corrupt or foreign file.
MAX_SAFETENSORS_HEADER = 100_000_000
#: Bytes of a pickle (or of a zip member such as data.pkl, or skops' schema.json) read at most.
#: Replaying opcodes costs about 0.5 s per MiB in the worst case (a pickle of small ints); a
#: torch data.pkl is ~150 bytes per tensor, so 2 MiB covers checkpoints of ~10,000 tensors.
DEFAULT_SCAN_BYTES = 2 << 20
MAX_LISTED_ENTRIES = 200

ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"
PICKLE_WARNING = (
    "pickle: loading this file (pickle.load, joblib.load, torch.load(weights_only=False)) can "
    "execute arbitrary code; it was not loaded"
)
#: Names torch.load(weights_only=True) accepts from a zip checkpoint's data.pkl.
_WEIGHTS_ONLY_PREFIXES = ("torch.", "collections.OrderedDict", "builtins.", "_codecs.encode")
#: Leading bytes of the compressors joblib can use, and a bounded decompressor for each.
_COMPRESSIONS = (
    (b"\x1f\x8b", "gzip"),
    (b"\x78", "zlib"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x5d\x00\x00", "lzma"),
    (b"\x04\x22\x4d\x18", "lz4"),
)


@dataclass(frozen=True)
class ModelsOptions(Options):
    """Options of ``[crawlers.models]``."""

    scan_bytes: int = DEFAULT_SCAN_BYTES
    """at most this many bytes of a pickle are scanned (never unpickled)"""


class ModelsCrawler(BaseCrawler):
    """safetensors, ONNX, PyTorch, pickle/joblib and skops files -> one Model record each."""

    name: ClassVar[str] = "models"
    claims = Claims(files=tuple("*" + s for s in MODEL_SUFFIXES))
    Options = ModelsOptions
    version: ClassVar[int] = 1

    def match(self, path: Path, is_dir: bool) -> bool:
        """Claim model files by suffix; never folders."""
        return not is_dir and path.suffix.lower() in MODEL_SUFFIXES

    def crawl(self, unit: Path, ctx: CrawlContext) -> Iterator[Record]:
        """Dispatch on the suffix, then on the leading bytes for the torch family."""
        suffix = unit.suffix.lower()
        if suffix == SAFETENSORS:
            yield read_safetensors(unit, ctx)
        elif suffix == ONNX:
            yield read_onnx_model(unit, ctx)
        elif suffix == SKOPS:
            yield read_skops(unit, ctx)
        elif suffix in PICKLE_SUFFIXES:
            yield read_pickle(unit, ctx)
        else:
            yield from read_torch(unit, ctx)


# --- safetensors ---------------------------------------------------------------------------


def read_safetensors(path: Path, ctx: CrawlContext) -> Model:
    """Counts, dtypes and ``__metadata__`` from the JSON header; the tensor data is not read."""
    rel, size = ctx.relpath(path), ctx.size(path)
    with ctx.open(path) as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise ValueError(f"{rel}: {size} bytes is too short for a safetensors file")
        length = int.from_bytes(prefix, "little")
        if length > MAX_SAFETENSORS_HEADER or length > size - 8:
            raise ValueError(
                f"{rel}: absurd safetensors header length {length} (file is {size} bytes, "
                f"limit {MAX_SAFETENSORS_HEADER}); corrupt or not safetensors"
            )
        raw = f.read(length)
    header = parse_safetensors_header(raw, rel)
    metadata = header.pop("__metadata__", None)
    tensors = [check_tensor_entry(name, entry, rel) for name, entry in header.items()]
    data_end = 8 + length + max((end for _, _, end in tensors), default=0)
    if data_end > size:
        ctx.warn(f"truncated: tensor data should end at byte {data_end}, file has {size}", path)
    return Model(
        rel,
        "safetensors",
        ctx.sha256(path),
        tensor_count=len(tensors),
        parameter_count=sum(count for _, count, _ in tensors),
        dtypes=sorted({dtype for dtype, _, _ in tensors}),
        metadata=metadata if isinstance(metadata, dict) else None,
    )


def parse_safetensors_header(raw: bytes, rel: str) -> dict[str, Any]:
    """The header JSON object; a clear error when it is not one."""
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{rel}: safetensors header is not JSON: {exc}") from exc
    if not isinstance(header, dict):
        # A ValueError like every other bad-content case: the runner reports it as bad input.
        raise ValueError(f"{rel}: safetensors header is a {type(header).__name__}, not an object")  # noqa: TRY004
    return header


def check_tensor_entry(name: str, entry: Any, rel: str) -> tuple[str, int, int]:
    """``(dtype, element count, data end offset)`` of one header entry, validated."""
    try:
        dtype, shape, (_, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise TypeError
        return dtype, math.prod(shape), int(end)
    except (TypeError, KeyError, ValueError) as exc:
        raise ValueError(f"{rel}: malformed safetensors entry for tensor {name!r}: {entry!r:.200}") from exc


# --- ONNX ----------------------------------------------------------------------------------


def read_onnx_model(path: Path, ctx: CrawlContext) -> Model:
    """Graph inputs/outputs (initializers excluded), opset and initializer counts."""
    rel = ctx.relpath(path)
    try:
        with ctx.open(path) as f:
            onnx = read_onnx(f, ctx.size(path))
    except OnnxFormatError as exc:
        raise ValueError(f"{rel}: not a readable ONNX model: {exc}") from exc
    initializer_names = {name for name, _, _ in onnx.initializers}
    metadata = {
        "ir_version": onnx.ir_version,
        "producer_name": onnx.producer_name,
        "producer_version": onnx.producer_version,
        "domain": onnx.domain,
        "model_version": onnx.model_version,
        "graph_name": onnx.graph_name,
        "node_count": onnx.node_count,
        "opset_imports": onnx.opset_imports,
        "metadata_props": onnx.metadata_props,
    }
    return Model(
        rel,
        "onnx",
        ctx.sha256(path),
        tensor_count=len(onnx.initializers),
        parameter_count=sum(count for _, _, count in onnx.initializers),
        dtypes=sorted({dtype for _, dtype, _ in onnx.initializers if dtype}),
        inputs=[i for i in onnx.inputs if i["name"] not in initializer_names],
        outputs=onnx.outputs,
        opset=onnx.opset_imports.get("", onnx.opset_imports.get("ai.onnx")),
        metadata=metadata,
    )


# --- PyTorch -------------------------------------------------------------------------------


def read_torch(path: Path, ctx: CrawlContext) -> Iterator[Model]:
    """A zip checkpoint is listed; a legacy pickle is opaque; an unknown ``.bin`` is skipped."""
    magic = ctx.read_prefix(path, 4)
    if magic in (ZIP_MAGIC, EMPTY_ZIP_MAGIC):
        yield read_torch_zip(path, ctx)
    elif magic[:1] == b"\x80":
        yield read_pickle(path, ctx, fmt="pytorch-legacy")
    elif path.suffix.lower() != ".bin":
        raise ValueError(f"{ctx.relpath(path)}: neither a zip archive nor a pickle (starts {magic!r})")


def read_torch_zip(path: Path, ctx: CrawlContext) -> Model:
    """Entries of a torch zip checkpoint, its tensors and the classes its data.pkl names."""
    limit = int(ctx.options.get("scan_bytes", DEFAULT_SCAN_BYTES))
    with open_zip(path, ctx) as (archive, infos):
        root = archive_root(infos)
        pickle_info = next((i for i in infos if i.filename == f"{root}data.pkl"), None)
        scan = scan_pickle(read_member(archive, pickle_info, limit)) if pickle_info else PickleScan()
        small = {
            name: read_small_text(archive, f"{root}{name}")
            for name in ("byteorder", "version", ".format_version")
        }
    storages = [i for i in infos if i.filename.startswith(f"{root}data/")]
    metadata = {
        **zip_listing(infos),
        "archive_root": root.rstrip("/") or None,
        "has_data_pkl": pickle_info is not None,
        "byteorder": small["byteorder"],
        "version": small["version"],
        "format_version": small[".format_version"],
        "storages": len(storages),
        "storage_bytes": sum(i.file_size for i in storages),
        **pickle_facts(scan),
    }
    foreign = [name for name in scan.globals if not name.startswith(_WEIGHTS_ONLY_PREFIXES)]
    warning = (
        f"data.pkl names classes beyond torch's weights-only set ({', '.join(foreign[:5])}): "
        "torch.load(weights_only=False) would import and run them"
        if foreign
        else None
    )
    # Counts from a data.pkl cut at scan_bytes would be partial: better none than wrong.
    tensors = scan.tensors if scan.complete else None
    return Model(
        ctx.relpath(path),
        "pytorch",
        ctx.sha256(path),
        tensor_count=len(tensors) if tensors is not None else None,
        parameter_count=sum(count for _, count in tensors) if tensors is not None else None,
        dtypes=sorted({dtype for dtype, _ in tensors or () if dtype}) or None,
        metadata=metadata,
        warning=warning,
    )


def archive_root(infos: list[zipfile.ZipInfo]) -> str:
    """The folder every torch archive entry sits in (``archive/``, ``<stem>/``), with its slash."""
    for info in infos:
        if info.filename.endswith("data.pkl"):
            return info.filename[: -len("data.pkl")]
    first = infos[0].filename if infos else ""
    return first.split("/", 1)[0] + "/" if "/" in first else ""


def read_small_text(archive: zipfile.ZipFile, name: str) -> str | None:
    """A tiny text entry (byteorder, version), or None when absent."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        return None
    return read_member(archive, info, 64).decode("utf-8", "replace").strip()


# --- zip archives (torch, skops) -----------------------------------------------------------


@contextmanager
def open_zip(path: Path, ctx: CrawlContext) -> Iterator[tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]]:
    """The archive and its entries; a corrupt or truncated zip becomes a clear ValueError."""
    problem = f"{ctx.relpath(path)}: truncated or corrupt zip archive"
    with ctx.open(path) as stream:
        try:
            archive = zipfile.ZipFile(stream)
        except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as exc:
            raise ValueError(f"{problem}: {exc}") from exc
        with archive:
            try:
                yield archive, archive.infolist()
            except (zipfile.BadZipFile, EOFError, zlib.error, OSError, NotImplementedError) as exc:
                raise ValueError(f"{problem}: {exc}") from exc


def read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """At most ``limit`` bytes of one archive entry (decompressed in bounded steps)."""
    with archive.open(info) as member:
        return member.read(limit)


def zip_listing(infos: list[zipfile.ZipInfo]) -> dict[str, Any]:
    """Entry count, total uncompressed size, and the names (numbered tensor blobs left out)."""
    names = [i.filename for i in infos if "/data/" not in i.filename and not i.filename.startswith("data/")]
    return {
        "entries": len(infos),
        "total_size": sum(i.file_size for i in infos),
        "names": names[:MAX_LISTED_ENTRIES],
    }


def read_skops(path: Path, ctx: CrawlContext) -> Model:
    """Entries of a skops archive and the classes its schema.json describes."""
    limit = int(ctx.options.get("scan_bytes", DEFAULT_SCAN_BYTES))
    with open_zip(path, ctx) as (archive, infos):
        schema_info = next((i for i in infos if i.filename == "schema.json"), None)
        raw = read_member(archive, schema_info, limit) if schema_info else b""
    metadata: dict[str, Any] = zip_listing(infos)
    try:
        schema = json.loads(raw) if raw else {}
    except ValueError:
        ctx.warn("schema.json is not JSON (or longer than scan_bytes); classes not listed", path)
        schema = {}
    if isinstance(schema, dict) and schema:
        metadata["class"] = f"{schema.get('__module__')}.{schema.get('__class__')}"
        metadata["protocol"] = schema.get("protocol")
        metadata["skops_version"] = schema.get("_skops_version")
        metadata["classes"] = sorted(schema_classes(schema))[:MAX_LISTED_ENTRIES]
    return Model(ctx.relpath(path), "skops", ctx.sha256(path), metadata=metadata)


def schema_classes(node: Any, depth: int = 0) -> set[str]:
    """Every ``module.class`` named in a skops schema tree."""
    found: set[str] = set()
    if depth > 64:
        return found
    if isinstance(node, dict):
        if isinstance(node.get("__module__"), str) and isinstance(node.get("__class__"), str):
            found.add(f"{node['__module__']}.{node['__class__']}")
        for child in node.values():
            found |= schema_classes(child, depth + 1)
    elif isinstance(node, list):
        for child in node:
            found |= schema_classes(child, depth + 1)
    return found


# --- pickle / joblib -----------------------------------------------------------------------


def read_pickle(path: Path, ctx: CrawlContext, fmt: str | None = None) -> Model:
    """An opaque pickle: its protocol and imported classes from a bounded opcode scan."""
    limit = int(ctx.options.get("scan_bytes", DEFAULT_SCAN_BYTES))
    head = ctx.read_prefix(path, limit)
    compression = detect_compression(head)
    metadata: dict[str, Any] = {"compression": compression}
    if compression is None:
        metadata.update(pickle_facts(scan_pickle(head)))
    elif compression != "lz4":
        metadata.update(pickle_facts(scan_pickle(decompress_prefix(head, compression, limit))))
    if compression is None and head[:1] != b"\x80":
        ctx.warn("does not start with a pickle protocol marker; maybe not a pickle", path)
    suffix_format = {".joblib": "joblib"}.get(path.suffix.lower(), "pickle")
    return Model(
        ctx.relpath(path), fmt or suffix_format, ctx.sha256(path), metadata=metadata, warning=PICKLE_WARNING
    )


def pickle_facts(scan: PickleScan) -> dict[str, Any]:
    """The scan's findings as metadata keys."""
    return {
        "pickle_protocol": scan.protocol,
        "globals": scan.globals,
        "pickle_scan_complete": scan.complete,
    }


def detect_compression(head: bytes) -> str | None:
    """The joblib compressor whose magic bytes start ``head``, or None for a raw pickle."""
    if head[:1] == b"\x80":
        return None
    return next((name for magic, name in _COMPRESSIONS if head.startswith(magic)), None)


def decompress_prefix(head: bytes, compression: str, limit: int) -> bytes:
    """At most ``limit`` decompressed bytes of a compressed prefix (never a decompression bomb)."""
    decompressor: Any
    if compression in ("gzip", "zlib"):
        decompressor = zlib.decompressobj(zlib.MAX_WBITS | 32)
    elif compression == "bz2":
        decompressor = bz2.BZ2Decompressor()
    else:
        decompressor = lzma.LZMADecompressor()
    try:
        return decompressor.decompress(head, limit)
    except (zlib.error, OSError, EOFError, lzma.LZMAError):
        return b""
