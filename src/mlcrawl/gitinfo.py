"""The git commit, branch, dirty flag and remote of the work tree enclosing a path, without git.

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

``dirty`` means what GitPython's ``is_dirty()`` (and so Sacred) means: a tracked file differs
from HEAD, staged or not; untracked files do not count.  It is computed with dulwich (the index
against HEAD's tree, the work tree against the index: stat first, content hashed only where
the stat differs); it is None ("unknown") for a repository whose index holds more than
``max_index_entries`` files or that dulwich cannot read, never a guess.  The remote is
``remote.origin.url`` (else the first remote) with any user name and password removed.

``annotate_runs`` is what the crawl calls once per unit: runs whose tool recorded no commit
get the enclosing work tree's, marked inferred by ``mlcrawl.git.*`` tags (the state of the
work tree when crawled, which may be later than the run).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .records import Record, Run, Tag

_OBJECT_ID = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")  # SHA-1 or SHA-256 repositories
_MAX_REF_DEPTH = 5  # symbolic refs pointing at symbolic refs; git itself stops at 5
_MAX_REF_FILE = 1 << 16
#: A larger index makes the dirty flag "unknown": stat-ing every tracked file costs too much.
MAX_INDEX_ENTRIES = 20_000
_SCP_LIKE = re.compile(r"^(?:[^@/:]+@)?(?P<host>[^/:]+):(?P<path>(?!//).*)$")
INFERRED_TAG = "mlcrawl.git_commit_inferred"


@dataclass(frozen=True, slots=True)
class GitInfo:
    """Where the work tree is, and what its HEAD points to (None when it cannot be told)."""

    worktree: Path
    commit: str | None
    branch: str | None
    dirty: bool | None = None
    remote_url: str | None = None


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


def read_git_info(path: Path, cache: GitCache | None = None, with_status: bool = True,
                  max_index_entries: int = MAX_INDEX_ENTRIES) -> GitInfo | None:
    """The GitInfo of the work tree enclosing ``path`` (a file or folder), or None outside git.

    ``with_status`` False skips the dirty flag (the only part that looks at more than a few
    small files).
    """
    cache = cache if cache is not None else GitCache()
    dirs = find_git_dirs(Path(path).absolute(), cache)
    if dirs is None:
        return None
    info = cache.info_of.get(dirs.worktree)
    if info is None:
        info = read_head(dirs)
        info = dataclasses.replace(
            info, remote_url=read_remote_url(dirs),
            dirty=read_dirty(dirs, max_index_entries) if with_status and info.commit else None)
        cache.info_of[dirs.worktree] = info
    return info


def annotate_runs(records: Iterable[Record], unit: Path, cache: GitCache) -> list[Record]:
    """``records`` with the enclosing work tree's commit put on each run that has none.

    Such a run also gets tags ``mlcrawl.git_commit_inferred`` = "true" and ``mlcrawl.git.branch``
    / ``.dirty`` ("true", "false" or "unknown") / ``.remote_url``.  Runs with a recorded commit
    and every other record pass through unchanged; outside git nothing changes.
    """
    records = list(records)
    if not any(isinstance(r, Run) and not r.git_commit for r in records):
        return records
    info = read_git_info(unit, cache)
    if info is None or info.commit is None:
        return records
    out: list[Record] = []
    for record in records:
        if isinstance(record, Run) and not record.git_commit:
            out.append(dataclasses.replace(record, git_commit=info.commit))
            out.extend(inferred_tags(record.run_id, info))
        else:
            out.append(record)
    return out


def inferred_tags(run_id: str, info: GitInfo) -> list[Tag]:
    """The tags that mark a run's git facts as read from the enclosing work tree."""
    dirty = "unknown" if info.dirty is None else str(info.dirty).lower()
    tags = [Tag(run_id, INFERRED_TAG, "true"), Tag(run_id, "mlcrawl.git.dirty", dirty)]
    if info.branch:
        tags.append(Tag(run_id, "mlcrawl.git.branch", info.branch))
    if info.remote_url:
        tags.append(Tag(run_id, "mlcrawl.git.remote_url", info.remote_url))
    return tags


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


def read_remote_url(dirs: _GitDirs) -> str | None:
    """``remote.origin.url`` (else the first remote's url) of the repository, credentials stripped."""
    from dulwich.config import ConfigFile

    path = dirs.gitdir / "config"
    if not path.is_file():
        path = dirs.commondir / "config"
    try:
        config = ConfigFile.from_path(str(path))
    except Exception:  # noqa: BLE001 - a missing or malformed config means "no remote known"
        return None
    remotes = [section for section in config.sections() if len(section) == 2 and section[0] == b"remote"]
    remotes.sort(key=lambda section: section[1] != b"origin")
    for section in remotes:
        try:
            url = config.get(section, b"url")
        except KeyError:
            continue
        return strip_credentials(url.decode("utf-8", errors="replace"))
    return None


def strip_credentials(url: str) -> str:
    """``url`` without a user name or password (``https://u:p@host/x`` -> ``https://host/x``).

    An scp-like ``git@host:path`` keeps no user either; a local path is returned as it is.
    """
    parts = urlsplit(url)
    if parts.scheme and parts.netloc:
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    scp = _SCP_LIKE.match(url)
    if scp and "@" in url.split(":", 1)[0]:
        return f"{scp.group('host')}:{scp.group('path')}"
    return url


def read_dirty(dirs: _GitDirs, max_index_entries: int = MAX_INDEX_ENTRIES) -> bool | None:
    """True when a tracked file differs from HEAD (staged or not), None when it cannot be told."""
    from dulwich.index import get_unstaged_changes
    from dulwich.repo import Repo

    try:
        with Repo(str(dirs.worktree)) as repo:
            index = repo.open_index()
            if len(index) > max_index_entries:
                return None
            tree = repo[repo.head()].tree
            if any(True for _ in index.changes_from_tree(repo.object_store, tree)):
                return True
            return any(not _same_submodule(dirs.worktree, index, path)
                       for path in get_unstaged_changes(index, str(dirs.worktree)))
    except Exception:  # noqa: BLE001 - a format dulwich cannot read leaves the flag unknown
        return None


def _same_submodule(worktree: Path, index, path: bytes) -> bool:
    """True when ``path`` is a submodule whose checked-out HEAD is the commit the index records
    (dulwich lists every submodule as changed; git compares the commits)."""
    from dulwich.objects import S_ISGITLINK

    try:
        entry = index[path]
    except KeyError:
        return False
    if not S_ISGITLINK(entry.mode):
        return False
    sub = worktree / path.decode("utf-8", errors="surrogateescape")
    info = read_git_info(sub, with_status=False)
    return info is not None and info.worktree == sub and info.commit == entry.sha.decode("ascii")


def _read_small(path: Path) -> str | None:
    """A small text file's contents, or None when it is missing, a folder or absurdly large."""
    try:
        if not path.is_file() or path.stat().st_size > _MAX_REF_FILE:
            return None
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
