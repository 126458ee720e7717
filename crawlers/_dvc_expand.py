"""How DVC turns the ``stages`` of a dvc.yaml into concrete stages: ``${...}`` interpolation,
``foreach`` and ``matrix`` generation, named the way DVC names them.

    stages:
      train:                     -> "train"
        foreach: [a, b]          -> "train@a", "train@b"           (simple list: the values)
        foreach: [{x: 1}, ...]   -> "train@0", ...                 (composite list: the index)
        foreach: {us: .., eu: ..}-> "train@us", "train@eu"         (mapping: the keys; ${key})
        matrix: {m: [a, b], n: [1]} -> "train@a-1", "train@b-1"    (composite values: "m0")
        do: {cmd: "python ${item}"}

Only the simple cases are resolved (dotted keys and ``[n]`` indexes over the merged
context); anything else is left as written and reported through ``unresolved``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import product
from math import prod
from typing import Any

JOIN = "@"
#: A matrix multiplies its axes: a few short lists in a hostile dvc.yaml reach billions of stages.
MAX_MATRIX_STAGES = 10_000
_EXPR = re.compile(r"(?<!\\)\$\{\s*(?P<inner>[^}]*?)\s*\}")
_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_MISSING = object()


@dataclass(frozen=True, slots=True)
class ExpandedStage:
    """One concrete stage: its DVC name, the group it was generated from, its definition."""

    name: str
    group: str | None
    definition: dict


@dataclass
class Interpolator:
    """Resolves ``${...}`` against a context; remembers the expressions it could not resolve."""

    context: dict
    unresolved: set[str] = field(default_factory=set)

    def with_locals(self, **values: Any) -> Interpolator:
        """A child interpolator that also sees ``values`` (``item``, ``key``)."""
        child = Interpolator({**self.context, **values})
        child.unresolved = self.unresolved
        return child

    def resolve(self, value: Any) -> Any:
        """``value`` with every resolvable ``${...}`` replaced, recursively."""
        if isinstance(value, str):
            return self._resolve_str(value)
        if isinstance(value, Mapping):
            return {
                self._resolve_str(k) if isinstance(k, str) else k: self.resolve(v) for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    def _resolve_str(self, text: str) -> Any:
        whole = _EXPR.fullmatch(text)
        if whole:
            found = self._lookup(whole["inner"])
            return text if found is _MISSING else found
        return _EXPR.sub(self._substitute, text)

    def _substitute(self, match: re.Match[str]) -> str:
        found = self._lookup(match["inner"])
        return match[0] if found is _MISSING else to_dvc_str(found)

    def _lookup(self, expr: str) -> Any:
        node: Any = self.context
        for name, index in _PART.findall(expr):
            if name and isinstance(node, Mapping) and name in node:
                node = node[name]
            elif (
                index and isinstance(node, Sequence) and not isinstance(node, str) and int(index) < len(node)
            ):
                node = node[int(index)]
            else:
                self.unresolved.add(expr)
                return _MISSING
        return node


def to_dvc_str(value: Any) -> str:
    """A value as DVC prints it inside a string or a generated name (booleans lower case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def expand_stages(stages: Mapping, interp: Interpolator) -> Iterator[ExpandedStage]:
    """Every concrete stage of a ``stages`` mapping, foreach/matrix groups expanded."""
    if not isinstance(stages, Mapping):
        raise ValueError(f"dvc.yaml: 'stages' is a {type(stages).__name__}, not a mapping")
    for raw_name, definition in stages.items():
        name = str(raw_name)
        if not isinstance(definition, Mapping):
            continue
        if "foreach" in definition:
            yield from _expand_foreach(name, definition, interp)
        elif "matrix" in definition:
            yield from _expand_matrix(name, definition, interp)
        else:
            yield ExpandedStage(name, None, interp.resolve(dict(definition)))


def _expand_foreach(name: str, definition: Mapping, interp: Interpolator) -> Iterator[ExpandedStage]:
    iterable = interp.resolve(definition["foreach"])
    body = definition.get("do")
    body = body if isinstance(body, Mapping) else {}
    if isinstance(iterable, Mapping):
        for key, item in iterable.items():
            local = interp.with_locals(item=item, key=key)
            yield ExpandedStage(f"{name}{JOIN}{to_dvc_str(key)}", name, local.resolve(dict(body)))
    elif isinstance(iterable, list):
        composite = any(isinstance(v, (Mapping, list)) for v in iterable)
        for index, item in enumerate(iterable):
            key = to_dvc_str(index if composite else item)
            local = interp.with_locals(item=item)
            yield ExpandedStage(f"{name}{JOIN}{key}", name, local.resolve(dict(body)))


def _expand_matrix(name: str, definition: Mapping, interp: Interpolator) -> Iterator[ExpandedStage]:
    matrix = interp.resolve(definition["matrix"])
    if not isinstance(matrix, Mapping):
        return
    body = {k: v for k, v in definition.items() if k != "matrix"}
    axes = {k: list(enumerate(v)) for k, v in matrix.items() if isinstance(v, list)}
    count = prod(len(values) for values in axes.values())
    if count > MAX_MATRIX_STAGES:
        raise ValueError(f"dvc.yaml: matrix of stage {name!r} expands to {count:,} stages "
                         f"(over {MAX_MATRIX_STAGES:,}); not expanded")
    for combination in product(*axes.values()):
        item: dict[str, Any] = {}
        fragments: list[str] = []
        for axis, (index, value) in zip(axes, combination, strict=True):
            item[axis] = value
            composite = isinstance(value, (Mapping, list))
            fragments.append(f"{axis}{index}" if composite else to_dvc_str(value))
        local = interp.with_locals(item=item)
        yield ExpandedStage(f"{name}{JOIN}{'-'.join(fragments)}", name, local.resolve(body))
