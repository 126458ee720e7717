"""Lightning logger version folders: hparams, metrics.csv points, checkpoints by name.

Layout (any logger root: ``lightning_logs/``, ``<save_dir>/<name>/``)::

    <logger root>/                    experiment = this folder's name
      version_<n>/                    one run: run_id lightning:<rel dir>
        hparams.yaml                  params (Python-object tags read as data, never built)
        metrics.csv                   wide and sparse: epoch, step, one column per metric
        checkpoints/*.ckpt            artifacts; epoch/step from the name, never unpickled
        events.out.tfevents.*         TensorBoardLogger twin: same run (read by tensorboard.py)

``metrics.csv`` is rewritten whole when a metric appears, so only its first line is a header;
a last line without its newline is a write in progress and is skipped.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from mlcrawl.api import (
    Artifact,
    BaseCrawler,
    Claims,
    CrawlContext,
    Edge,
    FolderShape,
    Metric,
    Param,
    Record,
    Run,
    flatten,
    load_yaml,
    to_text,
)

_VERSION_DIR = re.compile(r"^version_\d+$")
_EVENTS_PREFIX = "events.out.tfevents"
_RUN_FILES = frozenset({"hparams.yaml", "metrics.csv", "checkpoints"})
# "epoch=7-step=56.ckpt", "best-epoch=02-val_loss=0.32.ckpt", "last-v1.ckpt"
_NAME_FACT = re.compile(r"([A-Za-z_][\w.]*)=(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)")
_INDEX_COLUMNS = ("epoch", "step")


class LightningCrawler(BaseCrawler):
    """One ``version_<n>`` folder of a Lightning CSV or TensorBoard logger -> one run."""

    name: ClassVar[str] = "lightning"
    claims = Claims(folders=(FolderShape(name="version_*", any_of=tuple(_RUN_FILES), priority=10),))
    version: ClassVar[int] = 1

    def match(self, path: Path, is_dir: bool) -> bool:
        """Lightning folders are claimed by ``match_folder``, which sees their contents."""
        return False

    def match_folder(self, path: Path, names: frozenset[str]) -> bool:
        """A ``version_<n>`` folder holding Lightning's own files (event files alone are
        TensorBoard's: its crawler declines only folders that also hold ``hparams.yaml``)."""
        return bool(_VERSION_DIR.match(path.name)) and bool(names & _RUN_FILES)

    def crawl(self, unit: Path, ctx: CrawlContext) -> Iterator[Record]:
        """Yield the run, its params, metric points and checkpoints."""
        run_id = f"lightning:{ctx.relpath(unit)}"
        yield make_run(unit, ctx, run_id)
        param_keys: set[str] = set()
        for param in read_hparams_yaml(unit / "hparams.yaml", ctx, run_id):
            param_keys.add(param.key)
            yield param
        csv_state = CsvState()
        yield from read_metrics_csv(unit / "metrics.csv", ctx, run_id, csv_state)
        yield from read_checkpoints(unit / "checkpoints", ctx, run_id)
        yield from read_event_twin(unit, ctx, run_id, param_keys, csv_state.keys)


def make_run(unit: Path, ctx: CrawlContext, run_id: str) -> Run:
    """The run: experiment is the logger root's name; Lightning records no times or status.

    Inside a Hydra job folder (Hydra + Lightning is a common pairing) the job is its parent.
    """
    hydra_jobs = [folder for crawler, folder in ctx.enclosing if crawler == "hydra"]
    return Run(
        run_id=run_id,
        source="lightning",
        source_run_id=unit.name,
        experiment=unit.parent.name or None,
        name=unit.name,
        parent_run_id=f"hydra:{ctx.relpath(hydra_jobs[-1])}" if hydra_jobs else None,
        dir=ctx.relpath(unit),
    )


def read_hparams_yaml(path: Path, ctx: CrawlContext, run_id: str) -> Iterator[Param]:
    """Flattened ``hparams.yaml``; a file that is not a mapping is warned about and skipped."""
    if not path.is_file():
        return
    try:
        data = load_yaml(ctx.read_bytes(path))
    except Exception as exc:  # noqa: BLE001 - any YAML error leaves the rest of the run readable
        ctx.warn(f"hparams.yaml is not readable YAML: {exc}", path, "bad_yaml")
        return
    if data is None:
        return
    if not isinstance(data, dict):
        ctx.warn(f"hparams.yaml holds a {type(data).__name__}, not a mapping", path, "bad_yaml")
        return
    for key, value in flatten(data):
        yield Param(run_id, key, to_text(value), origin="hparams")


def read_metrics_csv(path: Path, ctx: CrawlContext, run_id: str,
                     state: CsvState) -> Iterator[Metric]:
    """Every non-empty metric cell of ``metrics.csv`` as a point with its step and epoch."""
    if not path.is_file():
        return
    text = ctx.read_text(path, errors="replace")
    if text and not text.endswith(("\n", "\r")):
        cut = text.rfind("\n") + 1
        ctx.warn(f"last line has no newline (write in progress?); skipped: {text[cut:][:80]!r}",
                 path, "truncated_line")
        text = text[:cut]
    rows = csv.reader(io.StringIO(text, newline=""))
    header = next(rows, None)
    if not header:
        return
    layout = state.use_header(header)
    try:
        for row in rows:
            if "step" in row or "epoch" in row:
                state.headers.append(rows.line_num)
                layout = state.use_header(row)
                continue
            if len(row) != layout.width:
                if not any(cell.strip() for cell in row):
                    continue
                state.ragged.append(rows.line_num)
            yield from metrics_of_row(row, layout, run_id, state, rows.line_num)
    except csv.Error as exc:
        ctx.warn(f"unreadable CSV at line {rows.line_num}, rest skipped: {exc}", path, "bad_csv")
    state.report(ctx, path)


class CsvLayout:
    """Where the index columns and the metric columns of one header are."""

    def __init__(self, header: list[str]) -> None:
        self.width = len(header)
        self.epoch = header.index("epoch") if "epoch" in header else None
        self.step = header.index("step") if "step" in header else None
        self.metrics = [(i, key) for i, key in enumerate(header) if key not in _INDEX_COLUMNS]


class CsvState:
    """Metric columns seen, and problems met while reading rows (reported once per file)."""

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.ragged: list[int] = []
        self.unparsed: list[int] = []
        self.headers: list[int] = []

    def use_header(self, header: list[str]) -> CsvLayout:
        """The layout of a header line; its metric columns join ``keys``."""
        layout = CsvLayout(header)
        self.keys.update(key for _, key in layout.metrics)
        return layout

    def report(self, ctx: CrawlContext, path: Path) -> None:
        """Turn the collected problems into (at most three) warnings."""
        if self.ragged:
            ctx.warn(f"{len(self.ragged)} row(s) do not have the header's column count "
                     f"(lines {self.ragged[:10]}); their cells were read up to the header's width",
                     path, "ragged_rows")
        if self.headers:
            ctx.warn(f"header repeated or changed inside the file (lines {self.headers[:10]}); "
                     "the rows after it were read with the new header", path, "header_changed")
        if self.unparsed:
            ctx.warn(f"{len(self.unparsed)} cell(s) are not numbers (lines "
                     f"{sorted(set(self.unparsed))[:10]}); skipped", path, "bad_value")


def metrics_of_row(row: list[str], layout: CsvLayout, run_id: str, state: CsvState,
                   line_no: int) -> Iterator[Metric]:
    """The metric points of one CSV row; epoch and step index them."""
    width = len(row)
    step = to_index(row[layout.step]) if layout.step is not None and layout.step < width else None
    epoch = to_index(row[layout.epoch]) if layout.epoch is not None and layout.epoch < width else None
    for index, key in layout.metrics:
        if index >= width:
            break
        cell = row[index]
        if not cell or cell.isspace():
            continue
        try:
            value = float(cell)
        except ValueError:
            state.unparsed.append(line_no)
            continue
        yield Metric(run_id, key, value, step=step, epoch=epoch)


def to_index(cell: str) -> int | None:
    """An epoch or step cell as an int ("7", "7.0"); None when empty or not a number."""
    try:
        value = float(cell)
    except ValueError:
        return None
    return int(value) if math.isfinite(value) else None


def read_checkpoints(folder: Path, ctx: CrawlContext, run_id: str) -> Iterator[Record]:
    """``checkpoints/*.ckpt`` as run artifacts with the facts their names state."""
    if not folder.is_dir():
        return
    with os.scandir(folder) as entries:
        names = sorted(e.name for e in entries if e.name.endswith(".ckpt") and e.is_file())
    for name in names:
        rel = ctx.relpath(folder / name)
        facts = checkpoint_facts(name)
        yield Artifact(run_id, rel, role="checkpoint", facts=facts or None)
        yield Edge(run_id, rel, relation="lightning_checkpoint", evidence="checkpoints/ folder",
                   src_type="run", facts=facts or None)


def checkpoint_facts(name: str) -> dict[str, float | int]:
    """``key=value`` pairs of a ModelCheckpoint file name; epoch and step as ints."""
    facts: dict[str, float | int] = {}
    for key, raw in _NAME_FACT.findall(Path(name).stem):
        number = float(raw)
        facts[key] = int(number) if key in _INDEX_COLUMNS or number.is_integer() else number
    return facts


def read_event_twin(unit: Path, ctx: CrawlContext, run_id: str, param_keys: set[str],
                    metric_keys: set[str]) -> Iterator[Record]:
    """TensorBoardLogger event files in the same folder: the same run, read by tensorboard.py.

    Points and hparams already read from the CSV/YAML twin are not repeated.
    """
    events = sorted(p for p in unit.iterdir() if p.name.startswith(_EVENTS_PREFIX) and p.is_file())
    if not events:
        return
    try:
        from .tensorboard import read_hparams, read_scalars
    except ImportError as exc:
        ctx.warn(f"event files not read: the tensorboard crawler is unavailable ({exc})",
                 unit, "missing_reader")
        return
    for path in events:
        for metric in read_scalars(path, ctx, run_id):
            if metric.key not in metric_keys:
                yield metric
        for param in read_hparams(path, ctx, run_id):
            if param.key not in param_keys:
                yield param
