"""Sending OpenLineage events to a Marquez-compatible ``/api/v1/lineage`` endpoint through the outbox.

    catalog ── run_events ──▶ outbox (catalog/outbox.py, per URL, bounded) ──claim──▶ POST each
                                   ▲                                                  │
                                   └──── mark sent / rejected (4xx) / still pending ◀─┘

Plain HTTP (urllib): a timeout per request, retries with exponential backoff on 5xx and
connection errors, a 4xx answer is a permanent failure recorded on the row.  When the endpoint
stays unreachable the rest stays pending for the next crawl, batch or ``export-openlineage --url``;
nothing here raises for the endpoint's sake, so a crawl's result never depends on it.  The API key
(``Authorization: Bearer``) comes from the environment and is never part of a message.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import unquote, urlsplit, urlunsplit

from .catalog import Catalog, outbox
from .openlineage import run_events

LINEAGE_PATH = "/api/v1/lineage"
API_KEY_ENV = "MLCRAWL_OPENLINEAGE_API_KEY"
#: Pending events kept per endpoint; beyond it the oldest are dropped (with a warning).
QUEUE_LIMIT = 10_000
#: How long a sender holds the rows it claimed before another may take them.
CLAIM_SECONDS = 600.0


@dataclass(frozen=True, slots=True)
class PostResult:
    """One event's fate: taken, rejected for good (4xx), or not delivered (the endpoint is down)."""

    ok: bool
    permanent: bool = False
    error: str | None = None


@dataclass(frozen=True, slots=True)
class PublishReport:
    """What one publish did for one endpoint."""

    url: str
    queued: int
    sent: int
    rejected: int
    pending: int
    dropped: int
    error: str | None  # why events stay pending (the endpoint unreachable), else None


def lineage_url(url: str) -> str:
    """The lineage endpoint for a base URL (``http://marquez:5000``) or the full endpoint URL."""
    url = url.strip()
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"OpenLineage URL must be http(s)://…: {display_url(url)}")
    return url if url.rstrip("/").endswith(LINEAGE_PATH) else url.rstrip("/") + LINEAGE_PATH


def display_url(url: str) -> str:
    """The URL without any user:password part, fit for a message."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


class Transport:
    """POSTs one JSON event at a time, retrying what may pass on a second try."""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 10.0, retries: int = 3,
                 backoff: float = 0.5, sleep: Callable[[float], None] = time.sleep) -> None:
        full = lineage_url(url)
        #: The endpoint without credentials: what the outbox is keyed by and messages name.
        self.url = display_url(full)
        self.api_key = api_key
        parts = urlsplit(full)
        # user:password in the URL becomes Basic auth (urllib does not read it from the URL).
        self._basic = (base64.b64encode(f"{unquote(parts.username or '')}:{unquote(parts.password or '')}".encode()).decode()
                       if parts.username else None)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep

    def post(self, body: str) -> PostResult:
        """Send one event; 2xx is ok, 4xx permanent, 5xx and connection errors retried then given up."""
        error = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                with urllib.request.urlopen(self._request(body), timeout=self.timeout) as response:
                    response.read()
                return PostResult(ok=True)
            except urllib.error.HTTPError as exc:
                error = f"HTTP {exc.code} {exc.reason}"
                if 400 <= exc.code < 500 and exc.code not in (408, 429):
                    return PostResult(ok=False, permanent=True, error=error)
            except (urllib.error.URLError, OSError, socket.timeout) as exc:
                reason = getattr(exc, "reason", exc)
                error = f"{type(reason).__name__}: {reason}"
        return PostResult(ok=False, error=error)

    def _request(self, body: str) -> urllib.request.Request:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        elif self._basic:
            headers["Authorization"] = f"Basic {self._basic}"
        return urllib.request.Request(self.url, data=body.encode("utf-8"), headers=headers, method="POST")


def outbox_event(event: dict) -> outbox.OutboxEvent:
    """An event as the outbox keeps it, keyed by the hash of its canonical JSON."""
    text = json.dumps(event, sort_keys=True, separators=(",", ":"))
    return outbox.OutboxEvent(digest=hashlib.sha256(text.encode("utf-8")).hexdigest(),
                              run_uuid=event["run"]["runId"], event_type=event["eventType"],
                              event_time=event["eventTime"], job=f"{event['job']['namespace']}/{event['job']['name']}",
                              event=text)


def publish(store: Catalog, url: str, transport: Transport | None = None,
            queue_limit: int = QUEUE_LIMIT) -> PublishReport:
    """Queue the catalog's new or changed events for ``url``, then send every pending one.

    The catalog is held only to queue, claim and mark, never while posting.  The first event the
    endpoint does not take after its retries stops the round: the rest stays pending.
    """
    transport = transport or Transport(url, api_key=os.environ.get(API_KEY_ENV) or None)
    target = transport.url
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    with store.connect() as con:
        queued = outbox.enqueue(con, target, [outbox_event(e) for e in run_events(con)], queue_limit, _now())
        claimed = outbox.claim(con, target, owner, _now(), CLAIM_SECONDS)
    outcomes: list[tuple[outbox.OutboxEvent, PostResult]] = []
    error = None
    for event in claimed:
        result = transport.post(event.event)
        outcomes.append((event, result))
        if not result.ok and not result.permanent:
            error = result.error
            break
    with store.connect() as con:
        for event, result in outcomes:
            if result.ok:
                outbox.mark_sent(con, target, event.digest, _now())
            else:
                outbox.mark_failed(con, target, event.digest, result.error or "", rejected=result.permanent)
        outbox.release(con, target, owner)
        pending = outbox.counts(con, target).get("pending", 0)
    return PublishReport(url=target, queued=queued.queued, dropped=queued.dropped,
                         sent=sum(r.ok for _, r in outcomes), rejected=sum(r.permanent for _, r in outcomes),
                         pending=pending, error=error)


def publish_quietly(store: Catalog, url: str, warn: Callable[[str], None]) -> PublishReport | None:
    """``publish`` for after a crawl: every problem becomes one warning line, never an exception."""
    try:
        report = publish(store, url)
    except Exception as exc:  # the endpoint or the outbox must never fail the crawl that fed it
        warn(f"openlineage: events not sent to {display_url(url)} ({type(exc).__name__}: {exc}); "
             "they are sent with the next crawl")
        return None
    for line in report_lines(report):
        warn(line)
    return report


def report_lines(report: PublishReport) -> list[str]:
    """The warnings a publish deserves: dropped events, rejected ones, an unreachable endpoint."""
    lines = []
    if report.dropped:
        lines.append(f"openlineage: outbox for {report.url} over {QUEUE_LIMIT} pending events, "
                     f"dropped the {report.dropped} oldest")
    if report.rejected:
        lines.append(f"openlineage: {report.url} rejected {report.rejected} event(s) (see openlineage_outbox)")
    if report.error:
        lines.append(f"openlineage: {report.url} unreachable ({report.error}); {report.pending} event(s) kept "
                     "and sent with the next crawl")
    return lines


def _now() -> datetime:
    return datetime.now(timezone.utc)
