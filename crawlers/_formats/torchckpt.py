"""The plain-data skeleton of a ``torch.save`` zip archive (a Lightning ``.ckpt``), never unpickled.

    <stem>/data.pkl        pickle of the saved object; tensors are persistent ids
                           ('storage', torch.FloatStorage, '<key>', 'cpu', numel)
    <stem>/data/<key>      raw little-endian storage bytes
    <stem>/version, ...    format bookkeeping

``pickletools.genops`` only decodes opcodes; this module replays their stack effect on plain
values (dicts, lists, tuples, strings, numbers) and stands an ``Opaque`` in for every object the
pickle would construct.  A one-element tensor (a monitored score) becomes its number, read from
its storage member; bigger tensors stay ``Tensor`` descriptions and their bytes are never read.
"""

from __future__ import annotations

import io
import pickletools
import struct
import zipfile
from dataclasses import dataclass
from typing import Any, BinaryIO

#: data.pkl beyond this is not scanned (a checkpoint's pickle holds structure; weights are apart).
MAX_PICKLE_BYTES = 64 << 20
#: Values built from one pickle at most (a pickle can describe huge containers cheaply).
MAX_VALUES = 2_000_000
_STORAGE_FORMATS = {"FloatStorage": "f", "DoubleStorage": "d", "HalfStorage": "e", "LongStorage": "q",
                    "IntStorage": "i", "ShortStorage": "h", "CharStorage": "b", "ByteStorage": "B",
                    "BoolStorage": "?"}
_TENSOR_REBUILDERS = frozenset({"torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2",
                                "torch._utils._rebuild_tensor_v3"})
_DICT_BUILDERS = frozenset({"collections.OrderedDict", "builtins.dict"})


class CheckpointError(ValueError):
    """The archive or its pickle cannot be read."""


@dataclass(frozen=True)
class Opaque:
    """An object the pickle would build by calling ``name``; never built here."""

    name: str


@dataclass(frozen=True)
class Tensor:
    """A tensor described by the pickle: storage key, dtype, element offset and shape."""

    storage: str
    storage_type: str
    offset: int
    shape: tuple


@dataclass(frozen=True)
class _Storage:
    key: str
    storage_type: str


class _Mark:
    pass


_MARK = _Mark()


def read_checkpoint(stream: BinaryIO) -> Any:
    """The saved object of a torch zip archive as plain data; scalar tensors as numbers."""
    try:
        archive = zipfile.ZipFile(stream)
    except zipfile.BadZipFile as exc:
        raise CheckpointError(f"not a torch zip archive ({exc})") from exc
    with archive:
        members = {info.filename: info for info in archive.infolist()}
        pickles = [name for name in members if name.endswith("/data.pkl") or name == "data.pkl"]
        if not pickles:
            raise CheckpointError("no data.pkl in the archive")
        name = min(pickles, key=len)
        if members[name].file_size > MAX_PICKLE_BYTES:
            raise CheckpointError(f"data.pkl is {members[name].file_size} bytes, over {MAX_PICKLE_BYTES}")
        try:
            data = archive.read(name)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise CheckpointError(f"data.pkl unreadable ({exc})") from exc
        prefix = name[: -len("data.pkl")]
        value = replay(data)
        return _scalars(value, lambda key: _storage_bytes(archive, members, f"{prefix}data/{key}"))


def _storage_bytes(archive: zipfile.ZipFile, members: dict, name: str) -> bytes | None:
    info = members.get(name)
    if info is None or info.file_size > 64:
        return None
    try:
        return archive.read(name)
    except (zipfile.BadZipFile, OSError, EOFError):
        return None


def _scalars(value: Any, storage: Any, depth: int = 0) -> Any:
    """``value`` with one-element tensors replaced by the number their storage holds."""
    if depth > 100:
        return value
    if isinstance(value, Tensor):
        code = _STORAGE_FORMATS.get(value.storage_type)
        numel = 1
        for dim in value.shape:
            numel *= dim if isinstance(dim, int) else 2
        raw = storage(value.storage) if code and numel == 1 else None
        if raw is None:
            return value
        size = struct.calcsize(code)
        start = value.offset * size
        if len(raw) < start + size:
            return value
        number = struct.unpack_from("<" + code, raw, start)[0]
        return float(number) if code in "fde" else int(number) if code != "?" else bool(number)
    if isinstance(value, dict):
        return {k: _scalars(v, storage, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_scalars(v, storage, depth + 1) for v in value]
    return value


def replay(data: bytes) -> Any:
    """The value of one pickle, replayed on plain data; raise CheckpointError on broken opcodes."""
    stack: list[Any] = []
    memo: dict[int, Any] = {}
    count = 0
    try:
        for op, arg, _ in pickletools.genops(io.BytesIO(data)):
            count += 1
            if count > MAX_VALUES:
                raise CheckpointError(f"more than {MAX_VALUES} pickle opcodes")
            name = op.name
            if name == "STOP":
                return stack.pop() if stack else None
            _step(name, arg, stack, memo)
    except CheckpointError:
        raise
    except (ValueError, IndexError, KeyError, TypeError, struct.error) as exc:
        raise CheckpointError(f"unreadable pickle ({type(exc).__name__}: {exc})") from exc
    raise CheckpointError("pickle ends before STOP (truncated)")


def _pop_mark(stack: list[Any]) -> list[Any]:
    for i in range(len(stack) - 1, -1, -1):
        if stack[i] is _MARK:
            items = stack[i + 1:]
            del stack[i:]
            return items
    raise ValueError("no MARK on the stack")


def _step(name: str, arg: Any, stack: list[Any], memo: dict[int, Any]) -> None:  # noqa: C901 - one opcode table
    if name in ("PROTO", "FRAME"):
        return
    if name in ("EMPTY_DICT", "DICT"):
        stack.append(dict(_pairs(_pop_mark(stack))) if name == "DICT" else {})
    elif name in ("EMPTY_LIST", "LIST"):
        stack.append(_pop_mark(stack) if name == "LIST" else [])
    elif name == "EMPTY_TUPLE":
        stack.append(())
    elif name == "TUPLE":
        stack.append(tuple(_pop_mark(stack)))
    elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
        n = int(name[-1])
        items = tuple(stack[-n:])
        del stack[-n:]
        stack.append(items)
    elif name == "MARK":
        stack.append(_MARK)
    elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
        memo[arg] = stack[-1]
    elif name == "MEMOIZE":
        memo[len(memo)] = stack[-1]
    elif name in ("GET", "BINGET", "LONG_BINGET"):
        stack.append(memo[arg])
    elif name in ("NONE", "NEWTRUE", "NEWFALSE"):
        stack.append({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[name])
    elif name in ("SETITEM", "SETITEMS"):
        items = [stack.pop(), stack.pop()][::-1] if name == "SETITEM" else _pop_mark(stack)
        target = stack[-1]
        if isinstance(target, dict):
            for key, value in _pairs(items):
                target[key] = value
    elif name in ("APPEND", "APPENDS"):
        items = [stack.pop()] if name == "APPEND" else _pop_mark(stack)
        if isinstance(stack[-1], list):
            stack[-1].extend(items)
    elif name in ("GLOBAL", "STACK_GLOBAL"):
        if name == "STACK_GLOBAL":
            attr, module = stack.pop(), stack.pop()
            arg = f"{module} {attr}"
        stack.append(Opaque(".".join(str(arg).split(" ", 1))))
    elif name in ("BINPERSID", "PERSID"):
        pid = stack.pop() if name == "BINPERSID" else arg
        stack.append(_persistent(pid))
    elif name == "REDUCE":
        args, func = stack.pop(), stack.pop()
        stack.append(_reduce(func, args))
    elif name in ("NEWOBJ", "NEWOBJ_EX"):
        if name == "NEWOBJ_EX":
            stack.pop()
        stack.pop()
        cls = stack.pop()
        stack.append(Opaque(cls.name if isinstance(cls, Opaque) else "object"))
    elif name == "BUILD":
        stack.pop()
    elif name == "POP":
        stack.pop()
    elif name == "POP_MARK":
        _pop_mark(stack)
    elif name == "DUP":
        stack.append(stack[-1])
    elif name in ("EMPTY_SET", "FROZENSET"):
        stack.append([] if name == "EMPTY_SET" else _pop_mark(stack))
    elif name == "ADDITEMS":
        items = _pop_mark(stack)
        if isinstance(stack[-1], list):
            stack[-1].extend(items)
    elif name in ("OBJ", "INST"):
        _pop_mark(stack)
        stack.append(Opaque(str(arg).replace(" ", ".") if arg else "object"))
    else:
        # Every remaining opcode pushes its decoded argument (strings, numbers, bytes).
        stack.append(arg)


def _pairs(items: list[Any]) -> list[tuple[Any, Any]]:
    pairs = []
    for i in range(0, len(items) - 1, 2):
        key = items[i]
        try:
            hash(key)
        except TypeError:
            key = repr(key)
        pairs.append((key, items[i + 1]))
    return pairs


def _persistent(pid: Any) -> Any:
    if isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage":
        kind = pid[1].name.rsplit(".", 1)[-1] if isinstance(pid[1], Opaque) else str(pid[1])
        return _Storage(str(pid[2]), kind)
    return Opaque("persistent_id")


def _reduce(func: Any, args: Any) -> Any:
    called = func.name if isinstance(func, Opaque) else "unknown"
    if called in _TENSOR_REBUILDERS and isinstance(args, tuple) and len(args) >= 3 \
            and isinstance(args[0], _Storage):
        shape = args[2] if isinstance(args[2], tuple) else ()
        offset = args[1] if isinstance(args[1], int) else 0
        return Tensor(args[0].key, args[0].storage_type, offset, shape)
    if called == "torch._utils._rebuild_parameter" and isinstance(args, tuple) and args:
        return args[0]
    if called in _DICT_BUILDERS:
        return {}
    return Opaque(called)
