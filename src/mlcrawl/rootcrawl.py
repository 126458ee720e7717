"""Crawling one root: walk to stat columns, diff in DuckDB, hash what changed, run the units.

    walk (scandir, one pass) ──▶ stat columns ──▶ one DuckDB join with `files` ──▶ new / changed
         │                                          unchanged: no Python work    │
         └─ folder listings ─▶ folder claims ─▶ fingerprints from the stat columns │
                                                                                  ▼
    file claims (SQL, by extension/name) ◀── candidates not up to date ◀── hash in batches (threads)
         │                                                                        │
         └────────────▶ guarded units (crawl, validate, redact) ─▶ BatchWriter ◀──┘

A folder unit's fingerprint is a digest of the stat rows of its subtree, which the depth-first
walk makes one contiguous slice of the columns.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pwd
import re
from array import array
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from .catalog import crawls
from .catalog.writer import BatchWriter, UnitDone
from .claims import ClaimMatcher
from .crawler import BaseCrawler, CrawlContext
from .hashing import INLINE_LIMIT, Digest, HashPool
from .fileaccess import read_bounded
from .kinds import classify
from .lfs import MAX_POINTER_SIZE, LfsPointer, parse_pointer
from .records import CrawlError
from .unitguard import time_limit
from .validate import validate
from .walk import DirEnter, DirExit, FileEntry, SymlinkEntry, WalkProblem, walk

if TYPE_CHECKING:
    from .runner import CrawlSummary, Runner

#: Files hashed per batch handed to the thread pool (a future per small file costs more than its hash).
HASH_BATCH = 256
_SIMPLE_SUFFIX = re.compile(r"^\*(\.[^*?\[\]]+)$")


@dataclass
class _Folder:
    path: str
    rel: str
    start: int
    crawlers: list[BaseCrawler]


@dataclass
class _Walked:
    """The walk of one root as columns (one entry per regular file, in depth-first order)."""

    paths: list[str] = field(default_factory=list)
    full: list[str] = field(default_factory=list)
    sizes: array = field(default_factory=lambda: array("q"))
    mtimes: array = field(default_factory=lambda: array("q"))
    inodes: array = field(default_factory=lambda: array("q"))
    uids: array = field(default_factory=lambda: array("q"))
    md5: list[bool] = field(default_factory=list)
    folders: list[tuple[_Folder, str]] = field(default_factory=list)  # (unit folder, fingerprint)

    def table(self) -> pa.Table:
        return pa.table([self.paths, pa.array(self.sizes, pa.int64()), pa.array(self.mtimes, pa.int64()),
                         pa.array(self.inodes, pa.int64()), pa.array(self.uids, pa.int64()), self.md5,
                         pa.array(range(len(self.paths)), pa.int64())],
                        schema=crawls.WALK_SCHEMA)

    def fingerprint(self, start: int, end: int) -> str:
        digest = hashlib.sha1("\0".join(self.paths[start:end]).encode("utf-8", "surrogatepass"))
        for column in (self.sizes, self.mtimes, self.inodes):
            digest.update(column[start:end].tobytes())
        return digest.hexdigest()


def _owner(uid: int, cache: dict[int, str]) -> str:
    if uid not in cache:
        try:
            cache[uid] = pwd.getpwuid(uid).pw_name
        except KeyError:
            cache[uid] = str(uid)
    return cache[uid]


def _mtime(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def glob_to_re2(glob: str) -> str:
    """A file-name glob as a regular expression DuckDB's RE2 accepts (fnmatch's uses atomic groups)."""
    out, i = [], 0
    while i < len(glob):
        c = glob[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[" and (end := glob.find("]", i + 2)) != -1:
            body = glob[i + 1:end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def file_claim_rules(crawlers: list[BaseCrawler]) -> pa.Table:
    """Each crawler's file globs as join rules: a lower-case suffix, an exact name, or a regex."""
    rows: dict[str, list] = {"crawler": [], "priority": [], "version": [], "kind": [], "value": []}
    for crawler in crawlers:
        for glob in crawler.claims.files:
            simple = _SIMPLE_SUFFIX.match(glob)
            if simple and simple.group(1).count(".") <= 2:
                value = simple.group(1).lower()
                kind = "suffix1" if value.count(".") == 1 else "suffix2"
            elif not any(c in glob for c in "*?["):
                kind, value = "name", glob.lower()
            else:
                kind, value = "regex", "(?i)" + glob_to_re2(glob)
            for key, v in zip(rows, (crawler.name, crawler.claims.file_priority, crawler.version, kind, value)):
                rows[key].append(v)
    return pa.table(rows, schema=pa.schema([("crawler", pa.string()), ("priority", pa.int64()),
                                            ("version", pa.int64()), ("kind", pa.string()), ("value", pa.string())]))


def scopes_for(root: str, changed: set[str], unit_folders: set[str]) -> list[str]:
    """The folders a watch batch walks: for each changed path, the innermost folder unit that holds
    it (its fingerprint covers the whole unit), else its nearest existing folder; nested merged.

    Folder units further out keep their fingerprint until the next full walk (watch start, overflow).
    """
    picked = set()
    for path in changed:
        rel = os.path.relpath(path, root).replace(os.sep, "/")
        if rel.startswith(".."):
            continue
        folder = "" if rel == "." else (rel.rsplit("/", 1)[0] if "/" in rel else "")
        while folder and not os.path.isdir(os.path.join(root, folder)):
            folder = folder.rsplit("/", 1)[0] if "/" in folder else ""
        candidate = folder
        while True:
            if (candidate or ".") in unit_folders:
                folder = candidate
                break
            if not candidate:
                break
            candidate = candidate.rsplit("/", 1)[0] if "/" in candidate else ""
        picked.add(folder)
    if "" in picked:
        return [""]
    ordered = sorted(picked)
    merged: list[str] = []
    for folder in ordered:
        if not merged or not folder.startswith(merged[-1] + "/"):
            merged.append(folder)
    return merged


class RootCrawl:
    """The state of crawling one root into one writer."""

    def __init__(self, runner: Runner, root: str, writer: BatchWriter, summary: CrawlSummary,
                 scopes: list[str] | None = None) -> None:
        self.runner = runner
        self.scopes = scopes
        self.job = runner.job
        self.root = root
        self.writer = writer
        self.summary = summary
        self.claims = ClaimMatcher(runner.crawlers, self._match_failed)
        self.by_name = {c.name: c for c in runner.crawlers}
        self.walked = _Walked()
        self.known: dict[str, str] = {}
        self.pointers: set[str] = set()  # Git LFS pointers hashed in this crawl
        self.seen_units: set[tuple[str, str]] = set()
        self.owners: dict[int, str] = {}
        self.folder_names: dict[str, frozenset[str]] = {}

    # -- the phases ---------------------------------------------------------------------------

    def run(self) -> None:
        """Walk, diff, hash, crawl units, then deletions; the writer is flushed at the end."""
        self._walk()
        with self.runner.catalog.connect() as con:
            diff = crawls.diff_stats(con, self.root, self.walked.table(), self.scopes)
            folder_state = crawls.unit_state(con, self.root, only_ok=self.runner.retry_failed, folders=True)
        self._stored_hashes: dict[str, str] | None = None
        self.summary.files_unchanged += diff.unchanged
        self.runner.progress("files", diff.unchanged)
        with HashPool(self.job.threads) as pool:
            self._hash_and_crawl_files(diff.todo, pool)
        self._crawl_folders(folder_state)
        self._finish(diff)

    def _walk(self) -> None:
        w = self.walked
        open_folders: list[_Folder] = []
        md5_depths: list[int] = []
        depth = 0
        want_md5 = self.job.md5 == "always"
        events = (event for start in (self.scopes if self.scopes is not None else [""])
                  for event in walk(self.root, self.runner.rules, start=start))
        for event in events:
            if type(event) is FileEntry:
                st = event.stat
                w.paths.append(event.rel)
                w.full.append(event.path)
                w.sizes.append(st.st_size)
                w.mtimes.append(st.st_mtime_ns)
                w.inodes.append(st.st_ino)
                w.uids.append(st.st_uid)
                w.md5.append(want_md5 or bool(md5_depths))
            elif type(event) is DirEnter:
                self.folder_names[event.rel] = event.names
                depth += 1
                if self.job.md5 == "dvc" and ("dvc.yaml" in event.names or ".dvc" in event.names):
                    md5_depths.append(depth)
                claimed = self.claims.for_folder(event.path, event.names)
                if claimed:
                    open_folders.append(_Folder(event.path, event.rel, len(w.paths), claimed))
            elif type(event) is DirExit:
                if md5_depths and md5_depths[-1] == depth:
                    md5_depths.pop()
                depth -= 1
                if open_folders and open_folders[-1].path == event.path:
                    folder = open_folders.pop()
                    w.folders.append((folder, w.fingerprint(folder.start, len(w.paths))))
            elif type(event) is SymlinkEntry:
                self.writer.add_symlink(event.rel, event.target, event.resolves_inside, event.broken)
            elif type(event) is WalkProblem:
                self.writer.add_error("walk", None, CrawlError(event.rel, event.error_type, event.message, event.severity))
        self.summary.files_seen += len(w.paths)

    # -- files --------------------------------------------------------------------------------

    def _file_candidates(self) -> dict[str, tuple[int, list[tuple[BaseCrawler, int, bool, bool]]]]:
        """path -> (walk row, [(crawler, priority, up to date, declined)]) for every path with a claim to decide."""
        if not any(c.claims.files for c in self.runner.crawlers):
            return {}
        with self.runner.catalog.connect() as con:
            rows = crawls.file_claims(con, self.root, self.walked.table(), file_claim_rules(self.runner.crawlers),
                                      self.runner.retry_failed)
        out = {}
        for path, i, cands in rows:
            if path is None:
                self.summary.units_skipped += cands[0][1]
            else:
                out[path] = (i, [(self.by_name[c], p, cur, declined) for c, p, cur, declined in cands])
        return out

    def _hash_and_crawl_files(self, todo: pa.Table, pool: HashPool) -> None:
        candidates = self._file_candidates()
        limit = self.job.max_hash_size
        # Changed files first, a batch at a time (rows as dicts only for the batch in hand); each
        # hashing thread takes many files.
        for record_batch in todo.to_batches(max_chunksize=HASH_BATCH):
            batch = record_batch.to_pylist()
            if limit is not None:
                for row in [r for r in batch if r["size"] > limit]:
                    self._record_file(row, None, None, f"not hashed: {row['size']} bytes > max_hash_size {limit}")
                batch = [r for r in batch if r["size"] <= limit]
            # Small files are kept in memory anyway: every one is checked for being a Git LFS pointer.
            keep = [row["size"] <= MAX_POINTER_SIZE or (row["path"] in candidates and row["size"] <= INLINE_LIMIT)
                    for row in batch]
            digests = pool.map_batch([(self.walked.full[r["i"]], r["size"], r["mtime_ns"], r["want_md5"], k)
                                      for r, k in zip(batch, keep)])
            for row, digest in zip(batch, digests):
                data = self._hashed(row, digest)
                if row["path"] in candidates:
                    self._crawl_file(row["path"], *candidates.pop(row["path"]), data)
            self.runner.progress("files", record_batch.num_rows)
        # Unchanged files whose unit is not up to date (a new crawler, a new crawler version).
        for path, (i, cands) in candidates.items():
            self._crawl_file(path, i, cands, None)

    def _hashed(self, row: dict, digest: Digest) -> bytes | None:
        rel = row["path"]
        if digest.error is not None:
            exc = digest.error
            if isinstance(exc, FileNotFoundError):
                self.writer.add_error("hash", None, CrawlError(rel, "vanished", "file disappeared before it could be hashed", "warning"))
                self.summary.files_seen -= 1
                return None
            self.writer.add_error("hash", None, CrawlError(rel, type(exc).__name__, f"cannot read file: {_one_line(exc)}"))
            self._record_file(row, None, None, f"unreadable: {getattr(exc, 'strerror', None) or exc}", final=False)
            return None
        self.summary.bytes_hashed += digest.size_read
        if digest.changed:
            self.writer.add_error("hash", None, CrawlError(
                rel, "changed_while_hashing", "file changed while it was hashed; hash not stored, next crawl retries", "warning"))
            self._record_file(row, None, None, "changed while hashing", final=False)
            return None
        self.known[rel] = digest.sha256
        pointer = parse_pointer(digest.data) if digest.data is not None and row["size"] <= MAX_POINTER_SIZE else None
        if pointer is not None:
            self.pointers.add(rel)
        self._record_file(row, digest.sha256, digest.md5, None, pointer=pointer)
        return digest.data

    def _record_file(self, row: dict, sha256: str | None, md5: str | None, note: str | None, final: bool = True,
                     pointer: LfsPointer | None = None) -> None:
        if row["existed"]:
            self.summary.files_changed += 1
        else:
            self.summary.files_new += 1
        kind, fmt = classify(row["path"])
        now = self.writer.now
        self.writer.add_file({
            "root": self.root, "path": row["path"], "size": row["size"], "mtime": _mtime(row["mtime_ns"]),
            # A hash that failed for a passing reason is retried: store a stat that cannot match.
            "mtime_ns": row["mtime_ns"] if final else -1, "inode": row["inode"],
            "owner": _owner(row["uid"], self.owners), "kind": kind, "format": fmt,
            "sha256": sha256, "md5": md5, "hash_note": note,
            "first_seen": row["first_seen"] or now, "last_seen": now, "deleted_at": None,
            "crawl_id": self.summary.crawl_id,
            "lfs_pointer": json.dumps(pointer.facts()["lfs_pointer"]) if pointer is not None else None,
        })

    def _crawl_file(self, rel: str, i: int, cands: list[tuple[BaseCrawler, int, bool, bool]],
                    data: bytes | None) -> None:
        full = self.walked.full[i]
        fingerprint = f"{self.walked.sizes[i]}:{self.walked.mtimes[i]}:{self.walked.inodes[i]}"
        if self._is_pointer(rel, i):
            # The content is elsewhere: a format reader would only call the pointer corrupt.
            for crawler, _, current, _ in cands:
                if not current and crawler.name not in self.claims.disabled:
                    self.writer.add_declined_unit(UnitDone(crawler.name, rel, False, fingerprint, crawler.version))
            return
        accepted = []
        for crawler, priority, current, declined in cands:
            if crawler.name in self.claims.disabled or (current and declined):
                continue
            if current:
                accepted.append((crawler, priority, True))
            elif self.claims.refine_file(crawler, full):
                accepted.append((crawler, priority, False))
            elif crawler.name not in self.claims.disabled:
                self.writer.add_declined_unit(UnitDone(crawler.name, rel, False, fingerprint, crawler.version))
        if not accepted:
            return
        top = max(p for _, p, _ in accepted)
        sha = self.known.get(rel)
        for crawler, priority, current in accepted:
            if priority != top or current:
                continue  # up-to-date units were counted by the claim query
            self._run_unit(crawler, full, rel, False, fingerprint, {Path(full): sha} if sha else {},
                           {Path(full): data} if data is not None else {})

    def _is_pointer(self, rel: str, i: int) -> bool:
        if rel in self.pointers:
            return True
        if rel in self.known or self.walked.sizes[i] > MAX_POINTER_SIZE:
            return False  # hashed in this crawl (and not a pointer), or too big to be one
        # Unchanged, so not hashed now, yet a crawler has to read it (new crawler or version).
        try:
            return parse_pointer(read_bounded(self.walked.full[i], MAX_POINTER_SIZE + 1)) is not None
        except OSError:
            return False  # the crawler's own read reports the problem

    # -- folders -------------------------------------------------------------------------------

    def _crawl_folders(self, state: dict[tuple[str, str], tuple[str, int]]) -> None:
        # Inner folders close first in the walk; crawl outer ones first like a reader would.
        units = sorted(self.walked.folders, key=lambda item: item[0].rel.count("/") if item[0].rel != "." else -1)
        for folder, fingerprint in units:
            for crawler in folder.crawlers:
                self.seen_units.add((crawler.name, folder.rel))
                if state.get((crawler.name, folder.rel)) == (fingerprint, crawler.version):
                    self.summary.units_skipped += 1
                    continue
                self._run_unit(crawler, folder.path, folder.rel, True, fingerprint, {}, {},
                               enclosing=self._enclosing(folder.rel, self._folders_by_rel))

    @functools.cached_property
    def _folders_by_rel(self) -> dict[str, _Folder]:
        # Built once, after the walk: file units used to rebuild it each, O(files x folders).
        return {folder.rel: folder for folder, _ in self.walked.folders}

    def _enclosing(self, rel: str, rels: dict[str, _Folder]) -> tuple[tuple[str, Path], ...]:
        chain = []
        parts = rel.split("/") if rel != "." else []
        for n in range(len(parts)):
            parent = "/".join(parts[:n]) or "."
            folder = rels.get(parent)
            if folder is not None:
                chain.extend((c.name, Path(folder.path)) for c in folder.crawlers)
        return tuple(chain)

    def _enclosing_runs(self, enclosing: tuple[tuple[str, Path], ...]) -> tuple[tuple[Path, str], ...]:
        runs = []
        for name, folder in enclosing:
            try:
                run_id = self.by_name[name].folder_run_id(folder, os.path.relpath(folder, self.root).replace(os.sep, "/"))
            except Exception:  # noqa: BLE001 - a broken hook costs the link, never the unit
                run_id = None
            if run_id:
                runs.append((folder, run_id))
        return tuple(runs)

    # -- units ---------------------------------------------------------------------------------

    def _run_unit(self, crawler: BaseCrawler, path: str, rel: str, is_dir: bool, fingerprint: str,
                  known: dict[Path, str], cached: dict[Path, bytes],
                  enclosing: tuple[tuple[str, Path], ...] | None = None) -> None:
        if enclosing is None:
            enclosing = self._enclosing(rel, self._folders_by_rel)
        ctx = CrawlContext(
            root=Path(self.root), unit=Path(path), options=self.runner.crawler_options[crawler.name],
            known_hashes=known, cached_bytes=cached, lookup_sha256=self._lookup_sha256, enclosing=enclosing,
            enclosing_runs=self._enclosing_runs(enclosing), folder_names=self.folder_names.get,
            follow_symlinks=self.job.follow_symlinks, redactor=self.runner.redactor, read_limit=self.job.read_limit,
        )
        done = UnitDone(crawler.name, rel, is_dir, fingerprint, crawler.version)
        try:
            # The whole pipeline is inside the guard: crawl, validate, redact.
            with time_limit(self.runner.unit_seconds), self.runner.memory.unit():
                records = [ctx.redactor.record(validate(r, crawler.name)) for r in crawler.crawl(Path(path), ctx)]
        except (Exception, MemoryError, RecursionError) as exc:
            # Stored as failed with its fingerprint: an unchanged bad file is not read (nor
            # reported) again until it changes or --retry-failed.
            self.summary.units_failed += 1
            self.writer.add_failed_unit(done, CrawlError(rel, type(exc).__name__, _one_line(exc)))
            return
        self.summary.units_crawled += 1
        self.writer.add_unit(done, records + ctx.warnings)

    def _lookup_sha256(self, rel: str) -> str | None:
        """The sha256 of a file of this root: hashed now, else as the catalog has it (one query)."""
        if rel in self.known:
            return self.known[rel]
        if self._stored_hashes is None:
            with self.runner.catalog.connect(read_only=True) as con:
                self._stored_hashes = crawls.current_hashes(con, self.root)
        return self._stored_hashes.get(rel)

    def _match_failed(self, crawler: BaseCrawler, path: str, exc: Exception) -> None:
        rel = os.path.relpath(path, self.root).replace(os.sep, "/")
        self.writer.add_error(crawler.name, None, CrawlError(
            rel, type(exc).__name__, f"match() raised {_one_line(exc)}; crawler disabled for the rest of this crawl"))

    # -- deletions -----------------------------------------------------------------------------

    def _finish(self, diff: crawls.StatDiff) -> None:
        gone, before = len(diff.gone), diff.present_before
        guard = self.job.delete_guard
        emptied = not self.walked.paths and self.scopes in (None, [""])
        refused = gone and (emptied or (before and gone / before > guard)) and not self.runner.allow_mass_delete
        if refused:
            why = "the root is empty" if emptied else \
                f"{gone} of {before} files ({gone / before:.0%}) would be marked deleted, over delete_guard {guard:.0%}"
            self.writer.add_error("core", None, CrawlError(
                ".", "mass_delete_guard",
                f"nothing marked deleted: {why}; is the share unmounted? Re-run with --allow-mass-delete if the files are really gone"))
        self.writer.flush()
        now = self.writer.now
        running = {c.name for c in self.runner.crawlers}
        deleted = diff.gone if gone and not refused else []
        self.summary.files_deleted += len(deleted)
        with self.runner.catalog.connect() as con:
            crawls.close_root(con, self.root, deleted, None if refused else (running, self.seen_units), now,
                              self.scopes)
