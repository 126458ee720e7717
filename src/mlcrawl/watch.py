"""Watch mode: follow changes under the roots and crawl them in debounced batches.

    mlcrawl watch ROOT...
      ├── catch-up crawl (whatever changed while nobody watched)
      ├── per root, one change source:
      │     inotify (watchdog Observer)         local disks
      │     FolderScanner every poll_interval   NFS/SMB/sshfs/Lustre/FUSE, --poll, or when the
      │                                         inotify watch limit runs out
      ├── Debouncer: a path is due once quiet for ``settle`` seconds (or closed by its writer)
      └── each ready batch: one incremental crawl through the same Runner as ``mlcrawl crawl``

The watch session is one ``crawls`` row of kind ``watch`` (status ``watching`` while it runs,
so a Runner's "mark running crawls interrupted" leaves it alone); every batch is a crawl of
kind ``watch-batch``.  The caller holds the crawl lock for the whole session.  A batch is a
full incremental crawl: unchanged files are stat-compared with the catalog, never read.
"""

from __future__ import annotations

import errno
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .catalog import Catalog, crawls
from .config import Job, WatchSettings
from .crawler import Crawler
from .errors import CatalogLocked
from .runner import CrawlSummary, Runner
from .walk import WalkRules

Log = Callable[[str, str], None]
"""``log(level, message)``; level is ``info`` or ``warning``."""

NETWORK_FS = frozenset({
    "nfs", "nfs4", "cifs", "smb", "smb2", "smb3", "smbfs", "ncpfs", "sshfs", "lustre", "9p", "afs",
    "ceph", "glusterfs", "gpfs", "beegfs", "orangefs", "ocfs2", "gfs2", "davfs", "virtiofs", "panfs",
})
WATCH_LIMIT_SYSCTL = "fs.inotify.max_user_watches"
_TICK = 0.1
_SUMMED = ("files_seen", "files_new", "files_changed", "files_deleted", "bytes_hashed",
           "units_crawled", "units_failed", "errors", "warnings", "secrets_redacted")


# -- which roots need polling ----------------------------------------------------------------


@dataclass(frozen=True)
class Mount:
    """One line of /proc/self/mountinfo: where a filesystem is mounted and its type."""

    point: str
    fstype: str


def read_mounts(text: str | None = None) -> list[Mount]:
    """Mounts from /proc/self/mountinfo (or ``text`` in that format); empty when unavailable."""
    if text is None:
        try:
            text = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return []
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or not tail:
            continue
        # mountinfo escapes blanks in paths as octal (\040).
        point = fields[4].encode().decode("unicode_escape")
        mounts.append(Mount(point, tail[0]))
    return mounts


def is_network_fs(fstype: str) -> bool:
    """True for filesystems where inotify misses other hosts' writes (network and FUSE)."""
    return fstype in NETWORK_FS or fstype.startswith("fuse") or fstype.split(".")[0] in NETWORK_FS


def polling_reason(root: str, mounts: Iterable[Mount]) -> str | None:
    """Why ``root`` must be polled (its own or a nested mount is a network/FUSE fs), or None."""
    real = os.path.realpath(root)
    best: Mount | None = None
    for mount in mounts:
        if _under(real, mount.point) and (best is None or len(mount.point) >= len(best.point)):
            best = mount
        elif _under(mount.point, real) and mount.point != real and is_network_fs(mount.fstype):
            return f"{mount.point} below it is a {mount.fstype} mount"
    if best is not None and is_network_fs(best.fstype):
        return f"it is on a {best.fstype} mount ({best.point})"
    return None


def _under(path: str, folder: str) -> bool:
    return path == folder or folder == "/" or path.startswith(folder.rstrip("/") + "/")


# -- debouncing ------------------------------------------------------------------------------


class Debouncer:
    """Pending paths with the times of their first and last event.

    A path is due once it has been quiet for ``settle`` seconds (at once when its writer closed
    it), or once it has been pending ``max_wait`` seconds (a live log that never pauses).  A batch
    takes the due paths only: a file written without pause delays nobody else, and each
    closed file is crawled with the next batch instead of waiting for the whole tree to be quiet.
    """

    def __init__(self, settle: float, max_wait: float) -> None:
        self.settle = settle
        self.max_wait = max_wait
        self._last: dict[str, float] = {}
        self._first: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, path: str, now: float, closed: bool = False) -> None:
        """Note an event on ``path`` at ``now`` (thread-safe: observers call it).

        ``closed``: its writer closed it (inotify's IN_CLOSE_WRITE), so it needs no settle time.
        """
        with self._lock:
            self._last[path] = now - self.settle if closed else now
            self._first.setdefault(path, now)

    def __len__(self) -> int:
        return len(self._last)

    def _due(self, path: str, now: float) -> bool:
        return now - self._last[path] >= self.settle or now - self._first[path] >= self.max_wait

    def ready(self, now: float) -> bool:
        """True when some path is due, so a batch should be crawled now."""
        with self._lock:
            return any(self._due(path, now) for path in self._last)

    def take(self, now: float | None = None) -> set[str]:
        """Remove and return the paths due at ``now``; every pending path when ``now`` is None."""
        with self._lock:
            due = {p for p in self._last if now is None or self._due(p, now)}
            for path in due:
                del self._last[path], self._first[path]
        return due


# -- the polling scanner ---------------------------------------------------------------------


@dataclass
class _Folder:
    mtime_ns: int
    slot: int
    last_change: int
    files: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    subdirs: set[str] = field(default_factory=set)


class FolderScanner:
    """Finds changes under one root without events, keeping only stat facts in memory.

    A folder's mtime changes when entries are added, removed or renamed, so a folder whose
    mtime is unchanged is not listed again.  A file written in place changes no folder, so
    files need their own stat: those of "hot" folders (a change seen in the last ``hot_scans``
    scans, e.g. a live run appending metrics) every scan, those of cold folders once every
    ``sweep_every`` scans, staggered.  Steady-state cost per scan: one stat per folder plus
    the files of hot folders plus 1/``sweep_every`` of the rest; no directory listings.
    ``stat`` and ``scandir`` are injectable so tests need no real filesystem or timing.
    """

    # lstat, like the listing: a broken symlink must not look changed on every poll (stat fails).
    def __init__(self, root: str, rules: WalkRules | None = None, stat: Callable[[str], Any] = os.lstat,
                 scandir: Callable[[str], Any] = os.scandir, ignore: Callable[[str], bool] = lambda p: False,
                 sweep_every: int = 10, hot_scans: int = 10) -> None:
        self.root = root
        self.sweep_every = sweep_every
        self.hot_scans = hot_scans
        self.scan_no = 0
        self._baseline = True
        self.rules = rules or WalkRules()
        self.stat = stat
        self.scandir = scandir
        self.ignore = ignore
        self.folders: dict[str, _Folder] = {}
        self.listed = 0
        self.stats = 0

    def scan(self) -> set[str]:
        """Paths (absolute) created, changed or removed since the last scan; the first scan is a baseline."""
        self.listed = self.stats = 0
        self.scan_no += 1
        changed: set[str] = set()
        baseline = self._baseline = not self.folders
        self._scan_folder("", changed)
        return set() if baseline else changed

    def _scan_folder(self, rel: str, changed: set[str]) -> None:
        path = self._abs(rel)
        known = self.folders.get(rel)
        try:
            # The root may itself be a symlink to the shared folder: its target is what changes.
            st = self.stat(path if rel else os.path.realpath(path))
            self.stats += 1
        except OSError:
            if known is not None:
                self._forget(rel, changed)
            return
        if known is None or known.mtime_ns != st.st_mtime_ns:
            folder = self._list_folder(rel, path, st.st_mtime_ns, known, changed)
        else:
            folder = known
            if self._due(folder):
                self._stat_files(rel, folder, changed)
        for name in sorted(folder.subdirs):
            self._scan_folder(f"{rel}/{name}" if rel else name, changed)

    def _list_folder(self, rel: str, path: str, mtime_ns: int, known: _Folder | None, changed: set[str]) -> _Folder:
        # Folders found by the baseline start cold; those that appear later start hot.
        last_change = -self.hot_scans - 1 if self._baseline else self.scan_no
        folder = _Folder(mtime_ns, slot=len(self.folders) % self.sweep_every, last_change=last_change)
        self.listed += 1
        try:
            entries = list(self.scandir(path))
        except OSError:
            entries = []
        for entry in entries:
            child = f"{rel}/{entry.name}" if rel else entry.name
            if self.ignore(entry.path):
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
                if is_dir:
                    if not self.rules.excluded(child, True):
                        folder.subdirs.add(entry.name)
                    continue
                if self.rules.excluded(child, False):
                    continue
                st = entry.stat(follow_symlinks=False)
                self.stats += 1
            except OSError:
                continue
            folder.files[entry.name] = (st.st_size, st.st_mtime_ns, st.st_ino)
        self.folders[rel] = folder
        if known is not None:
            self._diff(rel, known, folder, changed)
        return folder

    def _diff(self, rel: str, old: _Folder, new: _Folder, changed: set[str]) -> None:
        for name in old.files.keys() | new.files.keys():
            if old.files.get(name) != new.files.get(name):
                changed.add(self._abs(f"{rel}/{name}" if rel else name))
        for name in old.subdirs - new.subdirs:
            self._forget(f"{rel}/{name}" if rel else name, changed)
        for name in new.subdirs - old.subdirs:
            changed.add(self._abs(f"{rel}/{name}" if rel else name))

    def _due(self, folder: _Folder) -> bool:
        hot = self.scan_no - folder.last_change <= self.hot_scans
        return hot or self.scan_no % self.sweep_every == folder.slot

    def _stat_files(self, rel: str, folder: _Folder, changed: set[str]) -> None:
        base = self._abs(rel)
        for name, facts in folder.files.items():
            path = os.path.join(base, name)
            try:
                st = self.stat(path)
                self.stats += 1
                now = (st.st_size, st.st_mtime_ns, st.st_ino)
            except OSError:
                now = None
            if now != facts:
                changed.add(path)
                folder.last_change = self.scan_no
                if now is not None:
                    folder.files[name] = now
        # A file that vanished is seen as an mtime change of its folder on the next scan.

    def _forget(self, rel: str, changed: set[str]) -> None:
        prefix = rel + "/"
        for key in [k for k in self.folders if k == rel or k.startswith(prefix)]:
            del self.folders[key]
        changed.add(self._abs(rel))

    def _abs(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel else self.root


# -- change sources --------------------------------------------------------------------------


class _InotifySource:
    """A watchdog observer on one root feeding the debouncer."""

    def __init__(self, observer: Any, root: str) -> None:
        self.observer = observer
        self.root = root
        self.watch: Any = None

    def stop(self) -> None:
        if self.watch is not None:
            try:
                self.observer.unschedule(self.watch)
            except (KeyError, OSError):
                pass  # the watch died with its folder
            self.watch = None


@dataclass
class _PollSource:
    scanner: FolderScanner
    interval: float
    due: float = 0.0


def _event_handler(debouncer: Debouncer, ignore: Callable[[str], bool], clock: Callable[[], float]) -> Any:
    from watchdog.events import FileSystemEventHandler

    wanted = {"created", "modified", "moved", "deleted", "closed"}

    class _Handler(FileSystemEventHandler):
        def on_any_event(self, event: Any) -> None:
            # Reads by our own crawl raise "opened"/"closed_no_write": never a reason to crawl.
            if event.event_type not in wanted:
                return
            closed = event.event_type == "closed"
            for path in (event.src_path, getattr(event, "dest_path", "")):
                path = os.fsdecode(path)
                if path and not ignore(path):
                    debouncer.add(path, clock(), closed)

    return _Handler()


# -- the session -----------------------------------------------------------------------------


@dataclass
class WatchReport:
    """What a watch session did (also stored in its ``crawls`` row)."""

    session_id: int
    batches: int = 0
    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_SUMMED, 0))
    polled_roots: list[str] = field(default_factory=list)


class Watcher:
    """Runs one watch session over the roots of ``job`` (the caller holds the crawl lock)."""

    def __init__(self, catalog: Catalog, job: Job, crawlers: list[Crawler], crawler_options: dict | None = None,
                 settings: WatchSettings = WatchSettings(), force_poll: bool = False, log: Log | None = None,
                 mounts: list[Mount] | None = None, observer_factory: Callable[[], Any] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 after_batch: Callable[[], None] | None = None) -> None:
        self.catalog = catalog
        self.after_batch = after_batch  # e.g. send OpenLineage events; called after each committed batch
        self.job = job
        self.crawlers = crawlers
        self.crawler_options = crawler_options or {}
        self.settings = settings
        self.force_poll = force_poll
        self.log = log or (lambda level, message: None)
        self.mounts = read_mounts() if mounts is None else mounts
        self.observer_factory = observer_factory
        self.clock = clock
        self.roots = [os.path.abspath(os.path.expanduser(r)) for r in job.roots]
        self.rules = WalkRules(include=job.include, exclude=job.exclude, follow_symlinks=job.follow_symlinks)
        self.debouncer = Debouncer(settings.settle, settings.batch_seconds)
        self.stop_event = threading.Event()
        self.observer: Any = None
        self.sources: dict[str, _InotifySource | _PollSource] = {}
        self.missing: set[str] = set()

    # -- public ---------------------------------------------------------------------------

    def run(self) -> WatchReport:
        """Catch up, then crawl batches until ``stop()``; the pending batch is flushed on the way out."""
        report = WatchReport(self._open_session())
        status = "failed"
        try:
            for root in self.roots:
                self._attach(root, report)
            self._crawl(report, "catch-up")
            self._loop(report)
            if len(self.debouncer):
                self._crawl(report, "final")
            status = "partial" if report.totals["errors"] else "ok"
        finally:
            self._detach_all()
            self._close_session(report, status)
        return report

    def stop(self, *_: object) -> None:
        """Ask the session to end after the current batch (safe from a signal handler)."""
        self.stop_event.set()

    def install_signal_handlers(self) -> None:
        """SIGINT and SIGTERM end the session cleanly instead of killing it mid-batch."""
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    # -- the loop -------------------------------------------------------------------------

    def _loop(self, report: WatchReport) -> None:
        while not self.stop_event.wait(_TICK):
            now = self.clock()
            for root, source in list(self.sources.items()):
                if isinstance(source, _PollSource) and now >= source.due:
                    self._poll(root, source, report)
            if self.missing and self._roots_back(report):
                continue
            if self.debouncer.ready(self.clock()):
                self._crawl(report, "batch")

    def _poll(self, root: str, source: _PollSource, report: WatchReport) -> None:
        started = time.monotonic()
        changed = source.scanner.scan()
        source.due = self.clock() + source.interval
        if not os.path.isdir(root):
            self._lost(root, report)
            return
        now = self.clock()
        for path in changed:
            self.debouncer.add(path, now)
        if changed:
            self.log("info", f"poll {root}: {len(changed)} changed path(s) in {time.monotonic() - started:.2f}s "
                             f"({source.scanner.listed} folders listed, {source.scanner.stats} stats)")

    def _crawl(self, report: WatchReport, why: str) -> None:
        paths = self.debouncer.take(self.clock() if why == "batch" else None)
        for root in self.roots:
            if root not in self.missing and not os.path.isdir(root):
                self._lost(root, report)
        # Event batches walk only what holds the changed paths; catch-up crawls walk everything.
        changed = None
        if why in ("batch", "final"):
            changed = {root: {p for p in paths if _under(p, root)} for root in self.roots}
        runner = Runner(self.catalog, self.job, self.crawlers, self.crawler_options, kind="watch-batch",
                        changed=changed)
        try:
            summary = runner.run()
        except CatalogLocked as exc:
            # A reader that keeps the catalog open (a duckdb CLI session) must not end the watch.
            self.log("warning", f"{why} crawl postponed: {exc}")
            now = self.clock()
            for path in paths or {self.roots[0]}:
                self.debouncer.add(path, now)
            return
        report.batches += 1
        for key in _SUMMED:
            report.totals[key] += getattr(summary, key)
        self.log("info", _describe(why, len(paths), summary))
        if self.after_batch is not None:
            self.after_batch()

    # -- roots coming and going -----------------------------------------------------------

    def _attach(self, root: str, report: WatchReport) -> None:
        if not os.path.isdir(root):
            self._lost(root, report)
            return
        reason = "--poll was given" if self.force_poll else polling_reason(root, self.mounts)
        if reason is None:
            reason = self._try_inotify(root)
        if reason is None:
            return
        scanner = FolderScanner(root, self.rules, ignore=self._ignored)
        scanner.scan()  # the baseline comes before the catch-up crawl, so nothing falls between
        self.sources[root] = _PollSource(scanner, self.settings.poll_interval, self.clock() + self.settings.poll_interval)
        report.polled_roots.append(root)
        self.log("info", f"polling {root} every {self.settings.poll_interval:g}s: {reason}")

    def _try_inotify(self, root: str) -> str | None:
        if self.observer is None:
            self.observer = self._new_observer()
        source = _InotifySource(self.observer, root)
        try:
            source.watch = self.observer.schedule(_event_handler(self.debouncer, self._ignored, self.clock), root, recursive=True)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EMFILE):
                self.log("warning", f"inotify limit reached while watching {root} ({exc.strerror}); falling back to "
                                    f"polling. Raise it with: sysctl -w {WATCH_LIMIT_SYSCTL}=524288 (and fs.inotify.max_user_instances)")
                return f"the inotify limit was reached ({WATCH_LIMIT_SYSCTL})"
            raise
        self.sources[root] = source
        self.log("info", f"watching {root} with inotify")
        return None

    def _new_observer(self) -> Any:
        if self.observer_factory is not None:
            observer = self.observer_factory()
        else:
            from watchdog.observers import Observer

            observer = Observer()
        observer.daemon = True
        observer.start()
        return observer

    def _lost(self, root: str, report: WatchReport) -> None:
        if root in self.missing:
            return
        self.missing.add(root)
        self.debouncer.add(root, self.clock())  # so a batch records it as an error row
        source = self.sources.pop(root, None)
        if isinstance(source, _InotifySource):
            source.stop()
        self.log("warning", f"root {root} is gone (unmounted?); nothing is marked deleted, waiting for it to come back")

    def _roots_back(self, report: WatchReport) -> bool:
        back = [r for r in self.missing if os.path.isdir(r) and _non_empty(r)]
        for root in back:
            self.missing.discard(root)
            self.log("info", f"root {root} is back; catching up")
            self._attach(root, report)
        if back:
            self._crawl(report, "catch-up")
        return bool(back)

    def _ignored(self, path: str) -> bool:
        # The catalog (and its WAL and lock file) may live inside a watched root.
        return path.startswith(str(self.catalog.path))

    def _detach_all(self) -> None:
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(timeout=5)
            self.observer = None
        self.sources.clear()

    # -- the session row ------------------------------------------------------------------

    def _open_session(self) -> int:
        with self.catalog.connect() as con:
            return crawls.start_crawl(con, self.job.name, "watch", self.roots, datetime.now(timezone.utc), "watching")

    def _close_session(self, report: WatchReport, status: str) -> None:
        with self.catalog.connect() as con:
            crawls.finish_crawl(con, report.session_id,
                                {"status": status, "finished_at": datetime.now(timezone.utc), **report.totals})

def _non_empty(path: str) -> bool:
    # An unmounted share often leaves its empty mount point behind.
    try:
        with os.scandir(path) as entries:
            return next(entries, None) is not None
    except OSError:
        return False


def _describe(why: str, events: int, s: CrawlSummary) -> str:
    duration = (s.finished_at - s.started_at).total_seconds() if s.finished_at else 0.0
    return (f"{why} crawl {s.crawl_id} {s.status} in {duration:.2f}s ({events} event path(s)): {s.files_new} new, "
            f"{s.files_changed} changed, {s.files_deleted} deleted, {s.units_crawled} units crawled, {s.errors} errors")
