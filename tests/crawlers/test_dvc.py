"""DvcCrawler against the corpus's dvc.yaml/dvc.lock/.dvc files and TRUTH.json, plus bad input."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from conftest import crawl_unit
from mlcrawl.crawlers.dvc import DvcCrawler

from mlcrawl.parsing import flatten, to_text
from mlcrawl.records import Edge, Metric, Param, Run, Tag
from mlcrawl.secrets import REDACTED, redact_record

DECLARED = {"dvc_dep", "dvc_out", "dvc_params"}


def by_type(records, cls):
    return [r for r in records if isinstance(r, cls)]


def stage_nodes(pipeline: dict) -> set[str]:
    return {f"{pipeline['dvc_yaml']}:{name}" for name in pipeline["dvc_lock_content"]["stages"]}


def crawl_pipeline(corpus: Path, pipeline: dict):
    folder = corpus / Path(pipeline["dvc_yaml"]).parent
    return crawl_unit(DvcCrawler(), corpus, folder)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_claims_dvc_files_and_project_folders_only(corpus):
    crawler = DvcCrawler()
    assert crawler.match(corpus / "data/raw/iris.csv.dvc", is_dir=False)
    assert not crawler.match(corpus / ".dvc", is_dir=True)
    assert not crawler.match(corpus / "dvc.yaml", is_dir=False)
    assert crawler.match_folder(corpus, frozenset(p.name for p in corpus.iterdir()))
    assert not crawler.match_folder(corpus / "src", frozenset(p.name for p in (corpus / "src").iterdir()))


def test_every_locked_stage_is_a_finished_run_with_its_locked_params(corpus, truth):
    for pipeline in truth["dvc"]["pipelines"]:
        records, warnings = crawl_pipeline(corpus, pipeline)
        assert warnings == []
        runs = {r.run_id: r for r in by_type(records, Run)}
        assert set(runs) == {f"dvc:{node}" for node in stage_nodes(pipeline)}
        for name, locked in pipeline["dvc_lock_content"]["stages"].items():
            run_id = f"dvc:{pipeline['dvc_yaml']}:{name}"
            assert runs[run_id].status == "FINISHED" and runs[run_id].name == name
            params = {(p.key, p.value) for p in by_type(records, Param) if p.run_id == run_id}
            expected = {
                (k, to_text(v)) for values in locked.get("params", {}).values() for k, v in values.items()
            }
            assert params == expected
            tags = {t.key: t.value for t in by_type(records, Tag) if t.run_id == run_id}
            assert tags["cmd"] == locked["cmd"] and tags["locked"] == "true"


def test_declared_edges_match_truth_lineage_with_lock_md5(corpus, truth):
    for pipeline in truth["dvc"]["pipelines"]:
        nodes = stage_nodes(pipeline)
        records, _ = crawl_pipeline(corpus, pipeline)
        edges = [e for e in by_type(records, Edge) if e.relation in DECLARED]
        got = {(e.src, e.dst, e.relation) for e in edges}
        expected = {
            (e["from"], e["to"], e["relation"])
            for e in truth["lineage"]
            if e.get("relation") in DECLARED and (e["from"] in nodes or e["to"] in nodes)
        }
        assert got == expected
        for name, locked in pipeline["dvc_lock_content"]["stages"].items():
            node = f"{pipeline['dvc_yaml']}:{name}"
            for section, relation in (("deps", "dvc_dep"), ("outs", "dvc_out")):
                for item in locked.get(section, []):
                    [edge] = [
                        e
                        for e in edges
                        if e.relation == relation
                        and node in (e.src, e.dst)
                        and item["path"] in (e.src, e.dst)
                    ]
                    assert edge.md5 == item["md5"] and edge.facts["size"] == item["size"]


def test_metrics_are_the_declared_metrics_files_of_the_stage_that_writes_them(corpus, truth):
    pipelines = truth["dvc"]["pipelines"]
    records = [r for p in pipelines for r in crawl_pipeline(corpus, p)[0]]
    writer = {e.dst: f"dvc:{e.src}" for e in by_type(records, Edge) if e.relation == "dvc_out"}
    shown = truth["dvc"]["metrics_show"][""]["data"]
    assert shown
    for metrics_file, content in shown.items():
        run_id = writer[metrics_file]
        got = {(m.key, m.value) for m in by_type(records, Metric) if m.run_id == run_id}
        assert got == {(k, float(v)) for k, v in flatten(content["data"])}


def test_script_named_in_cmd_is_an_edge_to_the_stage(corpus, truth):
    for pipeline in truth["dvc"]["pipelines"]:
        records, _ = crawl_pipeline(corpus, pipeline)
        scripts = {(e.src, e.dst) for e in by_type(records, Edge) if e.relation == "dvc_cmd_script"}
        for name, stage in pipeline["dvc_yaml_content"]["stages"].items():
            script = stage["cmd"].split()[1]
            assert (script, f"{pipeline['dvc_yaml']}:{name}") in scripts


def test_dvc_files_track_their_outs_with_md5(corpus, truth):
    for tracked in truth["dvc"]["tracked_files"]:
        records, warnings = crawl_unit(DvcCrawler(), corpus, corpus / tracked["dvc_file"])
        assert warnings == []
        edges = by_type(records, Edge)
        expected = {
            (e["from"], e["to"])
            for e in truth["lineage"]
            if e.get("relation") == "dvc_tracks" and e["from"] == tracked["dvc_file"]
        }
        assert {(e.src, e.dst) for e in edges if e.relation == "dvc_tracks"} == expected
        assert sorted(e.md5 for e in edges) == sorted(o["md5"] for o in tracked["content"]["outs"])


def test_dvc_yaml_that_is_not_yaml_raises_naming_the_file(tmp_path):
    write(tmp_path, "proj/dvc.yaml", "stages:\n  train:\n    cmd: [unclosed\n")
    with pytest.raises(ValueError, match=r"proj/dvc.yaml: not valid YAML"):
        crawl_unit(DvcCrawler(), tmp_path, tmp_path / "proj")


def test_older_lock_schema_with_stages_at_the_top_level(tmp_path):
    write(
        tmp_path,
        "dvc.yaml",
        """\
        stages:
          featurize:
            cmd: python featurize.py
            deps: [raw.csv]
            params: [feat.n]
            outs: [features.csv]
    """,
    )
    write(tmp_path, "params.yaml", "feat:\n  n: 5\n")
    # DVC 1.x lock: no schema key, stage names at the top level, md5 without a hash field.
    write(
        tmp_path,
        "dvc.lock",
        """\
        featurize:
          cmd: python featurize.py
          deps:
          - path: raw.csv
            md5: 0123456789abcdef0123456789abcdef
          params:
            params.yaml:
              feat.n: 4
          outs:
          - path: features.csv
            md5: fedcba9876543210fedcba9876543210
    """,
    )
    records, warnings = crawl_unit(DvcCrawler(), tmp_path, tmp_path)
    assert warnings == []
    [run] = by_type(records, Run)
    assert (run.run_id, run.status) == ("dvc:dvc.yaml:featurize", "FINISHED")
    assert {(p.key, p.value) for p in by_type(records, Param)} == {("feat.n", "4")}
    edges = {(e.relation, e.md5, e.facts["hash"]) for e in by_type(records, Edge) if e.md5}
    assert edges == {
        ("dvc_dep", "0123456789abcdef0123456789abcdef", "md5-dos2unix"),
        ("dvc_out", "fedcba9876543210fedcba9876543210", "md5-dos2unix"),
    }


def test_lock_that_is_not_yaml_warns_and_stages_read_unlocked(tmp_path):
    write(tmp_path, "dvc.yaml", "stages:\n  a:\n    cmd: echo\n")
    write(tmp_path, "dvc.lock", "schema: '2.0'\nstages: [\n")
    records, warnings = crawl_unit(DvcCrawler(), tmp_path, tmp_path)
    assert [w.path for w in warnings] == ["dvc.lock"]
    assert by_type(records, Run)[0].status is None


def test_foreach_matrix_interpolation_wdir_and_unlocked_stages(tmp_path):
    write(
        tmp_path,
        "sub/dvc.yaml",
        """\
        vars:
          - langs: [en, fr]
        stages:
          prep:
            foreach: ${langs}
            do:
              cmd: python prep.py ${item} --lr ${train.lr}
              deps:
                - raw/${item}.txt
              outs:
                - out/${item}.csv
          split:
            foreach:
              us: {n: 1}
              eu: {n: 2}
            do:
              cmd: bash split.sh ${key} ${item.n}
          rows:
            foreach: [{a: 1}, {a: 2}]
            do:
              cmd: echo ${item.a}
          fit:
            matrix:
              model: [tree, {kind: mlp}]
              flag: [true]
            cmd: python fit.py
          eval:
            wdir: ../scripts
            cmd: python -m pkg.evaluate data.csv
            params: [train.lr]
            metrics: [../sub/scores.yaml]
    """,
    )
    write(tmp_path, "sub/params.yaml", "train:\n  lr: 0.1\n")
    write(tmp_path, "sub/scores.yaml", "val:\n  acc: 0.5\n  note: fine\n")
    write(tmp_path, "scripts/pkg/evaluate.py", "")
    write(tmp_path, "scripts/params.yaml", "train:\n  lr: 0.2\n")  # params resolve against wdir
    records, warnings = crawl_unit(DvcCrawler(), tmp_path, tmp_path / "sub")
    assert warnings == []
    runs = {r.name: r for r in by_type(records, Run)}
    assert set(runs) == {
        "prep@en",
        "prep@fr",
        "split@us",
        "split@eu",
        "rows@0",
        "rows@1",
        "fit@tree-true",
        "fit@model1-true",
        "eval",
    }
    assert runs["prep@fr"].group == "prep" and runs["eval"].group is None
    assert all(r.status is None for r in runs.values())
    tags = {(t.run_id, t.key): t.value for t in by_type(records, Tag)}
    assert tags[("dvc:sub/dvc.yaml:prep@fr", "cmd")] == "python prep.py fr --lr 0.1"
    assert tags[("dvc:sub/dvc.yaml:split@eu", "cmd")] == "bash split.sh eu 2"
    assert tags[("dvc:sub/dvc.yaml:eval", "locked")] == "false"
    edges = {(e.src, e.dst, e.relation) for e in by_type(records, Edge)}
    assert ("sub/raw/fr.txt", "sub/dvc.yaml:prep@fr", "dvc_dep") in edges
    assert ("sub/dvc.yaml:prep@en", "sub/out/en.csv", "dvc_out") in edges
    assert ("sub/prep.py", "sub/dvc.yaml:prep@en", "dvc_cmd_script") in edges
    assert ("sub/split.sh", "sub/dvc.yaml:split@us", "dvc_cmd_script") in edges
    assert ("scripts/pkg/evaluate.py", "sub/dvc.yaml:eval", "dvc_cmd_script") in edges
    assert ("scripts/params.yaml", "sub/dvc.yaml:eval", "dvc_params") in edges
    assert ("sub/dvc.yaml:eval", "sub/scores.yaml", "dvc_out") in edges
    eval_metrics = {(m.key, m.value) for m in by_type(records, Metric) if m.run_id == "dvc:sub/dvc.yaml:eval"}
    assert eval_metrics == {("val.acc", 0.5)}
    assert [(p.key, p.value) for p in by_type(records, Param) if p.run_id == "dvc:sub/dvc.yaml:eval"] == [
        ("train.lr", "0.2")
    ]


def test_unlocked_stage_params_are_the_current_values(tmp_path):
    write(tmp_path, "dvc.yaml", "stages:\n  a:\n    cmd: echo\n    params: [train.lr, {other.yaml: [k]}]\n")
    write(tmp_path, "params.yaml", "train:\n  lr: 0.3\n  epochs: 2\n")
    write(tmp_path, "other.yaml", "k: v\n")
    records, _ = crawl_unit(DvcCrawler(), tmp_path, tmp_path)
    params = {(p.key, p.value, p.origin) for p in by_type(records, Param)}
    assert params == {("train.lr", "0.3", "params.yaml"), ("other.yaml:k", "v", "other.yaml")}


def test_unresolvable_interpolation_warns_and_keeps_the_text(tmp_path):
    write(tmp_path, "dvc.yaml", "stages:\n  a:\n    cmd: run ${nope.x}\n")
    records, warnings = crawl_unit(DvcCrawler(), tmp_path, tmp_path)
    assert "nope.x" in warnings[0].message
    assert {t.value for t in by_type(records, Tag) if t.key == "cmd"} == {"run ${nope.x}"}


def test_secret_params_and_command_line_secrets_are_redacted(tmp_path):
    write(tmp_path, "dvc.yaml", "stages:\n  a:\n    cmd: python a.py --password hunter2\n")
    write(
        tmp_path,
        "dvc.lock",
        """\
        schema: '2.0'
        stages:
          a:
            cmd: python a.py --password hunter2
            params:
              params.yaml:
                hub.api_token: abc123
                lr: 0.1
    """,
    )
    records, _ = crawl_unit(DvcCrawler(), tmp_path, tmp_path)
    stored = [redact_record(r) for r in records]  # what the runner does to every record
    assert "hunter2" not in repr(records) and "abc123" not in repr(stored)
    params = {p.key: p.value for p in by_type(stored, Param)}
    assert params == {"hub.api_token": REDACTED, "lr": "0.1"}
