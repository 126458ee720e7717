"""logical_runs / run_links and `mlcrawl runs`: one training logged by several tools is one
logical run, every source row kept.  Folders written by the real tools (Lightning 2.6.6 with
CSV + TensorBoard + MLflow loggers at once; hydra-core 1.3.8; the shared corpus)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from helpers import rows, run_cli

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MULTI = FIXTURES / "lightning" / "logs" / "multi"


def crawl(root: Path, db: Path) -> None:
    done = run_cli("crawl", str(root), "--catalog", str(db), "--quiet")
    assert done.returncode in (0, 1), done.stderr


def test_three_loggers_of_one_trainer_are_one_logical_run(tmp_path):
    db = tmp_path / "c.duckdb"
    crawl(MULTI, db)
    got = rows(db, "SELECT logical_run_id, run_id, source, source_runs FROM logical_runs ORDER BY run_id")
    assert [r[1] for r in got] == sorted(r[0] for r in rows(db, "SELECT DISTINCT run_id FROM runs"))
    assert len({r[0] for r in got}) == 1 and {r[3] for r in got} == {3}
    assert {r[2] for r in got} == {"lightning", "mlflow"}
    relations = {r[0] for r in rows(db, "SELECT relation FROM run_links")}
    assert relations == {"equal_params"}
    out = run_cli("runs", "--linked", "--format", "json", "--catalog", str(db))
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(lines) == 3 and all(len(line["evidence"]) == 2 for line in lines)


def test_a_run_of_another_tool_inside_a_hydra_job_joins_it(tmp_path):
    root = tmp_path / "root"
    job = root / "outputs" / "2026-12-05" / "15-54-05"
    shutil.copytree(FIXTURES / "hydra" / "out" / "outputs" / "2026-12-05" / "15-54-05", job)
    shutil.copytree(MULTI / "mlruns", job / "mlruns")  # as MLflow logging from inside the job would
    shutil.copytree(FIXTURES / "hydra" / "out" / "sweeps", root / "sweeps")
    db = tmp_path / "c.duckdb"
    crawl(root, db)
    links = rows(db, "SELECT run_a, run_b, relation FROM run_links")
    mlflow_run = rows(db, "SELECT run_id FROM runs WHERE source = 'mlflow'")[0][0]
    # The MLflow run's times (2026-12-05 15:47) are not the Hydra job's (15:54): a copy, not one
    # training, so the folder alone does not link them.
    assert links == []
    # Sweep jobs share a folder with their sweep and each other, but are different trainings.
    groups = rows(db, "SELECT count(DISTINCT logical_run_id), count(*) FROM logical_runs")
    assert groups == [(rows(db, "SELECT count(DISTINCT run_id) FROM runs")[0][0],) * 2]
    assert mlflow_run.startswith("mlflow:")


def test_a_recorded_id_of_the_other_tool_links_runs(tmp_path):
    root = tmp_path / "root"
    shutil.copytree(MULTI / "mlruns", root / "mlruns")
    mlflow_id = next((root / "mlruns").glob("[0-9]*/[0-9a-f]*/meta.yaml")).parent.name
    run = root / "train" / "outputs" / "2026-12-05" / "15-54-05"
    shutil.copytree(FIXTURES / "hydra" / "out" / "outputs" / "2026-12-05" / "15-54-05", run)
    overrides = run / ".hydra" / "overrides.yaml"
    overrides.write_text(overrides.read_text() + f"- +mlflow_run_id={mlflow_id}\n")
    config = run / ".hydra" / "config.yaml"  # Hydra writes the override into the resolved config too
    config.write_text(config.read_text() + f"mlflow_run_id: {mlflow_id}\n")
    db = tmp_path / "c.duckdb"
    crawl(root, db)
    links = rows(db, "SELECT run_a, run_b, relation, detail FROM run_links")
    assert [(a, b, rel) for a, b, rel, _ in links] == [(f"hydra:{run.relative_to(root).as_posix()}",
                                                         f"mlflow:{mlflow_id}", "recorded_id")]
    assert mlflow_id in links[0][3]


def test_the_corpus_runs_stay_separate_and_all_kept(tmp_path, corpus):
    db = tmp_path / "c.duckdb"
    crawl(corpus, db)
    assert rows(db, "SELECT count(*) FROM run_links") == [(0,)]
    assert rows(db, "SELECT count(*), count(DISTINCT run_id) FROM logical_runs") == \
        [(rows(db, "SELECT count(DISTINCT run_id) FROM runs")[0][0],) * 2]
