"""Lists the classes a pickle would import, by reading its opcodes without running them.

    pickle stream:  PROTO n | FRAME | ... GLOBAL "module name" ... STACK_GLOBAL ... STOP
                    (several pickles may follow one another, as in legacy torch files)

``pickletools.genops`` only decodes opcodes: nothing is imported, constructed or called.  The
scan reads a bounded prefix and stops at the first byte sequence that is not a pickle opcode
(joblib and legacy torch files put raw array bytes between or after pickles).
"""

from __future__ import annotations

import io
import pickletools
import re
from collections import deque
from dataclasses import dataclass, field

_STRING_OPS = frozenset(
    {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING", "SHORT_BINSTRING"}
)
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_NAME = re.compile(r"[A-Za-z_][\w]*(?:\.[A-Za-z_<>][\w<>]*)*")
MAX_GLOBALS = 500
MAX_PICKLES = 16


@dataclass
class PickleScan:
    """What the opcodes of a pickle prefix show.

    ``complete``: the first pickle was read to its STOP; ``stopped_at``: offset where bytes that
    are not pickle opcodes began (None when the prefix held only pickles).
    """

    protocol: int | None = None
    globals: list[str] = field(default_factory=list)
    pickles: int = 0
    complete: bool = False
    stopped_at: int | None = None


def scan_pickle(data: bytes) -> PickleScan:
    """Scan the pickles at the start of ``data`` for the global names they would import."""
    scan = PickleScan()
    stream = io.BytesIO(data)
    try:
        while stream.tell() < len(data) and scan.pickles < MAX_PICKLES:
            scan_one(stream, scan)
            scan.pickles += 1
            scan.complete = True
    except ValueError:
        scan.stopped_at = stream.tell()
    return scan


def scan_one(stream: io.BytesIO, scan: PickleScan) -> None:
    """Walk one pickle up to its STOP, tracking the strings STACK_GLOBAL takes from the stack."""
    memo: dict[int, str | None] = {}
    pushed: deque[str | None] = deque([None, None], maxlen=2)
    for opcode, arg, _pos in pickletools.genops(stream):
        name = opcode.name
        if name == "PROTO":
            scan.protocol = scan.protocol if scan.protocol is not None else int(arg)
        elif name in ("GLOBAL", "INST"):
            add_global(scan, *str(arg).split(" ", 1))
            pushed.append(None)
        elif name == "STACK_GLOBAL":
            add_global(scan, pushed[0], pushed[1])
            pushed.extend((None, None))
        elif name in _STRING_OPS:
            pushed.append(arg if isinstance(arg, str) else None)
        elif name == "MEMOIZE":
            memo[len(memo)] = pushed[-1]
        elif name in _PUT_OPS:
            memo[int(arg)] = pushed[-1]
        elif name in _GET_OPS:
            pushed.append(memo.get(int(arg)))
        elif name not in ("FRAME", "STOP"):
            pushed.append(None)


def add_global(scan: PickleScan, module: str | None, qualname: str | None) -> None:
    """Record ``module.qualname`` once; a name that is not an identifier means we read garbage."""
    if module is None or qualname is None:
        return
    if not (_NAME.fullmatch(module) and _NAME.fullmatch(qualname)):
        raise ValueError(f"not a pickle global: {module!r} {qualname!r}")
    dotted = f"{module}.{qualname}"
    if dotted not in scan.globals and len(scan.globals) < MAX_GLOBALS:
        scan.globals.append(dotted)
