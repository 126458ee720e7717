"""DuckLake catalogs: the same catalog on every backend, many writers, faults, time travel, copies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlcrawl.catalog import Catalog, backend as lake_backend, schema
from mlcrawl.errors import CatalogError

CLI = [sys.executable, "-m", "mlcrawl"]
#: Columns that differ between two crawls of the same tree (when, by which crawl).
VOLATILE = {"crawl_id", "first_seen", "last_seen", "crawled_at", "at", "deleted_at", "started_at", "finished_at"}


def run(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def make_tree(root: Path, n: int, tag: str) -> Path:
    for i in range(n):
        path = root / f"d{i % 7}" / f"f{i}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"a,b\n{i},{tag}\n")
    nb = {"cells": [{"cell_type": "code", "source": "import pandas as pd\ndf = pd.read_csv('d0/f0.csv')",
                     "metadata": {}, "outputs": [], "execution_count": 1}],
          "metadata": {"kernelspec": {"name": "python3", "language": "python"}}, "nbformat": 4, "nbformat_minor": 5}
    (root / f"{tag}.ipynb").write_text(json.dumps(nb))
    return root


def cat_args(catalog: str, data: str | None) -> list[str]:
    return ["--catalog", catalog, *(["--data-path", data] if data else [])]


def snapshot(catalog: str, data: str | None, roots: list[str] | None = None) -> dict[str, list]:
    """Every table's rows without the volatile columns, sorted (optionally for some roots)."""
    out = {}
    with Catalog.at(catalog, data).connect(read_only=True) as con:
        for table, columns in schema.all_tables().items():
            if table in ("schema_version", "crawls"):
                continue
            keep = [n for n, _, _ in columns if n not in VOLATILE]
            where = ""
            if roots is not None and "root" in keep:
                where = " WHERE root IN (" + ", ".join("'" + r + "'" for r in roots) + ")"
            cols = ", ".join(f'"{c}"' for c in keep)
            out[table] = sorted(map(repr, con.execute(f'SELECT {cols} FROM "{table}"{where}').fetchall()))
    return out


def test_catalog_suite_on_every_backend(backend, tmp_path):
    """crawl, re-crawl, change, delete; views, status, schema, export, lineage: same rows as a file catalog."""
    catalog, data = backend
    root = make_tree(tmp_path / "root", 20, "x")
    reference = str(tmp_path / "reference.duckdb")
    for target, tdata in ((catalog, data), (reference, None)):
        first = run("crawl", str(root), *cat_args(target, tdata), "--json")
        assert first.returncode == 0, first.stderr
        assert json.loads(first.stdout)["files_new"] == 21
    again = json.loads(run("crawl", str(root), *cat_args(catalog, data), "--json").stdout)
    assert again["files_unchanged"] == 21 and again["files_new"] == 0
    (root / "d1" / "f1.csv").write_text("a,b\n1,changed\n")
    (root / "d2" / "f2.csv").unlink()
    for target, tdata in ((catalog, data), (reference, None)):
        result = json.loads(run("crawl", str(root), *cat_args(target, tdata), "--json").stdout)
        assert (result["files_changed"], result["files_deleted"]) == (1, 1)
    assert snapshot(catalog, data) == snapshot(reference, None)
    with Catalog.at(catalog, data).connect(read_only=True) as con:
        assert con.execute("SELECT count(*) FROM current_files").fetchall() == [(20,)]
        assert con.execute("SELECT count(*) FROM file_versions WHERE path = 'd1/f1.csv'").fetchall() == [(2,)]
        con.execute("SELECT * FROM open_errors").fetchall()
        con.execute("SELECT * FROM run_summary").fetchall()
        con.execute("SELECT * FROM stale").fetchall()
    for command in (["status"], ["schema"], ["stale"], ["export", str(tmp_path / "export")]):
        result = run(*command, *cat_args(catalog, data))
        assert result.returncode in (0, 1), (command, result.stderr)
        assert "Traceback" not in result.stderr


def test_newer_lake_is_refused(pg_lake, tmp_path):
    catalog, data = pg_lake
    with Catalog.at(catalog, data).connect() as con:
        con.execute("INSERT INTO schema_version VALUES (?, now())", [schema.SCHEMA_VERSION + 1])
    result = run("status", *cat_args(catalog, data))
    assert result.returncode == 2 and "newer than this mlcrawl" in result.stderr and "Traceback" not in result.stderr


def test_four_crawlers_at_once_equal_each_alone(pg_lake, tmp_path):
    catalog, data = pg_lake
    roots = [make_tree(tmp_path / f"tree{i}", 150, f"t{i}") for i in range(4)]
    procs = [subprocess.Popen([*CLI, "crawl", str(r), *cat_args(catalog, data), "--json", "--wait", "60"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in roots]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [o[1][-2000:] for o in outs]
    ids = sorted(json.loads(o[0])["crawl_id"] for o in outs)
    assert ids == [1, 2, 3, 4]  # crawl ids are never shared
    for i, root in enumerate(roots):
        alone = str(tmp_path / f"alone{i}.duckdb")
        assert run("crawl", str(root), "--catalog", alone).returncode == 0
        assert snapshot(catalog, data, [str(root)]) == snapshot(alone, None)
    with Catalog.at(catalog, data).connect(read_only=True) as con:
        assert con.execute("SELECT count(*) FROM leases").fetchall() == [(0,)]
        assert con.execute("SELECT count(*) FROM files").fetchall() == [(4 * 151,)]


def test_same_root_is_leased_to_one_crawl(pg_lake, tmp_path):
    catalog, data = pg_lake
    root = make_tree(tmp_path / "tree", 10, "x")
    leases = Catalog.at(catalog, data).crawl_lock([str(root)])
    leases.acquire()
    try:
        result = run("crawl", str(root), *cat_args(catalog, data))
        assert result.returncode == 2 and "is being crawled by" in result.stderr
    finally:
        leases.release()
    assert run("crawl", str(root), *cat_args(catalog, data)).returncode == 0


def test_kill_9_mid_commit_then_lease_expires(pg_lake, tmp_path):
    catalog, data = pg_lake
    root = make_tree(tmp_path / "tree", 3000, "x")
    env = {"MLCRAWL_LEASE_SECONDS": "3"}
    proc = subprocess.Popen([*CLI, "crawl", str(root), *cat_args(catalog, data), "-q"], env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(Path(data).rglob("*.parquet")):
        time.sleep(0.05)  # the first batch is being committed
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    blocked = run("crawl", str(root), *cat_args(catalog, data), env=env)
    assert blocked.returncode in (0, 1, 2)  # taken over already, or refused while the lease lives
    result = run("crawl", str(root), *cat_args(catalog, data), "--json", "--wait", "30", env=env)
    assert result.returncode == 0, result.stderr
    with Catalog.at(catalog, data).connect(read_only=True) as con:
        assert con.execute("SELECT count(*) FROM current_files").fetchall() == [(3001,)]
        statuses = [r[0] for r in con.execute("SELECT status FROM crawls ORDER BY crawl_id").fetchall()]
    assert statuses[0] == "interrupted" and statuses[-1] == "ok"


def test_postgres_stopped_during_crawl(postgres, tmp_path):
    catalog, data = postgres.new_database(), str(tmp_path / "data")
    root = make_tree(tmp_path / "tree", 3000, "x")
    proc = subprocess.Popen([*CLI, "crawl", str(root), *cat_args(catalog, data), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(Path(data).rglob("*.parquet")):
        time.sleep(0.05)
    postgres.stop()
    try:
        _, err = proc.communicate(timeout=300)
    finally:
        postgres.start()
    assert proc.returncode == 2, err
    assert "Traceback" not in err and err.count("mlcrawl:") == 1
    result = run("crawl", str(root), *cat_args(catalog, data), "--json", "--wait", "90",
                 env={"MLCRAWL_LEASE_SECONDS": "60"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["files_seen"] == 3001


def test_data_folder_missing_or_read_only(pg_lake, tmp_path, monkeypatch):
    catalog, data = pg_lake
    root = make_tree(tmp_path / "tree", 3, "x")
    assert run("crawl", str(root), *cat_args(catalog, data)).returncode == 0
    gone = run("status", *cat_args(catalog, str(tmp_path / "not-mounted")))
    assert gone.returncode == 2 and "does not exist" in gone.stderr and "Traceback" not in gone.stderr
    monkeypatch.setattr(lake_backend.os, "access", lambda path, mode: False)
    with pytest.raises(CatalogError, match="not writable"):
        with Catalog.at(catalog, data).connect():
            pass


def test_extension_mismatch_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(lake_backend, "_dist_version", lambda name: "1.4.0")
    with pytest.raises(CatalogError, match=r"do not match duckdb .*pip install 'mlcrawl\[lake\]'"):
        with Catalog.at(f"ducklake:{tmp_path / 'm.ducklake'}", tmp_path / "data").connect():
            pass
    monkeypatch.setattr(lake_backend, "_dist_version", lambda name: None)
    with pytest.raises(CatalogError, match="need duckdb-extensions"):
        with Catalog.at(f"ducklake:{tmp_path / 'm.ducklake'}", tmp_path / "data").connect():
            pass


def test_time_travel_and_file_catalog_refusal(pg_lake, tmp_path):
    catalog, data = pg_lake
    root = make_tree(tmp_path / "tree", 5, "x")
    assert run("crawl", str(root), *cat_args(catalog, data)).returncode == 0
    with Catalog.at(catalog, data).connect(read_only=True) as con:
        before = con.execute("SELECT max(snapshot_id) FROM ducklake_snapshots('lake')").fetchall()[0][0]
    make_tree(tmp_path / "tree" / "more", 4, "y")
    assert run("crawl", str(root), *cat_args(catalog, data)).returncode == 0
    now = run("query", "select count(*) AS n from current_files", *cat_args(catalog, data), "--format", "json")
    then = run("query", "select count(*) AS n from current_files", *cat_args(catalog, data), "--format", "json",
               "--at", str(before))
    assert json.loads(now.stdout)["n"] == 11 and json.loads(then.stdout)["n"] == 6, then.stderr
    plain = run("query", "select 1", "--catalog", str(tmp_path / "c.duckdb"), "--at", "1")
    assert plain.returncode == 2 and "needs a DuckLake catalog" in plain.stderr
    maintained = run("lake", "maintain", *cat_args(catalog, data), "--retention-days", "0")
    assert maintained.returncode == 0, maintained.stderr
    after = run("query", "select count(*) AS n from current_files", *cat_args(catalog, data), "--format", "json")
    assert json.loads(after.stdout)["n"] == 11


def _checksums(catalog: str, data: str | None) -> dict[str, tuple]:
    out = {}
    with Catalog.at(catalog, data).connect(read_only=True) as con:
        for table in schema.all_tables():
            if table != "schema_version":
                out[table] = tuple(con.execute(f'SELECT count(*), bit_xor(hash(t)) FROM "{table}" t').fetchall()[0])
    return out


def test_copy_file_to_lake_and_back_is_lossless(pg_lake, tmp_path):
    catalog, data = pg_lake
    root = make_tree(tmp_path / "tree", 40, "x")
    source = str(tmp_path / "source.duckdb")
    assert run("crawl", str(root), "--catalog", source).returncode == 0
    to_lake = run("catalog", "copy", source, catalog, "--data-path", data)
    assert to_lake.returncode == 0, to_lake.stderr
    back = str(tmp_path / "back.duckdb")
    assert run("catalog", "copy", catalog, back, "--data-path", data).returncode == 0
    expected = _checksums(source, None)
    assert expected["files"][0] == 41
    assert _checksums(catalog, data) == expected == _checksums(back, None)
