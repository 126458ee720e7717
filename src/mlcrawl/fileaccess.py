"""The one guarded way to open a crawled file: regular files only, no symlink races, bounded reads.

Every read of a crawled file (core or crawler) goes through here.  A FIFO with a tracked name
would block ``open()`` forever, a character device would be read without end, and a symlink
could point anywhere the crawling user can read — so the path is ``lstat``-ed first, opened with
``O_NOFOLLOW | O_NONBLOCK``, and ``fstat``-ed to prove it is still the same regular file.
Symlinks are resolved only by the caller's policy (``resolve_inside``): inside the root, never
out of it unless configured.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
from dataclasses import dataclass

from .errors import MlcrawlError

#: Default read limit for a whole-file read (documents, notebooks, configs).
DEFAULT_READ_LIMIT = 256 * 1024 * 1024
#: Paths at least this long (in bytes) are opened a piece at a time: one system call takes at
#: most PATH_MAX (4096) bytes, and a tree 10,000 folders deep is still a tree to crawl.
LONG_PATH = 3072


class UnsafeFile(MlcrawlError, OSError):
    """A path that is not a regular file inside the root (FIFO, device, socket, escaping symlink)."""


class TooLarge(MlcrawlError, ValueError):
    """A file bigger than the read limit for its kind."""


@dataclass(frozen=True)
class FilePolicy:
    """Where reads may go: the crawl root, and whether symlinks inside it are followed."""

    root: str
    follow_symlinks: bool = False

    def resolve_inside(self, path: str) -> str:
        """``path`` with symlinks resolved, refused unless it ends inside the root.

        With ``follow_symlinks`` off, a symlink anywhere below the root is refused too.
        """
        real_root = os.path.realpath(self.root)
        absolute = os.path.abspath(path)
        if not self.follow_symlinks and _has_symlink_below(absolute, self.root):
            raise UnsafeFile(errno.ELOOP, f"symlink not followed: {absolute}")
        real = os.path.realpath(absolute)
        if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
            raise UnsafeFile(errno.EACCES, f"outside the crawl root: {absolute}")
        return real


def _has_symlink_below(path: str, root: str) -> bool:
    root = os.path.abspath(root)
    current = path
    while current != root and current.startswith(root.rstrip(os.sep) + os.sep):
        if os.path.islink(current):
            return True
        current = os.path.dirname(current)
    return False


def _kind(mode: int) -> str:
    for test, name in ((stat_mod.S_ISFIFO, "a named pipe (FIFO)"), (stat_mod.S_ISCHR, "a character device"),
                       (stat_mod.S_ISBLK, "a block device"), (stat_mod.S_ISSOCK, "a socket"),
                       (stat_mod.S_ISDIR, "a folder"), (stat_mod.S_ISLNK, "a symlink")):
        if test(mode):
            return name
    return "not a regular file"


def open_folder(path: str) -> int:
    """An fd of the folder ``path``, of any length (past ``LONG_PATH`` opened piece by piece)."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    if len(os.fsencode(path)) < LONG_PATH:
        return os.open(path, flags)
    pieces, current, size = [], [], 0
    for part in path.split(os.sep):
        width = len(os.fsencode(part)) + 1
        if current and size + width > LONG_PATH:
            pieces.append(os.sep.join(current))
            current, size = [], 0
        current.append(part)
        size += width
    pieces.append(os.sep.join(current))
    fd = None
    try:
        for piece in pieces:
            nxt = os.open(piece or os.sep, flags, dir_fd=fd)
            if fd is not None:
                os.close(fd)
            fd = nxt
    except BaseException:
        if fd is not None:
            os.close(fd)
        raise
    return fd


def _parent_and_name(path: str) -> tuple[int | None, str]:
    """(an fd of the folder, the name in it) for a path too long for one call, else (None, path)."""
    if len(os.fsencode(path)) < LONG_PATH:
        return None, path
    head, name = os.path.split(path)
    return open_folder(head), name


def open_regular(path: str, policy: FilePolicy | None = None) -> int:
    """An fd of the regular file at ``path``; raises UnsafeFile for anything else.

    ``policy`` resolves symlinks first (inside the root only); without it a symlink is refused.
    """
    target = policy.resolve_inside(path) if policy is not None else path
    parent, name = _parent_and_name(target)
    try:
        before = os.stat(name, dir_fd=parent, follow_symlinks=False)
        if not stat_mod.S_ISREG(before.st_mode):
            raise UnsafeFile(errno.EINVAL, f"not read: {path} is {_kind(before.st_mode)}")
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=parent)
    finally:
        if parent is not None:
            os.close(parent)
    try:
        after = os.fstat(fd)
        if not stat_mod.S_ISREG(after.st_mode) or (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
            raise UnsafeFile(errno.EAGAIN, f"not read: {path} was replaced while it was opened")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_binary(path: str, policy: FilePolicy | None = None):
    """A buffered binary file object of the regular file at ``path`` (see ``open_regular``)."""
    return os.fdopen(open_regular(path, policy), "rb")


def read_bounded(path: str, limit: int = DEFAULT_READ_LIMIT, policy: FilePolicy | None = None) -> bytes:
    """The whole file, refused with TooLarge when it is (or grows) beyond ``limit`` bytes."""
    with open_binary(path, policy) as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            raise TooLarge(f"{size} bytes is over the read limit of {limit} bytes")
        # read(n) allocates n bytes up front: ask for the size the file has, plus one to see growth.
        data = f.read(min(size, limit) + 1)
        if len(data) > size:
            data += f.read(limit + 1 - len(data))
    if len(data) > limit:
        raise TooLarge(f"file grew past the read limit of {limit} bytes while it was read")
    return data
