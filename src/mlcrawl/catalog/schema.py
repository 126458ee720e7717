"""The catalog's tables: the core ones written here, the crawler ones derived from records.py.

Every crawler table starts with ``root, crawler, unit, crawl_id`` so that re-crawling a unit
replaces exactly its rows.  ``SCHEMA_VERSION`` counts numbered migrations; on top of them,
columns added to a record class are added to its table (``ALTER TABLE ... ADD COLUMN``), so
a catalog written by an older mlcrawl is upgraded forward when it is opened.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import datetime

import pyarrow as pa

from ..records import RECORD_TYPES, CrawlError

SCHEMA_VERSION = 3

UNIT_COLUMNS: tuple[tuple[str, str, pa.DataType], ...] = (
    ("root", "VARCHAR", pa.string()),
    ("crawler", "VARCHAR", pa.string()),
    ("unit", "VARCHAR", pa.string()),
    ("crawl_id", "BIGINT", pa.int64()),
)

_SQL_TYPES: dict[type, tuple[str, pa.DataType]] = {
    str: ("VARCHAR", pa.string()),
    int: ("BIGINT", pa.int64()),
    float: ("DOUBLE", pa.float64()),
    bool: ("BOOLEAN", pa.bool_()),
    datetime: ("TIMESTAMPTZ", pa.timestamp("us", tz="UTC")),
    dict: ("VARCHAR", pa.string()),  # JSON text
    list: ("VARCHAR", pa.string()),  # JSON text
}

# One-line meanings, shown by `mlcrawl schema`.
TABLE_DOCS: dict[str, str] = {
    "schema_version": "catalog schema version and when each migration was applied",
    "crawls": "one row per crawl or watch session, with counts and status",
    "files": "every file ever seen under a crawl root: stat, kind, format, hashes; deleted_at once gone",
    "file_versions": "every distinct content (sha256) a path has had",
    "symlinks": "symlinks met by the walk, recorded and (by default) not followed",
    "units": "what each crawler read (a file or folder), its fingerprint and crawler version",
    "errors": "problems met while crawling (severity error or warning); the crawl went on",
    "runs": "experiment runs from every tool; run_id is '<source>:<tool id>'",
    "experiments": "experiments/projects that group runs",
    "params": "run parameters, dotted keys; value as text, value_num when numeric",
    "metrics": "metric points, every step (full history, never sampled)",
    "tags": "run tags",
    "run_artifacts": "files that belong to a run (artifacts, checkpoints, logs, sources, environment)",
    "notebooks": "one row per notebook version: kernel, cells, execution facts, papermill facts",
    "references": "files named in code or notebooks, with direction and evidence",
    "imports": "top-level modules imported by notebooks and scripts",
    "dataset_schemas": "schema and row count of each dataset file version",
    "models": "model files read safely: tensors, parameters, inputs/outputs, pickle warnings",
    "declared_edges": "lineage stated by a tool's own metadata (DVC, MLflow, Sacred, papermill...)",
    "lineage": "lineage edges between file versions and runs, declared and inferred",
}

CORE_DDL = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER, applied_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS crawls (
    crawl_id BIGINT, job VARCHAR, kind VARCHAR, roots VARCHAR[], started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ, status VARCHAR, files_seen BIGINT, files_new BIGINT,
    files_changed BIGINT, files_unchanged BIGINT, files_deleted BIGINT, bytes_hashed BIGINT,
    units_crawled BIGINT, units_skipped BIGINT, units_failed BIGINT, errors BIGINT,
    warnings BIGINT, version VARCHAR, pid INTEGER, host VARCHAR);
CREATE TABLE IF NOT EXISTS files (
    root VARCHAR, path VARCHAR, size BIGINT, mtime TIMESTAMPTZ, mtime_ns BIGINT, inode BIGINT,
    owner VARCHAR, kind VARCHAR, format VARCHAR, sha256 VARCHAR, md5 VARCHAR,
    hash_note VARCHAR, first_seen TIMESTAMPTZ, last_seen TIMESTAMPTZ, deleted_at TIMESTAMPTZ,
    crawl_id BIGINT, lfs_pointer VARCHAR);
CREATE TABLE IF NOT EXISTS file_versions (
    root VARCHAR, path VARCHAR, sha256 VARCHAR, md5 VARCHAR, size BIGINT, mtime TIMESTAMPTZ,
    first_seen TIMESTAMPTZ, last_seen TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS symlinks (
    root VARCHAR, path VARCHAR, target VARCHAR, resolves_inside BOOLEAN, broken BOOLEAN,
    last_seen TIMESTAMPTZ, deleted_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS units (
    root VARCHAR, crawler VARCHAR, unit VARCHAR, is_dir BOOLEAN, fingerprint VARCHAR,
    crawler_version INTEGER, crawl_id BIGINT, crawled_at TIMESTAMPTZ, deleted_at TIMESTAMPTZ,
    status VARCHAR);
CREATE TABLE IF NOT EXISTS lineage (
    src_type VARCHAR, src VARCHAR, src_sha256 VARCHAR, dst_type VARCHAR, dst VARCHAR,
    dst_sha256 VARCHAR, relation VARCHAR, evidence VARCHAR, confidence DOUBLE, crawler VARCHAR,
    crawl_id BIGINT, root VARCHAR, unit VARCHAR, src_key UBIGINT, dst_key UBIGINT);
"""

# Per-table columns added after the record's own fields.
_EXTRA_COLUMNS: dict[str, tuple[tuple[str, str, pa.DataType], ...]] = {
    "params": (("value_num", "DOUBLE", pa.float64()),),
    "errors": (("at", "TIMESTAMPTZ", pa.timestamp("us", tz="UTC")),),
}


def _field_type(hint: object) -> tuple[str, pa.DataType]:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = args[0]
    hint = typing.get_origin(hint) or hint
    return _SQL_TYPES[hint]


def record_columns(cls: type) -> list[tuple[str, str, pa.DataType]]:
    """``(name, SQL type, Arrow type)`` of every column of a record class's table."""
    hints = typing.get_type_hints(cls)
    own = [(f.name, *_field_type(hints[f.name])) for f in dataclasses.fields(cls)]
    return [*UNIT_COLUMNS, *own, *_EXTRA_COLUMNS.get(cls.__table__, ())]


def record_tables() -> dict[str, list[tuple[str, str, pa.DataType]]]:
    """Table name -> columns, for every record class."""
    return {cls.__table__: record_columns(cls) for cls in RECORD_TYPES}


def arrow_schema(cls: type) -> pa.Schema:
    """The Arrow schema the writer uses for a record class's table."""
    return pa.schema([(name, arrow) for name, _, arrow in record_columns(cls)])


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def create_statements() -> list[str]:
    """DDL for every table (idempotent)."""
    statements = [s.strip() for s in CORE_DDL.split(";") if s.strip()]
    for table, columns in record_tables().items():
        cols = ", ".join(f"{_quote(n)} {t}" for n, t, _ in columns)
        statements.append(f"CREATE TABLE IF NOT EXISTS {_quote(table)} ({cols})")
    return statements


def missing_column_statements(existing: dict[str, set[str]]) -> list[str]:
    """``ALTER TABLE ADD COLUMN`` for record fields that an older catalog lacks."""
    statements = []
    for table, columns in record_tables().items():
        have = existing.get(table)
        if have is None:
            continue
        for name, sql_type, _ in columns:
            if name not in have:
                statements.append(f"ALTER TABLE {_quote(table)} ADD COLUMN {_quote(name)} {sql_type}")
    return statements


ERRORS_TABLE = CrawlError.__table__

# Numbered forward migrations: version -> statements that bring version-1 to version.
#: version -> statements that bring a catalog of version - 1 to it (run in order, once).
MIGRATIONS: dict[int, list[str]] = {
    # A failed unit is stored with its fingerprint, so an unchanged bad file is not re-read.
    2: ["ALTER TABLE units ADD COLUMN IF NOT EXISTS status VARCHAR",
        "UPDATE units SET status = 'ok' WHERE status IS NULL"],
    # A Git LFS pointer file: the real content's oid and size (JSON), NULL for other files.
    3: ["ALTER TABLE files ADD COLUMN IF NOT EXISTS lfs_pointer VARCHAR"],
}
