"""Faults of the disk and the machine while crawling: EIO and EACCES on reads, a file truncated
or replaced while it is hashed, the root swapped for a symlink mid-crawl, and ``kill -9`` at
random points of crawls and watch batches."""

from __future__ import annotations

import errno
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import mlcrawl.crawler
import mlcrawl.fileaccess
import mlcrawl.hashing
from helpers import crawl, rows

from . import harness
from .shapes import MARKER_TEXT, SHAPES, write


def _tools_tree(root: Path, tools=("mlflow", "hydra", "sacred", "files")) -> Path:
    scratch = root.parent / "scratch"
    scratch.mkdir(exist_ok=True)
    for tool in tools:
        write(root / tool, SHAPES[tool]("plain", 1.5, "", scratch).files)
    return root


class _FailingReader(io.BufferedReader):
    """A real file whose reads fail like a dying disk's."""

    def read(self, *args):  # noqa: D102
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    readinto = read1 = peek = read


def test_eio_on_reads_is_one_row_per_file(tmp_path: Path, monkeypatch) -> None:
    root = _tools_tree(tmp_path / "root")
    failing = {root / "mlflow/mlruns/0/run/params/lr", root / "hydra/outputs/2024-01-01/12-00-00/.hydra/config.yaml",
               root / "files/nb/analysis.ipynb", root / "files/data/table.csv", root / "sacred/runs/1/config.json"}
    real = mlcrawl.fileaccess.open_binary

    def open_binary(path, policy=None):
        f = real(path, policy)
        if Path(path) in failing:
            fd = os.dup(f.fileno())
            f.close()
            return _FailingReader(io.FileIO(fd, "rb"))
        return f

    for module in (mlcrawl.fileaccess, mlcrawl.crawler, mlcrawl.hashing):
        monkeypatch.setattr(module, "open_binary", open_binary)
    summary = crawl(root, tmp_path / "c.duckdb")
    assert summary.status == "partial"
    reported = {r[0] for r in rows(tmp_path / "c.duckdb", "SELECT path FROM errors WHERE message LIKE '%Input/output error%'")}
    assert {os.path.relpath(p, root) for p in failing} <= reported
    # Everything else was read: the runs of every tool are there.
    sources = {r[0] for r in rows(tmp_path / "c.duckdb", "SELECT DISTINCT source FROM runs")}
    assert {"mlflow", "hydra", "sacred"} <= sources


@pytest.fixture
def world_readable(tmp_path: Path):
    """A folder an unprivileged user can reach (pytest's tmp folders are private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="mlcrawl-eacces-"))
    folder.chmod(0o777)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop privileges")
def test_eacces_as_an_unprivileged_user(world_readable: Path) -> None:
    root = _tools_tree(world_readable / "root")
    shutil.rmtree(world_readable / "scratch")
    for dirpath, dirnames, filenames in os.walk(world_readable):
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)
    closed = [root / "mlflow/mlruns/0/run/meta.yaml", root / "files/nb/analysis.ipynb",
              root / "hydra/outputs/2024-01-01/12-00-00/.hydra/config.yaml"]
    for path in closed:
        path.chmod(0o000)
    (root / "sacred/runs/1").chmod(0o000)
    db = world_readable / "catalog.duckdb"
    # The interpreter lives under /root (closed to nobody), so the crawl runs in a forked child
    # that drops its privileges, with every module it needs already imported.
    from mlcrawl.registry import discover, select

    crawlers = select(discover())
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 3
        try:
            os.setgid(65534)
            os.setuid(65534)
            code = {"ok": 0, "partial": 1}.get(crawl(root, db, crawlers=crawlers).status, 2)
        finally:
            os._exit(code)
    deadline = time.monotonic() + 60
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            pytest.fail("crawl as nobody hung")
        time.sleep(0.05)
    assert os.waitstatus_to_exitcode(done[1]) == 1
    denied = {r[0] for r in rows(db, "SELECT path FROM errors WHERE message LIKE '%ermission denied%'")}
    assert {os.path.relpath(p, root) for p in closed} | {"sacred/runs/1"} <= denied
    assert rows(db, "SELECT count(*) FROM runs WHERE source = 'hydra'") == [(1,)] or \
        rows(db, "SELECT count(*) FROM errors WHERE crawler = 'hydra'")[0][0] >= 1
    assert rows(db, "SELECT count(*) FROM notebooks") == [(0,)]
    assert rows(db, "SELECT count(*) FROM dataset_schemas")[0][0] >= 2


def _hash_with(monkeypatch, path: Path, change) -> None:
    """Make the core's hashing of ``path`` call ``change`` after its first read."""
    real = mlcrawl.fileaccess.open_binary

    class Changing(io.BufferedReader):
        done = False

        def read(self, *args):
            data = super().read(*args)
            if not Changing.done:
                Changing.done = True
                change()
            return data

    def open_binary(p, policy=None):
        f = real(p, policy)
        if Path(p) == path:
            fd = os.dup(f.fileno())
            f.close()
            return Changing(io.FileIO(fd, "rb"), buffer_size=16)
        return f

    monkeypatch.setattr(mlcrawl.hashing, "open_binary", open_binary)


@pytest.mark.parametrize("how", ["truncated", "replaced", "grown"])
def test_file_changed_while_hashed(tmp_path: Path, monkeypatch, how: str) -> None:
    root = tmp_path / "root"
    target = root / "data" / "big.csv"
    target.parent.mkdir(parents=True)
    target.write_text("a,b\n" + "1,2\n" * 200_000)
    replacement = tmp_path / "new.csv"
    replacement.write_text("x,y,z\n1,2,3\n")
    change = {"truncated": lambda: os.truncate(target, 10), "replaced": lambda: os.replace(replacement, target),
              "grown": lambda: target.open("a").write("3,4\n" * 10)}[how]
    _hash_with(monkeypatch, target, change)
    db = tmp_path / "c.duckdb"
    crawl(root, db)
    monkeypatch.undo()
    notes = rows(db, "SELECT sha256, hash_note FROM files WHERE path = 'data/big.csv'")
    if how == "replaced":
        # The open file is the old one to its end: its hash is right for the stat the walk saw.
        assert notes[0][0] is not None
    else:
        assert notes == [(None, "changed while hashing")]
        assert rows(db, "SELECT error_type FROM errors WHERE path = 'data/big.csv'") == [("changed_while_hashing",)]
    # The next crawl reads the file as it is now.
    crawl(root, db)
    import hashlib

    assert rows(db, "SELECT sha256 FROM files WHERE path = 'data/big.csv'") == [
        (hashlib.sha256(target.read_bytes()).hexdigest(),)]


def test_root_replaced_by_a_symlink_mid_crawl(tmp_path: Path, monkeypatch) -> None:
    """Halfway through, the root becomes a symlink to a folder with the marker: nothing of it is read."""
    root = _tools_tree(tmp_path / "root")
    elsewhere = tmp_path / "elsewhere"
    write(elsewhere, SHAPES["mlflow"](MARKER_TEXT, 1.5, "", tmp_path / "scratch").files)
    shutil.copytree(elsewhere, tmp_path / "elsewhere-src")
    for tool in ("hydra", "sacred", "files"):
        write(elsewhere / tool, SHAPES["mlflow"](MARKER_TEXT, 1.5, "", tmp_path / "scratch").files)
    real = mlcrawl.crawler.CrawlContext.read_bytes
    swapped = []

    def read_bytes(self, path, limit=None):
        if not swapped:
            swapped.append(True)
            os.rename(root, tmp_path / "moved-away")
            os.symlink(elsewhere, root)
        return real(self, path, limit)

    monkeypatch.setattr(mlcrawl.crawler.CrawlContext, "read_bytes", read_bytes)
    db = tmp_path / "c.duckdb"
    crawl(root, db)
    assert swapped
    assert MARKER_TEXT not in harness.dump_text(db)


# --- kill -9 ------------------------------------------------------------------------------------

KILLS = 20
CRAWL = [sys.executable, "-m", "mlcrawl"]


def _kill_tree(root: Path) -> None:
    _tools_tree(root)
    for i in range(120):
        (root / "many" / f"r{i}").mkdir(parents=True)
        (root / "many" / f"r{i}" / "metrics.json").write_text(json.dumps({"acc": i / 100, "loss": 1 - i / 100}))


def _variants(tmp_path: Path, root: Path) -> dict[str, list[tuple[Path, Path]]]:
    """Two states (a, b) of a few files, as hard links outside the root: a state is restored with
    its exact inode and mtime, so a clean crawl of it is a fixed reference."""
    states: dict[str, list[tuple[Path, Path]]] = {"a": [], "b": []}
    for i in range(0, 120, 6):
        target = root / "many" / f"r{i}" / "metrics.json"
        for state in "ab":
            source = tmp_path / "variants" / state / f"{i}.json"
            source.parent.mkdir(parents=True, exist_ok=True)
            source.write_text(json.dumps({"acc": i / 100, "state": state, "pad": "x" * (i if state == "b" else 1)}))
            states[state].append((source, target))
    return states


def _set_state(pairs: list[tuple[Path, Path]]) -> None:
    for source, target in pairs:
        tmp = target.with_name(".swap")
        os.link(source, tmp)
        os.replace(tmp, target)


def _reference(tmp_path: Path, root: Path, name: str) -> dict:
    db = tmp_path / f"reference-{name}.duckdb"
    harness.assert_clean(harness.crawl(root, db))
    return _comparable(db)


def _comparable(db: Path) -> dict:
    snap = harness.snapshot(db)
    snap.pop("file_versions", None)  # history: every content a path has had
    return snap


def _opens(db: Path) -> None:
    """The catalog opens after the kill (a kill before its first write leaves no file at all)."""
    if db.exists() and "crawls" in harness.tables(db):  # killed while the schema was made: no tables yet
        harness.query(db, "SELECT count(*) FROM crawls")


def test_kill_9_during_crawls_and_watch_batches(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _kill_tree(root)
    states = _variants(tmp_path, root)
    _set_state(states["a"])
    references = {"a": _reference(tmp_path, root, "a")}
    _set_state(states["b"])
    references["b"] = _reference(tmp_path, root, "b")
    db = tmp_path / "catalog.duckdb"
    rng = random.Random(int(os.environ.get("MLCRAWL_KILL_SEED", "17")))
    state = "b"
    deadline = time.monotonic() + 150
    for n in range(KILLS):
        assert time.monotonic() < deadline, f"kill loop over its time budget after {n} rounds"
        if n % 2 == 0:
            proc = subprocess.Popen([*CRAWL, "crawl", str(root), "--catalog", str(db), "-q"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.0, 1.2))
        else:
            proc = subprocess.Popen([*CRAWL, "watch", str(root), "--catalog", str(db), "--settle", "0",
                                     "--batch-seconds", "0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    text=True)
            started = time.monotonic()
            for line in proc.stderr:  # the catch-up crawl is done once inotify watches the root
                if "watching" in line or time.monotonic() - started > 20:
                    break
            state = "a" if state == "b" else "b"
            _set_state(states[state])
            time.sleep(rng.uniform(0.0, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        _opens(db)
        # The next crawl, in this process (a CLI start costs more than the crawl of this tree).
        assert crawl(root, db).status == "ok"
        now = _comparable(db)
        for table in sorted(set(now) | set(references[state])):
            got, want = set(now.get(table, [])), set(references[state].get(table, []))
            assert got == want, (f"round {n} ({'crawl' if n % 2 == 0 else 'watch'}): {table} differs from a clean "
                                 f"crawl: extra {sorted(got - want)[:3]}, missing {sorted(want - got)[:3]}")
