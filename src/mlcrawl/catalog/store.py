"""The DuckDB catalog file: opening it (briefly), creating and migrating its schema, the crawl lock.

DuckDB lets one process hold a file read-write and then locks every other process out, the
duckdb CLI included, so connections are opened for the length of one write and closed again.
Files are written in a storage version the duckdb CLI from PyPI (1.x) can read.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from ..errors import CatalogError, CatalogLocked
from . import backend, schema
from .views import VIEW_STATEMENTS

STORAGE_VERSION = "v1.5.0"
_LOCK_RETRY_SECONDS = 10.0


def _is_lock_conflict(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("conflicting" in text or "could not set" in text)


@dataclass(frozen=True)
class Catalog:
    """A catalog file; cheap to create, it opens connections on demand."""

    path: Path
    #: A DuckLake (``ducklake:...``) instead of a DuckDB file; ``path`` is then its metadata
    #: file, or its data folder when the metadata is in PostgreSQL.
    lake: backend.LakeSpec | None = None
    lease_seconds: float = backend.DEFAULT_LEASE_SECONDS
    # Set once this process has checked (and if needed migrated) the schema of the file.
    _schema_checked: list[bool] = field(default_factory=lambda: [False], compare=False, repr=False)

    @classmethod
    def at(cls, path: Path | str, data_path: Path | str | None = None,
           lease_seconds: float = backend.DEFAULT_LEASE_SECONDS) -> Catalog:
        """The catalog at ``path`` (``~`` expanded, made absolute), or the ``ducklake:...`` it names."""
        lake = backend.parse_lake(str(path), data_path)
        if lake is not None:
            where = lake.metadata_file or lake.data_path
            assert where is not None
            return cls(where, lake, lease_seconds)
        return cls(Path(path).expanduser().absolute())

    def crawl_lock(self, roots: list[str]) -> CrawlLock | backend.RootLeases:
        """What keeps two crawls apart: the file lock, or per-root leases in a lake."""
        if self.lake is None:
            return CrawlLock(self)
        return backend.RootLeases(self._lake_connection, [str(Path(r).expanduser().absolute()) for r in roots],
                                  self.lease_seconds)

    def _lake_connection(self) -> backend.LakeConnection:
        assert self.lake is not None
        con = backend.LakeConnection(backend.attach(self.lake, read_only=False))
        if not self._schema_checked[0]:
            ensure_schema(con)
            self._schema_checked[0] = True
        return con

    @contextmanager
    def connect(self, read_only: bool = False, retry_seconds: float = _LOCK_RETRY_SECONDS,
                at: str | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for one unit of work; waits briefly while another process writes.

        ``at`` (a lake's snapshot id or a timestamp) reads the catalog as it was then.
        """
        if at is not None and self.lake is None:
            raise CatalogError(f"--at needs a DuckLake catalog (ducklake:...); {self.path} is a DuckDB file "
                               "and keeps no history")
        if read_only and not self.path.exists() and not (self.lake and self.lake.is_postgres):
            raise CatalogError(f"no catalog at {self.path} (run 'mlcrawl crawl ROOT' first)")
        if not read_only:
            self.check_writable()
        deadline = time.monotonic() + retry_seconds
        delay = 0.02
        while True:
            try:
                con = self._open(read_only, at)
                break
            except duckdb.Error as exc:
                if _is_lock_conflict(exc) and time.monotonic() < deadline:
                    time.sleep(delay)
                    delay = min(delay * 2, 0.5)
                    continue
                if _is_lock_conflict(exc):
                    raise CatalogLocked(f"catalog {self.path} is held by another process: {exc}") from None
                raise CatalogError(f"cannot open catalog {self.path}: {exc}") from None
        try:
            if not read_only and not self._schema_checked[0]:
                ensure_schema(con)
                self._schema_checked[0] = True
            elif read_only:
                check_version(con)
            yield con
        except duckdb.Error as exc:
            if self.lake is not None and backend.is_unreachable(exc):
                raise CatalogError(f"lost the lake's metadata database ({self.lake.url}): {_first_line(exc)}; "
                                   "the lake keeps what earlier transactions committed") from None
            if _is_disk_failure(exc):
                raise CatalogError(f"cannot write catalog {self.path}: {_first_line(exc)} (the catalog keeps "
                                   "what earlier transactions committed)") from None
            raise
        finally:
            con.close()

    def _open(self, read_only: bool, at: str | None = None) -> duckdb.DuckDBPyConnection:
        if self.lake is not None:
            return backend.LakeConnection(backend.attach(self.lake, read_only, at))  # type: ignore[return-value]
        config = {} if read_only or self.path.exists() else {"storage_compatibility_version": STORAGE_VERSION}
        return duckdb.connect(str(self.path), read_only=read_only, config=config)

    def check_writable(self) -> None:
        """Raise CatalogError unless the catalog can be created or written."""
        if self.lake is not None and self.lake.is_postgres:
            return  # the data folder is checked when the lake is attached
        folder = self.path.parent
        if not folder.is_dir():
            raise CatalogError(f"catalog folder {folder} does not exist")
        if not os.access(folder, os.W_OK) or (self.path.exists() and not os.access(self.path, os.W_OK)):
            raise CatalogError(f"catalog {self.path} is not writable")

    def size(self) -> int:
        """Bytes on disk (0 when the file does not exist yet; a lake's metadata file and data)."""
        if self.lake is not None:
            data = self.lake.data_path
            files = [p for p in data.rglob("*") if p.is_file()] if data and data.is_dir() else []
            meta = self.lake.metadata_file
            return sum(p.stat().st_size for p in files) + (meta.stat().st_size if meta and meta.exists() else 0)
        return self.path.stat().st_size if self.path.exists() else 0


#: What DuckDB says when the disk under the catalog fails a write (full, read-only, I/O error).
_DISK_FAILURES = ("no space left", "read-only file system", "input/output error", "disk quota", "file too large",
                  "failed to commit", "database has been invalidated")


def _is_disk_failure(exc: duckdb.Error) -> bool:
    text = str(exc).lower()
    return isinstance(exc, duckdb.IOException) or any(s in text for s in _DISK_FAILURES)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _table_columns(con: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
    rows = con.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'main'"
    ).fetchall()
    tables: dict[str, set[str]] = {}
    for table, column in rows:
        tables.setdefault(table, set()).add(column)
    return tables


def check_version(con: duckdb.DuckDBPyConnection) -> int:
    """The catalog's schema version; a catalog newer than this program is refused."""
    try:
        row = con.execute("SELECT max(version) FROM schema_version").fetchall()[0]
    except duckdb.CatalogException:
        return 0
    version = row[0] or 0
    if version > schema.SCHEMA_VERSION:
        raise CatalogError(
            f"catalog schema version {version} is newer than this mlcrawl understands "
            f"({schema.SCHEMA_VERSION}); upgrade mlcrawl"
        )
    return version


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create missing tables, run forward migrations, add new record columns, refresh views."""
    version = check_version(con)
    if version == schema.SCHEMA_VERSION and _schema_is_current(con):
        return
    con.execute("BEGIN TRANSACTION")
    try:
        if isinstance(con, backend.LakeConnection):
            backend.ensure_lake_tables(con)
        for statement in schema.create_statements():
            con.execute(statement)
        for target in range(max(version, 1) + 1, schema.SCHEMA_VERSION + 1):
            for statement in schema.MIGRATIONS.get(target, []):
                con.execute(statement)
        for statement in schema.missing_column_statements(_table_columns(con)):
            con.execute(statement)
        for statement in VIEW_STATEMENTS:
            con.execute(statement)
        if version != schema.SCHEMA_VERSION:
            con.execute("INSERT INTO schema_version VALUES (?, ?)", [schema.SCHEMA_VERSION, datetime.now(timezone.utc)])
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


def _schema_is_current(con: duckdb.DuckDBPyConnection) -> bool:
    existing = _table_columns(con)
    return not schema.missing_column_statements(existing) and all(t in existing for t in schema.record_tables())


class CrawlLock:
    """One crawl per catalog: an flock on ``<catalog>.lock``, released by the kernel if we die.

    A lock file left by a killed process is not held by anyone, so it is simply taken over.
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.path = catalog.path.with_name(catalog.path.name + ".lock")
        self._fd: int | None = None

    def acquire(self, wait_seconds: float = 0.0) -> None:
        """Take the lock, waiting up to ``wait_seconds``; raise CatalogLocked otherwise."""
        self.catalog.check_writable()
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise CatalogError(f"cannot create lock file {self.path}: {exc.strerror}") from None
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = self._holder(fd)
                    os.close(fd)
                    raise CatalogLocked(f"catalog is locked by another crawl ({holder}); try again later or pass --wait SECONDS") from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": datetime.now(timezone.utc).isoformat()}
        os.write(fd, json.dumps(info).encode())
        self._fd = fd

    @staticmethod
    def _holder(fd: int) -> str:
        try:
            info = json.loads(os.pread(fd, 4096, 0) or b"{}")
            return f"pid {info.get('pid')} on {info.get('host')} since {info.get('since')}"
        except (OSError, ValueError):
            return "unknown holder"

    def release(self) -> None:
        """Release the lock (the file stays; an unheld file means unlocked)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> CrawlLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
