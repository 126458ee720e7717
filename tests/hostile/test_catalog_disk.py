"""The catalog's own disk failing: full (ENOSPC) and read-only, on a real small tmpfs mount.

The crawl stops with one clear line and exit 2, never a traceback, and the catalog still opens
with what earlier crawls committed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from . import harness


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 3 MiB tmpfs (root only; skipped where mounting is not allowed)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _trees(tmp_path: Path) -> tuple[Path, Path]:
    small, big = tmp_path / "small", tmp_path / "big"
    (small / "run").mkdir(parents=True)
    (small / "run" / "metrics.json").write_text(json.dumps({"acc": 0.5}))
    for i in range(3000):
        (big / f"r{i}").mkdir(parents=True)
        (big / f"r{i}" / "metrics.json").write_text(json.dumps({f"m{j}": j * 1.5 for j in range(20)}))
    return small, big


def _first_crawl(tmp_path: Path, small: Path, disk: Path) -> Path:
    db = tmp_path / "first.duckdb"
    harness.assert_clean(harness.crawl(small, db))
    shutil.copy(db, disk / "catalog.duckdb")
    return disk / "catalog.duckdb"


def _still_opens(db: Path, small: Path) -> None:
    crawls = harness.query(db, "SELECT crawl_id, status FROM crawls ORDER BY crawl_id")
    assert crawls[0] == (1, "ok")
    assert harness.query(db, "SELECT path FROM files WHERE root = ?", [str(small)]) == [("run/metrics.json",)]


def test_disk_full_stops_with_one_line_and_exit_2(tmp_path: Path, small_disk: Path) -> None:
    small, big = _trees(tmp_path)
    db = _first_crawl(tmp_path, small, small_disk)
    result = harness.crawl(big, db)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("mlcrawl: cannot write catalog") and "No space left" in result.stderr
    _still_opens(db, small)


def test_read_only_catalog_disk_is_refused_before_crawling(tmp_path: Path, small_disk: Path) -> None:
    small, big = _trees(tmp_path)
    db = _first_crawl(tmp_path, small, small_disk)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    before = db.read_bytes()
    result = harness.crawl(small, db)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "not writable" in result.stderr
    assert db.read_bytes() == before
    _still_opens(db, small)
