"""The git commit and branch of the work tree enclosing a path, read from ``.git`` without git.

    <worktree>/                       the nearest ancestor holding .git
      .git/                           a plain repository:
        HEAD                          "ref: refs/heads/main" or a detached commit id
        refs/heads/main               loose ref: a commit id (or "ref: ..." for a symbolic ref)
        packed-refs                   "<id> refs/heads/main" lines ("#" header, "^" peeled tags)
      .git                            or a FILE "gitdir: <path>" (linked worktree, submodule,
                                      --separate-git-dir); a linked worktree's gitdir holds its
                                      own HEAD and a "commondir" file naming the shared
                                      repository where refs and packed-refs live

Nothing runs ``git``; nothing is written.  A repository whose refs this cannot read (the
reftable format, a corrupt HEAD) yields a GitInfo with ``commit`` None rather than an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

_OBJECT_ID = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")  # SHA-1 or SHA-256 repositories
_MAX_REF_DEPTH = 5  # symbolic refs pointing at symbolic refs; git itself stops at 5
_MAX_REF_FILE = 1 << 16


@dataclass(frozen=True, slots=True)
class GitInfo:
    """Where the work tree is, and what its HEAD points to (None when it cannot be told)."""

    worktree: Path
    commit: str | None
    branch: str | None


@dataclass(frozen=True, slots=True)
class _GitDirs:
    """A work tree's own git dir (HEAD) and the common dir holding refs and packed-refs."""

    worktree: Path
    gitdir: Path
    commondir: Path


@dataclass
class GitCache:
    """Memo for one crawl: folder -> enclosing work tree, work tree -> GitInfo.

    Pass one in and share it across runs so a tree with thousands of run folders walks up
    and reads HEAD/packed-refs once per work tree.
    """

    worktree_of: dict[Path, Path | None] = field(default_factory=dict)
    dirs_of: dict[Path, _GitDirs] = field(default_factory=dict)
    info_of: dict[Path, GitInfo] = field(default_factory=dict)


def read_git_info(path: Path, cache: GitCache | None = None) -> GitInfo | None:
    """The GitInfo of the work tree enclosing ``path`` (a file or folder), or None outside git."""
    cache = cache if cache is not None else GitCache()
    dirs = find_git_dirs(Path(path).absolute(), cache)
    if dirs is None:
        return None
    info = cache.info_of.get(dirs.worktree)
    if info is None:
        info = read_head(dirs)
        cache.info_of[dirs.worktree] = info
    return info


def find_git_dirs(path: Path, cache: GitCache) -> _GitDirs | None:
    """Walk up from ``path`` to the nearest folder holding a ``.git`` dir or ``.git`` file."""
    start = path if path.is_dir() else path.parent
    visited: list[Path] = []
    found: _GitDirs | None = None
    for folder in (start, *start.parents):
        if folder in cache.worktree_of:
            worktree = cache.worktree_of[folder]
            found = cache.dirs_of[worktree] if worktree is not None else None
            break
        visited.append(folder)
        found = _git_dirs_at(folder)
        if found is not None:
            cache.dirs_of[found.worktree] = found
            break
    for folder in visited:
        cache.worktree_of[folder] = found.worktree if found is not None else None
    return found


def _git_dirs_at(folder: Path) -> _GitDirs | None:
    dot_git = folder / ".git"
    if dot_git.is_dir():
        gitdir = dot_git
    elif dot_git.is_file():
        gitdir = _follow_gitdir_file(dot_git)
        if gitdir is None:
            return None
    else:
        return None
    if not (gitdir / "HEAD").is_file():
        return None
    return _GitDirs(folder, gitdir, _common_dir(gitdir))


def _follow_gitdir_file(dot_git: Path) -> Path | None:
    """The directory named by a ``.git`` file's ``gitdir: <path>`` line (relative to the file)."""
    text = _read_small(dot_git)
    if text is None or not text.startswith("gitdir:"):
        return None
    target = Path(text[len("gitdir:") :].strip())
    return target if target.is_absolute() else (dot_git.parent / target).resolve()


def _common_dir(gitdir: Path) -> Path:
    """Where refs live: the ``commondir`` of a linked worktree, else the git dir itself."""
    text = _read_small(gitdir / "commondir")
    if not text:
        return gitdir
    common = Path(text.strip())
    return common if common.is_absolute() else (gitdir / common).resolve()


def read_head(dirs: _GitDirs) -> GitInfo:
    """Resolve HEAD: a branch (followed to its commit) or a detached commit id."""
    head = _read_small(dirs.gitdir / "HEAD")
    head = head.strip() if head else ""
    if _OBJECT_ID.fullmatch(head):
        return GitInfo(dirs.worktree, head, None)
    if not head.startswith("ref:"):
        return GitInfo(dirs.worktree, None, None)
    ref = head[len("ref:") :].strip()
    branch = ref.removeprefix("refs/heads/")
    return GitInfo(dirs.worktree, resolve_ref(dirs, ref), branch)


def resolve_ref(dirs: _GitDirs, ref: str) -> str | None:
    """The commit id a ref names: loose ref files first, then packed-refs; None if unborn."""
    for _ in range(_MAX_REF_DEPTH):
        value = _loose_ref(dirs, ref)
        if value is None:
            return _packed_refs(dirs.commondir).get(ref)
        if _OBJECT_ID.fullmatch(value):
            return value
        if not value.startswith("ref:"):
            return None
        ref = value[len("ref:") :].strip()
    return None


def _loose_ref(dirs: _GitDirs, ref: str) -> str | None:
    if ".." in Path(ref).parts:
        return None
    for base in (dirs.gitdir, dirs.commondir):
        text = _read_small(base / ref)
        if text is not None:
            return text.strip()
    return None


def _packed_refs(commondir: Path) -> dict[str, str]:
    """``{ref: commit}`` from packed-refs (peeled ``^`` lines and the header skipped)."""
    refs: dict[str, str] = {}
    path = commondir / "packed-refs"
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("#", "^")):
                    continue
                object_id, _, name = line.strip().partition(" ")
                if name and _OBJECT_ID.fullmatch(object_id):
                    refs[name] = object_id
    except OSError:
        pass
    return refs


def _read_small(path: Path) -> str | None:
    """A small text file's contents, or None when it is missing, a folder or absurdly large."""
    try:
        if not path.is_file() or path.stat().st_size > _MAX_REF_FILE:
            return None
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
