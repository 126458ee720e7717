"""HuggingfaceCrawler against the corpus's Trainer output (TRUTH.json runs of source hf_trainer)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from conftest import crawl_unit
from mlcrawl.crawlers.huggingface import HuggingfaceCrawler

from mlcrawl.parsing import to_text
from mlcrawl.records import Artifact, Edge, Metric, Param, Run, Tag
from mlcrawl.secrets import REDACTED, redact_record

CHECKPOINT = re.compile(r"checkpoint-\d+")


def by_type(records, cls):
    return [r for r in records if isinstance(r, cls)]


def trainer_runs(truth: dict) -> list[dict]:
    return [r for r in truth["runs"] if r["source"] == "hf_trainer"]


def output_dirs(truth: dict) -> list[dict]:
    """TRUTH records of Trainer output folders (checkpoint folders are part of their parent)."""
    return [r for r in trainer_runs(truth) if not CHECKPOINT.fullmatch(Path(r["dir"]).name)]


def crawl_dir(corpus: Path, rel: str):
    return crawl_unit(HuggingfaceCrawler(), corpus, corpus / rel)


def test_claims_output_folders_and_declines_checkpoint_folders(corpus, truth):
    crawler = HuggingfaceCrawler()
    for record in trainer_runs(truth):
        folder = corpus / record["dir"]
        names = frozenset(p.name for p in folder.iterdir())
        assert crawler.match_folder(folder, names) is not bool(CHECKPOINT.fullmatch(folder.name))
    assert not crawler.match_folder(corpus / "src", frozenset(p.name for p in (corpus / "src").iterdir()))


def test_run_state_history_and_config_match_truth(corpus, truth):
    assert output_dirs(truth)
    for record in output_dirs(truth):
        records, warnings = crawl_dir(corpus, record["dir"])
        assert warnings == []
        [run] = by_type(records, Run)
        assert (run.run_id, run.source, run.dir) == (
            f"hf_trainer:{record['dir']}",
            "hf_trainer",
            record["dir"],
        )
        tags = {t.key: t.value for t in by_type(records, Tag)}
        assert tags["global_step"] == to_text(record["global_step"])
        assert tags["epoch"] == to_text(record["epoch"])
        assert tags["log_history_len"] == str(record["log_history_len"])
        for key in ("best_metric", "best_model_checkpoint", "best_global_step"):
            assert tags.get(key) == to_text(record[key])
        metrics = by_type(records, Metric)
        losses = sorted((m for m in metrics if m.key == "loss"), key=lambda m: m.step)
        evals = sorted((m for m in metrics if m.key == "eval_loss"), key=lambda m: m.step)
        assert len(losses) == record["train_log_entries"] and len(evals) == record["eval_log_entries"]
        assert losses[-1].value == record["last_train_loss"] and evals[-1].value == record["last_eval_loss"]
        params = {p.key: p.value for p in by_type(records, Param)}
        assert params["model.model_type"] == record["model_type"]
        assert json.loads(params["model.architectures"]) == record["architectures"]
        assert params["model.transformers_version"] == record["transformers_version"]
        assert params["trainer.max_steps"] == str(record["max_steps"])
        assert params["trainer.logging_steps"] == str(record["logging_steps"])
        assert params["trainer.save_steps"] == str(record["save_steps"])


def test_results_files_are_metrics_at_the_final_step(corpus, truth):
    for record in output_dirs(truth):
        records, _ = crawl_dir(corpus, record["dir"])
        final = {(m.key, m.value) for m in by_type(records, Metric) if m.step == record["global_step"]}
        assert record["results"]
        for values in record["results"].values():
            assert {(k, float(v)) for k, v in values.items()} <= final


def test_files_and_checkpoints_are_artifacts_with_checkpoint_state(corpus, truth):
    for record in output_dirs(truth):
        records, _ = crawl_dir(corpus, record["dir"])
        artifacts = {a.path: a for a in by_type(records, Artifact)}
        assert {f"{record['dir']}/{name}" for name in record["files"]} <= set(artifacts)
        assert artifacts[f"{record['dir']}/training_args.bin"].facts == {"opaque_pickle": True}
        for checkpoint in trainer_runs(truth):
            if Path(checkpoint["dir"]).parent.as_posix() != record["dir"]:
                continue
            folder = artifacts[checkpoint["dir"]]
            assert folder.role == "checkpoint"
            for key in ("global_step", "epoch", "log_history_len", "best_metric", "best_global_step"):
                assert folder.facts[key] == checkpoint[key]
            inside = {
                Path(a.path).name for a in artifacts.values() if a.path.startswith(checkpoint["dir"] + "/")
            }
            assert inside == set(checkpoint["files"])


def test_checkpoint_file_edges_match_truth_lineage(corpus, truth):
    for record in output_dirs(truth):
        records, _ = crawl_dir(corpus, record["dir"])
        run_id = f"hf_trainer:{record['dir']}"
        got = {(e.evidence, e.dst) for e in by_type(records, Edge) if e.relation == "hf_checkpoint_file"}
        assert all(e.src == run_id for e in by_type(records, Edge))
        expected = {
            (e["from"], e["to"])
            for e in truth["lineage"]
            if e.get("relation") == "hf_checkpoint_file"
            and (e["from"] == record["dir"] or e["from"].startswith(record["dir"] + "/"))
        }
        assert got == expected


def test_trainer_state_that_is_not_json_warns_and_keeps_the_rest(corpus, truth, tmp_path):
    record = output_dirs(truth)[0]
    folder = tmp_path / "out"
    shutil.copytree(corpus / record["dir"], folder)
    (folder / "trainer_state.json").chmod(0o644)
    (folder / "trainer_state.json").write_text('{"log_history": [{"loss": 1.0, "st')
    records, warnings = crawl_unit(HuggingfaceCrawler(), tmp_path, folder)
    assert [w.path for w in warnings] == ["out/trainer_state.json"]
    assert "not readable JSON" in warnings[0].message
    [run] = by_type(records, Run)
    assert run.status == "FINISHED"  # all_results.json says training finished
    results = record["results"]["all_results.json"]
    assert {(m.key, m.value) for m in by_type(records, Metric)} >= {(k, float(v)) for k, v in results.items()}
    assert any(a.role == "checkpoint" for a in by_type(records, Artifact))


def test_folder_with_only_checkpoints_is_a_run_read_from_the_latest(corpus, truth, tmp_path):
    record = output_dirs(truth)[0]
    checkpoints = [r for r in trainer_runs(truth) if Path(r["dir"]).parent.as_posix() == record["dir"]]
    for checkpoint in checkpoints:
        shutil.copytree(corpus / checkpoint["dir"], tmp_path / "crashed" / Path(checkpoint["dir"]).name)
    latest = max(checkpoints, key=lambda c: c["global_step"])
    crawler = HuggingfaceCrawler()
    assert crawler.match_folder(
        tmp_path / "crashed", frozenset(p.name for p in (tmp_path / "crashed").iterdir())
    )
    records, _ = crawl_unit(crawler, tmp_path, tmp_path / "crashed")
    [run] = by_type(records, Run)
    tags = {t.key: t.value for t in by_type(records, Tag)}
    assert tags["global_step"] == str(latest["global_step"])
    assert len([m for m in by_type(records, Metric) if m.key == "loss"]) == latest["train_log_entries"]


def test_checkpoint_named_folders_of_other_tools_yield_nothing(tmp_path):
    (tmp_path / "checkpoint-3").mkdir()
    (tmp_path / "checkpoint-3" / "weights.npz").write_bytes(b"\0")
    records, warnings = crawl_unit(HuggingfaceCrawler(), tmp_path, tmp_path)
    assert (records, warnings) == ([], [])


def test_secret_trial_params_are_redacted(tmp_path):
    state = {
        "global_step": 1,
        "max_steps": 1,
        "log_history": [],
        "trial_params": {"hub_token": "hf_x", "lr": 0.1},
    }
    (tmp_path / "trainer_state.json").write_text(json.dumps(state))
    records, _ = crawl_unit(HuggingfaceCrawler(), tmp_path, tmp_path)
    params = {p.key: p.value for p in map(redact_record, by_type(records, Param))}
    assert params["hub_token"] == REDACTED and params["lr"] == "0.1"
