"""The catalog file: schema versions, bad locations, the duckdb CLI, a crawl killed half-way."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import duckdb
import pytest
from helpers import CLI, crawl, duckdb_cli, make_tree, rows, run_cli

from mlcrawl.catalog import Catalog
from mlcrawl.catalog.schema import SCHEMA_VERSION, TABLE_DOCS
from mlcrawl.errors import CatalogError


def test_every_contract_table_exists(tmp_path):
    with Catalog.at(tmp_path / "c.duckdb").connect() as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert set(TABLE_DOCS) <= tables
    assert {"current_files", "run_summary", "latest_metrics"} <= tables


def test_newer_schema_version_is_refused(tmp_path):
    db = tmp_path / "c.duckdb"
    with Catalog.at(db).connect() as con:
        con.execute("INSERT INTO schema_version VALUES (?, now())", [SCHEMA_VERSION + 1])
    with pytest.raises(CatalogError, match="newer than this mlcrawl"):
        with Catalog.at(db).connect():
            pass
    result = run_cli("status", "--catalog", str(db))
    assert result.returncode == 2 and "newer than this mlcrawl" in result.stderr and "Traceback" not in result.stderr


def test_old_catalog_gets_new_columns(tmp_path):
    db = tmp_path / "c.duckdb"
    with Catalog.at(db).connect() as con:
        con.execute("ALTER TABLE runs DROP COLUMN lifecycle")
    with Catalog.at(db).connect() as con:
        columns = {r[0] for r in con.execute("DESCRIBE runs").fetchall()}
    assert "lifecycle" in columns


def test_catalog_in_missing_or_read_only_folder(tmp_path):
    root = make_tree(tmp_path / "root", {"a.txt": "x"})
    missing = run_cli("crawl", str(root), "--catalog", str(tmp_path / "nope" / "c.duckdb"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    # root ignores permission bits, so the read-only folder is a read-only filesystem stand-in: chattr-free
    # injection through os.access, which the catalog consults before opening.
    from mlcrawl.catalog import store

    original = os.access
    try:
        store.os.access = lambda path, mode: False if str(path).startswith(str(tmp_path / "ro")) else original(path, mode)
        (tmp_path / "ro").mkdir()
        with pytest.raises(CatalogError, match="not writable"):
            crawl(root, tmp_path / "ro" / "c.duckdb")
    finally:
        store.os.access = original


def test_duckdb_cli_reads_the_catalog(tmp_path, corpus):
    binary = duckdb_cli()
    if binary is None:
        pytest.fail("the duckdb CLI (pip install duckdb-cli, in the test extra) is not installed")
    db = tmp_path / "c.duckdb"
    crawl(corpus, db)
    out = subprocess.run([binary, "-csv", "-noheader", str(db), "-c",
                          "SELECT count(*) FROM files; SELECT count(*) > 0 FROM run_summary; PRAGMA version"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split()
    assert lines[0] == str(rows(db, "SELECT count(*) FROM files")[0][0]) and lines[1] == "true"
    assert lines[2].startswith("v1."), "the CLI under test should be a 1.x build"


def test_kill_9_half_way_leaves_a_catalog_that_opens_and_the_next_crawl_completes(tmp_path):
    root = make_tree(tmp_path / "root", {f"d{i // 500}/f{i}.txt": f"{i}" * 50 for i in range(30000)})
    db = tmp_path / "c.duckdb"
    proc = subprocess.Popen([*CLI, "crawl", str(root), "--catalog", str(db), "--quiet"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # kill it once its first batch is committed
        try:
            with duckdb.connect(str(db), read_only=True) as con:
                if con.execute("SELECT count(*) FROM files").fetchall()[0][0]:
                    break
        except duckdb.Error:
            pass
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with duckdb.connect(str(db), read_only=True) as con:
        done_before = con.execute("SELECT count(*) FROM files").fetchall()[0][0]
    assert 0 < done_before < 30000, "the crawl should have been killed half-way"
    summary = crawl(root, db)
    assert summary.status == "ok" and summary.files_seen == 30000
    assert rows(db, "SELECT count(*) FROM files WHERE deleted_at IS NULL AND sha256 IS NOT NULL")[0][0] == 30000
    statuses = [r[0] for r in rows(db, "SELECT status FROM crawls ORDER BY crawl_id")]
    assert statuses[-1] == "ok" and all(s == "interrupted" for s in statuses[:-1])


def test_run_summary_has_one_row_per_run_when_two_files_describe_it(tmp_path):
    root = make_tree(tmp_path / "root", {
        "exp/params.yaml": "lr: 0.1\nbatch: 32\n", "exp/params.json": '{"lr": 0.2}', "exp/metrics.json": '{"acc": 0.9}',
    })
    db = tmp_path / "c.duckdb"
    crawl(root, db)
    assert rows(db, "SELECT count(*) FROM runs WHERE run_id = 'folder:exp'")[0][0] == 1  # run ids are unique
    summary = rows(db, "SELECT run_id, params['batch'], metrics['acc'] FROM run_summary")
    assert summary == [("folder:exp", "32", 0.9)]
