"""The batch writer: buffers rows and writes them through Arrow, one transaction per batch.

A unit's records replace the rows the unit wrote before (matched on root, crawler, unit), so a
re-crawl never duplicates.  Files are upserted by (root, path); a path's distinct contents
accumulate in ``file_versions``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import duckdb
import pyarrow as pa

from ..records import RECORD_TYPES, CrawlError, Param
from ..validate import clean_text
from . import schema
from .rows import FileRow, SymlinkRow, UnitRow
from .store import Catalog

_TABLE_OF = {cls: cls.__table__ for cls in RECORD_TYPES}
_SCHEMAS = {cls.__table__: schema.arrow_schema(cls) for cls in RECORD_TYPES}
_JSON_FIELDS = {
    cls.__table__: {name for name, sql, _ in schema.record_columns(cls) if sql == "VARCHAR"} for cls in RECORD_TYPES
}

FILE_SCHEMA = schema.arrow_schema(FileRow)
SYMLINK_SCHEMA = schema.arrow_schema(SymlinkRow)
UNIT_SCHEMA = schema.arrow_schema(UnitRow)


def _to_json(value: Any) -> Any:
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str, allow_nan=True)
    return value


def _value_num(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if not math.isnan(number) or value.strip().lower() == "nan" else None


@dataclass(frozen=True, slots=True)
class UnitDone:
    """A unit that was crawled successfully, with its fingerprint."""

    crawler: str
    unit: str
    is_dir: bool
    fingerprint: str
    crawler_version: int


@dataclass
class BatchWriter:
    """Buffers one crawl's rows for one root and flushes them in batches."""

    catalog: Catalog
    crawl_id: int
    root: str
    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    max_rows: int = 20_000
    files: list[dict] = field(default_factory=list)
    symlinks: list[dict] = field(default_factory=list)
    units: list[UnitDone] = field(default_factory=list)
    failed_units: list[tuple[UnitDone, str]] = field(default_factory=list)  # failed or declined
    records: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))
    errors: int = 0
    warnings: int = 0
    _buffered: int = 0

    def add_file(self, row: dict) -> None:
        """Buffer one files row (new or changed file)."""
        self.files.append(row)
        self._bump(1)

    def add_symlink(self, rel: str, target: str, inside: bool, broken: bool) -> None:
        """Buffer one symlink row."""
        self.symlinks.append({"root": self.root, "path": rel, "target": target, "resolves_inside": inside,
                              "broken": broken, "last_seen": self.now, "deleted_at": None})
        self._bump(1)

    def add_error(self, crawler: str, unit: str | None, error: CrawlError) -> None:
        """Buffer one errors row (severity error or warning).

        Every problem passes here (walk, crawler warnings, failed units, lineage), and its path
        and message often quote an OS path with undecodable name bytes: made storable here.
        """
        error = dataclasses.replace(error, path=clean_text(error.path) if error.path is not None else None,
                                    message=clean_text(error.message))
        if error.severity == "error":
            self.errors += 1
        else:
            self.warnings += 1
        self._add_record(crawler, unit or "", error)

    def add_unit(self, done: UnitDone, records: list) -> None:
        """Buffer a crawled unit and the records that replace its earlier ones."""
        self.units.append(done)
        for record in records:
            if isinstance(record, CrawlError):
                self.add_error(done.crawler, done.unit, record)
            else:
                self._add_record(done.crawler, done.unit, record)

    def add_failed_unit(self, done: UnitDone, error: CrawlError) -> None:
        """Buffer a unit that failed: its error row, and its fingerprint marked ``failed``.

        The unit's earlier records stay (the last good reading is not lost to a corrupt copy).
        """
        self.failed_units.append((done, "failed"))
        self.add_error(done.crawler, done.unit, error)

    def add_declined_unit(self, done: UnitDone) -> None:
        """Buffer a path a crawler claimed by name but declined in ``match``: remembered with its
        fingerprint so that, unchanged, it is not asked again."""
        self.failed_units.append((done, "declined"))
        self._bump(1)

    def _add_record(self, crawler: str, unit: str, record: Any) -> None:
        table = _TABLE_OF[type(record)]
        row = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
        json_fields = _JSON_FIELDS[table]
        for key, value in row.items():
            if key in json_fields and isinstance(value, (dict, list, tuple)):
                row[key] = _to_json(value)
        row.update(root=self.root, crawler=crawler, unit=unit, crawl_id=self.crawl_id)
        if isinstance(record, Param):
            row["value_num"] = _value_num(record.value)
        if isinstance(record, CrawlError):
            row["at"] = self.now
        self.records[table].append(row)
        self._bump(1)

    def _bump(self, n: int) -> None:
        self._buffered += n
        if self._buffered >= self.max_rows:
            self.flush()

    def flush(self) -> None:
        """Write everything buffered in one transaction."""
        if not self._buffered and not self.units and not self.failed_units:
            return
        with self.catalog.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                self._write(con)
                con.execute("COMMIT")
            except Exception:
                # A COMMIT that failed (disk full) has ended the transaction already.
                with contextlib.suppress(duckdb.Error):
                    con.execute("ROLLBACK")
                raise
        self.files.clear()
        self.symlinks.clear()
        self.units.clear()
        self.failed_units.clear()
        self.records.clear()
        self._buffered = 0

    def _unit_rows(self, units: list[tuple[UnitDone, str]]) -> pa.Table:
        return pa.Table.from_pylist(
            [{"root": self.root, "crawler": u.crawler, "unit": u.unit, "is_dir": u.is_dir,
              "fingerprint": u.fingerprint, "crawler_version": u.crawler_version, "crawl_id": self.crawl_id,
              "crawled_at": self.now, "deleted_at": None, "status": status} for u, status in units],
            schema=UNIT_SCHEMA,
        )

    def _write(self, con: duckdb.DuckDBPyConnection) -> None:
        if self.failed_units:
            con.register("failed_units", self._unit_rows(self.failed_units))
            con.execute("DELETE FROM units t USING failed_units d "
                        "WHERE t.root = d.root AND t.crawler = d.crawler AND t.unit = d.unit")
            con.execute("INSERT INTO units BY NAME SELECT * FROM failed_units")
            con.unregister("failed_units")
        if self.units:
            done = self._unit_rows([(u, "ok") for u in self.units])
            con.register("done_units", done)
            for table in _SCHEMAS:
                if table == schema.ERRORS_TABLE:
                    continue  # errors are history, kept per crawl
                con.execute(f'DELETE FROM "{table}" t USING done_units d '
                            "WHERE t.root = d.root AND t.crawler = d.crawler AND t.unit = d.unit")
            con.execute("DELETE FROM units t USING done_units d "
                        "WHERE t.root = d.root AND t.crawler = d.crawler AND t.unit = d.unit")
            con.execute("INSERT INTO units BY NAME SELECT * FROM done_units")
            con.unregister("done_units")
        for table, rows in self.records.items():
            if rows:
                self._insert(con, table, pa.Table.from_pylist(rows, schema=_SCHEMAS[table]))
        if self.files:
            self._write_files(con, pa.Table.from_pylist(self.files, schema=FILE_SCHEMA))
        if self.symlinks:
            batch = pa.Table.from_pylist(self.symlinks, schema=SYMLINK_SCHEMA)
            con.register("batch_links", batch)
            con.execute("DELETE FROM symlinks t USING batch_links b WHERE t.root = b.root AND t.path = b.path")
            con.execute("INSERT INTO symlinks BY NAME SELECT * FROM batch_links")
            con.unregister("batch_links")

    @staticmethod
    def _insert(con: duckdb.DuckDBPyConnection, table: str, batch: pa.Table) -> None:
        con.register("batch_rows", batch)
        con.execute(f'INSERT INTO "{table}" BY NAME SELECT * FROM batch_rows')
        con.unregister("batch_rows")

    @staticmethod
    def _write_files(con: duckdb.DuckDBPyConnection, batch: pa.Table) -> None:
        con.register("batch_files", batch)
        con.execute("DELETE FROM files t USING batch_files b WHERE t.root = b.root AND t.path = b.path")
        con.execute("INSERT INTO files BY NAME SELECT * FROM batch_files")
        con.execute("""
            UPDATE file_versions v SET last_seen = b.last_seen, mtime = b.mtime
            FROM batch_files b
            WHERE v.root = b.root AND v.path = b.path AND v.sha256 = b.sha256""")
        con.execute("""
            INSERT INTO file_versions BY NAME
            SELECT b.root, b.path, b.sha256, b.md5, b.size, b.mtime, b.last_seen AS first_seen, b.last_seen
            FROM batch_files b
            WHERE b.sha256 IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM file_versions v WHERE v.root = b.root AND v.path = b.path AND v.sha256 = b.sha256)""")
        con.unregister("batch_files")
