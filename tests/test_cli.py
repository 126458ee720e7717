"""The command line as a user runs it: real processes, exit codes, output formats, locks."""

from __future__ import annotations

import csv
import io
import json

from helpers import make_tree, rows, run_cli

from mlcrawl.catalog import Catalog, CrawlLock


def test_crawl_query_status_in_a_fresh_folder(tmp_path):
    root = make_tree(tmp_path / "exp", {"models/m.joblib": b"\x80\x04N.", "data/t.csv": "a\n1\n", "metrics.json": '{"acc": 1}'})
    first = run_cli("crawl", str(root), "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["files_new"] == 3 and summary["catalog"] == str(tmp_path / "mlcrawl.duckdb")
    again = json.loads(run_cli("crawl", str(root), "--json", cwd=tmp_path).stdout)
    assert again["bytes_hashed"] == 0 and again["files_unchanged"] == 3
    out = run_cli("query", "select path, sha256 from files where kind = 'model'", "--format", "csv", cwd=tmp_path)
    assert list(csv.DictReader(io.StringIO(out.stdout)))[0]["path"] == "models/m.joblib"
    as_json = run_cli("query", "select count(*) as n from files", "--format", "json", cwd=tmp_path)
    assert json.loads(as_json.stdout) == {"n": 3}
    status = run_cli("status", cwd=tmp_path)
    assert status.returncode == 0 and "crawls: 2" in status.stdout


def test_user_mistakes_get_one_line_and_exit_2(tmp_path):
    for args in (["crawl"], ["query", "select * from nope", "--catalog", str(tmp_path / "none.duckdb")],
                 ["crawl", str(tmp_path), "--job", "x", "--config", str(tmp_path / "missing.toml")],
                 ["crawl", str(tmp_path), "--enable", "no-such-crawler", "--catalog", str(tmp_path / "c.duckdb")]):
        result = run_cli(*args)
        assert result.returncode == 2, args
        assert "Traceback" not in result.stderr and result.stderr.strip(), args


def test_bad_sql_is_a_clear_error(tmp_path):
    root = make_tree(tmp_path / "r", {"a.txt": "x"})
    run_cli("crawl", str(root), "--catalog", str(tmp_path / "c.duckdb"), "--quiet")
    result = run_cli("query", "select nonsense from files", "--catalog", str(tmp_path / "c.duckdb"))
    assert result.returncode == 2 and result.stderr.startswith("mlcrawl: query failed")


def test_second_crawl_exits_2_at_once_when_locked(tmp_path):
    root = make_tree(tmp_path / "r", {"a.txt": "x"})
    db = tmp_path / "c.duckdb"
    lock = CrawlLock(Catalog.at(db))
    lock.acquire()
    try:
        result = run_cli("crawl", str(root), "--catalog", str(db))
    finally:
        lock.release()
    assert result.returncode == 2 and "locked" in result.stderr
    assert run_cli("crawl", str(root), "--catalog", str(db), "--quiet").returncode == 0


def test_partial_crawl_exits_1(tmp_path):
    root = make_tree(tmp_path / "r", {"nb.ipynb": "{not json", "ok.txt": "x"})
    result = run_cli("crawl", str(root), "--catalog", str(tmp_path / "c.duckdb"), "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["status"] == "partial"
    assert rows(tmp_path / "c.duckdb", "SELECT crawler, path FROM errors WHERE severity = 'error'") == [("notebook", "nb.ipynb")]


def test_job_from_config_with_flag_override_and_log_file(tmp_path):
    root = make_tree(tmp_path / "data", {"a.csv": "x\n1\n", "skip/b.csv": "x\n2\n"})
    (tmp_path / "mlcrawl.toml").write_text(
        'catalog = "cat.duckdb"\n[[jobs]]\nname = "nightly"\nroots = ["data"]\nexclude = ["skip/"]\n')
    log = tmp_path / "crawl.log"
    result = run_cli("crawl", "--job", "nightly", "--log-file", str(log), "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert rows(tmp_path / "cat.duckdb", "SELECT path FROM files") == [("a.csv",)]
    assert json.loads(log.read_text().splitlines()[0])["job"] == "nightly"
    bad = tmp_path / "bad.toml"
    bad.write_text('[[jobs]]\nname = "x"\nroots = ["data"]\nthreds = 2\n')
    result = run_cli("crawl", "--job", "x", "--config", str(bad))
    assert result.returncode == 2 and "unknown key(s) 'threds'" in result.stderr


def test_export_schema_crawlers_version(tmp_path):
    root = make_tree(tmp_path / "r", {"a.csv": "x\n1\n", "metrics.json": '{"acc": 0.5}'})
    db = str(tmp_path / "c.duckdb")
    run_cli("crawl", str(root), "--catalog", db, "--quiet")
    out = tmp_path / "out"
    assert run_cli("export", str(out), "--catalog", db).returncode == 0
    import duckdb

    files = duckdb.sql(f"SELECT count(*) FROM read_parquet('{out}/files/**/*.parquet', hive_partitioning = true)").fetchall()
    assert files == [(2,)]
    assert (out / "runs.parquet").exists()
    schema = run_cli("schema", "--catalog", db)
    assert "lineage: " in schema.stdout and "sha256 varchar" in schema.stdout
    listing = run_cli("crawlers").stdout
    assert "generic" in listing and "datasets" in listing
    assert run_cli("--version").stdout.strip().startswith("mlcrawl, version")
