"""Building the hostile trees: every file a crawler reads, replaced by each special kind.

One tree holds every case (``cases/<tool>/<nn>-<kind>/<the tool's shape>``), so the whole matrix
costs two crawls, not hundreds: the tests then look each case up in the one catalog.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from .shapes import MARKER_NUM, MARKER_TEXT, SHAPES, Shape, write

#: Special kinds a file a crawler reads is replaced with.
FILE_KINDS = ("fifo", "chardev", "dev_urandom", "outside", "loop", "dangling", "folder")
#: Special kinds a folder a crawler reads is replaced with.
FOLDER_KINDS = ("outside_dir", "dir_loop")

#: Names with every byte sequence a name may hold that is not plain text (POSIX allows all but / and NUL).
HOSTILE_NAMES = {
    "non_utf8": os.fsdecode(b"bad\xff\xfe\xe9-"),
    "newline": "new\nline-",
    "control": "ctl\x01\x1b[31m\x7f-",
    "leading_dash": "--help -",
    "quote_glob": "'\"*?[x] %s $HOME-",
    "long": "L" * 200 + "-",  # with the shape's own part a component nears 255 bytes
}


@dataclass(frozen=True)
class Case:
    """One hostile case: the path (relative to the crawl root) of the special entry."""

    tool: str
    kind: str
    target: str
    rel: str

    @property
    def id(self) -> str:
        return f"{self.tool}:{self.target.rsplit('/', 1)[-1]}:{self.kind}"


def _chardev(path: Path) -> None:
    """A character device: /dev/zero's own node as root, else a symlink to it (both are refused)."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 5))
    except PermissionError:
        os.symlink("/dev/zero", path)


def _make_special(path: Path, kind: str, outside: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "chardev":
        _chardev(path)
    elif kind == "dev_urandom":
        os.symlink("/dev/urandom", path)
    elif kind in ("outside", "outside_dir"):
        os.symlink(outside, path)
    elif kind == "loop":
        os.symlink(path.name, path)
    elif kind == "dir_loop":
        os.symlink(".", path)
    elif kind == "dangling":
        os.symlink(path.parent / "does-not-exist", path)
    elif kind == "folder":
        path.mkdir()
    else:
        raise ValueError(kind)


def build_special_tree(base: Path) -> tuple[Path, list[Case]]:
    """``base/root`` with every case, ``base/outside`` with the marker copies; returns root and cases."""
    root, outside, scratch = base / "root", base / "outside", base / "scratch"
    scratch.mkdir(parents=True)
    cases = []
    for tool, builder in SHAPES.items():
        normal = builder("plain", 1.5, "", scratch)
        leaked = builder(MARKER_TEXT, MARKER_NUM, "", scratch)
        write(outside / tool, leaked.files)
        n = 0
        for target, kinds in [*((t, FILE_KINDS) for t in normal.targets),
                              *((t, FOLDER_KINDS) for t in normal.folder_targets)]:
            for kind in kinds:
                case_dir = root / "cases" / tool / f"{n:02d}-{kind}"
                n += 1
                write(case_dir, normal.files)
                _make_special(case_dir / target, kind, outside / tool / target)
                cases.append(Case(tool, kind, target, f"cases/{tool}/{case_dir.name}/{target}"))
    return root, cases


def build_names_tree(base: Path) -> tuple[Path, list[str]]:
    """``base/root`` with every tool's shape once per hostile name; returns root and the files made."""
    root, scratch = base / "root", base / "scratch"
    scratch.mkdir(parents=True)
    made = []
    for tool, builder in SHAPES.items():
        for label, name in HOSTILE_NAMES.items():
            shape: Shape = builder("plain", 1.5, name, scratch)
            folder = root / tool / (label if label != "long" else name)
            write(folder, shape.files)
            made.extend(os.path.relpath(folder / rel, root) for rel in shape.files)
    return root, made
