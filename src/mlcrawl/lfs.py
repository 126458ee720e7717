"""Git LFS pointer files: the small text file git-lfs leaves in place of a large file's content.

    version https://git-lfs.github.com/spec/v1      first line (the pre-1.0 hawser URL too)
    ext-0-name sha256:<64 hex>                       optional extensions, in order
    oid sha256:<64 hex>                              the SHA-256 of the real content
    size 300000                                      the real size in bytes

(git-lfs docs/spec.md: keys sorted after ``version``, ``key value\\n`` lines, under 1024 bytes.)
A pointer named ``model.pt`` is a model whose content is elsewhere: the name keeps its kind,
the pointer gives the real size and digest, and no format reader should call it corrupt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: git-lfs never reads more than this as a pointer.
MAX_POINTER_SIZE = 1024
_VERSIONS = (b"https://git-lfs.github.com/spec/v1", b"https://hawser.github.com/spec/v1")
_LINE = re.compile(rb"([a-z0-9.-]+) ([^\r\n]*)")
_OID = re.compile(rb"sha256:([0-9a-f]{64})")
_EXT = re.compile(rb"ext-\d-[a-zA-Z0-9]+")


@dataclass(frozen=True, slots=True)
class LfsPointer:
    """The real file a pointer stands for: its SHA-256 (hex), size and extensions (name, oid)."""

    oid: str
    size: int
    extensions: tuple[tuple[str, str], ...] = ()

    def facts(self) -> dict:
        """The ``lfs_pointer`` fact as stored in the catalog."""
        fact: dict = {"oid": f"sha256:{self.oid}", "size": self.size}
        if self.extensions:
            fact["extensions"] = [{"name": n, "oid": o} for n, o in self.extensions]
        return {"lfs_pointer": fact}


def looks_like_pointer(prefix: bytes) -> bool:
    """True when ``prefix`` (a file's first bytes) starts as a pointer does: a cheap pre-check."""
    return prefix.startswith(b"version https://")


def parse_pointer(data: bytes) -> LfsPointer | None:
    """The pointer ``data`` holds, or None when it is not a valid git-lfs pointer."""
    if len(data) > MAX_POINTER_SIZE or not looks_like_pointer(data):
        return None
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    fields: dict[bytes, bytes] = {}
    extensions: list[tuple[str, str]] = []
    for index, line in enumerate(lines):
        match = _LINE.fullmatch(line)
        if match is None:
            return None
        key, value = match.groups()
        if index == 0:
            if key != b"version" or value not in _VERSIONS:
                return None
            continue
        if key in fields or key == b"version":
            return None
        if _EXT.fullmatch(key):
            oid = _OID.fullmatch(value)
            if oid is None:
                return None
            extensions.append((key.decode().split("-", 2)[2], oid.group(1).decode()))
        fields[key] = value
    oid = _OID.fullmatch(fields.get(b"oid", b""))
    size = fields.get(b"size", b"")
    if oid is None or not size.isdigit():
        return None
    return LfsPointer(oid.group(1).decode(), int(size), tuple(extensions))
