"""The tree walk: os.scandir, ignore rules and the symlink policy, as a stream of events.

Folders are listed in an order that makes the stream of file paths sorted like the catalog's
``ORDER BY path`` (a folder sorts as ``name/``), so the runner can merge the walk with the
catalog's stat cache without holding either in memory.
"""

from __future__ import annotations

import os
import stat as stat_mod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pathspec

from .fileaccess import LONG_PATH, open_folder, read_bounded

IGNORE_FILE = ".mlcrawlignore"
DEFAULT_IGNORED_NAMES = frozenset({
    ".git", ".hg", ".svn", "__pycache__", ".ipynb_checkpoints", "node_modules", ".mypy_cache",
    ".pytest_cache", ".ruff_cache", ".tox", ".nox", ".venv", "venv", ".direnv", ".eggs",
})
# Paths relative to any folder: DVC's content cache duplicates every tracked file.
DEFAULT_IGNORED_SUBPATHS = (".dvc/cache", ".dvc/tmp")
# A folder holding one of these is a Python environment, whatever its name.
ENVIRONMENT_MARKERS = frozenset({"pyvenv.cfg", "conda-meta"})


@dataclass(frozen=True, slots=True)
class FileEntry:
    """A regular file (or a followed symlink to one)."""

    path: str
    rel: str
    stat: os.stat_result


@dataclass(frozen=True, slots=True)
class DirEnter:
    """The walk enters a folder; ``names`` are the (display) names of its entries."""

    path: str
    rel: str
    names: frozenset[str]


@dataclass(frozen=True, slots=True)
class DirExit:
    """The walk has yielded everything under a folder."""

    path: str
    rel: str


@dataclass(frozen=True, slots=True)
class SymlinkEntry:
    """A symlink that is recorded and not followed."""

    rel: str
    target: str
    resolves_inside: bool
    broken: bool


@dataclass(frozen=True, slots=True)
class WalkProblem:
    """Something the walk could not read; it becomes an ``errors`` row."""

    rel: str
    error_type: str
    message: str
    severity: str = "error"


WalkEvent = FileEntry | DirEnter | DirExit | SymlinkEntry | WalkProblem


@dataclass(frozen=True)
class WalkRules:
    """What to skip: default ignores, config globs, ``.mlcrawlignore`` files, symlink policy."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    follow_symlinks: bool = False
    use_ignore_files: bool = True
    ignored_names: frozenset[str] = DEFAULT_IGNORED_NAMES
    _include: pathspec.PathSpec | None = field(default=None, init=False, repr=False, compare=False)
    _exclude: pathspec.PathSpec | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        spec = pathspec.GitIgnoreSpec.from_lines
        object.__setattr__(self, "_include", spec(self.include) if self.include else None)
        object.__setattr__(self, "_exclude", spec((*self.exclude, *DEFAULT_IGNORED_SUBPATHS)))

    def excluded(self, rel: str, is_dir: bool) -> bool:
        """True when a config exclude glob or a default sub-path ignore matches."""
        if not is_dir and not self.exclude:
            return False  # the default ignores name folders only: no per-file cost without globs
        return self._exclude.match_file(rel + "/" if is_dir else rel)

    def included(self, rel: str) -> bool:
        """True when no include globs are set or one of them matches this file."""
        return self._include is None or self._include.match_file(rel)


def display_name(name: str) -> str:
    """A name as valid UTF-8 text: undecodable bytes become ``\\xNN`` escapes."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _entry_name(entry: os.DirEntry) -> str:
    return entry.name


def _join(rel: str, name: str) -> str:
    return name if rel in ("", ".") else f"{rel}/{name}"


@dataclass(frozen=True, slots=True)
class _DeepEntry:
    """A folder entry under a path too long for one system call, its lstat taken while listed."""

    name: str
    path: str
    lstat: os.stat_result

    def is_symlink(self) -> bool:
        return stat_mod.S_ISLNK(self.lstat.st_mode)

    def is_dir(self, follow_symlinks: bool = True) -> bool:
        return stat_mod.S_ISDIR(self.lstat.st_mode)

    def stat(self, follow_symlinks: bool = True) -> os.stat_result:
        return self.lstat


def _list_deep(path: str) -> list[_DeepEntry]:
    # Listed through a folder fd: the entries' own stat calls then need no long path.
    fd = open_folder(path)
    try:
        with os.scandir(fd) as it:
            return [_DeepEntry(e.name, os.path.join(path, e.name), e.stat(follow_symlinks=False)) for e in it]
    finally:
        os.close(fd)


@dataclass
class _Frame:
    """One folder being walked: its remaining entries and what to undo when it is done."""

    path: str
    rel: str
    dir_id: tuple[int, int]
    entries: Iterator[tuple[os.DirEntry, str, bool, bool]]
    ignore_depth: int


@dataclass
class _Walker:
    root: str
    rules: WalkRules
    scandir: Callable[[str], object]
    start: str = ""
    real_root: str = ""
    ignore_stack: list[tuple[str, pathspec.PathSpec]] = field(default_factory=list)
    active_dirs: set[tuple[int, int]] = field(default_factory=set)

    def walk(self) -> Iterator[WalkEvent]:
        # An explicit stack, never recursion: a tree 10,000 folders deep is a tree like any other.
        self.real_root = os.path.realpath(self.root)
        top = os.path.join(self.root, self.start) if self.start else self.root
        try:
            st = os.stat(top)
        except OSError as exc:
            yield WalkProblem(self.start or ".", "unreadable_root", f"cannot read crawl root: {exc.strerror or exc}")
            return
        if self.start:
            yield from self._ancestor_ignore_files()
        stack: list[_Frame] = []
        yield from self._enter(stack, top, self.start, (st.st_dev, st.st_ino))
        # Plain files (no symlink, valid UTF-8 name, no per-file globs) take an inlined fast path:
        # they are nearly every entry of a big tree.
        plain = not self.rules.exclude and self.rules.include == () and self.rules.use_ignore_files
        isreg = stat_mod.S_ISREG
        while stack:
            frame = stack[-1]
            item = next(frame.entries, None)
            if item is None:
                stack.pop()
                self.active_dirs.discard(frame.dir_id)
                del self.ignore_stack[frame.ignore_depth:]
                yield DirExit(frame.path, frame.rel or ".")
                continue
            entry, name, is_link, is_dir = item
            if plain and not is_link and not is_dir and not self.ignore_stack and name == entry.name:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    yield from self._entry(stack, frame.rel, *item)  # the slow path reports it
                    continue
                if isreg(st.st_mode):
                    yield FileEntry(entry.path, f"{frame.rel}/{name}" if frame.rel else name, st)
                    continue
            yield from self._entry(stack, frame.rel, *item)

    def _ancestor_ignore_files(self) -> Iterator[WalkEvent]:
        """A walk that starts below the root still obeys the ignore files of the folders above."""
        parts = self.start.split("/")
        for n in range(len(parts)):
            rel = "/".join(parts[:n])
            folder = os.path.join(self.root, rel) if rel else self.root
            if self.rules.use_ignore_files and os.path.isfile(os.path.join(folder, IGNORE_FILE)):
                yield from self._load_ignore_file(folder, rel)

    def _ignored_by_files(self, rel: str, is_dir: bool) -> bool:
        for base, spec in self.ignore_stack:
            sub = rel if not base else rel[len(base) + 1:]
            if spec.match_file(sub + "/" if is_dir else sub):
                return True
        return False

    def _list(self, path: str, rel: str) -> list[os.DirEntry] | list[_DeepEntry] | WalkProblem:
        try:
            if len(os.fsencode(path)) >= LONG_PATH:
                return _list_deep(path)
            with self.scandir(path) as it:
                return list(it)
        except FileNotFoundError:
            return WalkProblem(rel or ".", "vanished", "folder disappeared while it was walked", "warning")
        except OSError as exc:
            return WalkProblem(rel or ".", type(exc).__name__, f"cannot list folder: {exc.strerror or exc}")

    def _load_ignore_file(self, path: str, rel: str) -> Iterator[WalkEvent]:
        try:
            text = read_bounded(os.path.join(path, IGNORE_FILE), 1 << 20).decode("utf-8", "replace")
            self.ignore_stack.append((rel, pathspec.GitIgnoreSpec.from_lines(text.splitlines())))
        except (OSError, ValueError) as exc:
            yield WalkProblem(_join(rel, IGNORE_FILE), "bad_ignore_file", f"ignored: {exc}", "warning")

    def _enter(self, stack: list[_Frame], path: str, rel: str, dir_id: tuple[int, int]) -> Iterator[WalkEvent]:
        entries = self._list(path, rel)
        if isinstance(entries, WalkProblem):
            yield entries
            return
        names = {e.name for e in entries}
        if rel and names & ENVIRONMENT_MARKERS:
            return
        depth = len(self.ignore_stack)
        if self.rules.use_ignore_files and IGNORE_FILE in names:
            yield from self._load_ignore_file(path, rel)
        self.active_dirs.add(dir_id)
        yield DirEnter(path, rel or ".", frozenset(display_name(n) for n in names))
        stack.append(_Frame(path, rel, dir_id, iter(self._sorted(entries)), depth))

    def _sorted(self, entries: list[os.DirEntry]) -> list[tuple[os.DirEntry, str, bool, bool]]:
        # Any sibling order keeps a subtree contiguous in the depth-first stream; sorting by
        # name only makes the order deterministic.
        typed = []
        for entry in sorted(entries, key=_entry_name):
            try:
                is_link = entry.is_symlink()
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_link, is_dir = False, False
            name = entry.name
            typed.append((entry, name if name.isascii() else display_name(name), is_link, is_dir))
        return typed

    def _entry(self, stack: list[_Frame], rel: str, entry: os.DirEntry, name: str, is_link: bool,
               is_dir: bool) -> Iterator[WalkEvent]:
        child_rel = _join(rel, name)
        if name != entry.name:
            yield WalkProblem(child_rel, "non_utf8_name", "name is not valid UTF-8; stored with \\x escapes", "warning")
        if (is_dir and name in self.rules.ignored_names) or self.rules.excluded(child_rel, is_dir):
            return
        if self.ignore_stack and self._ignored_by_files(child_rel, is_dir):
            return
        if is_link:
            yield from self._symlink(stack, entry, child_rel)
        elif is_dir:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                yield WalkProblem(child_rel, type(exc).__name__, f"cannot stat folder: {exc.strerror or exc}")
                return
            yield from self._enter(stack, entry.path, child_rel, (st.st_dev, st.st_ino))
        else:
            yield from self._file(entry.path, child_rel, lambda e=entry: e.stat(follow_symlinks=False))

    def _file(self, path: str, rel: str, do_stat: Callable[[], os.stat_result]) -> Iterator[WalkEvent]:
        if not self.rules.included(rel):
            return
        try:
            st = do_stat()
        except FileNotFoundError:
            yield WalkProblem(rel, "vanished", "file disappeared before it could be read", "warning")
            return
        except OSError as exc:
            yield WalkProblem(rel, type(exc).__name__, f"cannot stat file: {exc.strerror or exc}")
            return
        if stat_mod.S_ISREG(st.st_mode):
            yield FileEntry(path, rel, st)
        else:
            kind = "special_file"
            yield WalkProblem(rel, kind, "not a regular file (FIFO, device or socket); not read", "warning")

    def _inside_root(self, real: str) -> bool:
        return real == self.real_root or real.startswith(self.real_root.rstrip(os.sep) + os.sep)

    def _symlink(self, stack: list[_Frame], entry: os.DirEntry, rel: str) -> Iterator[WalkEvent]:
        try:
            target = os.readlink(entry.path)
        except OSError as exc:
            yield WalkProblem(rel, type(exc).__name__, f"cannot read symlink: {exc.strerror or exc}")
            return
        real = os.path.realpath(entry.path)
        inside = self._inside_root(real)
        try:
            st = os.stat(entry.path)
        except OSError as exc:
            loop = exc.errno == 40  # ELOOP
            yield SymlinkEntry(rel, display_name(target), inside, broken=True)
            kind = "symlink_loop" if loop else "broken_symlink"
            yield WalkProblem(rel, kind, f"symlink to {display_name(target)!r} does not resolve: {exc.strerror}", "warning")
            return
        if not self.rules.follow_symlinks or not inside:
            yield SymlinkEntry(rel, display_name(target), inside, broken=False)
            return
        if stat_mod.S_ISDIR(st.st_mode):
            if (st.st_dev, st.st_ino) in self.active_dirs:
                yield SymlinkEntry(rel, display_name(target), inside, broken=False)
                yield WalkProblem(rel, "symlink_loop", f"symlink to {display_name(target)!r} loops back into its own parents; not followed", "warning")
                return
            yield from self._enter(stack, entry.path, rel, (st.st_dev, st.st_ino))
        else:
            yield from self._file(entry.path, rel, lambda: st)


def walk(root: Path | str, rules: WalkRules | None = None, scandir: Callable | None = None,
         start: str = "") -> Iterator[WalkEvent]:
    """Walk ``root`` (or only its subfolder ``start``, paths still relative to ``root``) depth-first.

    ``scandir`` is injectable for tests.
    """
    return _Walker(os.fspath(root), rules or WalkRules(), scandir or os.scandir, start.strip("/")).walk()
