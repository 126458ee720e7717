"""The core tables' rows: one dataclass per table, the single definition of its columns.

``schema.py`` derives both the DDL and the writer's Arrow schemas from these (and from the record
classes for the crawler tables), so a column is declared once.  A field's SQL type follows its
Python type; ``sql(...)`` names a narrower one where the catalog has always used it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar


def sql(type_name: str):
    """A field whose column has SQL type ``type_name`` (INTEGER, UBIGINT, VARCHAR[])."""
    return field(default=None, metadata={"sql": type_name})


@dataclass(frozen=True, slots=True)
class SchemaVersionRow:
    """One applied schema version."""

    __table__: ClassVar[str] = "schema_version"
    version: int | None = sql("INTEGER")
    applied_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class CrawlRow:
    """One crawl or watch batch: what it saw, hashed and met."""

    __table__: ClassVar[str] = "crawls"
    crawl_id: int | None = None
    job: str | None = None
    kind: str | None = None
    roots: list | None = sql("VARCHAR[]")
    started_at: datetime | None = None
    finished_at: datetime | None = None
    status: str | None = None
    files_seen: int | None = None
    files_new: int | None = None
    files_changed: int | None = None
    files_unchanged: int | None = None
    files_deleted: int | None = None
    bytes_hashed: int | None = None
    units_crawled: int | None = None
    units_skipped: int | None = None
    units_failed: int | None = None
    errors: int | None = None
    warnings: int | None = None
    version: str | None = None
    pid: int | None = sql("INTEGER")
    host: str | None = None
    secrets_redacted: int | None = None


@dataclass(frozen=True, slots=True)
class FileRow:
    """A file as last seen under a root (``deleted_at`` once gone)."""

    __table__: ClassVar[str] = "files"
    root: str | None = None
    path: str | None = None
    size: int | None = None
    mtime: datetime | None = None
    mtime_ns: int | None = None
    inode: int | None = None
    owner: str | None = None
    kind: str | None = None
    format: str | None = None
    sha256: str | None = None
    md5: str | None = None
    hash_note: str | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    deleted_at: datetime | None = None
    crawl_id: int | None = None
    lfs_pointer: str | None = None  # JSON: the real content's oid and size


@dataclass(frozen=True, slots=True)
class FileVersionRow:
    """One content of a path, with when it was first and last seen."""

    __table__: ClassVar[str] = "file_versions"
    root: str | None = None
    path: str | None = None
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None
    mtime: datetime | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None


@dataclass(frozen=True, slots=True)
class SymlinkRow:
    """A symbolic link found by the walk, and whether it stays inside the root."""

    __table__: ClassVar[str] = "symlinks"
    root: str | None = None
    path: str | None = None
    target: str | None = None
    resolves_inside: bool | None = None
    broken: bool | None = None
    last_seen: datetime | None = None
    deleted_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class UnitRow:
    """A file or folder a crawler read (or declined, or failed on) with its fingerprint."""

    __table__: ClassVar[str] = "units"
    root: str | None = None
    crawler: str | None = None
    unit: str | None = None
    is_dir: bool | None = None
    fingerprint: str | None = None
    crawler_version: int | None = sql("INTEGER")
    crawl_id: int | None = None
    crawled_at: datetime | None = None
    deleted_at: datetime | None = None
    status: str | None = None


@dataclass(frozen=True, slots=True)
class LineageRow:
    """One lineage edge between file versions, runs and stages."""

    __table__: ClassVar[str] = "lineage"
    src_type: str | None = None
    src: str | None = None
    src_sha256: str | None = None
    dst_type: str | None = None
    dst: str | None = None
    dst_sha256: str | None = None
    relation: str | None = None
    evidence: str | None = None
    confidence: float | None = None
    crawler: str | None = None
    crawl_id: int | None = None
    root: str | None = None
    unit: str | None = None
    src_key: int | None = sql("UBIGINT")
    dst_key: int | None = sql("UBIGINT")


CORE_ROWS: tuple[type, ...] = (SchemaVersionRow, CrawlRow, FileRow, FileVersionRow, SymlinkRow, UnitRow, LineageRow)
