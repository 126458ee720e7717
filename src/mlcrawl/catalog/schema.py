"""The catalog's tables, derived once: the core ones from rows.py, the crawler ones from records.py.

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
from .rows import CORE_ROWS

SCHEMA_VERSION = 5

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
# Narrower types some core columns have always had (``rows.sql(...)``).
_NAMED_TYPES: dict[str, tuple[str, pa.DataType]] = {
    "INTEGER": ("INTEGER", pa.int32()),
    "UBIGINT": ("UBIGINT", pa.uint64()),
    "VARCHAR[]": ("VARCHAR[]", pa.list_(pa.string())),
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
    "openlineage_outbox": "OpenLineage run events per endpoint: queued, sent (once) or still pending after a failure",
}


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


def core_columns(cls: type) -> list[tuple[str, str, pa.DataType]]:
    """``(name, SQL type, Arrow type)`` of every column of a core table (``rows.py``)."""
    hints = typing.get_type_hints(cls)
    columns = []
    for f in dataclasses.fields(cls):
        named = f.metadata.get("sql")
        columns.append((f.name, *(_NAMED_TYPES[named] if named else _field_type(hints[f.name]))))
    return columns


def core_tables() -> dict[str, list[tuple[str, str, pa.DataType]]]:
    """Table name -> columns, for every core table."""
    return {cls.__table__: core_columns(cls) for cls in CORE_ROWS}


def record_tables() -> dict[str, list[tuple[str, str, pa.DataType]]]:
    """Table name -> columns, for every record class."""
    return {cls.__table__: record_columns(cls) for cls in RECORD_TYPES}


def all_tables() -> dict[str, list[tuple[str, str, pa.DataType]]]:
    """Table name -> columns, core tables first."""
    return {**core_tables(), **record_tables()}


def arrow_schema(cls: type) -> pa.Schema:
    """The Arrow schema the writer uses for a record class's or core row's table."""
    columns = core_columns(cls) if cls in CORE_ROWS else record_columns(cls)
    return pa.schema([(name, arrow) for name, _, arrow in columns])


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def create_statements() -> list[str]:
    """DDL for every table (idempotent)."""
    statements = []
    for table, columns in all_tables().items():
        cols = ", ".join(f"{_quote(n)} {t}" for n, t, _ in columns)
        statements.append(f"CREATE TABLE IF NOT EXISTS {_quote(table)} ({cols})")
    return statements


def missing_column_statements(existing: dict[str, set[str]]) -> list[str]:
    """``ALTER TABLE ADD COLUMN`` for core or record columns that an older catalog lacks."""
    statements = []
    for table, columns in all_tables().items():
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
    # Lineage node keys include the root: edges stored before that get their (root, name) keys.
    4: ["ALTER TABLE lineage ADD COLUMN IF NOT EXISTS unit VARCHAR",
        "ALTER TABLE lineage ADD COLUMN IF NOT EXISTS src_key UBIGINT",
        "ALTER TABLE lineage ADD COLUMN IF NOT EXISTS dst_key UBIGINT",
        "UPDATE lineage SET src_key = hash(root, src), dst_key = hash(root, dst) "
        "WHERE src_key IS DISTINCT FROM hash(root, src) OR dst_key IS DISTINCT FROM hash(root, dst)"],
    # OpenLineage events kept until an endpoint took them (catalog/outbox.py): one row per
    # (url, digest), the digest being the event's canonical JSON, so the same state of a run is
    # one row and is sent once.  status: pending, sent or rejected (a 4xx answer); ``event`` is
    # emptied once it left, the key stays.  A claim keeps two senders from posting the same row.
    5: ["CREATE TABLE IF NOT EXISTS openlineage_outbox (url VARCHAR, digest VARCHAR, run_uuid VARCHAR, "
        "event_type VARCHAR, event_time VARCHAR, job VARCHAR, event VARCHAR, status VARCHAR, "
        "queued_at TIMESTAMPTZ, sent_at TIMESTAMPTZ, attempts INTEGER, last_error VARCHAR, "
        "claimed_by VARCHAR, claimed_until TIMESTAMPTZ)"],
}
