"""Absolute paths written on another machine, mapped to the files that hold them here.

Tools record paths as they were when the run ran (``/srv/share/proj/data/x.csv``); the crawl
sees the same project copied or mounted elsewhere (``<root>/teamA/proj/data/x.csv``).  The
mapping keeps the longest tail of the foreign path that exists under one of the folders
between the run and the crawl root::

    foreign  /srv/share/iris-project/data/processed/iris_clean.csv
    tails    srv/share/.../iris_clean.csv, share/..., iris-project/..., data/processed/iris_clean.csv ✓
    bases    <run folder>, its parent, ..., <crawl root>       (nearest first)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from mlcrawl.crawler import CrawlContext

_DRIVE = re.compile(r"^[A-Za-z]:$")


@dataclass(frozen=True, slots=True)
class MappedPath:
    """A foreign path found here: ``path`` is local, ``matched`` counts the tail's components."""

    path: Path
    matched: int

    @property
    def confidence(self) -> float:
        """1.0 when a folder and the file name agree; 0.5 for a bare file-name match."""
        return 1.0 if self.matched >= 2 else 0.5


def split_foreign(raw: str) -> list[str]:
    """The components of a POSIX or Windows path, without root, drive, '.' or '..'."""
    parts = [p for p in re.split(r"[\\/]+", raw) if p and p != "."]
    if parts and _DRIVE.match(parts[0]):
        parts = parts[1:]
    return parts if ".." not in parts else []


def search_bases(ctx: CrawlContext, near: Path) -> list[Path]:
    """``near`` and its parents up to the crawl root, nearest first (just the root if outside)."""
    near = Path(os.path.abspath(near))
    bases = [near, *near.parents]
    if ctx.root not in bases:
        return [ctx.root]
    return bases[: bases.index(ctx.root) + 1]


def map_foreign_path(raw: str, ctx: CrawlContext, near: Path) -> MappedPath | None:
    """The local file or folder ``raw`` names, by its longest existing tail; None if none.

    A path that already exists inside the crawl root (the crawl runs where the tool ran) is
    taken as it is.
    """
    if not raw:
        return None
    direct = Path(raw)
    if direct.is_absolute() and direct.exists() and direct.is_relative_to(ctx.root):
        return MappedPath(direct, len(split_foreign(raw)))
    parts = split_foreign(raw)
    bases = search_bases(ctx, near)
    for start in range(len(parts)):
        tail = Path(*parts[start:])
        for base in bases:
            candidate = base / tail
            if candidate.exists():
                return MappedPath(candidate, len(parts) - start)
    return None
