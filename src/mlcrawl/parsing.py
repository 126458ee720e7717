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


#: Nodes a YAML document may expand to through its aliases.  Aliases share one object, so
#: loading a "billion laughs" is cheap; everything after it (flattening, JSON text, rows) walks
#: the expansion, 10^9 nodes.  Real configs with anchors stay far below this.
YAML_EXPANSION_LIMIT = 1_000_000


class DocumentTooComplex(ValueError):
    """A document whose nesting or alias expansion is beyond what any tool writes."""


def load_yaml(text: str | bytes, expansion_limit: int = YAML_EXPANSION_LIMIT) -> Any:
    """Parse YAML with a safe loader; Python-object tags are read as data, never constructed.

    A document whose aliases expand past ``expansion_limit`` nodes, or that refers to itself,
    raises DocumentTooComplex (a ValueError) before anything walks it.
    """
    loader = _SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        # Expansion needs an alias, and an alias needs a "*": plain documents skip the count.
        if (b"*" if isinstance(text, bytes) else "*") in text:
            _check_expansion(node, expansion_limit)
        return loader.construct_document(node)
    except RecursionError:
        # The pure-Python parser (no libyaml) recurses per nesting level.
        raise DocumentTooComplex("YAML nested too deeply to read") from None
    finally:
        loader.dispose()


def _check_expansion(root: yaml.Node, limit: int) -> None:
    """Raise unless the node graph, with every alias expanded, stays within ``limit`` nodes.

    Iterative post-order over the graph with the expanded size of each node memoised, so a
    DAG of shared aliases costs its unique nodes, not its expansion.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            open_nodes.discard(key)
            total = 1 + sum(sizes[id(child)] for child in _children(node))
            if total > limit:
                raise DocumentTooComplex(f"YAML aliases expand to more than {limit:,} nodes (an alias bomb?)")
            sizes[key] = total
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise DocumentTooComplex("YAML alias refers to a node that contains it (a recursive document)")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def load_json(text: str | bytes) -> Any:
    """Parse JSON, accepting the NaN/Infinity literals Python's json writes.

    A document nested deeper than the interpreter's recursion limit raises DocumentTooComplex
    (a ValueError, like any other unreadable JSON).
    """
    try:
        return json.loads(text)
    except RecursionError:
        raise DocumentTooComplex("JSON nested too deeply to read") from None


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Yield ``(dotted.key, leaf)`` pairs of nested mappings in document order; lists stay whole leaves.

    Iterative, so no nesting depth makes it recurse.
    """
    stack: list[tuple[str, Any]] = [(prefix, value)]
    while stack:
        where, item = stack.pop()
        if not isinstance(item, Mapping):
            yield where, item
            continue
        if not item and where:
            yield where, item
        children = [(f"{where}.{key}" if where else str(key), child) for key, child in item.items()]
        stack.extend(reversed(children))


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
