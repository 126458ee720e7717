"""Decoding values from crawled documents: safe YAML/JSON loading, flattening, conversions.

Part of the plugin API (``mlcrawl.api``): every crawler, built-in or third-party, uses these
instead of writing its own.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

import yaml

# libyaml's C parser is ~7x faster; its constructor is still the safe Python one.
_BaseSafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _SafeLoader(_BaseSafeLoader):
    """A safe loader that reads unknown tags (``!!python/object:...``) as plain data.

    Lightning and Hydra files may carry Python-object tags; the safe loader refuses them and
    nothing must ever be constructed from them, so they are read as the mapping/sequence/
    scalar underneath.
    """


def _construct_unknown(loader: yaml.Loader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_SafeLoader.add_multi_constructor("!", _construct_unknown)
_SafeLoader.add_multi_constructor("tag:yaml.org,2002:python/", _construct_unknown)


def load_yaml(text: str | bytes) -> Any:
    """Parse YAML with a safe loader; Python-object tags are read as data, never constructed."""
    return yaml.load(text, Loader=_SafeLoader)  # noqa: S506 - _SafeLoader subclasses SafeLoader


def load_json(text: str | bytes) -> Any:
    """Parse JSON, accepting the NaN/Infinity literals Python's json writes."""
    return json.loads(text)


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Yield ``(dotted.key, leaf)`` pairs of nested mappings; lists stay whole leaves."""
    if isinstance(value, Mapping):
        if not value and prefix:
            yield prefix, value
        for key, child in value.items():
            yield from flatten(child, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


def to_text(value: Any) -> str | None:
    """A param value as text: strings as they are, other values as JSON (None stays None)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return str(value)


def to_float(value: Any) -> float | None:
    """A metric value as float, or None when it is not a number (booleans are not numbers)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def from_epoch_ms(ms: Any) -> datetime | None:
    """A UTC datetime from epoch milliseconds (None for missing or absurd values)."""
    seconds = to_float(ms)
    return from_epoch_s(seconds / 1000.0) if seconds is not None else None


def from_epoch_s(seconds: Any) -> datetime | None:
    """A UTC datetime from epoch seconds (None for missing or absurd values)."""
    value = to_float(seconds)
    if value is None or not math.isfinite(value):
        return None
    try:
        return datetime.fromtimestamp(value, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def parse_iso(text: Any) -> datetime | None:
    """A UTC datetime from an ISO-8601 string; naive times are taken as UTC."""
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
