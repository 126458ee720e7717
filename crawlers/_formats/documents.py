"""Loose metric and parameter documents (``metrics.json``, ``results.json``, ``params.yaml``...).

A private, pure reader shared by the crawlers: the generic crawler makes runs of them, and a
crawler that owns a run folder (a Lightning log dir) reads the ones beside its own files, so any
such document inside a run folder belongs to that run.  Metrics have no origin column: each
document read also yields an ``Artifact`` (role ``metrics`` or ``params``) naming it.

A list of numbers is a history: one Metric per item, ``step`` = its index.  A top-level list of
objects is a history too: ``step`` from each object's ``step``/``global_step`` (else its index),
``epoch`` from its ``epoch``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from mlcrawl.api import Artifact, CrawlContext, Metric, Param, Record, Tag, flatten, load_json, load_yaml, to_text

METRIC_NAMES = frozenset({"metrics.json", "results.json", "scores.json", "metrics.yaml", "metrics.yml",
                          "eval_results.json", "all_results.json"})
METRIC_SUFFIXES = ("_metrics.json", "_results.json")
METRICS_FOLDER = "metrics"
PARAM_NAMES = frozenset(
    {"params.yaml", "params.yml", "config.yaml", "config.yml", "hparams.yaml", "hparams.yml", "params.json"}
)
DOCUMENT_SUFFIXES = (".json", ".yaml", ".yml")
_STEP_KEYS = ("step", "global_step")
#: Metric files are small; a bigger one is more likely a data dump, and is refused.
DEFAULT_MAX_BYTES = 32 << 20
#: Leaves read from one file at most: YAML aliases can make a small file expand exponentially.
MAX_LEAVES = 100_000
#: A list or mapping leaf is kept as JSON text only up to this length.
MAX_VALUE_CHARS = 1 << 16


def is_param_file(path: Path) -> bool:
    """True for params.yaml, config.yaml, hparams.yaml, params.json (and .yml spellings)."""
    return path.name in PARAM_NAMES


def is_metric_file(path: Path) -> bool:
    """True for the well-known metric file names and for documents in a ``metrics/`` folder."""
    name = path.name
    return (
        name in METRIC_NAMES
        or (name.endswith(METRIC_SUFFIXES) and len(name) > len("_results.json"))
        or (path.parent.name == METRICS_FOLDER and name.endswith(DOCUMENT_SUFFIXES))
    )


def is_document(path: Path) -> bool:
    """True for a metric or parameter document."""
    return path.name.endswith(DOCUMENT_SUFFIXES) and (is_param_file(path) or is_metric_file(path))


def document_records(path: Path, ctx: CrawlContext, run_id: str, origin: str) -> Iterator[Record]:
    """The params or metrics/tags of one document for ``run_id``, plus the Artifact naming it;
    an unreadable document is one error row (the rest of the unit is kept) and no records."""
    try:
        document = read_document(path, ctx)
    except ValueError as exc:
        ctx.error(str(exc), path, "unreadable_document")
        return
    param = is_param_file(path)
    yield Artifact(run_id, ctx.relpath(path), role="params" if param else "metrics", facts={"origin": origin})
    if param:
        yield from param_records(run_id, document, path, ctx, origin)
    else:
        yield from metric_records(run_id, document, path, ctx)


def folder_records(folder: Path, ctx: CrawlContext, run_id: str, base: Path,
                   skip: tuple[str, ...] = ("hparams.yaml", "hparams.yml")) -> Iterator[Record]:
    """Every document directly in ``folder`` (but ``skip``) for ``run_id``; origin relative to ``base``."""
    try:
        paths = sorted(p for p in folder.iterdir() if p.name not in skip and is_document(p) and p.is_file())
    except OSError:
        return
    for path in paths:
        origin = Path(ctx.relpath(path)).relative_to(ctx.relpath(base)).as_posix() \
            if ctx.relpath(base) != "." else ctx.relpath(path)
        yield from document_records(path, ctx, run_id, origin)


def read_document(path: Path, ctx: CrawlContext) -> Any:
    """Parse the JSON or YAML file; raise a clear ValueError when it is too big or corrupt."""
    rel = ctx.relpath(path)
    limit = int(ctx.options.get("max_bytes", DEFAULT_MAX_BYTES) or DEFAULT_MAX_BYTES)
    size = ctx.size(path)
    if size > limit:
        raise ValueError(f"{rel}: {size} bytes is more than max_bytes={limit} for a metrics/params file")
    try:
        text = ctx.read_text(path)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{rel}: not UTF-8 text ({exc})") from exc
    if path.suffix == ".json":
        try:
            return load_json(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{rel}: not valid JSON: {exc}") from exc
    try:
        return load_yaml(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{rel}: not valid YAML: {exc}") from exc


def param_records(run_id: str, document: Any, path: Path, ctx: CrawlContext, origin: str) -> Iterator[Param]:
    """One Param per flattened leaf, with ``origin`` (the document's path)."""
    if document is None:
        return
    if not isinstance(document, Mapping):
        ctx.warn(f"parameter file holds a {type(document).__name__}, not a mapping; no params read", path)
        return
    for key, value in bounded_leaves(document, path, ctx):
        text = bounded_text(value)
        if text is None and value is not None:
            ctx.warn(
                f"value of {key!r} is longer than {MAX_VALUE_CHARS} characters or circular; skipped", path
            )
        else:
            yield Param(run_id, key, text, origin=origin)


def metric_records(run_id: str, document: Any, path: Path, ctx: CrawlContext) -> Iterator[Metric | Tag]:
    """Metrics from a mapping of results, or from a list of per-step result objects."""
    if document is None:
        return
    if isinstance(document, Mapping):
        for key, leaf in bounded_leaves(document, path, ctx):
            yield from leaf_records(run_id, key, leaf, path, ctx)
    elif isinstance(document, list) and document and all(isinstance(row, Mapping) for row in document):
        for index, row in enumerate(document):
            yield from history_row_metrics(run_id, index, row)
    else:
        ctx.warn(f"metrics file holds a {type(document).__name__}, not a mapping; no metrics read", path)


def leaf_records(run_id: str, key: str, leaf: Any, path: Path, ctx: CrawlContext) -> Iterator[Metric | Tag]:
    """A number is a Metric, a list of numbers a step-indexed history, anything else a Tag."""
    value = as_number(leaf)
    if value is not None:
        yield Metric(run_id, key, value)
    elif isinstance(leaf, list) and leaf and all(as_number(item) is not None for item in leaf):
        for step, item in enumerate(leaf):
            yield Metric(run_id, key, as_number(item), step=step)
    else:
        text = bounded_text(leaf)
        if text is None and leaf is not None:
            ctx.warn(
                f"value of {key!r} is longer than {MAX_VALUE_CHARS} characters or circular; skipped", path
            )
            return
        yield Tag(run_id, key, text)


def history_row_metrics(run_id: str, index: int, row: Mapping) -> Iterator[Metric]:
    """The numeric leaves of one object of a top-level list, stepped by its own step or index."""
    own_steps = [as_integer(row.get(key)) for key in _STEP_KEYS]
    step = next((own for own in own_steps if own is not None), index)
    epoch = as_integer(row.get("epoch"))
    for key, leaf in flatten(row):
        value = as_number(leaf)
        if value is not None and key not in _STEP_KEYS:
            yield Metric(run_id, key, value, step=step, epoch=epoch)


def bounded_leaves(document: Any, path: Path, ctx: CrawlContext) -> Iterator[tuple[str, Any]]:
    """``flatten(document)``, stopped after MAX_LEAVES; a self-referencing document is an error."""
    try:
        for count, pair in enumerate(flatten(document)):
            if count == MAX_LEAVES:
                ctx.warn(f"more than {MAX_LEAVES} values (YAML aliases?); the rest skipped", path)
                return
            yield pair
    except RecursionError as exc:
        raise ValueError(f"{ctx.relpath(path)}: document refers to itself (recursive YAML alias)") from exc


def bounded_text(value: Any) -> str | None:
    """``to_text(value)``, or None when a list/mapping's JSON passes MAX_VALUE_CHARS or is circular."""
    if not isinstance(value, (list, Mapping)):
        return to_text(value)
    pieces, length = [], 0
    try:
        for piece in json.JSONEncoder(sort_keys=True, default=str).iterencode(value):
            length += len(piece)
            if length > MAX_VALUE_CHARS:
                return None
            pieces.append(piece)
    except (ValueError, TypeError):
        return None
    return "".join(pieces)


def as_integer(value: Any) -> int | None:
    """A whole JSON/YAML number as int (``3`` or ``3.0``); None otherwise."""
    number = as_number(value)
    return int(number) if number is not None and number.is_integer() else None


def as_number(value: Any) -> float | None:
    """A JSON/YAML number as float; None for booleans, strings, containers and huge integers."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:
        return None
