"""Reads what a pickle would import and build, from its opcodes, without running any of it.

    pickle stream:  PROTO n | FRAME | ... GLOBAL "module name" ... STACK_GLOBAL ... STOP
                    (several pickles may follow one another, as in legacy torch files)
    torch data.pkl: ('storage', torch.FloatStorage, '0', 'cpu', 12) BINPERSID      -> a storage
                    torch._utils._rebuild_tensor_v2 (storage, offset, (3, 4), ...) REDUCE -> a tensor

``pickletools.genops`` only decodes opcodes: nothing is imported, constructed or called.  The
scan replays each opcode's stack effect on placeholders, tracking only strings, numbers, tuples
and global names, which is enough to name the classes and to see every tensor's dtype and shape.
It reads a bounded prefix and stops at the first bytes that are not pickle opcodes (joblib and
legacy torch files put raw array bytes between or after pickles).
"""

from __future__ import annotations

import io
import math
import pickletools
import re
from dataclasses import dataclass, field
from typing import Any

_STRING_OPS = frozenset(
    {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING", "SHORT_BINSTRING"}
)
_INT_OPS = frozenset({"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4"})
_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False, "EMPTY_TUPLE": ()}
_SMALL_TUPLES = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_NO_EFFECT = frozenset({"PROTO", "FRAME", "STOP"})
_TENSOR_REBUILDERS = frozenset(
    {"torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor_v3"}
)
_NAME = re.compile(r"[A-Za-z_][\w]*(?:\.[A-Za-z_<>][\w<>]*)*")
#: torch storage class -> dtype, as torch.save names storages in data.pkl.
TORCH_STORAGE_DTYPES = {
    "FloatStorage": "float32",
    "DoubleStorage": "float64",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
    "UntypedStorage": "uint8",
}
MAX_GLOBALS = 500
MAX_PICKLES = 16


class _Mark:
    """The MARK placeholder on the simulated stack."""


class _Unknown:
    """A value the scan does not model (dicts, lists, built objects...)."""


@dataclass(frozen=True)
class _Global:
    name: str


@dataclass(frozen=True)
class _Storage:
    dtype: str | None


MARK, UNKNOWN = _Mark(), _Unknown()


@dataclass
class PickleScan:
    """What the opcodes of a pickle prefix show.

    ``complete``: the first pickle was read to its STOP; ``stopped_at``: offset where bytes that
    are not pickle opcodes began (None when the prefix held only pickles).  ``tensors`` holds
    ``(dtype, element count)`` per torch tensor rebuilt; ``storages`` counts persistent ids.
    """

    protocol: int | None = None
    globals: list[str] = field(default_factory=list)
    tensors: list[tuple[str | None, int]] = field(default_factory=list)
    storages: int = 0
    pickles: int = 0
    complete: bool = False
    stopped_at: int | None = None


def scan_pickle(data: bytes) -> PickleScan:
    """Scan the pickles at the start of ``data`` for imported names and torch tensors."""
    scan = PickleScan()
    stream = io.BytesIO(data)
    try:
        while stream.tell() < len(data) and scan.pickles < MAX_PICKLES:
            _Machine(scan).run(stream)
            scan.pickles += 1
            scan.complete = True
    except ValueError:
        scan.stopped_at = stream.tell()
    return scan


class _Machine:
    """Replays one pickle's stack effects on placeholders."""

    def __init__(self, scan: PickleScan) -> None:
        self.scan = scan
        self.stack: list[Any] = []
        self.memo: dict[int, Any] = {}

    def run(self, stream: io.BytesIO) -> None:
        """Walk the opcodes up to STOP; ValueError when the bytes are not a pickle."""
        try:
            for opcode, arg, _pos in pickletools.genops(stream):
                self.step(opcode, arg)
        except IndexError as exc:
            raise ValueError("stack underflow: not a pickle") from exc

    def step(self, opcode: pickletools.OpcodeInfo, arg: Any) -> None:
        """Apply one opcode."""
        name, stack = opcode.name, self.stack
        if name == "PROTO" and self.scan.protocol is None:
            self.scan.protocol = int(arg)
        if name in _NO_EFFECT:
            return
        if name in _STRING_OPS:
            stack.append(arg if isinstance(arg, str) else UNKNOWN)
        elif name in _INT_OPS:
            stack.append(arg if isinstance(arg, int) else UNKNOWN)
        elif name in _CONSTANTS:
            stack.append(_CONSTANTS[name])
        elif name == "MARK":
            stack.append(MARK)
        elif name == "TUPLE":
            stack.append(tuple(self.pop_to_mark()))
        elif name in _SMALL_TUPLES:
            count = _SMALL_TUPLES[name]
            items = tuple(stack[-count:])
            if len(items) < count:
                raise IndexError(name)
            del stack[-count:]
            stack.append(items)
        elif name in ("GLOBAL", "INST"):
            self.push_global(*str(arg).split(" ", 1), consumes_mark=name == "INST")
        elif name == "STACK_GLOBAL":
            qualname, module = stack.pop(), stack.pop()
            self.push_global(module, qualname)
        elif name == "MEMOIZE":
            self.memo[len(self.memo)] = stack[-1]
        elif name in _PUT_OPS:
            self.memo[int(arg)] = stack[-1]
        elif name in _GET_OPS:
            stack.append(self.memo.get(int(arg), UNKNOWN))
        elif name in ("PERSID", "BINPERSID"):
            self.persistent_load(stack.pop() if name == "BINPERSID" else arg)
        elif name == "REDUCE":
            args, func = stack.pop(), stack.pop()
            self.reduce(func, args)
        else:
            self.generic(opcode)

    def pop_to_mark(self) -> list[Any]:
        """Pop the items above the topmost MARK, and the MARK."""
        stack = self.stack
        for index in range(len(stack) - 1, -1, -1):
            if stack[index] is MARK:
                items = stack[index + 1 :]
                del stack[index:]
                return items
        raise IndexError("no MARK")

    def generic(self, opcode: pickletools.OpcodeInfo) -> None:
        """Any other opcode: pop what it consumes, push placeholders for what it produces."""
        before = list(opcode.stack_before)
        if pickletools.markobject in before:
            self.pop_to_mark()
            before = before[: before.index(pickletools.markobject)]
        for _ in before:
            self.stack.pop()
        self.stack.extend(UNKNOWN for _ in opcode.stack_after)

    def push_global(self, module: Any, qualname: Any, consumes_mark: bool = False) -> None:
        """Record ``module.qualname``; a name that is not an identifier means we read garbage."""
        if consumes_mark:
            self.pop_to_mark()
        if not (isinstance(module, str) and isinstance(qualname, str)):
            self.stack.append(UNKNOWN)
            return
        if not (_NAME.fullmatch(module) and _NAME.fullmatch(qualname)):
            raise ValueError(f"not a pickle global: {module!r} {qualname!r}")
        dotted = f"{module}.{qualname}"
        if dotted not in self.scan.globals and len(self.scan.globals) < MAX_GLOBALS:
            self.scan.globals.append(dotted)
        self.stack.append(UNKNOWN if consumes_mark else _Global(dotted))

    def persistent_load(self, pid: Any) -> None:
        """A torch storage reference ``('storage', <class>, key, location, numel)``."""
        self.scan.storages += 1
        dtype = None
        if isinstance(pid, tuple) and len(pid) >= 2 and isinstance(pid[1], _Global):
            dtype = TORCH_STORAGE_DTYPES.get(pid[1].name.rsplit(".", 1)[-1])
        self.stack.append(_Storage(dtype))

    def reduce(self, func: Any, args: Any) -> None:
        """A call; a torch tensor rebuild ``(storage, offset, size, stride, ...)`` is recorded."""
        if isinstance(func, _Global) and func.name in _TENSOR_REBUILDERS and isinstance(args, tuple):
            size = args[2] if len(args) > 2 else None
            if isinstance(size, tuple) and all(isinstance(d, int) for d in size):
                dtype = args[0].dtype if isinstance(args[0], _Storage) else None
                self.scan.tensors.append((dtype, math.prod(size)))
        self.stack.append(UNKNOWN)
