"""A catalog written by the previous release (0.1 at 26e428b, schema 1) is upgraded in place.

tests/fixtures/release_0_1 holds that release's crawl of ``tree/`` as written by it, exported with
DuckDB's ``EXPORT DATABASE`` (the old schema's DDL and every row), so the test rebuilds the old
file exactly and lets the current code open, migrate and crawl into it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
from helpers import crawl, rows

from mlcrawl.catalog.schema import SCHEMA_VERSION
from mlcrawl.catalog.store import STORAGE_VERSION

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "release_0_1"
OLD_ROOT = "/tmp/oldtree"  # where 0.1 crawled the tree
WRITTEN_AT = "/work/main/tests/fixtures/release_0_1/catalog"  # where EXPORT DATABASE wrote


def old_catalog(db: Path, root: Path) -> None:
    """The previous release's catalog, with its root moved to ``root``."""
    con = duckdb.connect(str(db), config={"storage_compatibility_version": STORAGE_VERSION})
    con.execute((FIXTURE / "catalog" / "schema.sql").read_text())
    con.execute((FIXTURE / "catalog" / "load.sql").read_text().replace(WRITTEN_AT, str(FIXTURE / "catalog")))
    tables = [t for (t,) in con.execute(
        "select distinct c.table_name from information_schema.columns c join information_schema.tables t using (table_name) "
        "where c.column_name = 'root' and t.table_type = 'BASE TABLE'").fetchall()]
    for table in tables:
        con.execute(f'UPDATE "{table}" SET root = ? WHERE root = ?', [str(root), OLD_ROOT])
    con.execute("UPDATE crawls SET roots = [?]", [str(root)])
    con.close()


def content(db: Path) -> dict[str, set]:
    return {
        "runs": set(rows(db, "select run_id, status from runs")),
        "params": set(rows(db, "select run_id, key, value from params")),
        "metrics": set(rows(db, "select run_id, key, value, step from metrics")),
        "files": set(rows(db, "select path, sha256 from current_files")),
        "notebooks": set(rows(db, "select path from notebooks")),
    }


def test_a_previous_release_catalog_is_migrated_and_crawled_into(tmp_path):
    tree = tmp_path / "tree"
    shutil.copytree(FIXTURE / "tree", tree)
    old = tmp_path / "old.duckdb"
    old_catalog(old, tree)
    assert rows(old, "select max(version) from schema_version") == [(1,)]
    before = rows(old, "select count(*) from runs")[0][0]
    assert before > 0

    summary = crawl(tree, old)
    assert summary.status in ("ok", "partial")
    assert rows(old, "select max(version) from schema_version") == [(SCHEMA_VERSION,)]
    assert rows(old, "select count(*) from units where status is null") == [(0,)]
    assert rows(old, "select count(*) from crawls") == [(2,)]

    fresh = tmp_path / "fresh.duckdb"
    crawl(tree, fresh)
    assert content(old) == content(fresh)
    crawl(tree, old)  # and it keeps working: the next crawl finds nothing new
    assert rows(old, "select files_new, files_changed from crawls order by crawl_id desc limit 1") == [(0, 0)]
