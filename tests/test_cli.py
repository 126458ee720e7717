"""The command line as a user runs it: real processes, exit codes, output formats, locks."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

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


def _catalog_with_a_problem(tmp_path):
    root = make_tree(tmp_path / "r", {"nb.ipynb": "{not json", "ok.txt": "x"})
    db = tmp_path / "c.duckdb"
    result = run_cli("crawl", str(root), "--catalog", str(db))
    return root, db, result


def test_query_formats_handle_every_duckdb_type(tmp_path):
    _, db, _ = _catalog_with_a_problem(tmp_path)
    out = run_cli("query", "select * from test_all_types()", "--format", "csv", "--catalog", str(db))
    assert out.returncode == 0, out.stderr
    table = list(csv.DictReader(io.StringIO(out.stdout)))
    assert len(table) == 3
    assert json.loads(table[1]["map"]) == {"key1": "🦆🦆🦆🦆🦆🦆", "key2": "goose"}
    assert json.loads(table[1]["struct"]) == {"a": 42, "b": "🦆🦆🦆🦆🦆🦆"}
    assert json.loads(table[1]["double_array"]) == [42.0, None, None, None, None, -42.0]  # nan, inf, -inf
    lines = run_cli("query", "select * from test_all_types()", "--format", "json", "--catalog", str(db))
    assert lines.returncode == 0, lines.stderr
    rows_ = [json.loads(line) for line in lines.stdout.splitlines()]
    assert rows_[1]["map"] == {"key1": "🦆🦆🦆🦆🦆🦆", "key2": "goose"}
    assert rows_[1]["double_array"] == [42.0, None, None, None, None, -42.0]
    assert rows_[2]["bool"] is None
    stamp = run_cli("query", "select timestamptz '2024-01-02 03:04:05+00' as t, date '2024-01-02' as d, "
                    "'nan'::double as n, map {'a': 1} as m", "--format", "json", "--catalog", str(db))
    assert json.loads(stamp.stdout) == {"t": "2024-01-02T03:04:05.000000Z", "d": "2024-01-02", "n": None, "m": {"a": 1}}
    summary = run_cli("query", "select * from run_summary", "--format", "csv", "--catalog", str(db))
    assert summary.returncode == 0 and summary.stdout.startswith('"run_id"'), summary.stderr
    parquet = tmp_path / "o.parquet"
    assert run_cli("query", "select map {'a': 1} as m, [1, 2] as l", "--format", "parquet", "-o", str(parquet),
                   "--catalog", str(db)).returncode == 0
    import pyarrow.parquet as pq

    schema = pq.read_schema(parquet)
    assert str(schema.field("m").type).startswith("map<") and str(schema.field("l").type).startswith("list<")


def test_query_refuses_writes_empty_statements_and_shows_duckdbs_whole_error(tmp_path):
    _, db, _ = _catalog_with_a_problem(tmp_path)
    wrong = run_cli("query", "select nonsens from files", "--catalog", str(db))
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    assert "Referenced column" in wrong.stderr and "Candidate bindings" in wrong.stderr  # the hint line too
    write = run_cli("query", "delete from files", "--catalog", str(db))
    assert write.returncode == 2 and "only reads" in write.stderr and "DELETE" in write.stderr
    assert rows(db, "select count(*) from files") == [(2,)]
    for empty in ("", " ; ", "select 1 -- x"[8:]):
        result = run_cli("query", empty, "--catalog", str(db))
        assert result.returncode == 2 and "empty SQL statement" in result.stderr, empty


def test_query_of_ten_million_rows_streams_in_bounded_memory(tmp_path):
    _, db, _ = _catalog_with_a_problem(tmp_path)
    code = ("import resource, subprocess, sys; "
            "subprocess.run([sys.executable, '-m', 'mlcrawl', *sys.argv[1:]], stdout=subprocess.DEVNULL, check=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")

    def peak_kb(n: int) -> int:
        sql = f"select range as i, 'row ' || range || ' of a wide enough text column' as s from range({n})"
        return int(subprocess.run([sys.executable, "-c", code, "query", sql, "--format", "csv", "--catalog", str(db)],
                                  capture_output=True, text=True, check=True).stdout)

    small, large = peak_kb(100_000), peak_kb(10_000_000)
    # Materialised, ten million of these rows are over 500 MB; streamed, the peak barely moves.
    assert large - small < 150_000, (small, large)


def test_partial_crawl_names_its_first_problems(tmp_path):
    root, db, result = _catalog_with_a_problem(tmp_path)
    assert result.returncode == 1
    assert "problems (first 1 of 1)" in result.stderr
    assert "notebook" in result.stderr and " nb.ipynb: not a notebook" in result.stderr
    assert "mlcrawl status" in result.stderr
    again = run_cli("crawl", str(root), "--catalog", str(db), "--json", "--retry-failed")
    problems = json.loads(again.stdout)["problems"]
    assert [(p["crawler"], p["path"], p["severity"]) for p in problems] == [("notebook", "nb.ipynb", "error")]
    status = run_cli("status", "--catalog", str(db))
    assert "problems now, by crawler and type" in status.stdout and "notebook" in status.stdout


def test_configuration_mistakes_name_the_valid_choices(tmp_path):
    root = make_tree(tmp_path / "r", {"a.txt": "x"})
    db = str(tmp_path / "c.duckdb")
    config = tmp_path / "m.toml"
    config.write_text("[crawlers.notebok]\nmax_cells = 3\n")
    result = run_cli("crawl", str(root), "--config", str(config), "--catalog", db)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "[crawlers.notebok]" in result.stderr and "did you mean 'notebook'" in result.stderr
    for flag in ("--enable", "--disable"):
        result = run_cli("crawl", str(root), flag, "nope", "--catalog", db)
        assert result.returncode == 2 and "unknown crawler(s): nope" in result.stderr and "generic" in result.stderr
    config.write_text('[[jobs]]\nname = "x"\nroots = ["a"]\nthreads = = 2\n')
    result = run_cli("crawl", "--job", "x", "--config", str(config), "--catalog", db)
    assert result.returncode == 2 and "line 4, column 11" in result.stderr and "Traceback" not in result.stderr


def test_bad_catalogs_and_roots_are_one_line(tmp_path):
    root = make_tree(tmp_path / "r", {"a.txt": "x"})
    folder = tmp_path / "folder"
    folder.mkdir()
    text = tmp_path / "notes.duckdb"
    text.write_text("this is not a database\n" * 10)
    cases = {str(folder): "is a folder", str(text): "is not a DuckDB file"}
    for catalog, says in cases.items():
        for args in (["crawl", str(root)], ["status"], ["query", "select 1"]):
            result = run_cli(*args, "--catalog", catalog)
            assert result.returncode == 2 and says in result.stderr and "Traceback" not in result.stderr, args
    newer = tmp_path / "newer.duckdb"
    run_cli("crawl", str(root), "--catalog", str(newer), "--quiet")
    import duckdb

    with duckdb.connect(str(newer)) as con:
        con.execute("INSERT INTO schema_version VALUES (9999, now())")
    for args in (["crawl", str(root)], ["status"]):
        result = run_cli(*args, "--catalog", str(newer))
        assert result.returncode == 2 and "newer than this mlcrawl" in result.stderr, args
    result = run_cli("crawl", str(root / "a.txt"), "--catalog", str(tmp_path / "c.duckdb"))
    assert result.returncode == 2 and "is a file" in result.stderr and str(root) in result.stderr


def test_log_file_into_a_missing_folder_creates_it(tmp_path):
    root = make_tree(tmp_path / "r", {"a.txt": "x"})
    log = tmp_path / "logs" / "deep" / "crawl.jsonl"
    result = run_cli("crawl", str(root), "--catalog", str(tmp_path / "c.duckdb"), "--log-file", str(log), "--quiet")
    assert result.returncode == 0, result.stderr
    assert json.loads(log.read_text())["files_new"] == 1


def test_export_twice_leaves_no_stale_partition_and_reads_as_hive(tmp_path):
    root = make_tree(tmp_path / "r", {"a.csv": "x\n1\n", "m.joblib": b"\x80\x04N.", "metrics.json": '{"acc": 0.5}'})
    db = str(tmp_path / "c.duckdb")
    run_cli("crawl", str(root), "--catalog", db, "--quiet")
    out = tmp_path / "out"
    assert run_cli("export", str(out), "--catalog", db).returncode == 0
    kinds = {p.name for p in (out / "files").iterdir()}
    assert "kind=model" in kinds
    (root / "m.joblib").unlink()
    run_cli("crawl", str(root), "--catalog", db, "--quiet", "--allow-mass-delete")
    import duckdb

    with duckdb.connect(db) as con:
        con.execute("DELETE FROM files WHERE kind = 'model'")
    assert run_cli("export", str(out), "--catalog", db).returncode == 0
    assert "kind=model" not in {p.name for p in (out / "files").iterdir()}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # the temporary folders are gone
    manifest = json.loads((out / "_schema.json").read_text())
    assert manifest["tables"]["run_summary"]["kind"] == "view" and (out / "run_summary.parquet").exists()
    assert {"current_files", "latest_metrics", "open_errors", "stale"} <= set(manifest["tables"])
    assert "files/" in (out / "README.md").read_text()
    import polars as pl
    import pyarrow.dataset as ds

    by_pyarrow = ds.dataset(out / "files", partitioning="hive").to_table()
    assert by_pyarrow.num_rows == manifest["tables"]["files"]["rows"] and "kind" in by_pyarrow.column_names
    by_polars = pl.scan_parquet(out / "files" / "**" / "*.parquet", hive_partitioning=True).collect()
    assert by_polars.height == by_pyarrow.num_rows and "kind" in by_polars.columns
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    refused = run_cli("export", str(mine), "--catalog", db)
    assert refused.returncode == 2 and "not an mlcrawl export" in refused.stderr
    assert (mine / "thesis.tex").read_text() == "precious"


def test_readme_documents_every_command_of_mlcrawl_help():
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    listed = run_cli("--help").stdout.split("Commands:")[1]
    commands = {line.split()[0] for line in listed.splitlines() if line.strip()}
    assert {"crawl", "query", "watch", "lineage"} <= commands
    examples = set(re.findall(r"^\$ mlcrawl ([a-z-]+)", readme, re.MULTILINE))
    # Each command has an example with its real output (a `$ mlcrawl CMD` line), serve included once it exists.
    assert commands <= examples, sorted(commands - examples)
    assert "duckdb -readonly" in readme
