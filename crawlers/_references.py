"""File references found in code, resolved to root-relative paths (shared by the code and
notebook crawlers): candidate working directories, ``chdir`` rebasing, evidence text."""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, Iterator

from mlcrawl.api import CrawlContext, Reference

from ._codeanalysis import UNKNOWN_CWD, FileRef, is_uri


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
