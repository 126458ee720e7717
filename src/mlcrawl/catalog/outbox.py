"""The OpenLineage outbox: events queued per endpoint URL until it took them, each sent once.

A row is keyed by (url, digest), the digest being a hash of the event's canonical JSON, so the
same state of a run is queued once and, once sent, never again.  A newer event of the same run
and event type replaces a pending older one.  Pending rows beyond ``limit`` per URL are dropped
oldest first.  A sender claims rows for a while, so two processes never post the same row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb
import pyarrow as pa

_QUEUE_SCHEMA = pa.schema([("digest", pa.string()), ("run_uuid", pa.string()), ("event_type", pa.string()),
                           ("event_time", pa.string()), ("job", pa.string()), ("event", pa.string())])


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """One event as queued: its key, what identifies the run state, and its JSON text."""

    digest: str
    run_uuid: str
    event_type: str
    event_time: str
    job: str
    event: str


@dataclass(frozen=True, slots=True)
class QueueResult:
    """What one ``enqueue`` did: rows added, older pending rows replaced, rows dropped over the limit."""

    queued: int
    superseded: int
    dropped: int


def enqueue(con: duckdb.DuckDBPyConnection, url: str, events: list[OutboxEvent], limit: int,
            now: datetime) -> QueueResult:
    """Queue the events the outbox of ``url`` has never seen; keep at most ``limit`` pending."""
    table = pa.Table.from_pylist([_row(e) for e in events],
                                 schema=_QUEUE_SCHEMA)
    con.register("_ol_new", table)
    try:
        con.execute("BEGIN TRANSACTION")
        con.execute("CREATE OR REPLACE TEMP TABLE _ol_fresh AS SELECT n.* FROM _ol_new n WHERE NOT EXISTS "
                    "(SELECT 1 FROM openlineage_outbox o WHERE o.url = ? AND o.digest = n.digest)", [url])
        superseded = con.execute(
            "DELETE FROM openlineage_outbox o WHERE o.url = ? AND o.status = 'pending' AND EXISTS "
            "(SELECT 1 FROM _ol_fresh f WHERE f.run_uuid = o.run_uuid AND f.event_type = o.event_type) "
            "RETURNING 1", [url]).fetchall()
        queued = con.execute(
            "INSERT INTO openlineage_outbox SELECT ?, digest, run_uuid, event_type, event_time, job, event, "
            "'pending', ?, NULL, 0, NULL, NULL, NULL FROM _ol_fresh RETURNING 1", [url, now]).fetchall()
        dropped = con.execute(
            "DELETE FROM openlineage_outbox WHERE url = ? AND status = 'pending' AND digest IN ("
            "  SELECT digest FROM openlineage_outbox WHERE url = ? AND status = 'pending'"
            "  ORDER BY queued_at DESC, event_time DESC OFFSET ?) RETURNING 1", [url, url, limit]).fetchall()
        con.execute("DROP TABLE _ol_fresh")
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("_ol_new")
    return QueueResult(len(queued), len(superseded), len(dropped))


def _row(event: OutboxEvent) -> dict:
    return {name: getattr(event, name) for name in _QUEUE_SCHEMA.names}


def claim(con: duckdb.DuckDBPyConnection, url: str, owner: str, now: datetime,
          lease_seconds: float) -> list[OutboxEvent]:
    """Claim the pending rows of ``url`` nobody holds (oldest first) for ``lease_seconds``."""
    rows = con.execute(
        "UPDATE openlineage_outbox SET claimed_by = ?, claimed_until = ? WHERE url = ? AND status = 'pending' "
        "AND (claimed_until IS NULL OR claimed_until < ?) "
        "RETURNING digest, run_uuid, event_type, event_time, job, event, queued_at",
        [owner, now + timedelta(seconds=lease_seconds), url, now]).fetchall()
    rows.sort(key=lambda r: (r[6], r[3], r[1]))
    return [OutboxEvent(*row[:6]) for row in rows]


def mark_sent(con: duckdb.DuckDBPyConnection, url: str, digest: str, now: datetime) -> None:
    """The endpoint took the event: keep its key, drop its text."""
    con.execute("UPDATE openlineage_outbox SET status = 'sent', sent_at = ?, event = NULL, attempts = attempts + 1, "
                "last_error = NULL, claimed_by = NULL, claimed_until = NULL WHERE url = ? AND digest = ?",
                [now, url, digest])


def mark_failed(con: duckdb.DuckDBPyConnection, url: str, digest: str, error: str, rejected: bool) -> None:
    """A failed post: a rejected event (4xx) is never sent again, any other stays pending."""
    con.execute("UPDATE openlineage_outbox SET status = ?, attempts = attempts + 1, last_error = ?, "
                "claimed_by = NULL, claimed_until = NULL WHERE url = ? AND digest = ?",
                ["rejected" if rejected else "pending", error, url, digest])


def release(con: duckdb.DuckDBPyConnection, url: str, owner: str) -> None:
    """Give back the rows ``owner`` claimed but did not post (the endpoint went away mid-way)."""
    con.execute("UPDATE openlineage_outbox SET claimed_by = NULL, claimed_until = NULL "
                "WHERE url = ? AND claimed_by = ? AND status = 'pending'", [url, owner])


def counts(con: duckdb.DuckDBPyConnection, url: str) -> dict[str, int]:
    """status -> rows in the outbox of ``url``."""
    return dict(con.execute("SELECT status, count(*) FROM openlineage_outbox WHERE url = ? GROUP BY status",
                            [url]).fetchall())
