"""Jupyter notebooks: facts, parameters, scraps, printed metrics, imports and file references.

One unit is one ``.ipynb`` file (anything under ``.ipynb_checkpoints`` is skipped)::

    notebooks/
      02_train.ipynb                 template: cell tagged ``parameters`` holds the defaults
      output/
        02_train_C0.5.ipynb          papermill output: metadata.papermill {input_path,
                                     output_path, parameters, start/end_time, exception},
                                     cell tagged ``injected-parameters``, per-cell
                                     metadata.papermill.status, scrapbook outputs
                                     (``application/scrapbook.scrap.<encoder>+json``)

Yields a ``Notebook`` record per file (template defaults and injected values, redacted, in
``facts.parameters``).  An executed notebook is also a ``Run`` (``notebook:<path>``, its
experiment the template papermill ran) with:

- one ``Param`` per parameter holding the effective value, ``origin`` ``injected`` or
  ``default``; a default that was overridden is kept as the tag ``default.<key>``;
- scrapbook scraps: numbers as metrics, anything else as the tag ``scrap.<name>`` (the
  encoder, e.g. ``<pandas>``, when the value is not small plain data);
- lines printed exactly as ``name: number`` / ``name = number`` as metrics marked inferred
  (step = occurrence), never for secret-looking names.

Code cells go through ``_codeanalysis``: imports and the files they read and write.  A
relative path is resolved against the kernel's working directory, which papermill does not
record: candidates are the input notebook's folder, papermill's own cwd, the notebook's folder
and the crawl root; the folder under which most paths exist is taken first.  References in
cells an executed notebook never reached say "(cell not run)" in their evidence.  Outputs are
counted and summarised, never copied.
"""

from __future__ import annotations

import itertools
import json
import os
import posixpath
import re
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat

from mlcrawl.api import BaseCrawler, Claims, CrawlContext, Edge, Import, Metric, Notebook, Options, Param
from mlcrawl.api import Record, Run, Tag, is_secret_key, parse_iso, redact_text, redact_value, to_float
from mlcrawl.api import to_text

from ._codeanalysis import CodeAnalyzer, CodeFacts, is_uri, parse_literal_assignments
from ._references import reference_records, resolve_path

SCRAP_MIME = re.compile(r"^application/scrapbook\.scrap\.(?P<encoder>[\w.-]+)\+json$")
#: A printed line that is exactly ``name: number`` or ``name = number``.
PRINTED_METRIC = re.compile(
    r"^\s*(?P<key>[A-Za-z_][\w./-]{0,63})\s*(?::|=)\s*"
    r"(?P<value>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)
MAX_SCRAP_TEXT = 1024
MAX_STREAM_CHARS = 4 << 20  # stream text scanned for printed metrics per notebook
MAX_PRINTED_POINTS = 10_000
MAX_ERROR_VALUE = 2000


@dataclass
class OutputSummary:
    """What the outputs hold, without keeping any of it."""

    count: int = 0
    images: int = 0
    bytes_by_mime: Counter = field(default_factory=Counter)
    stream_bytes: int = 0
    error: tuple[str, str] | None = None
    scraps: dict[str, tuple[str, Any]] = field(default_factory=dict)  # name -> (encoder, value)
    printed: list[tuple[str, float]] = field(default_factory=list)
    stream_budget: int = MAX_STREAM_CHARS


@dataclass(frozen=True)
class Parameters:
    """Defaults from the ``parameters`` cell and values papermill injected, as param text
    (literals as JSON, strings as they are, non-literal expressions as their source)."""

    defaults: dict[str, str | None]
    injected: dict[str, str | None]


@dataclass(frozen=True)
class NotebookOptions(Options):
    """Options of ``[crawlers.notebook]``."""

    validate: str = "quick"
    """"full" runs nbformat's JSON-schema validation on every notebook (slower)"""
    parse_all_cells: bool = False
    """report syntax errors of every cell, not only of cells that name files"""


class NotebookCrawler(BaseCrawler):
    """Reads ``.ipynb`` files into notebook facts, runs, params, metrics and references."""

    name = "notebook"
    claims = Claims(files=("*.ipynb",))
    Options = NotebookOptions
    version = 1

    def match(self, path: Path, is_dir: bool) -> bool:
        """Claim ``*.ipynb`` files outside ``.ipynb_checkpoints`` folders."""
        return not is_dir and path.suffix == ".ipynb" and ".ipynb_checkpoints" not in path.parts

    def crawl(self, unit: Path, ctx: CrawlContext) -> Iterator[Record]:
        """Yield the notebook's record, its run (when executed) and its code's references."""
        rel = ctx.relpath(unit)
        nb, version = read_notebook(unit, ctx)
        cells = [c if isinstance(c, dict) else {} for c in _list(nb.get("cells"))]  # keep indices
        papermill = _dict(_dict(nb.get("metadata")).get("papermill")) or None
        outputs = summarise_outputs(cells)
        executed = any(_is_code(c) and (c.get("execution_count") is not None or _list(c.get("outputs")))
                       for c in cells)
        params = read_parameters(cells, papermill, ctx, unit)
        skipped = _cells_not_run(cells) if executed else set()
        code = analyse_cells(cells, ctx, unit)
        bases = _reference_bases(unit, ctx, papermill)
        run_id = f"notebook:{rel}" if executed else None
        yield _notebook_record(rel, ctx.sha256(unit), nb, version, cells, outputs, papermill, run_id,
                               params, code, skipped)
        if run_id is not None:
            yield from _run_records(run_id, rel, unit, ctx, cells, papermill, outputs, params)
        yield from (Import(rel, module) for module in code.imports)
        rebase = (lambda raw: _rebase_absolute(raw, unit, papermill)) if papermill is not None else None
        yield from reference_records(rel, code.references, bases, ctx, skipped, rebase)
        if papermill is not None:
            yield from _papermill_edge(rel, unit, papermill, ctx)


# --- reading --------------------------------------------------------------------------------

def read_notebook(unit: Path, ctx: CrawlContext) -> tuple[dict, tuple[int, int]]:
    """The notebook as a v4 dict and its original (major, minor) version.

    v4 files are used as parsed (nbformat's own reader would copy every node into a
    NotebookNode); older versions go through ``nbformat.convert``.  Schema problems are
    warnings: the facts that can be read are still read.
    """
    rel = ctx.relpath(unit)
    nb = _parse_json(ctx.read_bytes(unit), unit, ctx)
    if not isinstance(nb, dict):
        raise ValueError(f"{rel}: not a notebook: top-level JSON is {type(nb).__name__}, not an object")
    major, minor = nb.get("nbformat"), nb.get("nbformat_minor", 0)
    if not isinstance(major, int) or isinstance(major, bool):
        raise ValueError(f"{rel}: not a notebook: no integer 'nbformat' version")
    version = (major, minor if isinstance(minor, int) else 0)
    if major < 4:
        nb = _convert(nb, rel)
    elif major > 4:
        ctx.warn(f"nbformat {major} is newer than 4; read as 4", unit, "nbformat_version")
    _validate(nb, version, unit, ctx)
    return nb, version


def _parse_json(data: bytes, unit: Path, ctx: CrawlContext) -> Any:
    """The JSON document; bytes that are not UTF-8 (garbage in an output) are replaced, with a warning."""
    rel = ctx.relpath(unit)
    try:
        try:
            return json.loads(data)
        except UnicodeDecodeError as exc:
            ctx.warn(f"not valid UTF-8 at byte {exc.start}; undecodable bytes replaced", unit, "encoding")
            return json.loads(data.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"{rel}: not a notebook: invalid JSON ({exc})") from None


def _convert(nb: dict, rel: str) -> dict:
    """An older notebook upgraded to v4 the way ``nbformat.read`` does (the version's own
    reader first: v3 stores sources as lists of lines that its converter expects joined)."""
    try:
        major, minor = nb.get("nbformat"), nb.get("nbformat_minor")
        reader = nbformat.versions[major]
        node = reader.to_notebook_json(nb, minor=minor) if isinstance(minor, int) else reader.to_notebook_json(nb)
        return nbformat.convert(node, 4)
    except Exception as exc:  # nbformat raises many types on malformed old notebooks
        version = nb.get("nbformat")
        raise ValueError(f"{rel}: nbformat {version} notebook cannot be converted: {exc}") from None


def _validate(nb: dict, version: tuple[int, int], unit: Path, ctx: CrawlContext) -> None:
    """Warn where ``nbformat.validate`` finds a problem, in its words; the facts are read all the same.

    nbformat's JSON-schema validator costs several times the JSON parse, so a cheap check of
    the structure the schema demands runs first; nbformat itself runs (and decides, so a warning
    never disagrees with it) only when that check finds something, or always with the crawler
    option ``validate = "full"``.  nbformat's own warnings (a missing or duplicate cell id) are
    passed on.
    """
    minor = version[1] if version[0] == 4 else nbformat.v4.nbformat_minor
    suspect = _structure_problem(nb, minor, version[0] == 4 and "nbformat_minor" not in nb)
    if suspect is None and ctx.options.get("validate") != "full":
        return
    candidate = json.loads(json.dumps(nb))  # nbformat repairs ids in place; the crawl keeps the file's
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            error = _nbformat_error(candidate)
    except Exception as exc:  # a broken schema lookup must not hide the notebook
        ctx.warn(f"nbformat validation could not run: {exc}", unit, "nbformat_validation")
        return
    for warning in caught:
        ctx.warn(f"nbformat: {str(warning.message).splitlines()[0][:300]}", unit, "nbformat_validation")
    if error is not None:
        where = "/".join(str(p) for p in getattr(error, "path", ()) or ()) or "<root>"
        message = str(getattr(error, "message", error)).splitlines()[0][:300]
        ctx.warn(f"fails nbformat validation at {where}: {message}", unit, "nbformat_validation")


def _nbformat_error(nb: dict) -> Exception | None:
    """``nbformat.validate``'s verdict, as ``nbformat.read`` gives it (missing ids repaired, with a warning)."""
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        return exc
    return None


_CELL_METADATA_TYPES = {"collapsed": bool, "scrolled": (bool, str), "deletable": bool, "editable": bool,
                        "format": str, "name": str, "tags": list, "jupyter": dict, "execution": dict}
_CELL_ID = re.compile(r"^[a-zA-Z0-9-_]{1,64}$")

_CELL_KEYS = {"code": {"id", "cell_type", "metadata", "execution_count", "source", "outputs"},
              "markdown": {"id", "cell_type", "metadata", "source", "attachments"},
              "raw": {"id", "cell_type", "metadata", "source", "attachments"}}
_OUTPUT_TYPES = {"stream", "display_data", "execute_result", "error"}


def _structure_problem(nb: dict, minor: int, no_minor: bool = False) -> str | None:
    """The first place where ``nb`` may depart from the v4 schema, or None (a cheap over-approximation)."""
    if no_minor:
        return "no nbformat_minor"
    if not isinstance(nb.get("metadata"), dict) or not isinstance(nb.get("cells"), list):
        return "at <root>: 'metadata' must be an object and 'cells' a list"
    ids = [c.get("id") for c in nb["cells"] if isinstance(c, dict) and "id" in c]
    if len(ids) != len({repr(i) for i in ids}):
        return "duplicate cell ids"
    for index, cell in enumerate(nb["cells"]):
        problem = _cell_problem(cell, minor)
        if problem:
            return f"at cells/{index}: {problem}"
    return None


def _cell_problem(cell: Any, minor: int) -> str | None:
    if not isinstance(cell, dict):
        return "a cell must be an object"
    allowed = _CELL_KEYS.get(cell.get("cell_type"))  # type: ignore[arg-type]
    if allowed is None:
        return f"unknown cell_type {cell.get('cell_type')!r}"
    if not allowed.issuperset(cell) or not isinstance(cell.get("metadata"), dict):
        return "unexpected keys or no metadata object"
    if any(not isinstance(cell["metadata"][k], t) for k, t in _CELL_METADATA_TYPES.items() if k in cell["metadata"]):
        return "a cell metadata field of the wrong type"
    if "id" in cell and not (isinstance(cell["id"], str) and _CELL_ID.match(cell["id"])):
        return "a cell id that is not 1-64 letters, digits, - or _"
    missing_id = minor >= 5 and not isinstance(cell.get("id"), str)
    if not isinstance(cell.get("source"), (str, list)) or missing_id:
        return "source must be text and (nbformat 4.5+) id a string"
    if cell["cell_type"] != "code":
        return None
    count = cell.get("execution_count", "missing")
    if not (count is None or (isinstance(count, int) and not isinstance(count, bool))):
        return "execution_count must be an integer or null"
    outputs = cell.get("outputs")
    if not isinstance(outputs, list):
        return "outputs must be a list"
    if any(not isinstance(o, dict) or o.get("output_type") not in _OUTPUT_TYPES for o in outputs):
        return "every output must be an object with a known output_type"
    return None


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    """A multiline field: nbformat stores it as a string or a list of strings."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(v for v in value if isinstance(v, str))
    return ""


def _size(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(len(v) for v in value if isinstance(v, str))
    return 0


def _is_code(cell: dict) -> bool:
    return cell.get("cell_type") == "code"


def _tags(cell: dict) -> list:
    return _list(_dict(cell.get("metadata")).get("tags"))


# --- outputs --------------------------------------------------------------------------------

def summarise_outputs(cells: list[dict]) -> OutputSummary:
    """Count outputs, images and bytes per mime; collect errors, scraps and printed metrics."""
    summary = OutputSummary()
    for cell in cells:
        if not _is_code(cell):
            continue
        for output in _list(cell.get("outputs")):
            if isinstance(output, dict):
                _summarise_output(output, summary)
    return summary


def _summarise_output(output: dict, summary: OutputSummary) -> None:
    summary.count += 1
    kind = output.get("output_type")
    if kind == "stream":
        text = output.get("text")
        summary.stream_bytes += _size(text)
        if output.get("name") != "stderr":
            _scan_printed(text, summary)
    elif kind == "error":
        if summary.error is None:
            summary.error = (str(output.get("ename") or ""), str(output.get("evalue") or ""))
    elif kind in ("display_data", "execute_result"):
        data = _dict(output.get("data"))
        if any(isinstance(m, str) and m.startswith("image/") for m in data):
            summary.images += 1
        for mime, payload in data.items():
            summary.bytes_by_mime[mime] += _size(payload)
            if isinstance(mime, str) and (match := SCRAP_MIME.match(mime)):
                _read_scrap(match["encoder"], payload, summary)


def _read_scrap(encoder: str, payload: Any, summary: OutputSummary) -> None:
    """A scrapbook scrap: name, encoder and the value when it is small plain data."""
    payload = _dict(payload)
    name = payload.get("name")
    if not isinstance(name, str) or not name:
        return
    encoder = str(payload.get("encoder") or encoder)
    value = payload.get("data") if encoder in ("json", "text") else None
    if value is not None and len(to_text(value) or "") > MAX_SCRAP_TEXT:
        value = None
    summary.scraps[name] = (encoder, value)


def _scan_printed(text: Any, summary: OutputSummary) -> None:
    """Lines that are exactly ``name: number`` become inferred metric points (bounded).

    Lines whose name looks like a secret (``password: 1234``) are never kept.
    """
    chunks = text if isinstance(text, list) else [text]
    for chunk in chunks:
        if not isinstance(chunk, str) or summary.stream_budget <= 0:
            return
        if len(chunk) > summary.stream_budget:  # never split a huge log whole
            chunk = chunk[: summary.stream_budget]
        summary.stream_budget -= len(chunk)
        for line in chunk.splitlines():
            if len(summary.printed) >= MAX_PRINTED_POINTS:
                return
            match = PRINTED_METRIC.match(line) if len(line) < 200 else None
            if match and not is_secret_key(match["key"]):
                summary.printed.append((match["key"], float(match["value"])))


# --- parameters and code --------------------------------------------------------------------

def read_parameters(cells: list[dict], papermill: dict | None, ctx: CrawlContext, unit: Path) -> Parameters:
    """Defaults from the ``parameters`` cell, injected values from ``injected-parameters``.

    Papermill's ``metadata.papermill.parameters`` (exact JSON) fills keys missing from the
    injected cell, e.g. when the cell was edited or stripped.
    """
    defaults = _tagged_assignments(cells, "parameters", ctx, unit)
    injected = _tagged_assignments(cells, "injected-parameters", ctx, unit)
    for key, value in _dict((papermill or {}).get("parameters")).items():
        if isinstance(key, str) and key not in injected:
            injected[key] = to_text(value)
    return Parameters(defaults, injected)


def _tagged_assignments(cells: list[dict], tag: str, ctx: CrawlContext, unit: Path) -> dict[str, str | None]:
    """``name = value`` pairs of the first code cell tagged ``tag``, as param text."""
    cell = next((c for c in cells if _is_code(c) and tag in _tags(c)), None)
    if cell is None:
        return {}
    literals, expressions, problem = parse_literal_assignments(_text(cell.get("source")))
    if problem:
        ctx.warn(f"{tag} cell: {problem}", unit, "parameters")
    return {k: to_text(v) for k, v in literals.items()} | expressions


def analyse_cells(cells: list[dict], ctx: CrawlContext, unit: Path) -> CodeFacts:
    """Imports and file references of the code cells, in notebook order (cell = its index).

    Cells that can name no import or file are skipped unless the crawler option
    ``parse_all_cells`` is set (then every cell's syntax errors are reported too).
    """
    analyzer = CodeAnalyzer()
    sources = [(index, _text(cell.get("source"))) for index, cell in enumerate(cells) if _is_code(cell)]
    analyzer.add_cells(sources, parse_all=bool(ctx.options.get("parse_all_cells")))
    for problem in analyzer.facts.problems:
        line = f", line {problem.line}" if problem.line else ""
        ctx.warn(f"cell {problem.cell}{line}: {problem.message}", unit, "syntax_error")
    return analyzer.facts


def _cells_not_run(cells: list[dict]) -> set[int]:
    """Code cells an executed notebook did not run (papermill ``pending``/no execution count)."""
    skipped = set()
    for index, cell in enumerate(cells):
        if not _is_code(cell):
            continue
        status = _dict(_dict(cell.get("metadata")).get("papermill")).get("status")
        if status == "pending" or (status is None and cell.get("execution_count") is None
                                   and not _list(cell.get("outputs"))):
            skipped.add(index)
    return skipped


# --- records --------------------------------------------------------------------------------

def _notebook_record(rel: str, sha256: str, nb: dict, version: tuple[int, int], cells: list[dict],
                     outputs: OutputSummary, papermill: dict | None, run_id: str | None,
                     params: Parameters, code: CodeFacts, skipped: set[int]) -> Notebook:
    meta = _dict(nb.get("metadata"))
    kernelspec, language_info = _dict(meta.get("kernelspec")), _dict(meta.get("language_info"))
    kinds = Counter(c.get("cell_type") for c in cells)
    counts = [c.get("execution_count") for c in cells if _is_code(c)]
    numbered = [n for n in counts if isinstance(n, int) and not isinstance(n, bool)]
    executed = run_id is not None
    pm = papermill or {}
    error = outputs.error
    return Notebook(
        path=rel,
        sha256=sha256,
        nbformat=version[0],
        nbformat_minor=version[1],
        kernel=_str(kernelspec.get("name")),
        language=_str(kernelspec.get("language")) or _str(language_info.get("name")),
        language_version=_str(language_info.get("version")),
        code_cells=kinds.get("code", 0),
        markdown_cells=kinds.get("markdown", 0),
        raw_cells=kinds.get("raw", 0),
        executed=executed,
        executed_in_order=all(a < b for a, b in itertools.pairwise(numbered)) if numbered else None,
        has_errors=error is not None,
        error_name=error[0] if error else None,
        error_value=redact_text(error[1][:MAX_ERROR_VALUE]) if error else None,
        image_outputs=outputs.images,
        papermill_input_path=_str(pm.get("input_path")),
        papermill_output_path=_str(pm.get("output_path")),
        papermill_start_time=parse_iso(pm.get("start_time")),
        papermill_end_time=parse_iso(pm.get("end_time")),
        papermill_duration=to_float(pm.get("duration")),
        papermill_exception=pm["exception"] if isinstance(pm.get("exception"), bool) else None,
        failed_cells=_failed_cells(cells) if papermill is not None else None,
        run_id=run_id,
        facts=_notebook_facts(outputs, params, code, skipped, kernelspec, pm),
    )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _failed_cells(cells: list[dict]) -> int:
    return sum(1 for c in cells
               if _dict(_dict(c.get("metadata")).get("papermill")).get("status") == "failed")


def _notebook_facts(outputs: OutputSummary, params: Parameters, code: CodeFacts, skipped: set[int],
                    kernelspec: dict, papermill: dict) -> dict:
    facts: dict[str, Any] = {
        "outputs": {"count": outputs.count, "stream_bytes": outputs.stream_bytes,
                    "bytes_by_mime": dict(outputs.bytes_by_mime)},
        "parameters": {"default": _redacted(params.defaults), "injected": _redacted(params.injected)},
    }
    if outputs.scraps:
        facts["scraps"] = [{"name": n, "encoder": e} for n, (e, _) in outputs.scraps.items()]
    if code.masked_lines:
        facts["masked_ipython_lines"] = code.masked_lines
    if code.problems:
        facts["cells_with_syntax_errors"] = sorted({p.cell for p in code.problems if p.cell is not None})
    if skipped:
        facts["cells_not_run"] = sorted(skipped)
    if kernelspec.get("display_name"):
        facts["kernel_display_name"] = str(kernelspec["display_name"])
    if papermill.get("version"):
        facts["papermill_version"] = str(papermill["version"])
    return facts


def _redacted(values: dict[str, str | None]) -> dict[str, str | None]:
    return {k: redact_value(k, v) for k, v in values.items()}


def _run_records(run_id: str, rel: str, unit: Path, ctx: CrawlContext, cells: list[dict],
                 papermill: dict | None, outputs: OutputSummary, params: Parameters) -> Iterator[Record]:
    """The executed notebook as a run: FAILED on an error output or papermill exception; its
    experiment is the template papermill ran (so executed copies group together)."""
    pm = papermill or {}
    failed = pm.get("exception") is True or outputs.error is not None or _failed_cells(cells) > 0
    start, end = parse_iso(pm.get("start_time")), parse_iso(pm.get("end_time"))
    if start is None and end is None:
        start, end = _execution_span(cells)
    template = _resolve_recorded(pm.get("input_path"), unit, ctx, pm) if pm else None
    yield Run(run_id=run_id, source="notebook", source_run_id=rel, experiment=template,
              name=unit.stem, status="FAILED" if failed else "FINISHED", start_time=start,
              end_time=end, dir=posixpath.dirname(rel) or ".")
    yield from _param_records(run_id, params)
    yield from _scrap_records(run_id, outputs)
    steps: Counter = Counter()
    for key, value in outputs.printed:
        yield Metric(run_id, key, value, step=steps[key], inferred=True)
        steps[key] += 1


def _execution_span(cells: list[dict]) -> tuple[datetime | None, datetime | None]:
    """First and last kernel timestamps of executed cells (Jupyter's ``metadata.execution``)."""
    stamps = [t for c in cells if _is_code(c)
              for v in _dict(_dict(c.get("metadata")).get("execution")).values()
              if (t := parse_iso(v)) is not None]
    return (min(stamps), max(stamps)) if stamps else (None, None)


def _param_records(run_id: str, params: Parameters) -> Iterator[Record]:
    """One param per key with its effective value; an overridden default becomes a tag."""
    defaults, injected = params.defaults, params.injected
    for key in [*defaults, *(k for k in injected if k not in defaults)]:
        if key in injected:
            yield Param(run_id, key, injected[key], origin="injected")
            if key in defaults:
                yield Tag(run_id, f"default.{key}", defaults[key])
        else:
            yield Param(run_id, key, defaults[key], origin="default")


def _scrap_records(run_id: str, outputs: OutputSummary) -> Iterator[Record]:
    """Numeric scraps are metrics; others are ``scrap.<name>`` tags (the encoder when large)."""
    for name, (encoder, value) in outputs.scraps.items():
        number = to_float(value) if not isinstance(value, str) else None
        if number is not None:
            yield Metric(run_id, name, number)
        else:
            yield Tag(run_id, f"scrap.{name}", to_text(value) if value is not None else f"<{encoder}>")


# --- references -----------------------------------------------------------------------------

def _reference_bases(unit: Path, ctx: CrawlContext, papermill: dict | None) -> list[str]:
    """Folders a relative path in the code may be relative to, most likely first.

    Papermill's kernel runs in its ``--cwd`` (commonly the input notebook's folder) or else in
    papermill's own cwd; a notebook run by hand runs in its own folder.
    """
    bases: list[str] = []
    if papermill is not None:
        template = _resolve_recorded(papermill.get("input_path"), unit, ctx, papermill)
        if template is not None:
            bases.append(os.path.dirname(os.path.join(ctx.root, template)))
        cwd = _papermill_cwd(unit, papermill)
        if cwd is not None:
            bases.append(cwd)
    bases += [os.path.dirname(os.path.abspath(unit)), str(ctx.root)]
    return list(dict.fromkeys(os.path.normpath(b) for b in bases))


def _papermill_cwd(unit: Path, papermill: dict) -> str | None:
    """Where papermill ran: the notebook's real path minus the relative output path it recorded.

    ``output_path`` is stored as given on papermill's command line; when this file still sits
    where papermill wrote it, stripping that tail from the real path gives papermill's cwd.
    """
    recorded = papermill.get("output_path")
    if not isinstance(recorded, str) or not recorded or is_uri(recorded) or os.path.isabs(recorded):
        return None
    tail = [p for p in posixpath.normpath(recorded.replace("\\", "/")).split("/") if p not in ("", ".")]
    actual = Path(os.path.abspath(unit)).parts
    if not tail or ".." in tail or tuple(tail) != actual[len(actual) - len(tail):]:
        return None
    return str(Path(*actual[: len(actual) - len(tail)]))


def _rebase_absolute(raw: str, unit: Path, papermill: dict) -> str:
    """An absolute path recorded on another machine, moved to where the files are now.

    When the recorded absolute ``output_path`` and this file's real path share a tail, the
    recorded prefix before that tail stands for the local one (``/srv/proj`` -> ``<root>``).
    """
    recorded = papermill.get("output_path")
    if not os.path.isabs(raw) or not isinstance(recorded, str) or not os.path.isabs(recorded):
        return raw
    actual, old = Path(os.path.abspath(unit)).parts, Path(recorded).parts
    common = 0
    while common < min(len(actual), len(old)) - 1 and actual[-1 - common] == old[-1 - common]:
        common += 1
    old_prefix, new_prefix = Path(*old[: len(old) - common]), Path(*actual[: len(actual) - common])
    if common and Path(raw).is_relative_to(old_prefix):
        return str(new_prefix / Path(raw).relative_to(old_prefix))
    return raw


def _resolve_recorded(raw: Any, unit: Path, ctx: CrawlContext, papermill: dict) -> str | None:
    """A path papermill recorded, resolved against its cwd, the crawl root or this folder."""
    if not isinstance(raw, str) or not raw or is_uri(raw):
        return None
    bases = [b for b in (_papermill_cwd(unit, papermill), str(ctx.root),
                         os.path.dirname(os.path.abspath(unit))) if b]
    return resolve_path(_rebase_absolute(raw, unit, papermill), bases, ctx)


def _papermill_edge(rel: str, unit: Path, papermill: dict, ctx: CrawlContext) -> Iterator[Edge]:
    """Declared lineage: the input notebook papermill executed into this one."""
    source = _resolve_recorded(papermill.get("input_path"), unit, ctx, papermill)
    if source is None or not isinstance(papermill.get("output_path"), str):
        return
    yield Edge(src=source, dst=rel, relation="papermill_input_to_output",
               evidence=f"{rel}#metadata.papermill",
               facts={"input_path": papermill.get("input_path"), "output_path": papermill.get("output_path")})
