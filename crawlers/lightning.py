"""Lightning logger folders: hparams, metrics.csv points, event files and checkpoints.

Where Lightning's loggers write (``log_dir``), for any ``name`` (also ``""``) and any
``version`` (``version_<n>`` by default, else the string given)::

    <save_dir>/<name>/<version>/           one run: run_id lightning:<rel dir>
        hparams.yaml                       params (Python-object tags read as data, never built)
        metrics.csv                        CSVLogger: wide and sparse, epoch, step, one column each
        events.out.tfevents.*              TensorBoardLogger: scalars and hparams (same decoder
                                           as the tensorboard crawler, ``_formats/tfevents.py``)
        <sub_dir>/                         TensorBoardLogger(sub_dir=...): the log files live here,
          hparams.yaml events...           the run is still the version folder above
        checkpoints/*.ckpt                 ModelCheckpoint's default dirpath
        metrics.json results.json ...      loose metric/param documents (``_formats/documents.py``)

    <save_dir>/<experiment id>/<run id>/checkpoints/*.ckpt
                                           MLFlowLogger (and any logger whose folder another
                                           crawler owns): run lightning:<rel dir>, its
                                           source_run_id the logger's version (the MLflow run id)

A ``.ckpt`` is a torch zip archive: epoch, global step, Lightning version, hyper-parameters and
each callback's state (ModelCheckpoint's monitor, best/current/kth scores) are read from the
pickle's opcodes and the scalar tensors' storage bytes, never unpickled (``_formats/torchckpt.py``).

``metrics.csv`` is rewritten whole when a metric appears, so only its first line is a header;
a last line without its newline is a write in progress and is skipped.  It is streamed: a file of
any size is read in bounded memory.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from mlcrawl.api import Artifact, BaseCrawler, Claims, CrawlContext, Edge, FolderShape, Metric, Param, Record
from mlcrawl.api import Run, Tag, flatten, load_yaml, to_text

from ._formats import documents
from ._formats.tfevents import EVENT_PREFIX, EventScan, hparam_records, scan_events
from ._formats.torchckpt import CheckpointError, read_checkpoint

_LOG_FILES = ("hparams.yaml", "metrics.csv", EVENT_PREFIX + "*")
_CHECKPOINTS = "checkpoints"
# "epoch=7-step=56.ckpt", "best-epoch=02-val_loss=0.32.ckpt", "last-v1.ckpt"
_NAME_FACT = re.compile(r"([A-Za-z_][\w.]*)=(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)")
_INDEX_COLUMNS = ("epoch", "step")
#: ModelCheckpoint state kept as checkpoint facts (paths are the writer's, kept as written).
_CALLBACK_FACTS = ("monitor", "best_model_score", "current_score", "kth_value", "best_model_path",
                   "last_model_path")


class LightningCrawler(BaseCrawler):
    """One Lightning logger folder (CSV/TensorBoard) -> one run; a bare ``checkpoints/`` folder of
    ``.ckpt`` files (MLFlowLogger, another crawler's folder) -> the run of its logger version."""

    name: ClassVar[str] = "lightning"
    claims = Claims(folders=(
        FolderShape(all_of=("hparams.yaml",), any_of=("metrics.csv", EVENT_PREFIX + "*", _CHECKPOINTS), priority=10),
        FolderShape(name="version_*", any_of=("hparams.yaml", "metrics.csv", _CHECKPOINTS), priority=10),
        FolderShape(name=_CHECKPOINTS, any_of=("*.ckpt",)),
    ))
    version: ClassVar[int] = 2

    def folder_run_id(self, folder: Path, rel: str) -> str | None:
        """Each claimed folder is one run: ``lightning:<rel folder>``."""
        return f"{self.name}:{rel}"

    def crawl(self, unit: Path, ctx: CrawlContext) -> Iterator[Record]:
        """Yield the run, its params, metric points and checkpoints."""
        parent_owner = owner_at(ctx, unit.parent)
        if unit.name == _CHECKPOINTS and not has_log_files(unit):
            if parent_owner == self.name:
                return  # the version folder above reads its checkpoints
            yield from crawl_checkpoint_folder(unit, ctx)
            return
        if parent_owner == self.name and not has_log_files(unit.parent):
            return  # a sub_dir: the version folder above is the run and reads it
        run_id = f"lightning:{ctx.relpath(unit)}"
        log_dir = unit if has_log_files(unit) else sub_dir_of(unit) or unit
        yield make_run(unit, ctx, run_id)
        if log_dir != unit:
            yield Tag(run_id, "lightning.sub_dir", log_dir.name)
        param_keys: set[str] = set()
        for param in read_hparams_yaml(log_dir / "hparams.yaml", ctx, run_id):
            param_keys.add(param.key)
            yield param
        csv_state = CsvState()
        yield from read_metrics_csv(log_dir / "metrics.csv", ctx, run_id, csv_state)
        yield from read_event_twin(log_dir, ctx, run_id, param_keys, csv_state.keys)
        yield from read_checkpoints(unit / _CHECKPOINTS, ctx, run_id, param_keys)
        for folder in {unit, log_dir}:
            yield from documents.folder_records(folder, ctx, run_id, base=unit)


def owner_at(ctx: CrawlContext, folder: Path) -> str | None:
    """The crawler whose unit is exactly ``folder``, innermost first; None when no unit is."""
    target = os.path.abspath(folder)
    owners = [name for name, path in ctx.enclosing if os.path.abspath(path) == target]
    return owners[-1] if owners else None


def has_log_files(folder: Path) -> bool:
    """True when a CSV or TensorBoard logger wrote into ``folder`` itself."""
    try:
        names = os.listdir(folder)
    except OSError:
        return False
    return any(n in ("hparams.yaml", "metrics.csv") or n.startswith(EVENT_PREFIX) for n in names)


def sub_dir_of(unit: Path) -> Path | None:
    """The one child folder holding the logger's files (TensorBoardLogger ``sub_dir``)."""
    children = sorted(p for p in unit.iterdir() if p.is_dir() and p.name != _CHECKPOINTS and has_log_files(p))
    return children[0] if len(children) == 1 else None


def make_run(unit: Path, ctx: CrawlContext, run_id: str) -> Run:
    """The run: experiment is the logger's name (the folder above, None for ``name=""`` at the
    root); Lightning records no times or status.  Inside a Hydra job folder (a common pairing)
    the enclosing unit's run is its parent."""
    rel_parent = ctx.relpath(unit.parent)
    outer = [(name, folder) for name, folder in ctx.enclosing
             if name != LightningCrawler.name and os.path.abspath(folder) != os.path.abspath(unit)]
    return Run(
        run_id=run_id,
        source="lightning",
        source_run_id=unit.name,
        experiment=unit.parent.name if rel_parent != "." else None,
        name=unit.name,
        parent_run_id=f"{outer[-1][0]}:{ctx.relpath(outer[-1][1])}" if outer else None,
        dir=ctx.relpath(unit),
    )


def crawl_checkpoint_folder(folder: Path, ctx: CrawlContext) -> Iterator[Record]:
    """A ``checkpoints/`` folder outside any Lightning log dir: the run of the logger version
    (the folder above, by ModelCheckpoint's ``save_dir/name/version/checkpoints`` rule)."""
    version = folder.parent
    run_id = f"lightning:{ctx.relpath(version)}"
    yield Run(run_id=run_id, source="lightning", source_run_id=version.name,
              experiment=version.parent.name if ctx.relpath(version) != "." else None,
              name=version.name, dir=ctx.relpath(version))
    yield Tag(run_id, "lightning.logger_folder_owner", owner_at(ctx, version) or "none")
    yield from read_checkpoints(folder, ctx, run_id, set())


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
    """Every non-empty metric cell of ``metrics.csv`` as a point with its step and epoch (streamed)."""
    if not path.is_file():
        return
    with ctx.open(path) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")
        rows = csv.reader(complete_lines(text, ctx, path))
        try:
            header = next(rows, None)
            if not header:
                return
            layout = state.use_header(header)
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


def complete_lines(text: io.TextIOBase, ctx: CrawlContext, path: Path) -> Iterator[str]:
    """The lines of ``text``; a last line without its newline (a write in progress) is skipped."""
    for line in text:
        if line.endswith(("\n", "\r")):
            yield line
        elif line:
            ctx.warn(f"last line has no newline (write in progress?); skipped: {line[:80]!r}",
                     path, "truncated_line")


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


def read_checkpoints(folder: Path, ctx: CrawlContext, run_id: str, param_keys: set[str]) -> Iterator[Record]:
    """``checkpoints/*.ckpt`` as run artifacts with the facts their names and archives state;
    the hyper-parameters of the newest one become params when no hparams.yaml gave them."""
    if not folder.is_dir():
        return
    with os.scandir(folder) as entries:
        names = sorted(e.name for e in entries if e.name.endswith(".ckpt") and e.is_file(follow_symlinks=False))
    newest: tuple[int, dict] | None = None
    for name in names:
        path = folder / name
        rel = ctx.relpath(path)
        facts: dict[str, Any] = checkpoint_facts(name)
        content = archive_facts(path, ctx)
        if content:
            hyper = content.get("hyper_parameters")
            facts.update(content)
            step = content.get("global_step")
            if isinstance(hyper, dict) and isinstance(step, int) and (newest is None or step >= newest[0]):
                newest = (step, hyper)
        yield Artifact(run_id, rel, role="checkpoint", facts=facts or None)
        yield Edge(run_id, rel, relation="lightning_checkpoint", evidence="checkpoints/ folder",
                   src_type="run", facts=facts or None)
    if newest is not None and not param_keys:
        for key, value in flatten(newest[1]):
            yield Param(run_id, key, to_text(value), origin="checkpoint")


def archive_facts(path: Path, ctx: CrawlContext) -> dict[str, Any]:
    """Epoch, global step, Lightning version, hyper-parameters and callback states of a ``.ckpt``;
    {} and one warning when the archive cannot be read."""
    try:
        with ctx.open(path) as stream:
            saved = read_checkpoint(stream)
    except (CheckpointError, OSError) as exc:
        ctx.warn(f"checkpoint archive not read: {exc}", path, "bad_checkpoint")
        return {}
    if not isinstance(saved, dict):
        ctx.warn(f"checkpoint holds a {type(saved).__name__}, not Lightning's dict", path, "bad_checkpoint")
        return {}
    facts: dict[str, Any] = {}
    for key in ("epoch", "global_step"):
        value = saved.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            facts[key] = value
    version = saved.get("pytorch-lightning_version")
    if isinstance(version, str):
        facts["lightning_version"] = version
    hyper = saved.get("hyper_parameters")
    if isinstance(hyper, dict):
        facts["hyper_parameters"] = {k: plain(v) for k, v in hyper.items() if isinstance(k, str)}
    callbacks = saved.get("callbacks")
    if isinstance(callbacks, dict):
        states = {str(k): {f: plain(v[f]) for f in _CALLBACK_FACTS if f in v}
                  for k, v in callbacks.items() if isinstance(v, dict)}
        facts["callbacks"] = {k: v for k, v in states.items() if v}
    return facts


def plain(value: Any) -> Any:
    """A value of the archive as JSON data: objects it would build as their class name."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return f"<{getattr(value, 'name', type(value).__name__)}>"


def checkpoint_facts(name: str) -> dict[str, Any]:
    """``key=value`` pairs of a ModelCheckpoint file name; epoch and step as ints."""
    facts: dict[str, Any] = {}
    for key, raw in _NAME_FACT.findall(Path(name).stem):
        number = float(raw)
        facts[key] = int(number) if key in _INDEX_COLUMNS or number.is_integer() else number
    return facts


def read_event_twin(log_dir: Path, ctx: CrawlContext, run_id: str, param_keys: set[str],
                    metric_keys: set[str]) -> Iterator[Record]:
    """TensorBoardLogger event files in the log dir: points and hparams not already read from
    the CSV/YAML twin."""
    scan = EventScan()
    if not any(p.name.startswith(EVENT_PREFIX) for p in log_dir.iterdir()):
        return
    for metric in scan_events(log_dir, ctx, run_id, scan):
        if metric.key not in metric_keys:
            yield metric
    for param in hparam_records(scan.hparams, run_id):
        if param.key not in param_keys:
            yield param
