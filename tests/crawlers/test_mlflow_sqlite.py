"""The MLflow SQLite crawler against TRUTH.json (read by MLflow itself) and unreadable databases."""

from __future__ import annotations

import hashlib
import math
import shutil
import sqlite3
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import crawl_unit
from mlcrawl.crawlers.mlflow_sqlite import MlflowDatabaseError, MlflowSqliteCrawler

from mlcrawl.records import Artifact, Edge, Experiment, Metric, Param, Run, Tag

CRAWLER = MlflowSqliteCrawler()


@pytest.fixture(scope="module")
def store(corpus: Path) -> list:
    before = hashlib.sha256((corpus / "mlflow.db").read_bytes()).hexdigest()
    records, warnings = crawl_unit(CRAWLER, corpus, corpus / "mlflow.db")
    assert warnings == []
    assert hashlib.sha256((corpus / "mlflow.db").read_bytes()).hexdigest() == before
    return records


def sqlite_truth(truth: dict) -> list[dict]:
    runs = [r for r in truth["runs"] if r["source"] == "mlflow" and r["store_kind"] == "sqlite"]
    assert runs, "TRUTH.json has no SQLite MLflow runs"
    return runs


def grouped(records: list, kind: type) -> dict[str, list]:
    out = defaultdict(list)
    for record in records:
        if isinstance(record, kind):
            out[record.run_id].append(record)
    return out


def test_claims_database_names_only():
    assert CRAWLER.match(Path("x/mlflow.db"), False) and CRAWLER.match(Path("a/b.sqlite"), False)
    assert not CRAWLER.match(Path("x/mlflow.db"), True) and not CRAWLER.match(Path("x/db.json"), False)


def test_runs_params_tags_match_truth(store, truth):
    runs = {r.source_run_id: r for r in store if isinstance(r, Run)}
    params, tags = grouped(store, Param), grouped(store, Tag)
    expected = sqlite_truth(truth)
    assert set(runs) == {t["run_id"] for t in expected}
    for t in expected:
        run, key = runs[t["run_id"]], f"mlflow:{t['run_id']}"
        assert (run.run_id, run.name, run.experiment, run.status, run.lifecycle) == (
            key, t["run_name"], t["experiment"], t["status"], t["lifecycle_stage"])
        assert run.parent_run_id == (f"mlflow:{t['parent_run_id']}" if t["parent_run_id"] else None)
        assert int(run.start_time.timestamp() * 1000) == t["start_time_ms"]
        assert int(run.end_time.timestamp() * 1000) == t["end_time_ms"]
        assert {p.key: p.value for p in params[key]} == t["params"]
        assert {g.key: g.value for g in tags[key]} == t["tags"]


def test_metric_history_matches_truth(store, truth):
    metrics = grouped(store, Metric)
    for t in sqlite_truth(truth):
        per_key = defaultdict(list)
        for m in metrics[f"mlflow:{t['run_id']}"]:
            per_key[m.key].append(m)
        assert set(per_key) == set(t["metrics_latest"])
        for key, points in per_key.items():
            assert len(points) == t["metric_history_len"][key]
            assert [min(p.step for p in points), max(p.step for p in points)] == t["metric_history_steps"][key]
            last = max(points, key=lambda m: (m.step, m.timestamp, m.value)).value
            assert last == t["metrics_latest"][key]


def test_artifacts_are_mapped_into_the_root(store, truth):
    artifacts = grouped(store, Artifact)
    edges = {(e.src, e.dst, e.relation) for e in store if isinstance(e, Edge)}
    for t in sqlite_truth(truth):
        key = f"mlflow:{t['run_id']}"
        files = [a for a in artifacts[key] if a.role == "artifact"]
        assert sorted(a.facts["artifact_path"] for a in files) == sorted(t["artifacts"])
        assert all(a.path == f"{t['artifacts_dir']}/{a.facts['artifact_path']}" for a in files)
        assert all((key, a.path, "mlflow_artifact") in edges for a in files)
        assert [a for a in artifacts[key] if a.role == "dataset_input"] == [] == t["dataset_inputs"]
        assert sorted(a.facts["model_id"] for a in artifacts[key] if a.role == "output") \
            == sorted(t["logged_model_outputs"])


def test_experiments_match_truth(store, truth):
    got = {e.experiment_id: e for e in store if isinstance(e, Experiment)}
    expected = [e for e in truth["mlflow"]["experiments"] if e["store_kind"] == "sqlite"]
    assert len(got) == len(expected)
    for t in expected:
        e = got[f"mlflow:{t['store']}:{t['experiment_id']}"]
        assert (e.name, e.lifecycle, e.artifact_location, e.tags) == (
            t["name"], t["lifecycle_stage"], t["artifact_location"], t["tags"])


# --- a writable copy for rows the corpus lacks, and broken databases --------------------------

@pytest.fixture
def copy(corpus: Path, tmp_path: Path) -> Path:
    target = tmp_path / "mlflow.db"
    shutil.copyfile(corpus / "mlflow.db", target)
    target.chmod(0o644)
    return target


def test_nan_metrics_deleted_runs_and_dataset_inputs(copy: Path, tmp_path: Path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.csv").write_text("a\n1\n")
    with sqlite3.connect(copy) as conn:
        run = conn.execute("SELECT run_uuid FROM runs ORDER BY run_uuid LIMIT 1").fetchone()[0]
        conn.execute("INSERT INTO metrics VALUES ('loss', 0, 5, ?, 7, 1)", (run,))
        conn.execute("UPDATE runs SET lifecycle_stage='deleted', status='KILLED' WHERE run_uuid=?", (run,))
        conn.execute("INSERT INTO datasets VALUES ('d1', 1, 'train', 'abc', 'local', "
                     "'{\"uri\": \"/far/away/data/train.csv\"}', NULL, NULL)")
        conn.execute("INSERT INTO inputs VALUES ('i1', 'DATASET', 'd1', 'RUN', ?, 0)", (run,))
        conn.execute("INSERT INTO input_tags VALUES ('i1', 'mlflow.data.context', 'training')")
    records, _ = crawl_unit(CRAWLER, tmp_path, copy)
    loss = [m for m in records if isinstance(m, Metric) and m.key == "loss"]
    assert len(loss) == 1 and math.isnan(loss[0].value) and loss[0].step == 7
    deleted = next(r for r in records if isinstance(r, Run) and r.source_run_id == run)
    assert (deleted.lifecycle, deleted.status) == ("deleted", "KILLED")
    dataset = next(a for a in records if isinstance(a, Artifact) and a.role == "dataset_input")
    assert dataset.path == "data/train.csv" and dataset.facts["context"] == {"mlflow.data.context": "training"}
    assert any(isinstance(e, Edge) and e.src == "data/train.csv" and e.dst == f"mlflow:{run}" for e in records)


def test_corrupt_sqlite_file_fails_clearly(tmp_path: Path):
    bad = tmp_path / "mlflow.db"
    bad.write_bytes(b"SQLite format 3\x00" + b"\xff" * 2000)
    with pytest.raises(MlflowDatabaseError, match="mlflow.db: "):
        crawl_unit(CRAWLER, tmp_path, bad)


def test_file_that_is_not_sqlite_fails_clearly(tmp_path: Path):
    bad = tmp_path / "mlflow.db"
    bad.write_text("this is a text file, not a database\n" * 100)
    with pytest.raises(MlflowDatabaseError, match="mlflow.db: not a SQLite database"):
        crawl_unit(CRAWLER, tmp_path, bad)


def test_non_mlflow_sqlite_fails_clearly_and_other_names_are_skipped(tmp_path: Path):
    for name in ("mlflow.db", "optuna.db"):
        with sqlite3.connect(tmp_path / name) as conn:
            conn.execute("CREATE TABLE studies (id INTEGER)")
    with pytest.raises(MlflowDatabaseError, match="not an MLflow tracking store .missing tables: alembic_version"):
        crawl_unit(CRAWLER, tmp_path, tmp_path / "mlflow.db")
    assert crawl_unit(CRAWLER, tmp_path, tmp_path / "optuna.db") == ([], [])


def test_locked_database_fails_clearly(copy: Path, tmp_path: Path):
    holder = sqlite3.connect(copy, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(MlflowDatabaseError, match="locked by another process"):
            crawl_unit(CRAWLER, tmp_path, copy, sqlite_timeout=0.05)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_database_is_never_written(copy: Path, tmp_path: Path):
    before = copy.read_bytes()
    crawl_unit(CRAWLER, tmp_path, copy)
    assert copy.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db"]
