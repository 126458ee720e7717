"""Generic crawler: loose JSON/YAML metric and parameter files, one run per folder.

    <any folder>/                       -> Run  folder:<rel dir>  (source "generic")
    ├── metrics.json  results.json  scores.json  eval_results.json
    ├── <name>_metrics.json  <name>_results.json  metrics.yaml
    │                                   -> Metric per numeric leaf (dotted key), Tag otherwise
    ├── params.yaml  config.yaml  hparams.yaml  params.json   (.yml too)
    │                                   -> Param per leaf (dotted key), origin = file name
    └── metrics/<any>.json|.yaml        -> Metric / Tag, like metrics.json

A list of numbers is a history: one Metric per item, ``step`` = its index.  A top-level list of
objects is a history too: ``step`` from each object's ``step``/``global_step`` (else its index),
``epoch`` from its ``epoch``.  Every file of a folder yields the same Run row (one per unit).

Files other crawlers own are left alone: by name, anything under ``.hydra/`` (hydra), a
``version_*/hparams.yaml`` (lightning) and a W&B run's ``files/config.yaml`` (wandb); at crawl
time, a file whose folder is itself a unit of another crawler (a Sacred run, a Hydra job, an HF
Trainer folder, a DVC project...) because that crawler reads the file in its own terms.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml

from mlcrawl.api import (
    BaseCrawler,
    Claims,
    CrawlContext,
    Metric,
    Options,
    Param,
    Record,
    Run,
    Tag,
    flatten,
    load_json,
    load_yaml,
    to_text,
)

METRIC_NAMES = frozenset({"metrics.json", "results.json", "scores.json", "metrics.yaml", "metrics.yml"})
METRIC_SUFFIXES = ("_metrics.json", "_results.json")
METRICS_FOLDER = "metrics"
PARAM_NAMES = frozenset(
    {"params.yaml", "params.yml", "config.yaml", "config.yml", "hparams.yaml", "hparams.yml", "params.json"}
)
DOCUMENT_SUFFIXES = (".json", ".yaml", ".yml")

_LIGHTNING_VERSION = re.compile(r"version_\d+")
_WANDB_RUN = re.compile(r"(?:offline-)?run-\d{8}_\d{6}-\w+")
_STEP_KEYS = ("step", "global_step")
#: Metric files are small; a bigger one is more likely a data dump, and is refused.
DEFAULT_MAX_BYTES = 32 << 20
#: Leaves read from one file at most: YAML aliases can make a small file expand exponentially.
MAX_LEAVES = 100_000
#: A list or mapping leaf is kept as JSON text only up to this length.
MAX_VALUE_CHARS = 1 << 16


@dataclass(frozen=True)
class GenericOptions(Options):
    """Options of ``[crawlers.generic]``."""

    max_bytes: int = DEFAULT_MAX_BYTES
    """a metrics/params document larger than this is refused with a warning"""


class GenericCrawler(BaseCrawler):
    """Metric and parameter files in any folder, attached to a run for that folder."""

    name: ClassVar[str] = "generic"
    claims = Claims(files=tuple("*" + s for s in DOCUMENT_SUFFIXES), file_priority=-10)
    Options = GenericOptions
    version: ClassVar[int] = 1

    def match(self, path: Path, is_dir: bool) -> bool:
        """Claim metric and parameter files by name; never folders."""
        if is_dir or not path.name.endswith(DOCUMENT_SUFFIXES):
            return False
        if is_owned_by_name(path):
            return False
        return is_param_file(path) or is_metric_file(path)

    def crawl(self, unit: Path, ctx: CrawlContext) -> Iterator[Record]:
        """One Run for the file's folder, then its Params or its Metrics and Tags."""
        if is_claimed_elsewhere(unit, ctx):
            return
        document = read_document(unit, ctx)
        run = make_run(unit, ctx)
        yield run
        if is_param_file(unit):
            yield from param_records(run.run_id, document, unit, ctx)
        else:
            yield from metric_records(run.run_id, document, unit, ctx)


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


def is_owned_by_name(path: Path) -> bool:
    """True when the path alone shows the file belongs to the hydra, lightning or wandb crawler."""
    if ".hydra" in path.parts[:-1]:
        return True
    if path.name in ("hparams.yaml", "hparams.yml") and _LIGHTNING_VERSION.fullmatch(path.parent.name):
        return True
    return (
        path.name in ("config.yaml", "config.yml")
        and path.parent.name == "files"
        and bool(_WANDB_RUN.fullmatch(path.parent.parent.name))
    )


def is_claimed_elsewhere(unit: Path, ctx: CrawlContext) -> bool:
    """True when the file's own folder is a unit of another crawler, which reads it itself."""
    parent = os.path.abspath(unit.parent)
    return any(
        crawler != GenericCrawler.name and os.path.abspath(folder) == parent
        for crawler, folder in ctx.enclosing
    )


def read_document(path: Path, ctx: CrawlContext) -> Any:
    """Parse the JSON or YAML file; raise a clear ValueError when it is too big or corrupt."""
    rel = ctx.relpath(path)
    limit = int(ctx.options.get("max_bytes", DEFAULT_MAX_BYTES))
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


def make_run(path: Path, ctx: CrawlContext) -> Run:
    """The run of the file's folder; every file of one folder yields the same Run."""
    rel_dir = ctx.relpath(path.parent)
    name = None if rel_dir == "." else path.parent.name
    return Run(run_id=f"folder:{rel_dir}", source="generic", source_run_id=rel_dir, name=name, dir=rel_dir)


def param_records(run_id: str, document: Any, path: Path, ctx: CrawlContext) -> Iterator[Param]:
    """One Param per flattened leaf; the file name is the param's origin."""
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
            yield Param(run_id, key, text, origin=path.name)


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
