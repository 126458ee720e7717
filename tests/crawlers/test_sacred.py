"""Sacred crawler: every Sacred run of TRUTH.json, plus damaged run folders built in tmp_path."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from conftest import crawl_unit
from mlcrawl.crawlers.sacred import SacredCrawler

from mlcrawl.records import Artifact, Edge, Metric, Param, Run, Tag
from mlcrawl.secrets import REDACTED, redact_record

STATUS = {"COMPLETED": "FINISHED", "FAILED": "FAILED", "INTERRUPTED": "KILLED",
          "RUNNING": "RUNNING", "QUEUED": "SCHEDULED"}


def of_type(records: list, cls: type) -> list:
    return [r for r in records if isinstance(r, cls)]


def sacred_truth(truth: dict) -> list[dict]:
    runs = [r for r in truth["runs"] if r["source"] == "sacred"]
    assert runs, "TRUTH.json has no sacred runs"
    return runs


def test_claims_run_folders() -> None:
    crawler = SacredCrawler()
    assert crawler.match_folder(Path("runs/7"), frozenset({"run.json", "config.json", "cout.txt"}))
    assert not crawler.match_folder(Path("x"), frozenset({"run.json"}))
    assert not crawler.match_folder(Path("runs/_sources"), frozenset({"a_0123.py"}))


def test_every_truth_run(corpus: Path, truth: dict) -> None:
    for expected in sacred_truth(truth):
        records, warnings = crawl_unit(SacredCrawler(), corpus, corpus / expected["dir"])
        assert warnings == []
        run_id = f"sacred:{expected['dir']}"
        (run,) = of_type(records, Run)
        assert (run.run_id, run.source_run_id, run.dir) == (run_id, expected["run_id"], expected["dir"])
        assert run.experiment == expected["experiment"]
        assert run.status == STATUS[expected["status"]]
        assert run.start_time.isoformat() == expected["start_time"] + "+00:00"
        assert run.end_time.isoformat() == expected["stop_time"] + "+00:00"

        params = {p.key: p for p in of_type(records, Param)}
        assert {k: p.value for k, p in params.items()} == {
            k: v if isinstance(v, str) else json.dumps(v) for k, v in expected["config"].items()}
        assert {k for k, p in params.items() if p.origin == "config_update"} == set(
            expected["config_updates"])

        metrics = of_type(records, Metric)
        assert Counter(m.key for m in metrics) == expected["metric_history_len"]
        for key, last in expected["metrics_latest"].items():
            series = [m for m in metrics if m.key == key]
            assert series[-1].value == last
            assert [m.step for m in series] == list(range(len(series)))
            assert all(m.timestamp is not None for m in series)

        tags = {t.key: t.value for t in of_type(records, Tag)}
        assert tags["sacred.status"] == expected["status"]
        assert ("sacred.fail_trace" in tags) == expected["has_fail_trace"]
        assert tags.get("sacred.result") == (None if expected["result"] is None
                                             else json.dumps(expected["result"]))
        assert tags["sacred.experiment.mainfile"] == expected["mainfile"]
        assert tags["sacred.host.hostname"]
        check_files(records, expected, run_id)


def check_files(records: list, expected: dict, run_id: str) -> None:
    artifacts = {(a.path, a.role) for a in of_type(records, Artifact)}
    run_dir = expected["dir"]
    observer = expected["observer_dir"]
    want = {(f"{run_dir}/{name}", "artifact") for name in expected["artifacts"]}
    for original, stored in expected["resources"]:
        want |= {(original, "resource"), (stored, "resource")}
    want |= {(f"{observer}/{stored}", "source") for _, stored in expected["sources"]}
    if "cout.txt" in expected["files"]:
        want.add((f"{run_dir}/cout.txt", "log"))
    assert artifacts == want
    edges = {(e.src, e.dst, e.relation) for e in of_type(records, Edge)}
    assert edges == (
        {(run_id, f"{run_dir}/{name}", "sacred_artifact") for name in expected["artifacts"]}
        | {(original, run_id, "sacred_resource") for original, _ in expected["resources"]}
        | {(f"{expected['base_dir']}/{name}", run_id, "sacred_source")
           for name, _ in expected["sources"]}
    )


def test_declared_edges_match_truth_lineage(corpus: Path, truth: dict) -> None:
    """The corpus's lineage edges of the sacred_* relations, with run folders as run ids."""
    found = set()
    for expected in sacred_truth(truth):
        records, _ = crawl_unit(SacredCrawler(), corpus, corpus / expected["dir"])
        for edge in of_type(records, Edge):
            src = edge.src.removeprefix("sacred:") if edge.src_type == "run" else edge.src
            dst = edge.dst.removeprefix("sacred:") if edge.dst_type == "run" else edge.dst
            found.add((src, dst, edge.relation))
    want = {(e["from"], e["to"], e["relation"]) for e in truth["lineage"]
            if e.get("relation", "").startswith("sacred_")}
    assert found == want


def make_observer(tmp_path: Path, run_json: dict | str, **side_files: str) -> Path:
    run = tmp_path / "share" / "team" / "proj" / "runs" / "4"
    run.mkdir(parents=True)
    text = run_json if isinstance(run_json, str) else json.dumps(run_json)
    (run / "run.json").write_text(text)
    (run / "config.json").write_text(side_files.pop("config", '{"seed": 1}'))
    for name, content in side_files.items():
        (run / name.replace("_", ".")).write_text(content)
    return run


def test_truncated_run_json_is_a_clear_error(tmp_path: Path, corpus: Path) -> None:
    text = (corpus / "runs" / "1" / "run.json").read_text()
    run = make_observer(tmp_path, text[: len(text) // 2])
    with pytest.raises(ValueError, match=r"share/team/proj/runs/4/run\.json.*not valid JSON"):
        crawl_unit(SacredCrawler(), tmp_path, run)


def test_run_json_that_is_not_an_object(tmp_path: Path) -> None:
    run = make_observer(tmp_path, "[1, 2]")
    with pytest.raises(ValueError, match="run.json holds a list"):
        crawl_unit(SacredCrawler(), tmp_path, run)


def test_foreign_paths_map_into_a_moved_project(tmp_path: Path) -> None:
    """The project ran at /srv/x/proj and now sits at <root>/share/team/proj."""
    project = tmp_path / "share" / "team" / "proj"
    run = make_observer(tmp_path, {
        "status": "RUNNING",
        "experiment": {"name": "e", "base_dir": "/srv/x/proj/src",
                       "sources": [["train.py", "_sources/train_0123456789abcdef0123456789abcdef.py"]],
                       "repositories": [{"url": "git@host:me/proj.git", "commit": "abc123",
                                         "dirty": True}]},
        "resources": [["/srv/x/proj/data/in.csv",
                       "/srv/x/proj/runs/_resources/in_fedcba9876543210fedcba9876543210.csv"],
                      ["/elsewhere/gone.csv", "runs/_resources/gone_00000000000000000000000000000000.csv"]],
        "artifacts": ["model.bin"],
    })
    (project / "src").mkdir()
    (project / "src" / "train.py").write_text("")
    (project / "data").mkdir()
    (project / "data" / "in.csv").write_text("a\n")
    for folder, name in (("_sources", "train_0123456789abcdef0123456789abcdef.py"),
                         ("_resources", "in_fedcba9876543210fedcba9876543210.csv")):
        (project / "runs" / folder).mkdir()
        (project / "runs" / folder / name).write_text("")

    records, warnings = crawl_unit(SacredCrawler(), tmp_path, run)
    run_id = "sacred:share/team/proj/runs/4"
    edges = {(e.src, e.relation, e.md5) for e in of_type(records, Edge) if e.dst == run_id}
    assert edges == {
        ("share/team/proj/src/train.py", "sacred_source", "0123456789abcdef0123456789abcdef"),
        ("share/team/proj/data/in.csv", "sacred_resource", "fedcba9876543210fedcba9876543210"),
    }
    assert {a.path for a in of_type(records, Artifact) if a.role == "resource"} == {
        "share/team/proj/data/in.csv",
        "share/team/proj/runs/_resources/in_fedcba9876543210fedcba9876543210.csv"}
    (run_record,) = of_type(records, Run)
    assert (run_record.status, run_record.git_commit) == ("RUNNING", "abc123")
    tags = {t.key: t.value for t in of_type(records, Tag)}
    assert (tags["git.url"], tags["git.dirty"]) == ("git@host:me/proj.git", "true")
    assert sorted(w.error_type for w in warnings) == ["missing_file", "unresolved_path"]


def test_damaged_side_files_keep_the_run(tmp_path: Path) -> None:
    run = make_observer(
        tmp_path, {"status": "COMPLETED", "experiment": {"name": "e"}},
        config="{not json",
        metrics_json=json.dumps({"loss": {"steps": [0, 1, 2], "timestamps": ["2026-01-01T00:00:00"],
                                          "values": [0.5, "x"]},
                                 "acc": {"steps": [0, 1], "timestamps": [None, None],
                                         "values": [0.1, None]}}),
    )
    records, warnings = crawl_unit(SacredCrawler(), tmp_path, run)
    assert of_type(records, Run)[0].status == "FINISHED"
    assert of_type(records, Param) == []
    points = [(m.key, m.step, m.value) for m in of_type(records, Metric)]
    assert points == [("loss", 0, 0.5), ("acc", 0, 0.1)]
    assert sorted(w.error_type for w in warnings) == [
        "bad_json", "bad_value", "ragged_series"]


def test_secrets_are_redacted(tmp_path: Path) -> None:
    run = make_observer(
        tmp_path, {"status": "FAILED", "experiment": {"name": "e"},
                   "host": {"ENV": {"AWS_SECRET_ACCESS_KEY": "s3cr3t"}},
                   "meta": {"options": {"UPDATE": ["api_key=s3cr3t"]},
                            "config_updates": {"api_key": "s3cr3t"}},
                   "fail_trace": ["Traceback\n", "Error: login --password=s3cr3t failed\n"]},
        config='{"api_key": "s3cr3t", "lr": 0.1}')
    records, _ = crawl_unit(SacredCrawler(), tmp_path, run)
    redacted = [redact_record(r) for r in records]
    assert "s3cr3t" not in repr(redacted)
    assert {p.key: p.value for p in of_type(redacted, Param)} == {"api_key": REDACTED, "lr": "0.1"}
