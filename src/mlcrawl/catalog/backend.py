"""Where a catalog lives: a DuckDB file (the default) or a DuckLake (metadata in a local
``.ducklake`` file or PostgreSQL, data as Parquet files in a data folder).

Everything DuckLake-specific is here: parsing ``ducklake:...`` names, loading the extensions
from their Python packages (never a download at run time), ATTACH with time travel, commit
conflicts, the crawl-id clock and per-root leases.  The rest of the catalog code talks SQL to a
connection whose default database is the lake, so it does not know which backend it has.

DuckLake has no PRIMARY KEY, UNIQUE or index; mlcrawl never relied on them (upserts are
DELETE ... USING + INSERT), but a lake detects conflicts per table: two transactions deleting
from one table conflict even on different rows.  Every writer holds the lease of its roots, so
what a transaction read about its own root is still true when it is replayed after a conflict.
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from ..errors import CatalogError, CatalogLocked

PREFIX = "ducklake:"
ALIAS = "lake"
LAKE_EXTRA = "pip install 'mlcrawl[lake]'  (duckdb 1.5 with duckdb-extensions, duckdb-extension-ducklake, duckdb-extension-postgres)"
CONFLICT_RETRY_SECONDS = 120.0
DEFAULT_LEASE_SECONDS = 60.0
#: Tables only a lake has: the crawl-id clock (one row, updated by every id allocation and lease
#: change so that two of them conflict) and the per-root leases that replace the file lock.
LAKE_TABLES = (
    "CREATE TABLE IF NOT EXISTS lake_clock (n BIGINT)",
    "CREATE TABLE IF NOT EXISTS leases (root VARCHAR, owner VARCHAR, host VARCHAR, pid BIGINT, "
    "acquired_at TIMESTAMPTZ, heartbeat TIMESTAMPTZ, expires_at TIMESTAMPTZ)",
)

T = TypeVar("T")


@dataclass(frozen=True)
class LakeSpec:
    """A DuckLake: ``metadata`` is a local file path or ``postgres:<libpq keywords>``."""

    metadata: str
    data_path: Path | None

    @property
    def is_postgres(self) -> bool:
        """Metadata in PostgreSQL (many hosts) rather than a local DuckDB file (one host)."""
        return self.metadata.startswith("postgres:")

    @property
    def url(self) -> str:
        """The name ATTACH takes."""
        return PREFIX + self.metadata

    @property
    def metadata_file(self) -> Path | None:
        """The local metadata file (None for PostgreSQL)."""
        return None if self.is_postgres else Path(self.metadata)


def parse_lake(spec: str, data_path: str | os.PathLike | None) -> LakeSpec | None:
    """The lake a ``--catalog`` value names, or None for a DuckDB file."""
    if not spec.startswith(PREFIX):
        return None
    rest = spec[len(PREFIX):]
    if not rest:
        raise CatalogError("ducklake: needs a metadata file or postgres:...; e.g. ducklake:meta.ducklake")
    if not rest.startswith("postgres:"):
        rest = str(Path(rest).expanduser().absolute())
    data = Path(data_path).expanduser().absolute() if data_path else None
    if data is None and rest.startswith("postgres:"):
        raise CatalogError("a PostgreSQL-backed lake needs --data-path DIR (or data_path in the config), "
                           "the shared folder of its Parquet files")
    return LakeSpec(rest, data)


def _dist_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def check_extensions(postgres: bool) -> None:
    """Raise one line saying what to install unless the extension packages match DuckDB."""
    wanted = ["duckdb-extensions", "duckdb-extension-ducklake", *(["duckdb-extension-postgres"] if postgres else [])]
    engine = duckdb.__version__
    found = {name: _dist_version(name) for name in wanted}
    missing = [n for n, v in found.items() if v is None]
    if missing:
        raise CatalogError(f"DuckLake catalogs need {', '.join(missing)}: {LAKE_EXTRA}")
    wrong = [f"{n} {v}" for n, v in found.items() if n != "duckdb-extensions" and v.split(".")[:2] != engine.split(".")[:2]]
    if wrong:
        raise CatalogError(f"DuckLake extensions ({', '.join(wrong)}) do not match duckdb {engine}: {LAKE_EXTRA}")


def _load_extensions(con: duckdb.DuckDBPyConnection, postgres: bool) -> None:
    check_extensions(postgres)
    import duckdb_extensions  # noqa: PLC0415 (only lakes need it)

    for name in ("ducklake", *(["postgres"] if postgres else [])):
        try:
            duckdb_extensions.import_extension(name, con=con)
            con.execute(f"LOAD {name}")
        except duckdb.Error as exc:
            raise CatalogError(f"cannot load the {name} extension into duckdb {duckdb.__version__} "
                               f"({str(exc).splitlines()[0]}): {LAKE_EXTRA}") from None


def _check_data_path(lake: LakeSpec, read_only: bool) -> None:
    data = lake.data_path
    if data is None:
        return
    if not data.is_dir():
        if read_only or not data.parent.is_dir():
            raise CatalogError(f"lake data folder {data} does not exist (is the share mounted?)")
        # Several hosts may attach a new lake at the same moment: the folder is anyone's to create.
        data.mkdir(exist_ok=True)
    if not read_only and not os.access(data, os.W_OK | os.X_OK):
        raise CatalogError(f"lake data folder {data} is not writable")


def attach(lake: LakeSpec, read_only: bool, at: str | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection whose default database is the lake (``USE lake``).

    ``at`` (read-only) is a snapshot id or a timestamp: the lake as it was then.
    """
    _check_data_path(lake, read_only)
    con = duckdb.connect(":memory:")
    try:
        _load_extensions(con, lake.is_postgres)
        options = []
        if lake.data_path is not None:
            # Hosts mount the share under different paths; file paths are stored relative to it.
            options.append(f"DATA_PATH {_literal(str(lake.data_path) + '/')}, OVERRIDE_DATA_PATH TRUE")
        if read_only:
            options.append("READ_ONLY")
        if at is not None:
            options.append(f"SNAPSHOT_VERSION {int(at)}" if at.isdigit() else f"SNAPSHOT_TIME {_literal(at)}")
        _attach_retrying(con, f"ATTACH {_literal(lake.url)} AS {ALIAS}" + (f" ({', '.join(options)})" if options else ""))
        con.execute(f"USE {ALIAS}")
    except duckdb.Error as exc:
        con.close()
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "lock" in text.lower():
            raise  # a local metadata file held by another process: the caller waits and retries
        raise CatalogError(f"cannot open lake {lake.url}: {text}") from None
    except BaseException:
        con.close()
        raise
    return con


def _attach_retrying(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    # Hosts attaching a new PostgreSQL lake at once race to create its metadata tables; the
    # losers see PostgreSQL's duplicate-key error and find the tables there when they try again.
    for attempt in range(20):
        try:
            con.execute(sql)
            return
        except duckdb.Error as exc:
            if "duplicate key value" not in str(exc) and "already exists" not in str(exc) or attempt == 19:
                raise
            time.sleep(_backoff(attempt))


#: What the postgres extension says when the metadata server went away mid-crawl.
_UNREACHABLE = ("server closed the connection", "could not connect", "connection refused", "connection to server",
                "no connection to the server", "terminating connection")


def is_unreachable(exc: BaseException) -> bool:
    """The lake's metadata database stopped answering."""
    return isinstance(exc, duckdb.Error) and any(s in str(exc).lower() for s in _UNREACHABLE)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def is_conflict(exc: BaseException) -> bool:
    """A DuckLake commit lost a race with another writer (retrying it is safe)."""
    return isinstance(exc, duckdb.Error) and "transaction conflict" in str(exc).lower()


def _backoff(attempt: int) -> float:
    return min(0.02 * 2 ** attempt, 1.0) * (0.5 + random.random())


class LakeConnection:
    """A lake connection that replays a transaction lost to a commit conflict.

    Statements (and Arrow registrations) since BEGIN are recorded; when COMMIT, or a statement
    outside a transaction, reports a conflict, they run again on a fresh snapshot.  Reads inside
    a transaction are replayed too, and the per-root lease makes their answers unchanged.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, retry_seconds: float = CONFLICT_RETRY_SECONDS) -> None:
        self.raw = con
        self._log: list[tuple[str, tuple]] | None = None
        self._retry_seconds = retry_seconds

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)

    def register(self, name: str, table: Any) -> Any:
        """Register an Arrow table (remembered for a replay)."""
        if self._log is not None:
            self._log.append(("register", (name, table)))
        return self.raw.register(name, table)

    def unregister(self, name: str) -> Any:
        """Unregister a view (remembered for a replay)."""
        if self._log is not None:
            self._log.append(("unregister", (name,)))
        return self.raw.unregister(name)

    def execute(self, sql: str, params: Any = None) -> Any:
        """Run one statement; a conflict is retried (the whole transaction, at COMMIT)."""
        head = sql.lstrip()[:16].upper()
        if head.startswith("BEGIN"):
            self._log = []
            return self.raw.execute(sql)
        if head.startswith("ROLLBACK"):
            self._log = None
            return self.raw.execute(sql)
        if head.startswith("COMMIT"):
            log, self._log = self._log, None
            return self._retrying(lambda: self.raw.execute(sql), log)
        if self._log is not None:
            self._log.append(("execute", (sql, params)))
            return self.raw.execute(sql, params)
        return self._retrying(lambda: self.raw.execute(sql, params), None)

    def _retrying(self, final: Callable[[], Any], log: list | None) -> Any:
        deadline = time.monotonic() + self._retry_seconds
        attempt = 0
        while True:
            try:
                return final()
            except duckdb.Error as exc:
                if not is_conflict(exc) or time.monotonic() > deadline:
                    raise
            attempt += 1
            time.sleep(_backoff(attempt))
            if log is not None:
                self.raw.execute("BEGIN TRANSACTION")
                for kind, args in log:
                    getattr(self.raw, kind)(*args)

    def serialized(self, body: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run ``body`` in a transaction that also bumps the clock row, so that two such
        transactions never commit side by side (the later one conflicts and runs again)."""
        deadline = time.monotonic() + self._retry_seconds
        attempt = 0
        while True:
            self.raw.execute("BEGIN TRANSACTION")
            try:
                self.raw.execute("UPDATE lake_clock SET n = n + 1")
                result = body(self.raw)
                self.raw.execute("COMMIT")
                return result
            except duckdb.Error as exc:
                try:
                    self.raw.execute("ROLLBACK")
                except duckdb.Error:
                    pass
                if not is_conflict(exc) or time.monotonic() > deadline:
                    raise
            except BaseException:
                self.raw.execute("ROLLBACK")
                raise
            attempt += 1
            time.sleep(_backoff(attempt))

    def close(self) -> None:
        """Close the underlying connection."""
        self.raw.close()


def ensure_lake_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the clock and lease tables a lake needs (idempotent)."""
    for statement in LAKE_TABLES:
        con.execute(statement)
    if not con.execute("SELECT count(*) FROM lake_clock").fetchall()[0][0]:
        con.execute("INSERT INTO lake_clock VALUES (0)")


@dataclass
class RootLeases:
    """Per-root leases in the lake: two processes (on any hosts) never crawl one root at once.

    A lease names its owner, host and pid and is renewed by a heartbeat thread; one whose
    heartbeat stopped (a host died, a writer was killed) expires and may be taken over, and the
    crawls its owner left running are marked ``interrupted``.
    """

    open_lake: Callable[[], LakeConnection]
    roots: list[str]
    seconds: float = DEFAULT_LEASE_SECONDS
    owner: str = ""
    _stop: threading.Event | None = None
    _thread: threading.Thread | None = None

    def acquire(self, wait_seconds: float = 0.0) -> None:
        """Take every root's lease, waiting up to ``wait_seconds``; raise CatalogLocked otherwise."""
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        deadline = time.monotonic() + wait_seconds
        while True:
            con = self.open_lake()
            try:
                holder = con.serialized(self._take)
            finally:
                con.close()
            if holder is None:
                break
            if time.monotonic() >= deadline:
                raise CatalogLocked(f"root {holder[0]} is being crawled by {holder[1]} (lease until {holder[2]}); "
                                    "try again later or pass --wait SECONDS")
            time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="mlcrawl-lease", daemon=True)
        self._thread.start()

    def _take(self, con: duckdb.DuckDBPyConnection) -> tuple | None:
        now = datetime.now(timezone.utc)
        con.register("lease_roots", _roots_table(self.roots))
        try:
            held = con.execute("SELECT root, owner, expires_at FROM leases WHERE root IN (SELECT root FROM lease_roots) "
                               "AND expires_at > ? ORDER BY root", [now]).fetchall()
            if held:
                return held[0]
            dead = con.execute("SELECT DISTINCT host, pid FROM leases WHERE root IN (SELECT root FROM lease_roots)").fetchall()
            for host, pid in dead:
                con.execute("UPDATE crawls SET status = 'interrupted' WHERE status IN ('running', 'watching') "
                            "AND host = ? AND pid = ?", [host, pid])
            con.execute("DELETE FROM leases WHERE root IN (SELECT root FROM lease_roots)")
            con.execute("INSERT INTO leases SELECT root, ?, ?, ?, ?, ?, ? FROM lease_roots",
                        [self.owner, socket.gethostname(), os.getpid(), now, now, now + timedelta(seconds=self.seconds)])
        finally:
            con.unregister("lease_roots")
        return None

    def _beat(self) -> None:
        assert self._stop is not None
        while not self._stop.wait(self.seconds / 3):
            try:
                con = self.open_lake()
                try:
                    now = datetime.now(timezone.utc)
                    con.execute("UPDATE leases SET heartbeat = ?, expires_at = ? WHERE owner = ?",
                                [now, now + timedelta(seconds=self.seconds), self.owner])
                finally:
                    con.close()
            except (duckdb.Error, CatalogError):
                continue  # metadata unreachable for a moment: the crawl's own writes report it

    def release(self) -> None:
        """Stop the heartbeat and drop the leases (an unreachable lake lets them expire)."""
        if self._stop is not None:
            self._stop.set()
            if self._thread is not None:
                self._thread.join()
            self._stop = self._thread = None
            try:
                con = self.open_lake()
                try:
                    con.execute("DELETE FROM leases WHERE owner = ?", [self.owner])
                finally:
                    con.close()
            except (duckdb.Error, CatalogError):
                pass

    def __enter__(self) -> RootLeases:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _roots_table(roots: list[str]):
    import pyarrow as pa  # noqa: PLC0415

    return pa.table({"root": pa.array(sorted(set(roots)), pa.string())})
