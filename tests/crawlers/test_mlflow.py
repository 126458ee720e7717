"""The MLflow file-store crawler against TRUTH.json (read by MLflow itself) and damaged stores."""

from __future__ import annotations

import math
import os
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import crawl_unit
from mlcrawl.crawlers.mlflow import MlflowFileStoreCrawler

from mlcrawl.records import Artifact, Edge, Experiment, Metric, Model, Param, Run, Tag

CRAWLER = MlflowFileStoreCrawler()


def find_units(root: Path) -> list[Path]:
    """What a walker would hand the crawler: claimed folders and claimed files."""
    units = []
    for dirpath, dirnames, filenames in os.walk(root):
        folder = Path(dirpath)
        if CRAWLER.match_folder(folder, frozenset(dirnames + filenames)):
            units.append(folder)
        units += [folder / name for name in filenames if CRAWLER.match(folder / name, False)]
    return units


@pytest.fixture(scope="module")
def store(corpus: Path) -> tuple[list, list]:
    records, warnings = [], []
    for unit in find_units(corpus / "mlruns"):
        got, warned = crawl_unit(CRAWLER, corpus, unit)
        records += got
        warnings += warned
    return records, warnings


def truth_runs(truth: dict, kind: str) -> list[dict]:
    runs = [r for r in truth["runs"] if r["source"] == "mlflow" and r["store_kind"] == kind]
    assert runs, f"TRUTH.json has no {kind} MLflow runs"
    return runs


def truth_value(value):
    """TRUTH writes non-finite floats as strings."""
    return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}.get(value, value)


def same_number(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def by_run(records: list, kind: type) -> dict[str, list]:
    grouped = defaultdict(list)
    for record in records:
        if isinstance(record, kind):
            grouped[record.run_id].append(record)
    return grouped


def latest(points: list[Metric]) -> float:
    """MLflow's latest value: max step, then max timestamp, then max value."""
    return max(points, key=lambda m: (m.step, m.timestamp, m.value)).value


def test_runs_match_truth(store, truth):
    records, _ = store
    runs = {r.source_run_id: r for r in records if isinstance(r, Run)}
    expected = truth_runs(truth, "file")
    assert set(runs) == {t["run_id"] for t in expected}
    for t in expected:
        run = runs[t["run_id"]]
        assert run.run_id == f"mlflow:{t['run_id']}"
        assert (run.name, run.experiment, run.status, run.lifecycle) == (
            t["run_name"], t["experiment"], t["status"], t["lifecycle_stage"])
        assert run.parent_run_id == (f"mlflow:{t['parent_run_id']}" if t["parent_run_id"] else None)
        assert run.dir == t["dir"]
        assert int(run.start_time.timestamp() * 1000) == t["start_time_ms"]
        assert int(run.end_time.timestamp() * 1000) == t["end_time_ms"]
        assert run.git_commit == t["tags"].get("mlflow.source.git.commit")


def test_params_and_tags_match_truth(store, truth):
    records, _ = store
    params, tags = by_run(records, Param), by_run(records, Tag)
    for t in truth_runs(truth, "file"):
        key = f"mlflow:{t['run_id']}"
        assert {p.key: p.value for p in params[key]} == t["params"]
        assert {g.key: g.value for g in tags[key]} == t["tags"]


def test_metric_history_matches_truth(store, truth):
    records, warnings = store
    metrics = by_run(records, Metric)
    for t in truth_runs(truth, "file"):
        per_key = defaultdict(list)
        for m in metrics[f"mlflow:{t['run_id']}"]:
            per_key[m.key].append(m)
        assert set(per_key) == set(t["metrics_latest"])
        for key, points in per_key.items():
            assert len(points) == t["metric_history_len"][key]
            assert [min(p.step for p in points), max(p.step for p in points)] == t["metric_history_steps"][key]
            assert same_number(latest(points), truth_value(t["metrics_latest"][key]))
    assert warnings == []


def test_artifacts_inputs_and_model_outputs_match_truth(store, truth):
    records, _ = store
    artifacts = by_run(records, Artifact)
    edges = {(e.src, e.dst, e.relation) for e in records if isinstance(e, Edge)}
    for t in truth_runs(truth, "file"):
        key = f"mlflow:{t['run_id']}"
        files = [a for a in artifacts[key] if a.role == "artifact"]
        assert sorted(a.facts["artifact_path"] for a in files) == sorted(t["artifacts"])
        assert all(a.path == f"{t['artifacts_dir']}/{a.facts['artifact_path']}" for a in files)
        assert all((key, a.path, "mlflow_artifact") in edges for a in files)
        inputs = [a.facts for a in artifacts[key] if a.role == "dataset_input"]
        assert [{k: i[k] for k in ("name", "digest", "source_type", "source", "context")} for i in inputs] \
            == t["dataset_inputs"]
        outputs = [a.facts["model_id"] for a in artifacts[key] if a.role == "output"]
        assert sorted(outputs) == sorted(t["logged_model_outputs"])


def test_lineage_edges_of_truth_are_declared(store, truth):
    records, _ = store
    edges = {(e.src, e.dst, e.relation) for e in records if isinstance(e, Edge)}
    for edge in truth["lineage"]:
        if edge.get("relation") == "mlflow_dataset_input" and edge["to"].startswith("mlruns/"):
            assert (edge["from"], f"mlflow:{edge['run_id']}", "mlflow_dataset_input") in edges
        elif edge.get("relation") == "mlflow_logged_model":
            assert (f"mlflow:{edge['from']}", edge["to"], "mlflow_logged_model") in edges


def test_experiments_match_truth(store, truth):
    records, _ = store
    got = {e.experiment_id: e for e in records if isinstance(e, Experiment)}
    expected = [e for e in truth["mlflow"]["experiments"] if e["store_kind"] == "file"]
    assert len(got) == len(expected)
    for t in expected:
        e = got[f"mlflow:{t['store']}:{t['experiment_id']}"]
        assert (e.name, e.lifecycle, e.artifact_location, e.tags) == (
            t["name"], t["lifecycle_stage"], t["artifact_location"], t["tags"])


def test_logged_models_match_truth(store, truth):
    records, _ = store
    models = {a.facts["model_id"]: a for a in records if isinstance(a, Artifact) and a.role == "model"}
    for t in truth["mlflow"]["logged_models"]:
        if t["store"] != "mlruns":
            continue
        a = models[t["model_id"]]
        assert a.run_id == f"mlflow:{t['source_run_id']}"
        assert a.path == t["artifact_location"]
        assert (a.facts["name"], a.facts["status"], a.facts["params"], a.facts["tags"]) == (
            t["name"], t["status"], t["params"], t["tags"])
        assert a.facts["mlmodel"]["run_id"] == t["source_run_id"]
        assert a.facts["mlmodel"]["flavors"]


def test_mlmodel_files_give_flavors(store):
    records, _ = store
    models = [m for m in records if isinstance(m, Model)]
    assert models and all(m.format == "mlflow_model" and m.metadata["flavors"] for m in models)


# --- damaged stores built in tmp_path -------------------------------------------------------

RUN = "0123456789abcdef0123456789abcdef"


def make_run(root: Path, meta: str | None = None, exp: str = "7") -> Path:
    """A minimal store: mlruns/<exp>/meta.yaml and one run folder."""
    exp_dir = root / "mlruns" / exp
    run_dir = exp_dir / RUN
    for sub in ("params", "metrics", "tags", "artifacts"):
        (run_dir / sub).mkdir(parents=True)
    (exp_dir / "meta.yaml").write_text(f"experiment_id: '{exp}'\nname: damaged\nlifecycle_stage: active\n"
                                       f"artifact_location: file:///elsewhere/mlruns/{exp}\n")
    if meta is None:
        meta = (f"run_id: {RUN}\nexperiment_id: '{exp}'\nstatus: 5\nstart_time: 1000\nend_time: 2000\n"
                f"user_id: bob\nlifecycle_stage: active\nrun_name: r\n"
                f"artifact_uri: file:///other/host/mlruns/{exp}/{RUN}/artifacts\n")
    if meta != "":
        (run_dir / "meta.yaml").write_text(meta)
    return run_dir


def metric_points(records: list, key: str) -> list[Metric]:
    return [m for m in records if isinstance(m, Metric) and m.key == key]


def test_garbage_and_truncated_metric_lines_warn_and_keep_the_rest(tmp_path):
    run_dir = make_run(tmp_path)
    (run_dir / "metrics" / "loss").write_bytes(b"100 0.5 0\n101 garbage 1\nnot a line\n102 nan 2\n103 0.2")
    (run_dir / "metrics" / "acc").write_bytes(b"100 0.5 0\n101 inf 1\n102 -inf 2\n103 0.9 3 ds d1g3st\n")
    (run_dir / "metrics" / "old").write_bytes(b"100 0.5\n")
    records, warnings = crawl_unit(CRAWLER, tmp_path, run_dir)
    loss = metric_points(records, "loss")
    assert [m.step for m in loss] == [0, 2]
    assert math.isnan(loss[1].value)
    assert [m.value for m in metric_points(records, "acc")] == [0.5, math.inf, -math.inf, 0.9]
    assert [(m.value, m.step) for m in metric_points(records, "old")] == [(0.5, 0)]
    messages = " | ".join(w.message for w in warnings)
    assert "truncated" in messages and "2 malformed" in messages
    assert all(w.path == "mlruns/7/" + RUN + "/metrics/loss" for w in warnings)


def test_nested_metric_and_param_keys_use_slashes(tmp_path):
    run_dir = make_run(tmp_path)
    (run_dir / "metrics" / "val").mkdir()
    (run_dir / "metrics" / "val" / "loss").write_text("100 0.5 0\n")
    (run_dir / "params" / "opt").mkdir()
    (run_dir / "params" / "opt" / "lr").write_text("0.1")
    records, _ = crawl_unit(CRAWLER, tmp_path, run_dir)
    assert [m.key for m in records if isinstance(m, Metric)] == ["val/loss"]
    assert [(p.key, p.value) for p in records if isinstance(p, Param)] == [("opt/lr", "0.1")]


def test_run_status_user_and_foreign_artifact_uri(tmp_path):
    run_dir = make_run(tmp_path)
    (run_dir / "artifacts" / "plots").mkdir()
    (run_dir / "artifacts" / "plots" / "a.png").write_bytes(b"x")
    (run_dir / "tags" / "mlflow.source.git.commit").write_text("abc123")
    records, _ = crawl_unit(CRAWLER, tmp_path, run_dir)
    run = next(r for r in records if isinstance(r, Run))
    assert (run.status, run.user, run.experiment, run.git_commit) == ("KILLED", "bob", "damaged", "abc123")
    art = next(a for a in records if isinstance(a, Artifact))
    assert art.path == f"mlruns/7/{RUN}/artifacts/plots/a.png"
    assert art.facts == {"artifact_path": "plots/a.png",
                         "artifact_uri": f"file:///other/host/mlruns/7/{RUN}/artifacts"}


def test_empty_params_file_is_an_empty_value(tmp_path):
    run_dir = make_run(tmp_path)
    (run_dir / "params" / "note").write_bytes(b"")
    records, warnings = crawl_unit(CRAWLER, tmp_path, run_dir)
    assert [(p.key, p.value) for p in records if isinstance(p, Param)] == [("note", "")]
    assert warnings == []


def test_run_folder_without_meta_yaml_is_claimed_and_fails_clearly(tmp_path):
    run_dir = make_run(tmp_path, meta="")
    assert CRAWLER.match_folder(run_dir, frozenset(os.listdir(run_dir)))
    with pytest.raises(FileNotFoundError, match=f"mlruns/7/{RUN} has no meta.yaml"):
        crawl_unit(CRAWLER, tmp_path, run_dir)


def test_meta_yaml_that_is_not_yaml_fails_clearly(tmp_path):
    run_dir = make_run(tmp_path, meta="run_id: [unclosed\n  : :\n")
    with pytest.raises(ValueError, match="meta.yaml is not valid YAML"):
        crawl_unit(CRAWLER, tmp_path, run_dir)
    make_run(tmp_path / "b", meta="just a string")
    with pytest.raises(ValueError, match="not a YAML mapping"):
        crawl_unit(CRAWLER, tmp_path / "b", tmp_path / "b" / "mlruns" / "7" / RUN)


def test_trashed_experiment_runs_are_deleted(tmp_path):
    make_run(tmp_path)
    trash = tmp_path / "mlruns" / ".trash"
    trash.mkdir()
    os.rename(tmp_path / "mlruns" / "7", trash / "7")
    units = find_units(tmp_path)
    assert {u.name for u in units} == {"7", RUN}
    records = [r for u in units for r in crawl_unit(CRAWLER, tmp_path, u)[0]]
    run = next(r for r in records if isinstance(r, Run))
    assert run.lifecycle == "deleted" and run.experiment == "damaged"
    exp = next(r for r in records if isinstance(r, Experiment))
    assert exp.experiment_id == "mlflow:mlruns:7"


def test_folders_that_are_not_mlflow_are_not_claimed(tmp_path):
    assert not CRAWLER.match_folder(tmp_path / "version_0", frozenset({"metrics.csv", "hparams.yaml"}))
    assert not CRAWLER.match_folder(tmp_path / "3", frozenset({"run.json", "config.json", "metrics.json"}))
    assert not CRAWLER.match_folder(tmp_path / "mlruns" / "1" / RUN, frozenset({"artifacts"}))
    assert CRAWLER.match(tmp_path / "MLmodel", False) and not CRAWLER.match(tmp_path / "model.pkl", False)
