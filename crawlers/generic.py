"""Generic crawler: loose JSON/YAML metric and parameter documents, read as run evidence.

    <folder no crawler claims>/            -> Run  folder:<rel dir>  (source "generic")
    ├── metrics.json  results.json  scores.json  eval_results.json  all_results.json
    ├── <name>_metrics.json  <name>_results.json  metrics.yaml  metrics/<any>.json|.yaml
    │                                      -> Metric per numeric leaf (dotted key), Tag otherwise
    └── params.yaml  config.yaml  hparams.yaml  params.json   (.yml too)
                                           -> Param per leaf (dotted key), origin = file name

Evidence before a run: a metrics document makes its folder a run; a parameter document only
when outputs lie beside it (a metrics document, weights, checkpoints, logs, event files).  A
lone ``config.yaml`` in a source tree is a configuration file, not a run.  Of the documents of
one folder, only the first evidence document by name yields the Run row, so a run id is
written once.

Inside a run folder another crawler owns (``ctx.enclosing``):

* directly in that folder: the owner reads its own folder (and uses the same reader,
  ``_formats/documents.py``, for loose documents); nothing here;
* deeper (``<run>/eval/results.json``): attached to the innermost enclosing run the core names
  (``ctx.enclosing_runs``, from each folder crawler's ``folder_run_id``); params get the path below the run folder as origin, each document an Artifact naming it.
  Documents in hidden folders (tool bookkeeping such as ``.hydra/``) and ``config.yaml`` copies
  below a run folder are the owner's and are left alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from mlcrawl.api import BaseCrawler, Claims, CrawlContext, Options, Record, Run

from ._formats import documents
from ._formats.documents import DEFAULT_MAX_BYTES, DOCUMENT_SUFFIXES, is_document, is_metric_file, is_param_file

#: Sibling names that show a program wrote outputs here (so params beside them are a run's).
OUTPUT_SUFFIXES = (".ckpt", ".pt", ".pth", ".safetensors", ".bin", ".h5", ".onnx", ".pkl", ".joblib",
                   ".log", ".npz", ".npy", ".tfevents")
OUTPUT_PREFIXES = ("events.out.tfevents", "checkpoint", "predictions")
CONFIG_COPIES = frozenset({"config.yaml", "config.yml"})
#: Folder crawlers whose unit is one run with id ``<crawler>:<rel folder>`` (see the docstring).


@dataclass(frozen=True)
class GenericOptions(Options):
    """Options of ``[crawlers.generic]``."""

    max_bytes: int = DEFAULT_MAX_BYTES
    """a metrics/params document larger than this is refused with a warning"""


class GenericCrawler(BaseCrawler):
    """Metric and parameter documents: a run for their folder, or the run that owns it."""

    name: ClassVar[str] = "generic"
    claims = Claims(files=tuple("*" + s for s in DOCUMENT_SUFFIXES), file_priority=-10)
    Options = GenericOptions
    version: ClassVar[int] = 2

    def match(self, path: Path, is_dir: bool) -> bool:
        """Claim metric and parameter documents by name; never folders."""
        return not is_dir and is_document(path)

    def crawl(self, unit: Path, ctx: CrawlContext) -> Iterator[Record]:
        """The document's records for the run that owns its folder, or for a run of its own."""
        owner = nearest_owner(unit, ctx)
        if owner is not None:
            yield from owned_document(unit, ctx, *owner)
            return
        if not is_run_evidence(unit, ctx):
            return  # a configuration file, not a run
        run = make_run(unit, ctx)
        if is_first_evidence(unit, ctx):
            yield run
        origin = unit.name
        yield from documents.document_records(unit, ctx, run.run_id, origin)


def nearest_owner(unit: Path, ctx: CrawlContext) -> tuple[str | None, Path] | None:
    """(run id or None, folder) of the folder unit the document belongs to: one whose folder is
    the document's own (its crawler reads its folder itself), else the innermost enclosing run."""
    parent = os.path.abspath(unit.parent)
    if any(os.path.abspath(folder) == parent for name, folder in ctx.enclosing if name != GenericCrawler.name):
        return None, unit.parent
    return (ctx.enclosing_runs[-1][1], ctx.enclosing_runs[-1][0]) if ctx.enclosing_runs else None


def owned_document(unit: Path, ctx: CrawlContext, run_id: str | None, folder: Path) -> Iterator[Record]:
    """A document inside another crawler's folder: attached to its run when it lies below it."""
    below = Path(os.path.relpath(unit, folder))
    if run_id is None or len(below.parts) == 1:
        return  # the owner reads its own folder
    if any(part.startswith(".") for part in below.parts[:-1]) or unit.name in CONFIG_COPIES:
        return
    yield from documents.document_records(unit, ctx, run_id, below.as_posix())


def folder_evidence(folder: Path, names: frozenset[str]) -> tuple[bool, str | None]:
    """(the folder holds outputs of a run, its first run-evidence document by name), from names only."""
    in_metrics = folder.name == documents.METRICS_FOLDER

    def metric(name: str) -> bool:
        return (name in documents.METRIC_NAMES
                or (name.endswith(documents.METRIC_SUFFIXES) and len(name) > len("_results.json"))
                or (in_metrics and name.endswith(DOCUMENT_SUFFIXES)))

    outputs = any(metric(n) or n.endswith(OUTPUT_SUFFIXES) or n.startswith(OUTPUT_PREFIXES) for n in names)
    evidence = [n for n in names if metric(n) or (outputs and n in documents.PARAM_NAMES)]
    return outputs, min(evidence) if evidence else None


def is_run_evidence(path: Path, ctx: CrawlContext) -> bool:
    """A metrics document always; a parameter document only beside outputs."""
    return is_metric_file(path) or (is_param_file(path) and folder_evidence(path.parent, ctx.names(path.parent))[0])


def is_first_evidence(path: Path, ctx: CrawlContext) -> bool:
    """True for the first (by name) run-evidence document of its folder: it alone yields the Run."""
    first = folder_evidence(path.parent, ctx.names(path.parent))[1]
    return first is None or first == path.name


def make_run(path: Path, ctx: CrawlContext) -> Run:
    """The run of the document's folder."""
    rel_dir = ctx.relpath(path.parent)
    name = None if rel_dir == "." else path.parent.name
    return Run(run_id=f"folder:{rel_dir}", source="generic", source_run_id=rel_dir, name=name, dir=rel_dir)
