"""Audit hook for make_traced_project.py: every file a traced program opens, in order, as JSON lines.

Loaded from PYTHONPATH by every Python process the generator starts; it records only while
MLCRAWL_TRACE_LOG is set, and not in the papermill driver (it reads and writes notebooks, it
does not run their code), only in the kernel and in scripts.
"""

import json
import os
import sys

_LOG = os.environ.get("MLCRAWL_TRACE_LOG")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _hook(event, args):
    if event != "open" or not _LOG or not sys.argv or sys.argv[0].endswith("papermill"):
        return
    path, mode, flags = (list(args) + [None, None, None])[:3]
    if not isinstance(path, (str, bytes, os.PathLike)) or isinstance(path, int):
        return
    writes = bool(set(str(mode or "")) & set("wax+")) or bool((flags or 0) & _WRITE_FLAGS)
    record = {"path": os.path.abspath(os.fsdecode(path)), "write": writes}
    with open(_LOG, "a", encoding="utf-8") as log:  # noqa: the hook's own open is skipped below
        log.write(json.dumps(record) + "\n")


_opening = False


def _guarded(event, args):
    global _opening
    if _opening:
        return
    _opening = True
    try:
        _hook(event, args)
    finally:
        _opening = False


sys.addaudithook(_guarded)
