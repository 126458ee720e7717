"""Bombs: each pathological input is refused in bounded time and memory as (at least) one row,
all in one tree crawled by the real CLI under the harness's time and address-space limits."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from . import bombs, harness

#: Bombs a crawler reads within bounds and describes in its own row instead of an errors row.
DESCRIBED = {
    "models/bomb.pt": "pickle_scan_complete", "models/bomb.ckpt": "pickle_scan_complete",
    "models/lying.pt": "total_size", "models/many.pt": "entries", "models/memo.pkl": "pickle_scan_complete",
}
#: Bombs no built-in crawler claims (a .keras is hashed and listed only): a files row, no crash.
UNCLAIMED = {"models/bomb.keras", "models/lying.keras"}


@pytest.fixture(scope="module")
def crawled(tmp_path_factory) -> tuple[Path, dict, float]:
    base = tmp_path_factory.mktemp("bombs")
    bombs.build(base / "root")
    db = base / "catalog.duckdb"
    started = time.monotonic()
    summary = harness.assert_clean(harness.crawl(base / "root", db))
    return db, summary, time.monotonic() - started


def _rows_about(db: Path, rel: str) -> list[tuple]:
    """Errors rows naming the bomb, or failing the unit (file or folder) that holds it."""
    return harness.query(db, """
        SELECT severity, error_type, message FROM errors
        WHERE path = ? OR (severity = 'error' AND (unit = ? OR starts_with(?, unit || '/')))""", [rel, rel, rel])


@pytest.mark.parametrize("rel", sorted(set(bombs.BOMBS) - set(DESCRIBED) - UNCLAIMED))
def test_bomb_is_refused_with_a_row(crawled, rel: str) -> None:
    db, _, _ = crawled
    found = _rows_about(db, rel)
    assert found, f"no row for {rel}"
    # Refused before it was expanded: a MemoryError means an unbounded allocation was attempted.
    assert not [r for r in found if r[1] == "MemoryError"], found


@pytest.mark.parametrize("rel", sorted(DESCRIBED))
def test_bomb_read_within_bounds_is_described(crawled, rel: str) -> None:
    db, _, _ = crawled
    found = harness.query(db, "SELECT metadata FROM models WHERE path = ?", [rel])
    assert len(found) == 1, f"no models row for {rel}"
    assert DESCRIBED[rel] in json.loads(found[0][0])


def test_zip_bomb_members_were_never_inflated(crawled) -> None:
    db, _, _ = crawled
    (metadata,), = harness.query(db, "SELECT metadata FROM models WHERE path = 'models/bomb.pt'")
    facts = json.loads(metadata)
    assert facts["total_size"] == 400 << 20 and facts["pickle_scan_complete"] is False


@pytest.mark.parametrize("rel", sorted(UNCLAIMED))
def test_unclaimed_bomb_is_a_file_row(crawled, rel: str) -> None:
    db, _, _ = crawled
    assert harness.query(db, "SELECT 1 FROM files WHERE path = ?", [rel])


def test_bombs_cost_seconds(crawled) -> None:
    _, summary, elapsed = crawled
    assert summary["files_seen"] >= len(bombs.BOMBS)
    assert elapsed < 45, elapsed


def test_tree_ten_thousand_folders_deep(tmp_path: Path) -> None:
    """No recursion and no PATH_MAX wall: the leaf of a 10,000-deep chain (20,000-byte path) is
    walked, hashed and read by its crawler, and a re-crawl finds it unchanged."""
    leaf = bombs.deep_tree(tmp_path / "root")
    db = tmp_path / "catalog.duckdb"
    try:
        summary = harness.assert_clean(harness.crawl(tmp_path / "root", db))
        again = harness.assert_clean(harness.crawl(tmp_path / "root", db))
    finally:
        bombs.remove_deep_tree(tmp_path / "root")
    assert summary["errors"] == 0 and again["files_unchanged"] == 1, (summary, again)
    assert harness.query(db, "SELECT path, sha256 IS NOT NULL FROM files") == [(leaf, True)]
    assert len(leaf) > 20_000


def test_tree_deeper_than_the_recursion_limit_crawls(tmp_path: Path) -> None:
    """1,500 folders (over Python's recursion limit, under PATH_MAX): the leaf is a crawled row."""
    leaf = bombs.deep_tree(tmp_path / "root", depth=1500)
    db = tmp_path / "catalog.duckdb"
    try:
        summary = harness.assert_clean(harness.crawl(tmp_path / "root", db))
    finally:
        bombs.remove_deep_tree(tmp_path / "root")
    assert harness.query(db, "SELECT path FROM files") == [(leaf,)]
    assert summary["errors"] == 0
