"""Lightning crawler: every Lightning run of TRUTH.json, plus damaged files built in tmp_path."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from conftest import crawl_unit
from mlcrawl.crawlers.lightning import LightningCrawler, checkpoint_facts

from mlcrawl.crawler import CrawlContext
from mlcrawl.records import Artifact, Edge, Metric, Param, Run
from mlcrawl.secrets import REDACTED, redact_record


def lightning_truth(truth: dict) -> list[dict]:
    runs = [r for r in truth["runs"] if r["source"] == "lightning"]
    assert runs, "TRUTH.json has no lightning runs"
    return runs


def of_type(records: list, cls: type) -> list:
    return [r for r in records if isinstance(r, cls)]


def claimed(path: str, names: set[str]) -> bool:
    return any(shape.matches(Path(path).name, frozenset(names)) for shape in LightningCrawler.claims.folders)


def test_claims_log_dirs_of_any_version_name_by_their_files() -> None:
    assert claimed("logs/exp/version_3", {"metrics.csv"})
    assert claimed("lightning_logs/version_0", {"checkpoints"})
    assert claimed("logs/exp/my-string", {"hparams.yaml", "metrics.csv"})
    assert claimed("logs/v-2", {"hparams.yaml", "events.out.tfevents.1.h.1.0"})
    assert claimed("mlruns/1/abc/checkpoints", {"epoch=0-step=4.ckpt"})
    assert not claimed("lightning_logs/version_0", {"notes.txt"})
    assert not claimed("lightning_logs/run_0", {"metrics.csv"})
    assert not claimed("src/conf", {"hparams.yaml"})  # a lone hparams.yaml is a config file
    assert not LightningCrawler.claims.files


def test_every_truth_run(corpus: Path, truth: dict) -> None:
    for expected in lightning_truth(truth):
        records, warnings = crawl_unit(LightningCrawler(), corpus, corpus / expected["dir"])
        assert warnings == []
        run_id = f"lightning:{expected['dir']}"

        (run,) = of_type(records, Run)
        assert (run.run_id, run.source, run.dir) == (run_id, "lightning", expected["dir"])
        assert run.experiment == expected["name"]
        assert run.source_run_id == expected["version"]
        assert run.start_time is None and run.end_time is None  # Lightning records none

        params = {p.key: p.value for p in of_type(records, Param)}
        assert params == {k: str(v) for k, v in expected["hparams"].items()}

        check_metrics(of_type(records, Metric), expected["metrics_csv"], run_id)
        check_checkpoints(records, expected["checkpoints"], run_id)


def check_metrics(metrics: list[Metric], csv_truth: dict, run_id: str) -> None:
    assert all(m.run_id == run_id for m in metrics)
    assert Counter(m.key for m in metrics) == csv_truth["non_null_count"]
    for key, last in csv_truth["last_value"].items():
        assert [m.value for m in metrics if m.key == key][-1] == last
    assert max(m.epoch for m in metrics) == csv_truth["max_epoch"]
    assert all(m.step is not None for m in metrics)
    assert {"epoch", "step"}.isdisjoint(m.key for m in metrics)


def check_checkpoints(records: list, checkpoints: list[dict], run_id: str) -> None:
    artifacts = {a.path: a for a in of_type(records, Artifact)}
    edges = {e.dst: e for e in of_type(records, Edge)}
    assert set(artifacts) == set(edges) == {c["path"] for c in checkpoints}
    for ckpt in checkpoints:
        artifact = artifacts[ckpt["path"]]
        assert artifact.role == "checkpoint"
        assert artifact.facts["epoch"] == ckpt["epoch"]
        assert artifact.facts["step"] == ckpt["global_step"]
        edge = edges[ckpt["path"]]
        assert (edge.src, edge.src_type, edge.relation) == (run_id, "run", "lightning_checkpoint")


def test_checkpoint_names() -> None:
    assert checkpoint_facts("epoch=7-step=56.ckpt") == {"epoch": 7, "step": 56}
    assert checkpoint_facts("best-epoch=02-val_loss=0.32.ckpt") == {"epoch": 2, "val_loss": 0.32}
    assert checkpoint_facts("last.ckpt") == {}


def make_version(tmp_path: Path, metrics_csv: str | None = None,
                 hparams: str | None = None) -> Path:
    folder = tmp_path / "lightning_logs" / "version_0"
    folder.mkdir(parents=True)
    if metrics_csv is not None:
        (folder / "metrics.csv").write_text(metrics_csv)
    if hparams is not None:
        (folder / "hparams.yaml").write_text(hparams)
    return folder


def test_ragged_rows_and_half_written_last_line(tmp_path: Path) -> None:
    folder = make_version(tmp_path, metrics_csv=(
        "epoch,step,train_loss,val_acc\n"
        "0,1,0.9,\n"
        "0,2,0.8,0.5,0.7,9\n"     # too many cells: kept up to the header's width
        "1,3,0.7\n"               # too few cells: the missing ones are empty
        "1,4,oops,0.6\n"          # a cell that is not a number
        "1,5,0.6"                 # no newline: a write in progress
    ))
    records, warnings = crawl_unit(LightningCrawler(), tmp_path, folder)
    points = [(m.key, m.step, m.epoch, m.value) for m in of_type(records, Metric)]
    assert points == [
        ("train_loss", 1, 0, 0.9),
        ("train_loss", 2, 0, 0.8), ("val_acc", 2, 0, 0.5),
        ("train_loss", 3, 1, 0.7),
        ("val_acc", 4, 1, 0.6),
    ]
    kinds = {w.error_type for w in warnings}
    assert kinds == {"truncated_line", "ragged_rows", "bad_value"}
    assert all(w.severity == "warning" for w in warnings)
    assert all(w.path == "lightning_logs/version_0/metrics.csv" for w in warnings)


def test_header_written_again_mid_file(tmp_path: Path) -> None:
    folder = make_version(tmp_path, metrics_csv=(
        "epoch,step,loss\n0,1,0.5\nepoch,lr,step,loss\n1,0.01,2,0.4\n"))
    records, warnings = crawl_unit(LightningCrawler(), tmp_path, folder)
    points = {(m.key, m.step, m.value) for m in of_type(records, Metric)}
    assert points == {("loss", 1, 0.5), ("lr", 2, 0.01), ("loss", 2, 0.4)}
    assert [w.error_type for w in warnings] == ["header_changed"]


def test_garbage_csv_does_not_crash(tmp_path: Path) -> None:
    folder = make_version(tmp_path)
    (folder / "metrics.csv").write_bytes(b"epoch,step,loss\n0,1,0.5\n\x00\xff\xfe,\x00\n")
    records, warnings = crawl_unit(LightningCrawler(), tmp_path, folder)
    assert [(m.key, m.value) for m in of_type(records, Metric)] == [("loss", 0.5)]
    assert warnings


def test_python_object_tags_are_never_constructed(tmp_path: Path) -> None:
    marker = tmp_path / "constructed"
    folder = make_version(tmp_path, hparams=(
        "lr: 0.1\n"
        "args: !!python/object:argparse.Namespace\n  batch_size: 32\n  layers: 2\n"
        f"evil: !!python/object/apply:os.system ['touch {marker}']\n"
        "shape: !!python/tuple [3, 4]\n"
    ))
    records, warnings = crawl_unit(LightningCrawler(), tmp_path, folder)
    params = {p.key: p.value for p in of_type(records, Param)}
    assert not marker.exists()
    assert params == {
        "lr": "0.1", "args.batch_size": "32", "args.layers": "2",
        "evil": f'["touch {marker}"]', "shape": "[3, 4]",
    }
    assert warnings == []


def test_unreadable_hparams_keeps_the_rest(tmp_path: Path) -> None:
    folder = make_version(tmp_path, metrics_csv="epoch,step,loss\n0,1,0.5\n",
                          hparams="lr: [unclosed\n")
    records, warnings = crawl_unit(LightningCrawler(), tmp_path, folder)
    assert of_type(records, Param) == []
    assert len(of_type(records, Metric)) == 1
    assert [w.error_type for w in warnings] == ["bad_yaml"]


def test_tensorboard_twin_is_the_same_run(tmp_path: Path, corpus: Path, truth: dict) -> None:
    """A version folder with event files: their scalars and hparams join the Lightning run."""
    pytest.importorskip("mlcrawl.crawlers.tensorboard")
    tb_runs = [r for r in truth["runs"] if r["source"] == "tensorboard"]
    with_hparams = next(r for r in tb_runs if r.get("hparams"))
    with_scalars = next(r for r in tb_runs if not r.get("hparams"))
    lightning = lightning_truth(truth)[0]
    folder = tmp_path / "lightning_logs" / "version_0"
    shutil.copytree(corpus / lightning["dir"], folder)
    for source in (with_hparams, with_scalars):
        for event_file in (corpus / source["dir"]).glob("events.out.tfevents.*"):
            shutil.copy(event_file, folder)

    records, warnings = crawl_unit(LightningCrawler(), tmp_path, folder)
    assert warnings == []
    assert {r.run_id for r in records if hasattr(r, "run_id")} == {"lightning:lightning_logs/version_0"}
    counts = Counter(m.key for m in of_type(records, Metric))
    expected = dict(lightning["metrics_csv"]["non_null_count"])
    for source in (with_hparams, with_scalars):
        expected.update({tag: s["count"] for tag, s in source["scalars"].items()})
    assert counts == expected
    params = Counter(p.key for p in of_type(records, Param))
    tb_hparams = with_hparams["hparams"]["_hparams_/session_start_info"]["hparams"]
    assert set(params) == set(lightning["hparams"]) | set(tb_hparams)
    assert max(params.values()) == 1  # hparams.yaml wins; the event twin adds only new keys
    yaml_values = {p.key: p.value for p in of_type(records, Param) if p.key in lightning["hparams"]}
    assert yaml_values == {k: str(v) for k, v in lightning["hparams"].items()}


def test_inside_a_hydra_job_the_job_is_the_parent(tmp_path: Path) -> None:
    job = tmp_path / "outputs" / "2026-01-01" / "10-00-00"
    folder = job / "lightning_logs" / "version_0"
    folder.mkdir(parents=True)
    (folder / "metrics.csv").write_text("epoch,step,loss\n0,1,0.5\n")
    ctx = CrawlContext.for_root(tmp_path, folder)
    ctx.enclosing = (("hydra", job),)
    (run,) = of_type(list(LightningCrawler().crawl(ctx.unit, ctx)), Run)
    assert run.parent_run_id == "hydra:outputs/2026-01-01/10-00-00"


def test_secret_hparams_are_redacted(tmp_path: Path) -> None:
    folder = make_version(tmp_path, hparams="lr: 0.1\nwandb_api_key: abc123\n")
    records, _ = crawl_unit(LightningCrawler(), tmp_path, folder)
    params = {p.key: p.value for p in map(redact_record, of_type(records, Param))}
    assert params == {"lr": "0.1", "wandb_api_key": REDACTED}


# --- folders written by lightning 2.6.6 itself (tests/fixtures/lightning/make_lightning.py) -------

FIXTURE = Path(__file__).parent.parent / "fixtures" / "lightning" / "logs"
LOGGED = json.loads((FIXTURE / "truth.json").read_text())


@pytest.fixture(scope="module")
def fixture_catalog(tmp_path_factory) -> Path:
    from helpers import crawl

    root = tmp_path_factory.mktemp("lightning") / "logs"
    shutil.copytree(FIXTURE, root)
    db = root.parent / "catalog.duckdb"
    crawl(root, db)
    return db


def query(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    from helpers import rows

    return rows(db, sql, params)


@pytest.mark.parametrize("case", ["csv_named_string", "csv_empty_name", "tb_sub_dir", "tb_nested", "multi"])
def test_every_logger_dir_is_one_run_with_lightnings_values(fixture_catalog: Path, case: str) -> None:
    truth = LOGGED[case]
    for logger in [lg for lg in truth["loggers"] if "log_dir" in lg]:
        # TensorBoardLogger(sub_dir=...) logs below the version folder; the run is the version.
        run_dir = logger["log_dir"].removesuffix("/inner")
        run_id = f"lightning:{run_dir}"
        assert query(fixture_catalog, "SELECT source, source_run_id, experiment FROM runs WHERE run_id = ?",
                     [run_id]) == [("lightning", logger["version"] if logger["version"].startswith(("my", "v-"))
                                    else f"version_{logger['version']}",
                                    # name="" writes save_dir/version_N: on disk that is the layout of
                                    # name=<save_dir's name>, so the folder above is the experiment.
                                    logger["name"] or Path(run_dir).parent.name)]
        params = dict(query(fixture_catalog, "SELECT key, value FROM params WHERE run_id = ?", [run_id]))
        assert params == {k: str(v) for k, v in truth["hparams"].items()}
        last = dict(query(fixture_catalog, "SELECT key, arg_max(value, coalesce(step, -1)) FROM metrics "
                                           "WHERE run_id = ? GROUP BY key", [run_id]))
        for key, value in truth["logged_metrics"].items():
            assert last[key] == pytest.approx(value, rel=1e-6), (case, key)


@pytest.mark.parametrize("case", ["csv_named_string", "multi", "mlflow_only"])
def test_checkpoint_facts_equal_torch_load(fixture_catalog: Path, case: str) -> None:
    for callback in LOGGED[case]["checkpoints"]:
        for name, loaded in callback["files"].items():
            rel = f"{callback['dirpath']}/{name}"
            ((run_id, facts),) = query(fixture_catalog, "SELECT run_id, facts FROM run_artifacts WHERE path = ? "
                                                         "AND role = 'checkpoint'", [rel])
            facts = json.loads(facts) if isinstance(facts, str) else facts
            assert run_id == f"lightning:{callback['dirpath'].removesuffix('/checkpoints')}"
            assert (facts["epoch"], facts["global_step"]) == (loaded["epoch"], loaded["global_step"])
            assert facts["hyper_parameters"] == loaded["hyper_parameters"]
            for key, state in loaded["callbacks"].items():
                for field in ("monitor", "best_model_score", "current_score", "kth_value"):
                    assert facts["callbacks"][key].get(field) == state.get(field), (name, field)
    best = LOGGED[case]["checkpoints"][0]
    if best["best_model_score"] is not None:
        rel = best["best_model_path"]
        ((facts,),) = query(fixture_catalog, "SELECT facts FROM run_artifacts WHERE path = ? AND role = 'checkpoint'", [rel])
        facts = json.loads(facts) if isinstance(facts, str) else facts
        (state,) = facts["callbacks"].values()
        assert state["best_model_score"] == pytest.approx(best["best_model_score"])


def test_mlflow_logger_checkpoints_name_the_mlflow_run(fixture_catalog: Path) -> None:
    logger = LOGGED["mlflow_only"]["loggers"][0]
    ((source_run_id, experiment),) = query(
        fixture_catalog, "SELECT source_run_id, experiment FROM runs WHERE source = 'lightning' AND dir LIKE 'mlflow_only/%'")
    assert (source_run_id, experiment) == (logger["run_id"], logger["experiment_id"])
    params = dict(query(fixture_catalog, "SELECT key, value FROM params p JOIN runs r USING (run_id) "
                                         "WHERE r.source = 'lightning' AND r.dir LIKE 'mlflow_only/%'"))
    assert params == {k: str(v) for k, v in LOGGED["mlflow_only"]["hparams"].items()}


def test_run_ids_unique_and_no_stray_runs(fixture_catalog: Path) -> None:
    assert query(fixture_catalog, "SELECT run_id, count(*) FROM runs GROUP BY run_id HAVING count(*) > 1") == []
    assert query(fixture_catalog, "SELECT run_id FROM runs WHERE source IN ('tensorboard', 'generic')") == []


# --- bad input ---------------------------------------------------------------------------------


def lightning_copy(tmp_path: Path, case: str = "multi") -> Path:
    root = tmp_path / "logs"
    shutil.copytree(FIXTURE / case, root / case)
    return root


@pytest.mark.parametrize("name", ["metrics.csv", "hparams.yaml", "checkpoints"])
def test_truncated_at_a_random_byte_keeps_every_readable_value(tmp_path: Path, name: str) -> None:
    import random

    root = lightning_copy(tmp_path)
    unit = root / "multi" / "csv" / "version_0"
    target = next((unit / name).glob("*.ckpt")) if name == "checkpoints" else unit / name
    data = target.read_bytes()
    cut = random.Random(name).randrange(1, len(data) - 1)
    target.write_bytes(data[:cut])
    records, warnings = crawl_unit(LightningCrawler(), root, unit)
    assert len([r for r in records if isinstance(r, Run)]) == 1
    assert len(warnings) <= 1 and all(w.path == str(target.relative_to(root)) for w in warnings)
    if name == "metrics.csv":
        kept = data[:cut].decode().splitlines()[1:-1]
        assert len(of_type(records, Metric)) >= sum(1 for line in kept if line.strip(","))
    if name == "checkpoints":
        assert any(isinstance(r, Artifact) and r.path.endswith(target.name) for r in records)


def test_wrong_types_and_empty_files(tmp_path: Path) -> None:
    unit = tmp_path / "exp" / "v"
    (unit / "checkpoints").mkdir(parents=True)
    (unit / "hparams.yaml").write_text("- a list\n- not a mapping\n")
    (unit / "metrics.csv").write_text("epoch,step,loss\nseven,x,0.5\n1,2,[1]\n")
    (unit / "checkpoints" / "epoch=1-step=2.ckpt").write_bytes(b"")
    (unit / "results.json").write_text('{"acc": "high", "f1": [1, "x"]}')
    records, warnings = crawl_unit(LightningCrawler(), tmp_path, unit)
    assert [(m.key, m.value, m.step, m.epoch) for m in of_type(records, Metric)] == [("loss", 0.5, None, None)]
    assert sorted(w.path for w in warnings) == ["exp/v/checkpoints/epoch=1-step=2.ckpt", "exp/v/hparams.yaml",
                                                "exp/v/metrics.csv"]
    (artifact,) = [r for r in records if isinstance(r, Artifact) and r.role == "checkpoint"]
    assert artifact.facts == {"epoch": 1, "step": 2}  # the name still says what it is
    assert {t.key: t.value for t in records if type(t).__name__ == "Tag"} == {"acc": "high", "f1": '[1, "x"]'}


def test_a_200_mb_metrics_csv_streams_in_bounded_memory(tmp_path: Path) -> None:
    import tracemalloc

    unit = tmp_path / "lightning_logs" / "version_0"
    unit.mkdir(parents=True)
    line = b"1." + b"0" * 1000 + b",1,0.25\n"  # wide epoch cells: 200 MB in few rows, quickly
    block = line * 10_000
    with open(unit / "metrics.csv", "wb") as f:
        f.write(b"epoch,step,loss\n")
        while f.tell() < 200 << 20:
            f.write(block)
    # No hparams.yaml: whole-file reads of small documents preallocate the read limit (core).
    ctx = CrawlContext.for_root(tmp_path, unit)
    tracemalloc.start()
    count = 0
    for record in LightningCrawler().crawl(unit, ctx):
        count += isinstance(record, Metric)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert count == ((200 << 20) // len(block) + 1) * 10_000
    assert peak < 32 << 20, peak
