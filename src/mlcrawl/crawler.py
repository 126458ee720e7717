"""The crawler interface: what a crawler declares, and the context through which it reads files.

A crawler translates one source format.  It declares which file names and folder shapes it
claims (``Claims``, glob patterns with a priority); the core matches them in bulk, arbitrates
between crawlers and calls ``match`` only for candidates.  ``crawl`` turns one claimed unit (a
file or a folder) into records.  A crawler never writes to the catalog, never prints, never
executes crawled code, never unpickles and never opens a crawled file itself: every read goes
through the ``CrawlContext`` (guarded, bounded, cached per unit).  It raises on bad input: the
core turns the exception into one ``errors`` row and goes on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import mmap
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from . import parsing, paths, secrets
from .fileaccess import DEFAULT_READ_LIMIT, FilePolicy, TooLarge, open_binary, read_bounded
from .records import CrawlError, Record

HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class Options:
    """Base of a crawler's typed options: subclass it as a frozen dataclass with defaults.

    ``[crawlers.NAME]`` in the config is validated against the subclass's fields.
    """

    def get(self, key: str, default: Any = None) -> Any:
        """Mapping-style access for crawlers that look an option up by name."""
        return getattr(self, key, default)


@dataclass(frozen=True)
class FolderShape:
    """A folder a crawler claims: its own name (a glob) and the names it must hold (globs)."""

    name: str = "*"
    any_of: tuple[str, ...] = ()
    all_of: tuple[str, ...] = ()
    priority: int = 0

    def matches(self, folder_name: str, names: frozenset[str]) -> bool:
        """True when ``folder_name`` and the folder's entry ``names`` fit this shape."""
        if self.name != "*" and not fnmatchcase(folder_name, self.name):
            return False
        if self.all_of and not all(_holds(names, g) for g in self.all_of):
            return False
        return not self.any_of or any(_holds(names, g) for g in self.any_of)


def _holds(names: frozenset[str], pattern: str) -> bool:
    if not any(c in pattern for c in "*?["):
        return pattern in names
    return any(fnmatchcase(n, pattern) for n in names)


@dataclass(frozen=True)
class Claims:
    """What a crawler claims: file-name globs (with one priority) and folder shapes (each its own).

    Among the crawlers that claim the same path, only those with the highest priority get it.
    """

    files: tuple[str, ...] = ()
    folders: tuple[FolderShape, ...] = ()
    file_priority: int = 0


@dataclass(frozen=True, slots=True)
class Unit:
    """One claimed file or folder: absolute ``path``, ``rel`` to the root, and whether a folder."""

    path: Path
    rel: str
    is_dir: bool


class BaseCrawler:
    """Base class of every crawler (built-in and plugin).

    Set ``name`` (equal to the entry-point name), ``version`` (bump when the output changes),
    ``claims`` and, if the crawler has options, ``Options`` (a frozen ``Options`` subclass).
    Override ``match`` only to refine a claim with more than names can say; override ``crawl``.
    """

    name: ClassVar[str]
    version: ClassVar[int] = 1
    claims: ClassVar[Claims] = Claims()
    Options: ClassVar[type[Options]] = Options

    def match(self, path: Path, is_dir: bool) -> bool:
        """Refine a claim the core already matched by name; the default accepts it."""
        return True

    def crawl(self, unit: Path, ctx: CrawlContext) -> Iterator[Record]:
        """Yield the records of one unit; raise on input that cannot be read."""
        raise NotImplementedError

    def folder_run_id(self, folder: Path, rel: str) -> str | None:
        """The run id this crawler's folder unit at ``folder`` stands for, when the folder is one run.

        The core hands it to the crawlers of units inside (``ctx.enclosing_runs``), so a document
        deep in a run folder joins that run without knowing which tool wrote it.
        """
        return None


# Kept for type hints in code that only needs the shape of a crawler.
Crawler = BaseCrawler


def sha256_file(path: Path, policy: FilePolicy | None = None) -> str:
    """Stream a file through SHA-256 (the same digest as ``sha256sum``)."""
    digest = hashlib.sha256()
    with open_binary(os.fspath(path), policy) as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class CrawlContext:
    """All a crawler may ask of the core for one unit: guarded reads, paths, redaction, problems.

    The runner builds one per unit; tests build their own with ``CrawlContext.for_root``.
    ``known_hashes`` holds digests the core already computed, ``cached_bytes`` contents it
    already read.  ``enclosing`` lists the folder units (crawler name, folder) that contain this
    unit, outermost first; ``enclosing_runs`` the (folder, run id) of those that are one run.  Parsed documents are cached per unit, so two helpers of one crawler
    never read a file twice.
    """

    root: Path
    unit: Path
    options: Any = field(default_factory=Options)
    known_hashes: dict[Path, str] = field(default_factory=dict)
    cached_bytes: dict[Path, bytes] = field(default_factory=dict)
    warnings: list[CrawlError] = field(default_factory=list)
    lookup_sha256: Callable[[str], str | None] | None = None
    enclosing: tuple[tuple[str, Path], ...] = ()
    follow_symlinks: bool = False
    read_limit: int = DEFAULT_READ_LIMIT
    folder_names: Callable[[str], frozenset[str] | None] | None = None
    enclosing_runs: tuple[tuple[Path, str], ...] = ()
    redactor: secrets.Redactor = field(default_factory=secrets.Redactor)
    _documents: dict[tuple[Path, str], Any] = field(default_factory=dict, repr=False)

    @classmethod
    def for_root(cls, root: Path | str, unit: Path | str, options: Any = None, **option_values: Any) -> CrawlContext:
        """A context for crawling ``unit`` under ``root`` outside a real crawl (tests, tools)."""
        if options is None:
            options = _AdHocOptions(option_values)
        return cls(root=Path(root).absolute(), unit=Path(unit).absolute(), options=options)

    @property
    def policy(self) -> FilePolicy:
        """Where this unit's reads may go (inside the root; symlinks per the crawl's setting)."""
        return FilePolicy(os.fspath(self.root), self.follow_symlinks)

    # -- paths -------------------------------------------------------------------------------

    def relpath(self, path: Path | str) -> str:
        """``path`` as a POSIX path relative to the crawl root ('.' for the root itself)."""
        # relpath normalises already; pathlib objects here were a tenth of a cold crawl's time.
        return os.path.relpath(os.path.abspath(path), self.root).replace(os.sep, "/")

    def is_inside(self, path: Path | str) -> bool:
        """True when ``path`` is the root or under it (lexically; reads check symlinks too)."""
        return paths.is_under(path, self.root)

    def resolve(self, raw: str, base: Path | str | None = None, must_exist: bool = False) -> paths.Resolved:
        """The one path-resolution service: ``raw`` as a program in ``base`` (default: the unit's
        folder) would open it, under-root checked, foreign absolute paths mapped into the root."""
        if base is None:
            base = self.unit if self.unit.is_dir() else self.unit.parent
        return paths.resolve(raw, self.root, Path(base), must_exist=must_exist)

    def names(self, folder: Path | str) -> frozenset[str]:
        """The entry names of ``folder``, from the walk's own listing when it has one (no disk access)."""
        if self.folder_names is not None:
            listed = self.folder_names(self.relpath(folder))
            if listed is not None:
                return listed
        self.policy.resolve_inside(os.fspath(folder))
        return frozenset(os.listdir(folder))

    # -- reads -------------------------------------------------------------------------------

    def size(self, path: Path | str) -> int:
        """Size of ``path`` in bytes, without reading it."""
        cached = self.cached_bytes.get(Path(path))
        return len(cached) if cached is not None else os.lstat(path).st_size

    def read_bytes(self, path: Path | str, limit: int | None = None) -> bytes:
        """The whole file (from the core's cache when it already read it), within ``limit`` bytes."""
        limit = self.read_limit if limit is None else limit
        cached = self.cached_bytes.get(Path(path))
        if cached is not None:
            if len(cached) > limit:
                raise TooLarge(f"{len(cached)} bytes is over the read limit of {limit} bytes")
            return cached
        return read_bounded(os.fspath(path), limit, self.policy)

    def read_text(self, path: Path | str, errors: str = "strict", limit: int | None = None) -> str:
        """The file decoded as UTF-8 (a leading BOM dropped)."""
        return self.read_bytes(path, limit).decode("utf-8-sig", errors=errors)

    def read_json(self, path: Path | str, limit: int | None = None) -> Any:
        """The parsed JSON document, parsed once per unit."""
        return self._document(Path(path), "json", lambda: parsing.load_json(self.read_text(path, limit=limit)))

    def read_yaml(self, path: Path | str, limit: int | None = None) -> Any:
        """The parsed YAML document (safe loader, object tags read as data), parsed once per unit."""
        return self._document(Path(path), "yaml", lambda: parsing.load_yaml(self.read_text(path, limit=limit)))

    def read_mapping(self, path: Path | str, fmt: str = "yaml", limit: int | None = None) -> dict:
        """A document that should be a mapping: {} plus one warning when it is unreadable or not one."""
        try:
            data = self.read_json(path, limit) if fmt == "json" else self.read_yaml(path, limit)
        except Exception as exc:  # noqa: BLE001 - OSError, JSON's ValueError, yaml's own hierarchy
            self.warn(f"unreadable {fmt}: {_one_line(exc)}", path, "unreadable_document")
            return {}
        if data is None:
            return {}
        if not isinstance(data, dict):
            self.warn(f"expected a mapping, found {type(data).__name__}", path, "unexpected_document")
            return {}
        return data

    def _document(self, path: Path, fmt: str, parse: Callable[[], Any]) -> Any:
        key = (path, fmt)
        if key not in self._documents:
            self._documents[key] = parse()
        return self._documents[key]

    @contextmanager
    def open(self, path: Path | str) -> Iterator[BinaryIO]:
        """A seekable binary stream of ``path`` for bounded reads (header, footer, streaming)."""
        cached = self.cached_bytes.get(Path(path))
        if cached is not None:
            yield io.BytesIO(cached)
            return
        with open_binary(os.fspath(path), self.policy) as f:
            yield f

    def read_prefix(self, path: Path | str, limit: int) -> bytes:
        """At most the first ``limit`` bytes of ``path``."""
        with self.open(path) as f:
            return f.read(limit)

    @contextmanager
    def mapped(self, path: Path | str) -> Iterator[bytes | mmap.mmap]:
        """The contents of ``path`` for slicing: bytes the core already read, else a read-only mmap
        (event files and W&B logs reach gigabytes; the OS pages an mmap in and out)."""
        cached = self.cached_bytes.get(Path(path))
        if cached is not None:
            yield cached
            return
        with self.open(path) as f:
            if os.fstat(f.fileno()).st_size == 0:
                yield b""  # mmap refuses empty files
                return
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
                yield view

    def sha256(self, path: Path | str) -> str:
        """SHA-256 of ``path``, computed at most once per crawl."""
        path = Path(path)
        known = self.known_hashes.get(path)
        if known is None and self.lookup_sha256 is not None:
            known = self.lookup_sha256(self.relpath(path))
        if known is None:
            cached = self.cached_bytes.get(path)
            known = hashlib.sha256(cached).hexdigest() if cached is not None else sha256_file(path, self.policy)
            self.known_hashes[path] = known
        return known

    # -- values and problems -----------------------------------------------------------------

    def redact(self, key: str, value: str | None) -> str | None:
        """``value``, or the redaction marker when ``key`` names a secret (counted for the crawl)."""
        return value if value is None else self.redactor.value(key, value)

    def redact_text(self, text: str) -> str:
        """Free text (a command line, a URL, a message) with secrets scrubbed out (counted)."""
        return self.redactor.text(text, emails=True)

    def warn(self, message: str, path: Path | str | None = None, error_type: str = "warning") -> None:
        """Record a non-fatal problem; it becomes an ``errors`` row with severity ``warning``."""
        self._problem(message, path, error_type, "warning")

    def error(self, message: str, path: Path | str | None = None, error_type: str = "error") -> None:
        """Record a problem with one file of the unit while the rest of the unit is still read."""
        self._problem(message, path, error_type, "error")

    def _problem(self, message: str, path: Path | str | None, error_type: str, severity: str) -> None:
        rel = self.relpath(path) if path is not None else self.relpath(self.unit)
        self.warnings.append(CrawlError(rel, error_type, self.redactor.text(message, emails=True), severity=severity))


class _AdHocOptions(Options):
    """Options given as keywords to ``CrawlContext.for_root`` (tests and tools)."""

    def __init__(self, values: dict[str, Any]) -> None:
        object.__setattr__(self, "_values", dict(values))

    def get(self, key: str, default: Any = None) -> Any:
        return self._values.get(key, default)

    def __getattr__(self, key: str) -> Any:
        try:
            return self.__dict__["_values"][key]
        except KeyError:
            raise AttributeError(key) from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def options_from(cls: type[Options], values: dict[str, Any], section: str) -> Options:
    """Validate ``[crawlers.NAME]`` values against an ``Options`` dataclass (a ConfigError names the key)."""
    from .errors import ConfigError

    known = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in values.items():
        if key not in known:
            valid = ", ".join(sorted(known)) or "none"
            raise ConfigError(f"[{section}]: unknown option {key!r} (valid: {valid})")
        expected = known[key].type if not isinstance(known[key].type, str) else _builtin_type(known[key].type)
        if expected is not None and not _fits(value, expected):
            raise ConfigError(f"[{section}]: option {key!r} must be {known[key].type}, got {json.dumps(value, default=str)}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[{section}]: {exc}") from None


_TYPES = {"int": int, "float": (int, float), "str": str, "bool": bool}


def _builtin_type(annotation: str):
    return _TYPES.get(annotation.strip())


def _fits(value: Any, expected) -> bool:
    if expected is int or expected == (int, float):
        return isinstance(value, expected) and not isinstance(value, bool)
    return isinstance(value, expected)
