"""Watch mode: the polling scanner, mount detection, debouncing, and real watcher processes."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import make_tree

from mlcrawl.catalog import Catalog
from mlcrawl.config import Job, WatchSettings
from mlcrawl.walk import WalkRules
from mlcrawl.watch import WATCH_LIMIT_SYSCTL, Debouncer, FolderScanner, Watcher, polling_reason, read_mounts

MLCRAWL = [sys.executable, "-m", "mlcrawl"]
DUCKDB_CLI = Path(sys.executable).with_name("duckdb")


# -- the polling scanner on a fake filesystem (no sleeps, no disk) ---------------------------


@dataclass
class FakeStat:
    st_size: int
    st_mtime_ns: int
    st_ino: int


@dataclass
class FakeEntry:
    name: str
    path: str
    fs: FakeFs

    def is_dir(self, follow_symlinks: bool = True) -> bool:
        return self.path in self.fs.dirs

    def stat(self, follow_symlinks: bool = True) -> FakeStat:
        return self.fs.stat(self.path)


class FakeFs:
    """Folders and files by absolute path; counts the calls the scanner makes."""

    def __init__(self) -> None:
        self.dirs: dict[str, int] = {}
        self.files: dict[str, FakeStat] = {}
        self.clock = 1
        self.listings: list[str] = []

    def tick(self) -> int:
        self.clock += 1
        return self.clock

    def mkdir(self, path: str) -> None:
        self.dirs[path] = self.tick()
        self._touch_parent(path)

    def write(self, path: str, size: int) -> None:
        is_new = path not in self.files
        self.files[path] = FakeStat(size, self.tick(), hash(path) & 0xFFFF)
        if is_new:
            self._touch_parent(path)

    def remove_tree(self, path: str) -> None:
        for key in [k for k in self.dirs if k == path or k.startswith(path + "/")]:
            del self.dirs[key]
        for key in [k for k in self.files if k.startswith(path + "/")]:
            del self.files[key]
        self._touch_parent(path)

    def _touch_parent(self, path: str) -> None:
        parent = os.path.dirname(path)
        if parent in self.dirs:
            self.dirs[parent] = self.tick()

    def stat(self, path: str) -> FakeStat:
        if path in self.dirs:
            return FakeStat(0, self.dirs[path], 0)
        if path in self.files:
            return self.files[path]
        raise FileNotFoundError(path)

    def scandir(self, path: str) -> list[FakeEntry]:
        if path not in self.dirs:
            raise FileNotFoundError(path)
        self.listings.append(path)
        children = [p for p in (*self.dirs, *self.files) if os.path.dirname(p) == path]
        return [FakeEntry(os.path.basename(p), p, self) for p in children]


@pytest.fixture
def fake_tree() -> tuple[FakeFs, FolderScanner]:
    fs = FakeFs()
    fs.dirs["/r"] = 1
    for run in ("a", "b"):
        fs.mkdir(f"/r/{run}")
        fs.write(f"/r/{run}/metrics.json", 10)
        fs.mkdir(f"/r/{run}/ckpt")
        fs.write(f"/r/{run}/ckpt/model.pt", 100)
    scanner = FolderScanner("/r", WalkRules(exclude=("skipme",)), stat=fs.stat, scandir=fs.scandir, sweep_every=1)
    assert scanner.scan() == set()  # the baseline
    fs.listings.clear()
    return fs, scanner


def test_unchanged_tree_lists_no_folder(fake_tree) -> None:
    fs, scanner = fake_tree
    assert scanner.scan() == set()
    assert fs.listings == []
    assert scanner.stats == 5 + 4  # one per folder and one per file


def test_file_written_in_place_is_found_without_listing(fake_tree) -> None:
    fs, scanner = fake_tree
    fs.write("/r/a/metrics.json", 20)
    assert scanner.scan() == {"/r/a/metrics.json"}
    assert fs.listings == []
    assert scanner.scan() == set()


def test_new_file_and_folder_list_only_their_parents(fake_tree) -> None:
    fs, scanner = fake_tree
    fs.write("/r/b/events.log", 5)
    fs.mkdir("/r/c")
    fs.write("/r/c/params.yaml", 3)
    assert scanner.scan() == {"/r/b/events.log", "/r/c"}
    assert sorted(fs.listings) == ["/r", "/r/b", "/r/c"]
    fs.listings.clear()
    assert scanner.scan() == set()
    assert fs.listings == []


def test_removed_subtree_is_reported_once_and_forgotten(fake_tree) -> None:
    fs, scanner = fake_tree
    fs.remove_tree("/r/a")
    assert scanner.scan() == {"/r/a"}
    assert not any(key.startswith("a") for key in scanner.folders)
    assert scanner.scan() == set()


def test_excluded_folder_is_never_listed(fake_tree) -> None:
    fs, scanner = fake_tree
    fs.mkdir("/r/skipme")
    fs.write("/r/skipme/noise.tmp", 1)
    assert scanner.scan() == set()
    fs.write("/r/skipme/noise.tmp", 2)
    assert scanner.scan() == set()
    assert "/r/skipme" not in fs.listings


def test_cold_folders_files_are_swept_in_turns_and_changes_make_them_hot() -> None:
    fs = FakeFs()
    fs.dirs["/r"] = 1
    for i in range(4):
        fs.mkdir(f"/r/d{i}")
        fs.write(f"/r/d{i}/f", 1)
    scanner = FolderScanner("/r", stat=fs.stat, scandir=fs.scandir, sweep_every=5, hot_scans=10)
    scanner.scan()  # folders found by the baseline start cold
    fs.listings.clear()
    swept = []
    for _ in range(5):  # every cold folder's files are stat'ed exactly once per 5 scans
        scanner.scan()
        swept.append(scanner.stats - 5)
    assert sum(swept) == 4 and max(swept) == 1
    fs.write("/r/d2/f", 2)  # in place: found within sweep_every scans
    found = [scanner.scan() for _ in range(5)]
    assert sum(1 for c in found if c == {"/r/d2/f"}) == 1
    assert fs.listings == []
    for size in (3, 4, 5):  # a folder that just changed is stat'ed every scan for a while
        fs.write("/r/d2/f", size)
        assert scanner.scan() == {"/r/d2/f"}


def test_vanished_root_is_reported() -> None:
    fs = FakeFs()
    fs.dirs["/r"] = 1
    fs.write("/r/x", 1)
    scanner = FolderScanner("/r", stat=fs.stat, scandir=fs.scandir)
    scanner.scan()
    fs.remove_tree("/r")
    assert scanner.scan() == {"/r"}


# -- mounts and debouncing -------------------------------------------------------------------

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:35 / /mnt/nfs rw,relatime shared:20 - nfs4 server:/export rw,vers=4.2
41 22 0:36 / /home/u/remote\\040box rw shared:21 - fuse.sshfs u@host:/ rw
42 22 0:37 / /data/local/scratch rw shared:22 - lustre 10.0.0.1@tcp:/fs rw
43 22 0:38 / /tmp rw shared:23 - tmpfs tmpfs rw
"""


def test_network_and_fuse_mounts_need_polling() -> None:
    mounts = read_mounts(MOUNTINFO)
    assert [m.fstype for m in mounts] == ["ext4", "nfs4", "fuse.sshfs", "lustre", "tmpfs"]
    assert "nfs4" in polling_reason("/mnt/nfs/runs", mounts)
    assert "fuse.sshfs" in polling_reason("/home/u/remote box/x", mounts)
    assert "/data/local/scratch below it" in polling_reason("/data/local", mounts)
    assert polling_reason("/srv/experiments", mounts) is None
    assert polling_reason("/tmp/x", mounts) is None


def test_debouncer_waits_for_quiet_and_bounds_stragglers() -> None:
    d = Debouncer(settle=2.0, max_wait=5.0)
    for t in (0.0, 0.5, 1.0):  # one file written in many small writes
        d.add("/r/log.txt", t)
    assert not d.ready(2.9)
    assert d.ready(3.0)
    assert d.take(3.0) == {"/r/log.txt"}
    assert not d.ready(100.0)
    d.add("/r/a", 10.0)
    d.add("/r/live.log", 10.0)
    d.add("/r/live.log", 11.5)
    assert d.ready(12.0) and d.take(12.0) == {"/r/a"}  # a settled file does not wait for a live one
    for t in range(12, 30):  # the live file is written without pause
        d.add("/r/live.log", float(t))
        if d.ready(float(t) + 0.5):
            break
    assert t == 15  # pending since 10, taken once max_wait 5 has passed (at 15.5)
    assert d.take(float(t) + 0.5) == {"/r/live.log"}


def test_debouncer_takes_a_closed_file_at_once_and_everything_at_the_end() -> None:
    d = Debouncer(settle=2.0, max_wait=5.0)
    d.add("/r/new.csv", 1.0)  # created ...
    d.add("/r/other.csv", 1.0)
    d.add("/r/new.csv", 1.1, closed=True)  # ... and closed by its writer
    assert d.ready(1.1) and d.take(1.1) == {"/r/new.csv"}
    assert not d.ready(1.2)
    assert d.take() == {"/r/other.csv"}  # the final batch of a session takes what is left
    assert len(d) == 0


# -- the watcher in this process: inotify limit fallback -------------------------------------


class _ExhaustedObserver:
    daemon = False

    def start(self) -> None:
        pass

    def schedule(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "inotify watch limit reached")

    def stop(self) -> None:
        pass

    def join(self, timeout: float | None = None) -> None:
        pass


def test_inotify_limit_falls_back_to_polling_with_sysctl_hint(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    (root / "a.txt").write_text("a")
    logs: list[tuple[str, str]] = []
    watcher = Watcher(Catalog.at(tmp_path / "c.duckdb"), Job(name="w", roots=(str(root),)), [], settings=WatchSettings(),
                      log=lambda level, msg: logs.append((level, msg)), mounts=[], observer_factory=_ExhaustedObserver)
    watcher.stop()
    report = watcher.run()
    assert report.polled_roots == [str(root)]
    assert any(level == "warning" and WATCH_LIMIT_SYSCTL in msg for level, msg in logs)
    with Catalog.at(tmp_path / "c.duckdb").connect(read_only=True) as con:
        assert con.execute("SELECT kind, status FROM crawls ORDER BY crawl_id").fetchall() == [("watch", "ok"), ("watch-batch", "ok")]
        assert con.execute("SELECT path FROM files").fetchall() == [("a.txt",)]


# -- real processes --------------------------------------------------------------------------


def _query(catalog: Path, sql: str) -> list[dict]:
    """Rows from ``mlcrawl query`` in another process; fails if the reader is locked out."""
    started = time.monotonic()
    out = subprocess.run([*MLCRAWL, "query", sql, "--format", "json", "--catalog", str(catalog)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert time.monotonic() - started < 15, "reader waited too long for the watcher's write"
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def _wait_for(catalog: Path, sql: str, predicate, timeout: float = 20.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        rows = _query(catalog, sql)
        if predicate(rows):
            return rows
        assert time.monotonic() < deadline, f"timed out waiting on {sql!r}: {rows}"
        time.sleep(0.2)


def _start_watch(root: Path, catalog: Path, *extra: str) -> subprocess.Popen:
    proc = subprocess.Popen([*MLCRAWL, "watch", str(root), "--catalog", str(catalog), "--settle", "0.2", *extra],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "catch-up crawl" in line:
            os.set_blocking(proc.stderr.fileno(), False)
            return proc
        assert time.monotonic() < deadline
    raise AssertionError(f"watcher ended early: {''.join(lines)}")


def _stop(proc: subprocess.Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=30)
    finally:
        proc.kill()
    os.set_blocking(proc.stderr.fileno(), True)
    return code, proc.stderr.read()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "run1").mkdir(parents=True)
    (root / "run1" / "params.json").write_text('{"lr": 0.1}')
    return root


def test_watch_indexes_moves_and_stops_cleanly_while_readers_read(tree: Path, tmp_path: Path) -> None:
    catalog = tmp_path / "c.duckdb"
    proc = _start_watch(tree, catalog)
    try:
        (tree / "run1" / "metrics.csv").write_text("step,loss\n1,0.5\n")
        _wait_for(catalog, "SELECT path FROM files WHERE deleted_at IS NULL", lambda rows: {"path": "run1/metrics.csv"} in rows)
        # The duckdb CLI (another program entirely) reads between batches too.
        cli = subprocess.run([str(DUCKDB_CLI), "-readonly", "-csv", str(catalog), "SELECT count(*) FROM files"],
                             capture_output=True, text=True, timeout=30)
        assert cli.returncode == 0 or "lock" in cli.stderr.lower(), cli.stderr
        # A second crawl of the same catalog refuses at once.
        started = time.monotonic()
        second = subprocess.run([*MLCRAWL, "crawl", str(tree), "--catalog", str(catalog), "--quiet"],
                                capture_output=True, text=True, timeout=30)
        assert second.returncode == 2 and "locked" in second.stderr
        assert time.monotonic() - started < 10
        (tree / "run2").mkdir()
        os.rename(tree / "run1" / "params.json", tree / "run2" / "params.json")
        rows = _wait_for(catalog, "SELECT path, sha256, deleted_at IS NOT NULL AS gone FROM files WHERE path LIKE '%params.json' ORDER BY path",
                         lambda rows: len(rows) == 2 and rows[0]["gone"])
        assert [r["path"] for r in rows] == ["run1/params.json", "run2/params.json"]
        assert rows[0]["sha256"] == rows[1]["sha256"] and not rows[1]["gone"]
    finally:
        code, log = _stop(proc)
    assert code == 0, log
    session = _query(catalog, "SELECT status, finished_at IS NOT NULL AS done FROM crawls WHERE kind = 'watch'")
    assert session == [{"status": "ok", "done": True}]


def test_kill_9_loses_at_most_a_batch_and_the_lock_is_taken_over(tree: Path, tmp_path: Path) -> None:
    catalog = tmp_path / "c.duckdb"
    proc = _start_watch(tree, catalog)
    proc.kill()
    proc.wait(timeout=10)
    (tree / "run1" / "late.txt").write_text("written while nobody watched")
    crawl = subprocess.run([*MLCRAWL, "crawl", str(tree), "--catalog", str(catalog), "--json"],
                           capture_output=True, text=True, timeout=60)
    assert crawl.returncode == 0, crawl.stderr
    assert json.loads(crawl.stdout)["files_new"] == 1
    proc = _start_watch(tree, catalog)
    code, log = _stop(proc)
    assert code == 0, log
    sessions = _query(catalog, "SELECT status FROM crawls WHERE kind = 'watch' ORDER BY crawl_id")
    assert [s["status"] for s in sessions] == ["interrupted", "ok"]


def test_disappearing_root_is_reported_and_waited_for(tree: Path, tmp_path: Path) -> None:
    catalog = tmp_path / "c.duckdb"
    proc = _start_watch(tree, catalog, "--poll", "--interval", "0.3")
    moved = tmp_path / "elsewhere"
    try:
        # An unmounted share often leaves an empty mount point: the mass-delete guard holds.
        os.rename(tree / "run1", tmp_path / "run1")
        _wait_for(catalog, "SELECT error_type FROM errors", lambda rows: {"error_type": "mass_delete_guard"} in rows)
        os.rename(tmp_path / "run1", tree / "run1")
        os.rename(tree, moved)
        _wait_for(catalog, "SELECT error_type FROM errors", lambda rows: {"error_type": "missing_root"} in rows)
        os.rename(moved, tree)
        (tree / "run1" / "after.txt").write_text("back")
        _wait_for(catalog, "SELECT path FROM files", lambda rows: {"path": "run1/after.txt"} in rows)
    finally:
        code, log = _stop(proc)
    assert code == 0, log
    assert "is gone" in log and "is back" in log
    assert _query(catalog, "SELECT count(*) AS n FROM files WHERE deleted_at IS NOT NULL") == [{"n": 0}]


def test_polling_an_unchanged_tree_with_a_broken_symlink_goes_idle(tmp_path):
    root = make_tree(tmp_path / "r", {"a/x.txt": "1", "b.txt": "2"})
    (root / "a" / "dangling").symlink_to(root / "nowhere")
    (root / "loop").symlink_to(root / "loop")
    scanner = FolderScanner(str(root), sweep_every=1)
    assert scanner.scan() == set()  # the baseline
    for _ in range(3):
        assert scanner.scan() == set()
    (root / "b.txt").write_text("changed!")
    assert scanner.scan() == {str(root / "b.txt")}
