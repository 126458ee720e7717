"""Checking what a crawler yields before it becomes rows: record types, field types, text.

Part of the guarded unit pipeline: a crawler that yields a dict, a record with a wrongly typed
field, or text that cannot be stored (surrogate escapes from non-UTF-8 names) fails its own unit
with one clear error row instead of crashing the writer and the whole crawl.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import datetime
from functools import cache

from .records import RECORD_TYPES, Record

_RECORD_SET = frozenset(RECORD_TYPES)


class BadRecord(TypeError):
    """A crawler yielded something that is not a valid record."""


@cache
def _field_types(cls: type) -> tuple[tuple[str, tuple[type, ...], bool], ...]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        args = typing.get_args(hint)
        optional = type(None) in args
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
            allowed = tuple(typing.get_origin(a) or a for a in args if a is not type(None))
        else:
            allowed = (typing.get_origin(hint) or hint,)
        if float in allowed:
            allowed = (*allowed, int)
        if dict in allowed or list in allowed:
            allowed = (*allowed, tuple)
        out.append((f.name, allowed, optional))
    return tuple(out)


def clean_text(value: str) -> str:
    """Text that UTF-8 can store: surrogate escapes (undecodable name bytes) shown as ``\\xNN``."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace") \
            if _only_escapes(value) else value.encode("utf-8", "backslashreplace").decode("utf-8")


def _only_escapes(value: str) -> bool:
    try:
        value.encode("utf-8", "surrogateescape")
        return True
    except UnicodeEncodeError:
        return False


def validate(record: object, crawler: str) -> Record:
    """``record`` checked (and its text made storable); raises BadRecord naming the field."""
    cls = type(record)
    if cls not in _RECORD_SET:
        raise BadRecord(f"crawler {crawler!r} yielded a {cls.__name__}, not an mlcrawl record")
    changes = {}
    for name, allowed, optional in _field_types(cls):
        value = getattr(record, name)
        if value is None:
            if not optional:
                raise BadRecord(f"{cls.__name__}.{name} is required, got None")
            continue
        if isinstance(value, bool) and bool not in allowed:
            raise BadRecord(f"{cls.__name__}.{name} must be {_names(allowed)}, got bool")
        if not isinstance(value, allowed):
            raise BadRecord(f"{cls.__name__}.{name} must be {_names(allowed)}, got {type(value).__name__}")
        if isinstance(value, datetime) and value.tzinfo is None:
            raise BadRecord(f"{cls.__name__}.{name} must be timezone-aware")
        if isinstance(value, str):
            cleaned = clean_text(value)
            if cleaned is not value:
                changes[name] = cleaned
    return dataclasses.replace(record, **changes) if changes else record


def _names(allowed: tuple[type, ...]) -> str:
    return " or ".join(sorted({t.__name__ for t in allowed}))
