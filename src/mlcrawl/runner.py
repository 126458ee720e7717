"""One crawl: walk, freshness check, hashing, crawler units, errors as rows, summary.

The runner never prints; progress goes to a callback and problems to ``errors`` rows.  A unit
that raises gives one error row, its partial output is dropped and its fingerprint is not
stored, so the next crawl retries it.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import socket
import tempfile
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import __version__
from .catalog import Catalog
from .catalog.writer import BatchWriter, UnitDone
from .claims import ClaimMatcher
from .config import Job
from .crawler import BaseCrawler, CrawlContext, options_from
from .hashing import INLINE_LIMIT, Digest, HashPool, hash_file
from .kinds import classify
from .records import CrawlError
from .secrets import redact_record
from .statcache import Cached, StatCache
from .unitguard import time_limit
from .validate import validate
from .walk import DirEnter, DirExit, FileEntry, SymlinkEntry, WalkProblem, WalkRules, walk

Progress = Callable[[str, int], None]
_KNOWN_HASH_LIMIT = 10_000


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

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (for ``--json``)."""
        data = dict(self.__dict__)
        data["started_at"] = self.started_at.isoformat()
        data["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        data["duration_s"] = round((self.finished_at - self.started_at).total_seconds(), 3) if self.finished_at else None
        return data


@dataclass
class _OpenUnit:
    crawler: BaseCrawler
    path: str
    rel: str
    fingerprint: Any = field(default_factory=hashlib.sha1)
    known: dict[Path, str] = field(default_factory=dict)

    def contains(self, rel: str) -> bool:
        return self.rel == "." or rel.startswith(self.rel + "/")


@dataclass
class _Pending:
    entry: FileEntry
    cached: Cached | None
    claims: list[BaseCrawler]
    future: Future[Digest]


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _owner(uid: int, cache: dict[int, str]) -> str:
    if uid not in cache:
        try:
            cache[uid] = pwd.getpwuid(uid).pw_name
        except KeyError:
            cache[uid] = str(uid)
    return cache[uid]


def _mtime(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)


class Runner:
    """Crawls the roots of one job into one catalog (the caller holds the crawl lock)."""

    def __init__(self, catalog: Catalog, job: Job, crawlers: list[BaseCrawler], crawler_options: dict | None = None,
                 progress: Progress | None = None, allow_mass_delete: bool = False, kind: str = "crawl",
                 retry_failed: bool = False, unit_seconds: float = 300.0) -> None:
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
        self.unit_seconds = unit_seconds
        self.progress = progress or (lambda event, n: None)
        self.allow_mass_delete = allow_mass_delete
        self.kind = kind
        self.rules = WalkRules(include=job.include, exclude=job.exclude, follow_symlinks=job.follow_symlinks)
        self._owners: dict[int, str] = {}

    # -- the crawl ---------------------------------------------------------------------------

    def run(self) -> CrawlSummary:
        """Crawl every root; returns the summary (status ok, partial or failed)."""
        roots = [os.path.abspath(os.path.expanduser(r)) for r in self.job.roots]
        summary = self._start(roots)
        missing = 0
        try:
            for root in roots:
                missing += not self._crawl_root(root, summary)
        except BaseException:
            summary.status = "interrupted"
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
            # The caller holds the crawl lock, so a crawl still "running" was killed.
            con.execute("UPDATE crawls SET status = 'interrupted' WHERE status = 'running'")
            crawl_id = con.execute("SELECT coalesce(max(crawl_id), 0) + 1 FROM crawls").fetchall()[0][0]
            con.execute(
                "INSERT INTO crawls (crawl_id, job, kind, roots, started_at, status, version, pid, host) "
                "VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?)",
                [crawl_id, self.job.name, self.kind, roots, now, __version__, os.getpid(), socket.gethostname()],
            )
        return CrawlSummary(crawl_id=crawl_id, job=self.job.name, roots=roots, started_at=now)

    def _finish(self, summary: CrawlSummary) -> None:
        summary.finished_at = datetime.now(timezone.utc)
        counts = {k: getattr(summary, k) for k in (
            "status", "finished_at", "files_seen", "files_new", "files_changed", "files_unchanged",
            "files_deleted", "bytes_hashed", "units_crawled", "units_skipped", "units_failed", "errors", "warnings")}
        assignments = ", ".join(f"{k} = ?" for k in counts)
        with self.catalog.connect() as con:
            con.execute(f"UPDATE crawls SET {assignments} WHERE crawl_id = ?", [*counts.values(), summary.crawl_id])

    def _crawl_root(self, root: str, summary: CrawlSummary) -> bool:
        writer = BatchWriter(self.catalog, summary.crawl_id, root)
        if not os.path.isdir(root):
            reason = "does not exist" if not os.path.exists(root) else "is not a folder"
            writer.add_error("core", None, CrawlError(".", "missing_root", f"crawl root {root} {reason}; nothing marked deleted"))
            writer.flush()
            summary.errors += 1
            return False
        cache = StatCache(self.catalog, root, Path(tempfile.gettempdir()))
        try:
            _RootCrawl(self, root, writer, cache, summary).run()
        finally:
            cache.close()
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


class _RootCrawl:
    """The state of crawling one root."""

    def __init__(self, runner: Runner, root: str, writer: BatchWriter, cache: StatCache, summary: CrawlSummary) -> None:
        self.runner = runner
        self.job = runner.job
        self.root = root
        self.writer = writer
        self.cache = cache
        self.summary = summary
        self.open_units: list[_OpenUnit] = []
        self.md5_depths: list[int] = []
        self.depth = 0
        self.pending: list[_Pending] = []
        self.seen_units: set[tuple[str, str]] = set()
        self.claims = ClaimMatcher(runner.crawlers, self._match_failed)
        self.files_seen = 0
        with runner.catalog.connect() as con:
            self.unit_state = {
                (c, u): (fp, v) for c, u, fp, v in con.execute(
                    "SELECT crawler, unit, fingerprint, crawler_version FROM units WHERE root = ? AND deleted_at IS NULL"
                    + (" AND status = 'ok'" if runner.retry_failed else ""), [root]).fetchall()
            }

    def run(self) -> None:
        with HashPool(self.job.threads) as pool:
            self.pool = pool
            for event in walk(self.root, self.runner.rules):
                if isinstance(event, FileEntry):
                    self._on_file(event)
                elif isinstance(event, DirEnter):
                    self._on_enter(event)
                elif isinstance(event, DirExit):
                    self._on_exit(event)
                elif isinstance(event, SymlinkEntry):
                    self.writer.add_symlink(event.rel, event.target, event.resolves_inside, event.broken)
                elif isinstance(event, WalkProblem):
                    self.writer.add_error("walk", None, CrawlError(event.rel, event.error_type, event.message, event.severity))
            self._drain(0)
        self.cache.finish()
        self._mark_deleted()
        self.writer.flush()

    # -- folders ------------------------------------------------------------------------------

    def _on_enter(self, event: DirEnter) -> None:
        self.depth += 1
        if self.job.md5 == "dvc" and ("dvc.yaml" in event.names or ".dvc" in event.names):
            self.md5_depths.append(self.depth)
        for crawler in self.claims.for_folder(event.path, event.names):
            self.open_units.append(_OpenUnit(crawler, event.path, event.rel))

    def _on_exit(self, event: DirExit) -> None:
        if self.md5_depths and self.md5_depths[-1] == self.depth:
            self.md5_depths.pop()
        self.depth -= 1
        closing = [u for u in self.open_units if u.path == event.path]
        if not closing:
            return
        self._drain(0)
        self.open_units = [u for u in self.open_units if u.path != event.path]
        for unit in closing:
            fingerprint = unit.fingerprint.hexdigest()
            self._run_unit(unit.crawler, unit.path, unit.rel, True, fingerprint, known=unit.known)

    # -- files ---------------------------------------------------------------------------------

    def _on_file(self, entry: FileEntry) -> None:
        st = entry.stat
        self.summary.files_seen += 1
        self.files_seen += 1
        if self.files_seen % 1000 == 0:
            self.runner.progress("files", 1000)
        for unit in self.open_units:
            unit.fingerprint.update(f"{entry.rel}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\n".encode())
        cached = self.cache.lookup(entry.rel)
        claims = self._claimed_files(entry)
        if cached is not None and not cached.deleted and cached.same_stat(st.st_size, st.st_mtime_ns, st.st_ino) \
                and (cached.sha256 is not None or cached.hash_note is not None) \
                and (cached.md5 is not None or not self._want_md5()):
            self.summary.files_unchanged += 1
            self._after_hash(entry, cached.sha256, None, claims)
            return
        limit = self.job.max_hash_size
        if limit is not None and st.st_size > limit:
            self._record_file(entry, cached, None, None, f"not hashed: {st.st_size} bytes > max_hash_size {limit}")
            self._after_hash(entry, None, None, claims)
            return
        keep = bool(claims)
        if st.st_size <= INLINE_LIMIT:
            self._hashed(entry, cached, claims, hash_file(entry.path, st.st_size, st.st_mtime_ns, self._want_md5(), keep))
        else:
            future = self.pool.submit(entry.path, st.st_size, st.st_mtime_ns, self._want_md5(), keep)
            self.pending.append(_Pending(entry, cached, claims, future))
            self._drain(self.pool.capacity)

    def _want_md5(self) -> bool:
        return self.job.md5 == "always" or (self.job.md5 == "dvc" and bool(self.md5_depths))

    def _drain(self, keep: int) -> None:
        while len(self.pending) > keep:
            item = self.pending.pop(0)
            self._hashed(item.entry, item.cached, item.claims, item.future.result())

    def _hashed(self, entry: FileEntry, cached: Cached | None, claims: list[BaseCrawler], digest: Digest) -> None:
        if digest.error is not None:
            exc = digest.error
            if isinstance(exc, FileNotFoundError):
                self.writer.add_error("hash", None, CrawlError(entry.rel, "vanished", "file disappeared before it could be hashed", "warning"))
                self.summary.files_seen -= 1
                return
            self.writer.add_error("hash", None, CrawlError(entry.rel, type(exc).__name__, f"cannot read file: {exc.strerror or exc}"))
            self._record_file(entry, cached, None, None, f"unreadable: {exc.strerror or exc}", note_is_final=False)
            return
        self.summary.bytes_hashed += digest.size_read
        if digest.changed:
            self.writer.add_error("hash", None, CrawlError(
                entry.rel, "changed_while_hashing", "file changed while it was hashed; hash not stored, next crawl retries", "warning"))
            self._record_file(entry, cached, None, None, "changed while hashing", note_is_final=False)
            return
        self._record_file(entry, cached, digest.sha256, digest.md5, None)
        self._after_hash(entry, digest.sha256, digest.data, claims)

    def _record_file(self, entry: FileEntry, cached: Cached | None, sha256: str | None, md5: str | None,
                     note: str | None, note_is_final: bool = True) -> None:
        st = entry.stat
        if cached is None or cached.deleted:
            self.summary.files_new += 1
        else:
            self.summary.files_changed += 1
        kind, fmt = classify(entry.rel)
        now = self.writer.now
        self.writer.add_file({
            "root": self.root, "path": entry.rel, "size": st.st_size, "mtime": _mtime(st.st_mtime_ns),
            # A hash that failed for a passing reason is retried: store a stat that cannot match.
            "mtime_ns": st.st_mtime_ns if note_is_final else -1, "inode": st.st_ino,
            "owner": _owner(st.st_uid, self.runner._owners), "kind": kind, "format": fmt,
            "sha256": sha256, "md5": md5, "hash_note": note,
            "first_seen": cached.first_seen if cached is not None and cached.first_seen else now,
            "last_seen": now, "deleted_at": None, "crawl_id": self.summary.crawl_id,
        })

    def _after_hash(self, entry: FileEntry, sha256: str | None, data: bytes | None, claims: list[BaseCrawler]) -> None:
        path = Path(entry.path)
        if sha256 is not None:
            for unit in self.open_units:
                if unit.contains(entry.rel) and len(unit.known) < _KNOWN_HASH_LIMIT:
                    unit.known[path] = sha256
        st = entry.stat
        fingerprint = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
        for crawler in claims:
            known = {path: sha256} if sha256 else {}
            cached_bytes = {path: data} if data is not None else {}
            self._run_unit(crawler, entry.path, entry.rel, False, fingerprint, known, cached_bytes)

    def _claimed_files(self, entry: FileEntry) -> list[BaseCrawler]:
        return self.claims.for_file(entry.path, entry.rel.rsplit("/", 1)[-1])

    def _match_failed(self, crawler: BaseCrawler, path: str, exc: Exception) -> None:
        rel = os.path.relpath(path, self.root).replace(os.sep, "/")
        self.writer.add_error(crawler.name, None, CrawlError(
            rel, type(exc).__name__, f"match() raised {_one_line(exc)}; crawler disabled for the rest of this crawl"))

    # -- units ---------------------------------------------------------------------------------

    def _run_unit(self, crawler: BaseCrawler, path: str, rel: str, is_dir: bool, fingerprint: str,
                  known: dict[Path, str] | None = None, cached_bytes: dict[Path, bytes] | None = None) -> None:
        self.seen_units.add((crawler.name, rel))
        if self.unit_state.get((crawler.name, rel)) == (fingerprint, crawler.version):
            self.summary.units_skipped += 1
            return
        ctx = CrawlContext(
            root=Path(self.root), unit=Path(path),
            options=self.runner.crawler_options[crawler.name],
            known_hashes=dict(known or {}), cached_bytes=cached_bytes or {},
            enclosing=tuple((u.crawler.name, Path(u.path)) for u in self.open_units if u.contains(rel) and u.rel != rel),
            follow_symlinks=self.job.follow_symlinks,
        )
        done = UnitDone(crawler.name, rel, is_dir, fingerprint, crawler.version)
        try:
            # The whole pipeline is inside the guard: crawl, validate, redact.
            with time_limit(self.runner.unit_seconds):
                records = [redact_record(validate(r, crawler.name)) for r in crawler.crawl(Path(path), ctx)]
        except (Exception, MemoryError, RecursionError) as exc:
            self._crawler_failed(done, exc)
            return
        self.summary.units_crawled += 1
        self.writer.add_unit(done, records + ctx.warnings)

    def _crawler_failed(self, done: UnitDone, exc: BaseException) -> None:
        """One error row; the unit is stored as failed with its fingerprint, so an unchanged bad
        file is not read (nor reported) again until it changes or ``--retry-failed``."""
        self.summary.units_failed += 1
        self.writer.add_failed_unit(done, CrawlError(done.unit, type(exc).__name__, _one_line(exc)))

    # -- deletions -----------------------------------------------------------------------------

    def _mark_deleted(self) -> None:
        gone, before = self.cache.gone, self.cache.present_before
        if not gone:
            self._touch_present()
            return
        guard = self.job.delete_guard
        too_many = before and gone / before > guard
        emptied = self.files_seen == 0
        if (too_many or emptied) and not self.runner.allow_mass_delete:
            why = "the root is empty" if emptied else f"{gone} of {before} files ({gone / before:.0%}) would be marked deleted, over delete_guard {guard:.0%}"
            self.writer.add_error("core", None, CrawlError(
                ".", "mass_delete_guard",
                f"nothing marked deleted: {why}; is the share unmounted? Re-run with --allow-mass-delete if the files are really gone"))
            self._touch_present(retire_units=False)
            return
        self.summary.files_deleted += gone
        now = self.writer.now
        self.writer.flush()
        gone_file = str(self.cache.gone_file)
        with self.runner.catalog.connect() as con:
            con.execute("BEGIN TRANSACTION")
            con.execute(
                f"UPDATE files SET deleted_at = ? WHERE root = ? AND deleted_at IS NULL "
                f"AND path IN (SELECT path FROM read_parquet('{gone_file}'))", [now, self.root])
            self._touch_present_sql(con)
            self._retire_units(con, now)
            con.execute("COMMIT")

    def _touch_present(self, retire_units: bool = True) -> None:
        self.writer.flush()
        with self.runner.catalog.connect() as con:
            con.execute("BEGIN TRANSACTION")
            self._touch_present_sql(con)
            if retire_units:
                self._retire_units(con, self.writer.now)
            con.execute("COMMIT")

    def _touch_present_sql(self, con) -> None:
        now = self.writer.now
        con.execute("UPDATE files SET last_seen = ? WHERE root = ? AND deleted_at IS NULL AND last_seen < ?",
                    [now, self.root, now])
        con.execute("""UPDATE file_versions v SET last_seen = f.last_seen FROM files f
                       WHERE f.root = ? AND f.deleted_at IS NULL AND v.root = f.root AND v.path = f.path
                         AND v.sha256 = f.sha256 AND v.last_seen < f.last_seen""", [self.root])
        con.execute("UPDATE symlinks SET deleted_at = ? WHERE root = ? AND deleted_at IS NULL AND last_seen < ?",
                    [now, self.root, now])

    def _retire_units(self, con, now: datetime) -> None:
        """Units no crawler claimed this time (their folder or file is gone) keep their rows, marked."""
        running = {c.name for c in self.runner.crawlers}
        stale = [key for key in self.unit_state if key not in self.seen_units and key[0] in running]
        for crawler, unit in stale:
            con.execute("UPDATE units SET deleted_at = ? WHERE root = ? AND crawler = ? AND unit = ?",
                        [now, self.root, crawler, unit])
