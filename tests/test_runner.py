"""The crawl: files table, hashing, incremental re-crawl, deletions and the mass-delete guard."""

from __future__ import annotations

import hashlib
import os
import subprocess

import pytest
from helpers import crawl, make_tree, rows

import mlcrawl.hashing as hashing_mod
from mlcrawl.api import BaseCrawler, Claims, Metric, Param, Run
from mlcrawl.catalog import Catalog
from mlcrawl.config import Job
from mlcrawl.errors import ConfigError
from mlcrawl.hashing import hash_file
from mlcrawl.runner import Runner


@pytest.fixture
def tree(tmp_path):
    return make_tree(tmp_path / "root", {
        "data/train.csv": "a,b\n1,2\n3,4\n",
        "notes/readme.md": "hello",
        "models/model.safetensors": b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ",
        "run1/metrics.json": '{"accuracy": 0.9}',
        "big.bin": os.urandom(3 << 20),
        "empty.txt": b"",
    })


def test_files_rows_match_sha256sum(tree, tmp_path):
    db = tmp_path / "c.duckdb"
    summary = crawl(tree, db, crawlers=[])
    assert summary.status == "ok" and summary.files_seen == summary.files_new == 6
    got = dict(rows(db, "SELECT path, sha256 FROM files"))
    out = subprocess.run(["sha256sum", *sorted(got)], cwd=tree, capture_output=True, text=True, check=True).stdout
    expected = {line.split("  ", 1)[1]: line.split("  ", 1)[0] for line in out.splitlines()}
    assert got == expected
    kinds = dict(rows(db, "SELECT path, kind FROM files"))
    assert kinds["data/train.csv"] == "dataset" and kinds["run1/metrics.json"] == "metrics"
    assert kinds["models/model.safetensors"] == "model"
    size, inode, owner = rows(db, "SELECT size, inode, owner FROM files WHERE path = 'big.bin'")[0]
    assert size == 3 << 20 and inode == os.stat(tree / "big.bin").st_ino and owner


def test_empty_file_has_the_empty_digest(tree, tmp_path):
    db = tmp_path / "c.duckdb"
    crawl(tree, db, crawlers=[])
    assert rows(db, "SELECT sha256, size FROM files WHERE path = 'empty.txt'") == [(hashlib.sha256(b"").hexdigest(), 0)]


def test_recrawl_of_unchanged_tree_reads_nothing(tree, tmp_path):
    db = tmp_path / "c.duckdb"
    first = crawl(tree, db)
    again = crawl(tree, db)
    assert first.bytes_hashed > 3 << 20
    assert again.bytes_hashed == 0 and again.files_unchanged == 6 and again.files_new == again.files_changed == 0
    assert again.units_crawled == 0 and again.units_skipped == first.units_crawled
    statuses = rows(db, "SELECT crawl_id, status, files_unchanged, bytes_hashed FROM crawls ORDER BY crawl_id")
    assert statuses == [(1, "ok", 0, first.bytes_hashed), (2, "ok", 6, 0)]


def test_changed_file_keeps_every_version(tree, tmp_path):
    db = tmp_path / "c.duckdb"
    crawl(tree, db)
    (tree / "data/train.csv").write_text("a,b,c\n1,2,3\n")
    summary = crawl(tree, db)
    assert summary.files_changed == 1 and summary.files_unchanged == 5
    versions = rows(db, "SELECT sha256 FROM file_versions WHERE path = 'data/train.csv' ORDER BY first_seen")
    assert [v[0] for v in versions] == [hashlib.sha256(b"a,b\n1,2\n3,4\n").hexdigest(),
                                        hashlib.sha256(b"a,b,c\n1,2,3\n").hexdigest()]
    # the datasets crawler re-read the changed unit, so the schema change is one query
    schemas = rows(db, "SELECT columns FROM dataset_schemas WHERE path = 'data/train.csv'")
    assert len(schemas) == 1 and '"c"' in schemas[0][0]


def test_deleted_files_keep_their_rows(tree, tmp_path):
    db = tmp_path / "c.duckdb"
    crawl(tree, db)
    (tree / "notes/readme.md").unlink()
    summary = crawl(tree, db)
    assert summary.files_deleted == 1
    assert rows(db, "SELECT deleted_at IS NOT NULL FROM files WHERE path = 'notes/readme.md'") == [(True,)]
    assert rows(db, "SELECT count(*) FROM current_files")[0][0] == 5
    (tree / "notes/readme.md").write_text("back")
    assert crawl(tree, db).files_new == 1
    assert rows(db, "SELECT deleted_at FROM files WHERE path = 'notes/readme.md'") == [(None,)]


def test_mass_delete_guard(tree, tmp_path):
    db = tmp_path / "c.duckdb"
    crawl(tree, db)
    for rel in ("data/train.csv", "notes/readme.md", "run1/metrics.json", "big.bin"):
        (tree / rel).unlink()
    guarded = crawl(tree, db)
    assert guarded.status == "partial" and guarded.files_deleted == 0
    assert rows(db, "SELECT error_type FROM errors WHERE crawl_id = 2") == [("mass_delete_guard",)]
    assert rows(db, "SELECT count(*) FROM files WHERE deleted_at IS NOT NULL")[0][0] == 0
    allowed = crawl(tree, db, allow_mass_delete=True)
    assert allowed.files_deleted == 4


def test_emptied_root_marks_nothing_deleted(tree, tmp_path):
    db = tmp_path / "c.duckdb"
    crawl(tree, db, delete_guard=1.0)
    for path in sorted(tree.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    summary = crawl(tree, db, delete_guard=1.0)
    assert summary.files_deleted == 0 and summary.status == "partial"
    assert rows(db, "SELECT message FROM errors WHERE error_type = 'mass_delete_guard'")[0][0].startswith("nothing marked deleted: the root is empty")


def test_missing_root_is_an_error_row_not_a_deletion(tree, tmp_path):
    db = tmp_path / "c.duckdb"
    crawl(tree, db)
    summary = crawl(tmp_path / "gone", db)
    assert summary.status == "failed"
    assert rows(db, "SELECT error_type FROM errors WHERE crawl_id = 2") == [("missing_root",)]
    assert rows(db, "SELECT count(*) FROM files WHERE deleted_at IS NOT NULL")[0][0] == 0


def test_max_hash_size_gives_null_with_reason(tree, tmp_path):
    db = tmp_path / "c.duckdb"
    crawl(tree, db, crawlers=[], max_hash_size=1 << 20)
    sha, note = rows(db, "SELECT sha256, hash_note FROM files WHERE path = 'big.bin'")[0]
    assert sha is None and "max_hash_size" in note
    assert crawl(tree, db, crawlers=[], max_hash_size=1 << 20).bytes_hashed == 0


def test_file_vanishing_before_hashing(tree, tmp_path, monkeypatch):
    def vanish(path, *args, **kw):
        if path.endswith("readme.md"):
            os.unlink(path)
        return hash_file(path, *args, **kw)

    monkeypatch.setattr(hashing_mod, "hash_file", vanish)
    db = tmp_path / "c.duckdb"
    summary = crawl(tree, db, crawlers=[])
    assert summary.files_seen == 5
    assert rows(db, "SELECT path, error_type FROM errors") == [("notes/readme.md", "vanished")]


def test_file_growing_while_hashed(tree, tmp_path, monkeypatch):
    def grow(path, *args, **kw):
        if path.endswith("train.csv"):
            with open(path, "a") as f:
                f.write("5,6\n")
        return hash_file(path, *args, **kw)

    monkeypatch.setattr(hashing_mod, "hash_file", grow)
    db = tmp_path / "c.duckdb"
    crawl(tree, db, crawlers=[])
    assert rows(db, "SELECT sha256, hash_note FROM files WHERE path = 'data/train.csv'") == [(None, "changed while hashing")]
    assert rows(db, "SELECT error_type FROM errors") == [("changed_while_hashing",)]
    monkeypatch.undo()
    crawl(tree, db, crawlers=[])
    sha = rows(db, "SELECT sha256 FROM files WHERE path = 'data/train.csv'")[0][0]
    assert sha == hashlib.sha256((tree / "data/train.csv").read_bytes()).hexdigest()


class _JsonCrawler(BaseCrawler):
    name, version = "broken", 1
    claims = Claims(files=("*.json",))


def test_failing_crawler_gives_one_error_row_once_and_retry_failed_reads_again(tree, tmp_path):
    class Broken(_JsonCrawler):
        def crawl(self, unit, ctx):
            raise ValueError(f"cannot parse {unit.name}")

    db = tmp_path / "c.duckdb"
    summary = crawl(tree, db, crawlers=[Broken()])
    assert summary.status == "partial" and summary.units_failed == 1 and summary.files_seen == 6
    assert rows(db, "SELECT crawler, path, error_type, message FROM errors") == [
        ("broken", "run1/metrics.json", "ValueError", "cannot parse metrics.json")]
    # unchanged, a failed unit is not read again and reports nothing new; the problem stays open
    again = crawl(tree, db, crawlers=[Broken()])
    assert again.status == "ok" and again.units_failed == 0 and again.units_skipped == 1
    assert rows(db, "SELECT count(*) FROM errors")[0][0] == 1
    assert rows(db, "SELECT crawler, path, message FROM open_errors") == [
        ("broken", "run1/metrics.json", "cannot parse metrics.json")]
    # --retry-failed reads it again
    assert crawl(tree, db, crawlers=[Broken()], retry_failed=True).units_failed == 1


def test_a_fixed_file_closes_its_open_error(tree, tmp_path):
    class Picky(_JsonCrawler):
        def crawl(self, unit, ctx):
            ctx.read_json(unit)
            return iter(())

    (tree / "run1/metrics.json").write_text("{broken")
    db = tmp_path / "c.duckdb"
    assert crawl(tree, db, crawlers=[Picky()]).units_failed == 1
    assert rows(db, "SELECT count(*) FROM open_errors")[0][0] == 1
    (tree / "run1/metrics.json").write_text('{"acc": 1}')
    assert crawl(tree, db, crawlers=[Picky()]).units_failed == 0
    assert rows(db, "SELECT count(*) FROM open_errors")[0][0] == 0


@pytest.mark.parametrize("garbage", [
    {"run_id": "x"},                                   # a plain dict
    Param(run_id="r", key=3, value="1"),               # a wrongly typed field
    Run(run_id=None, source="s", source_run_id="x"),   # a required field missing
    Metric(run_id="r", key="k", value="high"),         # text where a number belongs
])
def test_a_crawler_yielding_garbage_fails_only_its_unit(tree, tmp_path, garbage):
    class Garbage(_JsonCrawler):
        def crawl(self, unit, ctx):
            yield Run(run_id="ok:1", source="ok", source_run_id="1")
            yield garbage

    db = tmp_path / "c.duckdb"
    summary = crawl(tree, db, crawlers=[Garbage()])
    assert summary.units_failed == 1 and summary.files_seen == 6
    assert rows(db, "SELECT crawler, path FROM errors") == [("broken", "run1/metrics.json")]
    assert rows(db, "SELECT count(*) FROM runs")[0][0] == 0  # the unit is all or nothing


def test_a_crawler_whose_match_raises_gives_one_row_and_is_disabled(tree, tmp_path):
    class BadMatch(_JsonCrawler):
        def match(self, path, is_dir):
            raise RuntimeError("boom")

    db = tmp_path / "c.duckdb"
    (tree / "second.json").write_text("{}")
    summary = crawl(tree, db, crawlers=[BadMatch()])
    assert summary.files_seen == 7
    assert rows(db, "SELECT crawler, message FROM errors") == [
        ("broken", "match() raised boom; crawler disabled for the rest of this crawl")]


def test_a_crawler_that_loops_forever_hits_the_unit_time_limit(tree, tmp_path):
    class Forever(_JsonCrawler):
        def crawl(self, unit, ctx):
            while True:
                pass
            yield  # pragma: no cover

    db = tmp_path / "c.duckdb"
    summary = Runner(Catalog.at(db), Job(roots=(str(tree),)), [Forever()], unit_seconds=0.3).run()
    assert summary.units_failed == 1 and summary.files_seen == 6
    assert rows(db, "SELECT error_type FROM errors") == [("UnitTimeout",)]


def test_unknown_crawler_option_is_a_config_error_naming_the_valid_ones(tree, tmp_path):
    from mlcrawl.registry import discover, select

    crawlers = select(discover())
    with pytest.raises(ConfigError, match=r"unknown option 'max_byts' \(valid: .*max_bytes"):
        Runner(Catalog.at(tmp_path / "c.duckdb"), Job(roots=(str(tree),)), crawlers, {"generic": {"max_byts": 1}})
    with pytest.raises(ConfigError, match=r"\[crawlers.genric\]: no such crawler"):
        Runner(Catalog.at(tmp_path / "c.duckdb"), Job(roots=(str(tree),)), crawlers, {"genric": {}})


def test_secret_params_are_redacted_in_every_crawler(tmp_path):
    root = make_tree(tmp_path / "root", {"exp/params.yaml": "lr: 0.1\napi_key: sk-live-123\ndb:\n  password: hunter2\n",
                                         "exp/metrics.json": '{"acc": 1}'})  # metrics: evidence of a run
    db = tmp_path / "c.duckdb"
    summary = crawl(root, db)
    params = dict(rows(db, "SELECT key, value FROM params"))
    assert summary.secrets_redacted == 2 == rows(db, "SELECT secrets_redacted FROM crawls")[0][0]
    assert params["lr"] == "0.1" and params["api_key"] == params["db.password"] == "***REDACTED***"
    assert rows(db, "SELECT count(*) FROM params WHERE value LIKE '%hunter2%' OR value LIKE '%sk-live%'")[0][0] == 0


def test_a_document_deep_in_any_tools_run_folder_joins_that_run(tmp_path):
    # The core names the enclosing run (each crawler's folder_run_id); generic knows no tool.
    rid = "0123456789abcdef0123456789abcdef"
    root = make_tree(tmp_path / "root", {
        f"mlruns/1/{rid}/meta.yaml": f"run_id: {rid}\nexperiment_id: '1'\nstatus: 3\nstart_time: 1\n",
        f"mlruns/1/{rid}/params/lr": "0.1", "mlruns/1/meta.yaml": "experiment_id: '1'\nname: e\n",
        f"mlruns/1/{rid}/artifacts/eval/results.json": '{"f1": 0.7}',
    })
    db = tmp_path / "c.duckdb"
    crawl(root, db)
    assert rows(db, "SELECT run_id, value FROM metrics WHERE key = 'f1'") == [(f"mlflow:{rid}", 0.7)]
    assert rows(db, "SELECT count(*) FROM runs WHERE source = 'generic'")[0][0] == 0


def test_a_crawler_that_grows_without_bound_hits_the_unit_memory_budget(tree, tmp_path):
    class Hoarder(_JsonCrawler):
        def crawl(self, unit, ctx):
            hoard = []
            for _ in range(2000):  # up to 2 GB in 1 MiB steps, touched so that it is resident
                hoard.append(bytearray(b"x" * (1 << 20)))
            yield from ()

    db = tmp_path / "c.duckdb"
    summary = Runner(Catalog.at(db), Job(roots=(str(tree),), unit_memory_limit=64 << 20), [Hoarder()]).run()
    assert summary.units_failed == 1 and summary.files_seen == 6
    [(error_type, message)] = rows(db, "SELECT error_type, message FROM errors")
    assert error_type == "UnitMemoryExceeded" and "memory budget of 64 MiB" in message
