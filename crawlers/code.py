"""Python scripts: the modules they import and the files they read and write, never run.

One unit is one ``.py`` file::

    src/
      prepare.py      import pandas as pd                     -> Import pandas
                      df = pd.read_csv("data/raw/iris.csv")   -> Reference read, line 10
                      df.to_csv("data/prepared/train.csv")    -> Reference write, line 15

The analysis is ``_codeanalysis`` (shared with notebooks).  A script runs from wherever it
was launched, so a relative path is tried against the script's folder and every folder up
to the crawl root; the first candidate that exists wins.  The folder under which most of the
script's paths exist is taken as its working directory and places the paths that do not
exist (yet), such as outputs never written.  Resolution helpers here are also used by the
notebook crawler.
"""

from __future__ import annotations

import io
import os
import posixpath
import tokenize
from collections.abc import Callable, Iterator
from pathlib import Path

from mlcrawl.api import BaseCrawler, Claims, CrawlContext, Import, Record, Reference

from ._codeanalysis import UNKNOWN_CWD, CodeAnalyzer, FileRef, is_uri


def is_code_snapshot(path: Path) -> bool:
    """A copy of the code a run stored (Sacred ``_sources/``, MLflow ``artifacts/code/``, W&B
    ``run-*/files/code/``): the code that ran, not live code; its tool's crawler links it to its run."""
    parts = path.parts
    if len(parts) >= 2 and parts[-2] == "_sources":
        return True
    for i in range(1, len(parts) - 1):
        if parts[i] == "code" and (parts[i - 1] == "artifacts"
                                   or (parts[i - 1] == "files" and i >= 2 and "run-" in parts[i - 2])):
            return True
    return False


class CodeCrawler(BaseCrawler):
    """Reads ``.py`` files into imports and file references."""

    name = "code"
    claims = Claims(files=("*.py",))
    version = 1

    def match(self, path: Path, is_dir: bool) -> bool:
        """Claim ``*.py`` files outside ``.ipynb_checkpoints`` folders and stored code snapshots."""
        return (not is_dir and path.suffix == ".py" and ".ipynb_checkpoints" not in path.parts
                and not is_code_snapshot(path))

    def crawl(self, unit: Path, ctx: CrawlContext) -> Iterator[Record]:
        """Yield the script's imports and references."""
        rel = ctx.relpath(unit)
        source = read_source(unit, ctx)
        analyzer = CodeAnalyzer(file_path=os.path.abspath(unit))
        analyzer.add_source(source)
        for problem in analyzer.facts.problems:
            ctx.warn(f"line {problem.line}: {problem.message}", unit, "syntax_error")
        yield from (Import(rel, module) for module in analyzer.facts.imports)
        yield from reference_records(rel, analyzer.facts.references, script_bases(unit, ctx), ctx)


def read_source(unit: Path, ctx: CrawlContext) -> str:
    """The script's text, decoded per its PEP 263 coding cookie (UTF-8 when it has none).

    Undecodable bytes are replaced, with a warning, so the rest of the file is still read.
    """
    data = ctx.read_bytes(unit)
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:  # an unknown codec in the cookie, or no cookie and bad UTF-8
        if "unknown encoding" in str(exc):
            ctx.warn(f"coding cookie not usable ({exc}); read as UTF-8", unit, "encoding")
        encoding = "utf-8"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        ctx.warn(f"not valid {encoding} at byte {exc.start}; undecodable bytes replaced", unit, "encoding")
        return data.decode(encoding, errors="replace")


def script_bases(unit: Path, ctx: CrawlContext) -> list[str]:
    """The script's folder and each parent up to the crawl root, nearest first."""
    here = Path(os.path.abspath(unit)).parent
    bases = [here, *here.parents]
    if ctx.root not in bases:
        return [str(ctx.root)]
    return [str(b) for b in bases[: bases.index(ctx.root) + 1]]


def resolve_path(raw: str, bases: list[str], ctx: CrawlContext,
                 seen: dict[str, bool] | None = None) -> str | None:
    """``raw`` as a root-relative path: the first candidate that exists (on disk or in the
    catalog), else the first one inside the root; None for URIs and paths outside the root.

    ``seen`` memoises existence checks across the references of one unit.
    """
    found = _candidates(raw, bases, ctx)
    for candidate in found:
        if _exists(candidate, ctx, seen if seen is not None else {}):
            return ctx.relpath(candidate)
    return ctx.relpath(found[0]) if found else None


def _candidates(raw: str, bases: list[str], ctx: CrawlContext) -> list[str]:
    """Absolute candidate paths for ``raw`` that stay inside the crawl root."""
    if not raw or is_uri(raw) or raw.startswith("~"):
        return []
    root = os.path.normpath(str(ctx.root))
    found = []
    for base in [root] if os.path.isabs(raw) else bases:
        candidate = os.path.normpath(os.path.join(base, raw))
        if candidate == root or candidate.startswith(root.rstrip(os.sep) + os.sep):
            found.append(candidate)
    return found


def _exists(candidate: str, ctx: CrawlContext, seen: dict[str, bool]) -> bool:
    """On disk, or known to the catalog (the file may be gone since)."""
    if candidate not in seen:
        seen[candidate] = os.path.exists(candidate) or (
            ctx.lookup_sha256 is not None and ctx.lookup_sha256(ctx.relpath(candidate)) is not None)
    return seen[candidate]


def likely_cwd(raws: list[str], bases: list[str], ctx: CrawlContext, seen: dict[str, bool]) -> list[str]:
    """``bases`` with the one under which most of ``raws`` exist first: the code's working
    directory, which then also places the files it names that do not exist (yet)."""
    relative = [raw for raw in raws if raw and not os.path.isabs(raw) and not is_uri(raw)]
    hits = {base: sum(_exists(c, ctx, seen) for raw in relative for c in _candidates(raw, [base], ctx))
            for base in bases}
    best = max(bases, key=lambda b: hits[b], default=None)
    if best is None or hits[best] == 0:
        return bases
    return [best, *(b for b in bases if b != best)]


def moved(raw: str, cwd: str | None) -> str:
    """``raw`` as seen from where the program started, when a chdir had moved it to ``cwd``.

    After a chdir that did not fold, the path is left as written (and stays unresolved).
    """
    if cwd is None or cwd == UNKNOWN_CWD or os.path.isabs(raw) or is_uri(raw):
        return raw
    return posixpath.normpath(posixpath.join(cwd, raw))


def reference_records(rel: str, refs: list[FileRef], bases: list[str], ctx: CrawlContext,
                      not_run: set[int] | frozenset[int] = frozenset(),
                      rebase: Callable[[str], str] | None = None) -> Iterator[Reference]:
    """References with resolved paths and evidence (``cell N, line M: call``).

    References in cells listed in ``not_run`` (cells an executed notebook never reached) say
    so in their evidence: the code names the file, but this execution did not touch it.
    ``rebase`` maps an absolute path written on another machine to this one before resolving.
    """
    source_dir = os.path.dirname(os.path.join(str(ctx.root), rel))
    raws = [moved(rebase(ref.raw) if rebase is not None else ref.raw, ref.cwd) for ref in refs]
    seen: dict[str, bool] = {}
    cwd_bases = likely_cwd([r for r, ref in zip(raws, refs, strict=True) if not ref.relative_to_source],
                           bases, ctx, seen)
    for raw, ref in zip(raws, refs, strict=True):
        if ref.cwd == UNKNOWN_CWD and not os.path.isabs(raw):
            resolved = None  # relative to a folder we cannot name: kept raw, never guessed
        else:
            resolved = resolve_path(raw, [source_dir] if ref.relative_to_source else cwd_bases, ctx, seen)
        where = f"cell {ref.cell}, line {ref.line}" if ref.cell is not None else f"line {ref.line}"
        if ref.cell in not_run:
            where += " (cell not run)"
        if ref.cwd is not None:
            where += " (cwd unknown after chdir)" if ref.cwd == UNKNOWN_CWD else f" (after chdir to {ref.cwd})"
        yield Reference(source_path=rel, raw=ref.raw, resolved_path=resolved, direction=ref.direction,
                        evidence=f"{where}: {ref.call}", call=ref.call, cell=ref.cell, line=ref.line)
