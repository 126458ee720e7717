"""Path resolution for crawlers: under-root checks and foreign absolute paths mapped into the root.

Absolute paths written on another machine are mapped to the files that hold them here.

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


def search_bases(root: Path, near: Path) -> list[Path]:
    """``near`` and its parents up to the crawl root, nearest first (just the root if outside)."""
    near = Path(os.path.abspath(near))
    bases = [near, *near.parents]
    if root not in bases:
        return [root]
    return bases[: bases.index(root) + 1]


def map_foreign_path(raw: str, root: Path, near: Path) -> MappedPath | None:
    """The local file or folder ``raw`` names, by its longest existing tail; None if none.

    A path that already exists inside the crawl root (the crawl runs where the tool ran) is
    taken as it is.
    """
    if not raw:
        return None
    direct = Path(raw)
    if direct.is_absolute() and direct.exists() and direct.is_relative_to(root):
        return MappedPath(direct, len(split_foreign(raw)))
    parts = split_foreign(raw)
    bases = search_bases(root, near)
    for start in range(len(parts)):
        tail = Path(*parts[start:])
        for base in bases:
            candidate = base / tail
            if candidate.exists():
                return MappedPath(candidate, len(parts) - start)
    return None


def is_under(path: Path | str, root: Path | str) -> bool:
    """True when ``path`` (made absolute, not resolved) is ``root`` or inside it."""
    path, root = os.path.abspath(path), os.path.abspath(root)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


@dataclass(frozen=True, slots=True)
class Resolved:
    """The outcome of resolving a raw path: ``path`` is None when it names nothing under the root.

    ``rule`` says how it was found (``relative``, ``absolute``, ``foreign``), for lineage evidence.
    """

    raw: str
    path: Path | None
    rule: str
    confidence: float


def resolve(raw: str, root: Path, base: Path, near: Path | None = None, must_exist: bool = False) -> Resolved:
    """Resolve ``raw`` as a program with working directory ``base`` would, within ``root``.

    Relative paths are joined to ``base``; absolute ones are kept when under the root, else
    mapped by their longest tail that exists between ``near`` (default ``base``) and the root.
    A path that cannot be placed keeps its raw text and no path: never guessed elsewhere.
    """
    if not raw:
        return Resolved(raw, None, "empty", 0.0)
    posix = raw.replace("\\", "/")
    if os.path.isabs(posix) or _DRIVE.match(posix[:2]):
        if is_under(posix, root) and (not must_exist or os.path.exists(posix)):
            return Resolved(raw, Path(os.path.normpath(posix)), "absolute", 1.0)
        mapped = map_foreign_path(raw, root, near or base)
        if mapped is None:
            return Resolved(raw, None, "unresolved", 0.0)
        return Resolved(raw, mapped.path, "foreign", mapped.confidence)
    joined = Path(os.path.normpath(os.path.join(base, posix)))
    if not is_under(joined, root) or (must_exist and not joined.exists()):
        return Resolved(raw, None, "outside" if not is_under(joined, root) else "missing", 0.0)
    return Resolved(raw, joined, "relative", 1.0)
