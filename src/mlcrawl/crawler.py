"""The crawler interface: what a crawler is, and the context through which it reads files.

A crawler translates one source format.  ``match`` claims paths cheaply, from names alone;
``crawl`` turns one claimed unit (a file or a folder) into records.  A crawler never writes to
the catalog, never prints, never executes crawled code and never unpickles.  It raises on bad
input: the runner turns the exception into one ``errors`` row, drops the unit's partial output
and goes on; the next crawl retries the unit.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar, Protocol, runtime_checkable

from .records import CrawlError, Record

HASH_CHUNK = 1 << 20


@runtime_checkable
class Crawler(Protocol):
    """What every crawler provides (built-in or from the ``mlcrawl.crawlers`` entry points)."""

    name: ClassVar[str]
    version: ClassVar[int]

    def match(self, path: Path, is_dir: bool) -> bool:
        """Claim ``path`` as a unit, judging from its name (and its parents' names) only."""
        ...

    def crawl(self, unit: Path, ctx: CrawlContext) -> Iterator[Record]:
        """Yield the records of one unit; raise on input that cannot be read."""
        ...


# A crawler may also define ``match_folder(self, path: Path, names: frozenset[str]) -> bool``:
# the walker calls it for every folder with the names of the folder's entries, which it has
# listed anyway, so "a folder holding run.json" is claimed without touching the disk again.


def sha256_file(path: Path) -> str:
    """Stream a file through SHA-256 (the same digest as ``sha256sum``)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class CrawlContext:
    """All a crawler may ask of the core for one unit.

    The runner builds one per unit; tests build their own with ``CrawlContext.for_root``.
    ``known_hashes`` holds digests the core already computed, so crawlers never hash twice;
    ``cached_bytes`` holds contents the core already read.  ``enclosing`` lists the folder
    units (crawler name, folder) that contain this unit, outermost first.
    """

    root: Path
    unit: Path
    options: dict[str, Any] = field(default_factory=dict)
    known_hashes: dict[Path, str] = field(default_factory=dict)
    cached_bytes: dict[Path, bytes] = field(default_factory=dict)
    warnings: list[CrawlError] = field(default_factory=list)
    lookup_sha256: Callable[[str], str | None] | None = None
    enclosing: tuple[tuple[str, Path], ...] = ()

    @classmethod
    def for_root(cls, root: Path | str, unit: Path | str, **options: Any) -> CrawlContext:
        """A context for crawling ``unit`` under ``root`` outside a real crawl (tests, tools)."""
        return cls(root=Path(root).absolute(), unit=Path(unit).absolute(), options=options)

    def relpath(self, path: Path | str) -> str:
        """``path`` as a POSIX path relative to the crawl root ('.' for the root itself)."""
        rel = os.path.relpath(os.path.abspath(path), self.root)
        return PurePosixPath(*Path(rel).parts).as_posix() if rel != "." else "."

    def read_bytes(self, path: Path) -> bytes:
        """The contents of ``path``, from the core's cache when it already read them."""
        cached = self.cached_bytes.get(Path(path))
        return cached if cached is not None else Path(path).read_bytes()

    def read_text(self, path: Path, errors: str = "strict") -> str:
        """The contents of ``path`` decoded as UTF-8 (a leading BOM is dropped)."""
        return self.read_bytes(path).decode("utf-8-sig", errors=errors)

    def sha256(self, path: Path) -> str:
        """SHA-256 of ``path``, computed at most once per crawl."""
        path = Path(path)
        known = self.known_hashes.get(path)
        if known is None and self.lookup_sha256 is not None:
            known = self.lookup_sha256(self.relpath(path))
        if known is None:
            cached = self.cached_bytes.get(path)
            known = hashlib.sha256(cached).hexdigest() if cached is not None else sha256_file(path)
            self.known_hashes[path] = known
        return known

    def warn(self, message: str, path: Path | str | None = None, error_type: str = "warning") -> None:
        """Record a non-fatal problem; it becomes an ``errors`` row with severity ``warning``."""
        rel = self.relpath(path) if path is not None else self.relpath(self.unit)
        self.warnings.append(CrawlError(rel, error_type, message, severity="warning"))
