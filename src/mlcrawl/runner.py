"""One crawl: walk, freshness check, hashing, crawler units, errors as rows, summary.

The runner never prints; progress goes to a callback and problems to ``errors`` rows.  A unit
that raises gives one error row, its partial output is dropped and its fingerprint is not
stored, so the next crawl retries it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .catalog import Catalog, crawls
from .catalog.writer import BatchWriter
from .config import Job
from .crawler import BaseCrawler, options_from
from .errors import CatalogError
from .records import CrawlError
from .rootcrawl import RootCrawl, scopes_for
from .secrets import Redactor
from .unitguard import MemoryGuard
from .walk import WalkRules

Progress = Callable[[str, int], None]


@dataclass
class CrawlSummary:
    """What one crawl did; also stored as its ``crawls`` row."""

    crawl_id: int
    job: str
    roots: list[str]
    started_at: datetime
    finished_at: datetime | None = None
    status: str = "running"
    files_seen: int = 0
    files_new: int = 0
    files_changed: int = 0
    files_unchanged: int = 0
    files_deleted: int = 0
    bytes_hashed: int = 0
    units_crawled: int = 0
    units_skipped: int = 0
    units_failed: int = 0
    errors: int = 0
    warnings: int = 0
    secrets_redacted: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (for ``--json``)."""
        data = dict(self.__dict__)
        data["started_at"] = self.started_at.isoformat()
        data["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        data["duration_s"] = round((self.finished_at - self.started_at).total_seconds(), 3) if self.finished_at else None
        return data


class Runner:
    """Crawls the roots of one job into one catalog (the caller holds the crawl lock)."""

    def __init__(self, catalog: Catalog, job: Job, crawlers: list[BaseCrawler], crawler_options: dict | None = None,
                 progress: Progress | None = None, allow_mass_delete: bool = False, kind: str = "crawl",
                 retry_failed: bool = False, unit_seconds: float | None = None,
                 changed: dict[str, set[str]] | None = None) -> None:
        self.catalog = catalog
        self.job = job
        self.crawlers = crawlers
        unknown = set(crawler_options or {}) - {c.name for c in crawlers}
        if unknown:
            from .errors import ConfigError

            valid = ", ".join(sorted(c.name for c in crawlers))
            raise ConfigError(f"[crawlers.{sorted(unknown)[0]}]: no such crawler (valid: {valid})")
        self.crawler_options = {c.name: options_from(c.Options, (crawler_options or {}).get(c.name, {}), f"crawlers.{c.name}")
                                for c in crawlers}
        self.retry_failed = retry_failed
        # Watch batches: the absolute paths that changed, per root; only what holds them is walked.
        self.changed = changed
        self.unit_seconds = job.unit_time_limit if unit_seconds is None else unit_seconds
        self.memory = MemoryGuard(job.unit_memory_limit)
        self.progress = progress or (lambda event, n: None)
        self.allow_mass_delete = allow_mass_delete
        self.kind = kind
        # One per crawl: every redaction of every unit is counted in the summary.
        self.redactor = Redactor()
        self.rules = WalkRules(include=job.include, exclude=job.exclude, follow_symlinks=job.follow_symlinks)

    # -- the crawl ---------------------------------------------------------------------------

    def run(self) -> CrawlSummary:
        """Crawl every root; returns the summary (status ok, partial or failed)."""
        roots = [os.path.abspath(os.path.expanduser(r)) for r in self.job.roots]
        summary = self._start(roots)
        missing = 0
        try:
            with self.memory:
                for root in roots:
                    missing += not self._crawl_root(root, summary)
        except BaseException:
            summary.status = "interrupted"
            # The catalog may be what failed (disk full): the first error is the one to report.
            with contextlib.suppress(CatalogError):
                self._finish(summary)
            raise
        if missing == len(roots):
            summary.status = "failed"
        else:
            summary.status = "partial" if summary.errors else "ok"
        self._finish(summary)
        return summary

    def _start(self, roots: list[str]) -> CrawlSummary:
        now = datetime.now(timezone.utc)
        with self.catalog.connect() as con:
            crawl_id = crawls.start_crawl(con, self.job.name, self.kind, roots, now)
        return CrawlSummary(crawl_id=crawl_id, job=self.job.name, roots=roots, started_at=now)

    def _finish(self, summary: CrawlSummary) -> None:
        summary.finished_at = datetime.now(timezone.utc)
        summary.secrets_redacted = self.redactor.count
        counts = {k: getattr(summary, k) for k in (
            "status", "finished_at", "files_seen", "files_new", "files_changed", "files_unchanged",
            "files_deleted", "bytes_hashed", "units_crawled", "units_skipped", "units_failed", "errors", "warnings",
            "secrets_redacted")}
        with self.catalog.connect() as con:
            crawls.finish_crawl(con, summary.crawl_id, counts)

    def _crawl_root(self, root: str, summary: CrawlSummary) -> bool:
        writer = BatchWriter(self.catalog, summary.crawl_id, root)
        if not os.path.isdir(root):
            reason = "does not exist" if not os.path.exists(root) else "is not a folder"
            writer.add_error("core", None, CrawlError(".", "missing_root", f"crawl root {root} {reason}; nothing marked deleted"))
            writer.flush()
            summary.errors += 1
            return False
        scopes = None
        if self.changed is not None:
            with self.catalog.connect(read_only=True) as con:
                scopes = scopes_for(root, self.changed.get(root, set()), crawls.folder_units(con, root))
            if not scopes:
                return True  # nothing changed under this root
        RootCrawl(self, root, writer, summary, scopes).run()
        self._update_lineage(root, writer, summary.crawl_id)
        summary.errors += writer.errors
        summary.warnings += writer.warnings
        return True


    def _update_lineage(self, root: str, writer: BatchWriter, crawl_id: int) -> None:
        """Recompute the lineage edges of the units this crawl re-read (incremental)."""
        from .lineage import update_lineage

        try:
            with self.catalog.connect() as con:
                update_lineage(con, root, crawl_id)
        except Exception as exc:  # lineage must never lose the crawl's own results
            writer.add_error("lineage", None, CrawlError(".", type(exc).__name__, f"lineage update failed: {exc}"))
            writer.flush()
