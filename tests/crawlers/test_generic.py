"""Generic crawler: metric/param files on the real corpus, ownership rules and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import crawl_unit
from mlcrawl.crawlers.generic import GenericCrawler

from mlcrawl.crawler import CrawlContext
from mlcrawl.parsing import flatten
from mlcrawl.records import Artifact, Metric, Param, Run, Tag

CRAWLER = GenericCrawler()


def crawl(root: Path, unit: Path, **options):
    return crawl_unit(CRAWLER, root, unit, **options)


def test_dvc_metrics_match_dvc_metrics_show(corpus: Path, truth: dict) -> None:
    shown = truth["dvc"]["metrics_show"][""]["data"]
    assert shown, "TRUTH has no dvc metrics"
    for rel, entry in shown.items():
        unit = corpus / rel
        assert CRAWLER.match(unit, False), rel
        records, warnings = crawl(corpus, unit)
        assert not warnings
        rel_dir = Path(rel).parent.as_posix()
        runs = [r for r in records if isinstance(r, Run)]
        assert runs == [Run(f"folder:{rel_dir}", "generic", rel_dir, name=Path(rel_dir).name, dir=rel_dir)]
        metrics = {m.key: m.value for m in records if isinstance(m, Metric)}
        assert metrics == {k: float(v) for k, v in flatten(entry["data"])}


def test_params_yaml_matches_dvc_lock_params(corpus: Path, truth: dict) -> None:
    for pipeline in truth["dvc"]["pipelines"]:
        locked: dict[str, object] = {}
        for stage in pipeline["dvc_lock_content"]["stages"].values():
            for file, values in stage.get("params", {}).items():
                locked.update({f"{file}::{k}": v for k, v in values.items()})
        for file in {key.split("::")[0] for key in locked}:
            records, _ = crawl(corpus, corpus / file)
            params = {p.key: p.value for p in records if isinstance(p, Param)}
            assert all(p.origin == Path(file).name for p in records if isinstance(p, Param))
            for key, value in locked.items():
                if key.startswith(f"{file}::"):
                    assert yaml.safe_load(params[key.split("::")[1]]) == value


def test_every_hydra_job_metrics_file_matches_app_metrics(corpus: Path, truth: dict) -> None:
    hydra = [r for r in truth["runs"] if r["source"] == "hydra" and r.get("app_metrics")]
    assert hydra
    for run in hydra:
        records, _ = crawl(corpus, corpus / run["dir"] / "metrics.json")
        metrics = {m.key: m.value for m in records if isinstance(m, Metric)}
        expected = {k: float(v) for k, v in flatten(run["app_metrics"]) if isinstance(v, (int, float))}
        assert metrics == expected


def test_file_in_a_folder_owned_by_another_crawler_yields_nothing(corpus: Path, tmp_path: Path) -> None:
    hydra_job = next(p.parent.parent for p in corpus.glob("multirun/*/*/*/.hydra/config.yaml"))
    ctx = CrawlContext.for_root(corpus, hydra_job / "metrics.json")
    ctx.enclosing = (("dvc", corpus), ("hydra", hydra_job))
    assert list(CRAWLER.crawl(ctx.unit, ctx)) == []
    # A DVC project at the root does not own a metrics/ subfolder's files.
    ctx = CrawlContext.for_root(corpus, corpus / "metrics" / "scores.json")
    ctx.enclosing = (("dvc", corpus),)
    assert any(isinstance(r, Metric) for r in CRAWLER.crawl(ctx.unit, ctx))
    # ...but it does own params.yaml beside dvc.yaml.
    ctx = CrawlContext.for_root(corpus, corpus / "params.yaml")
    ctx.enclosing = (("dvc", corpus),)
    assert list(CRAWLER.crawl(ctx.unit, ctx)) == []


@pytest.mark.parametrize(
    ("path", "claimed"),
    [
        ("a/metrics.json", True),
        ("a/eval_results.json", True),
        ("a/val_metrics.json", True),
        ("a/scores.json", True),
        ("a/metrics/roc.yaml", True),
        ("a/params.yaml", True),
        ("a/config.yml", True),
        ("a/hparams.yaml", True),
        ("a/params.json", True),
        ("a/config.json", False),  # an HF model architecture, not run params
        ("a/_results.json", False),
        ("a/metrics.csv", False),
        ("a/eval/all_results.json", True),
    ],
)
def test_match_by_name(path: str, claimed: bool) -> None:
    assert CRAWLER.match(Path("/x") / path, False) is claimed
    assert CRAWLER.match(Path("/x") / path, True) is False


def test_nested_metrics_histories_and_tags(tmp_path: Path) -> None:
    unit = tmp_path / "exp" / "results.json"
    unit.parent.mkdir()
    unit.write_text(
        '{"test": {"acc": 0.9, "f1": 1}, "loss_curve": [3, 2.5, 2], "model": "resnet", '
        '"ok": true, "labels": ["a", "b"], "nothing": null, "big": 1e400}'
    )
    records, warnings = crawl(tmp_path, unit)
    assert not warnings
    metrics = [(m.key, m.value, m.step) for m in records if isinstance(m, Metric)]
    assert metrics == [
        ("test.acc", 0.9, None),
        ("test.f1", 1.0, None),
        ("loss_curve", 3.0, 0),
        ("loss_curve", 2.5, 1),
        ("loss_curve", 2.0, 2),
        ("big", float("inf"), None),
    ]
    tags = {t.key: t.value for t in records if isinstance(t, Tag)}
    assert tags == {"model": "resnet", "ok": "true", "labels": '["a", "b"]', "nothing": None}


def test_top_level_list_is_a_step_history(tmp_path: Path) -> None:
    unit = tmp_path / "train_metrics.json"
    unit.write_text('[{"step": 10, "epoch": 1, "loss": 0.5}, {"loss": 0.25, "note": "x"}]')
    records, _ = crawl(tmp_path, unit)
    metrics = [(m.key, m.value, m.step, m.epoch) for m in records if isinstance(m, Metric)]
    assert metrics == [("epoch", 1.0, 10, 1), ("loss", 0.5, 10, 1), ("loss", 0.25, 1, None)]
    assert records[0] == Run("folder:.", "generic", ".", dir=".")


def test_corrupt_json_raises_with_path(tmp_path: Path) -> None:
    unit = tmp_path / "run" / "metrics.json"
    unit.parent.mkdir()
    unit.write_text('{"acc": 0.9,')
    records, warnings = crawl(tmp_path, unit)
    assert [type(r) for r in records] == [Run]  # the run is kept, the document is one error row
    assert [(w.severity, "run/metrics.json: not valid JSON" in w.message) for w in warnings] == [("error", True)]


def test_corrupt_yaml_raises_with_path(tmp_path: Path) -> None:
    (tmp_path / "model.pt").write_bytes(b"")  # an output: params beside it are a run's
    unit = tmp_path / "params.yaml"
    unit.write_text("a: [1, 2\nb: {")
    records, warnings = crawl(tmp_path, unit)
    assert [type(r) for r in records] == [Run]  # the run is kept, the document is one error row
    assert [(w.severity, "params.yaml: not valid YAML" in w.message) for w in warnings] == [("error", True)]


def test_python_object_yaml_tags_are_read_as_data_never_constructed(tmp_path: Path) -> None:
    (tmp_path / "model.pt").write_bytes(b"")  # an output: params beside it are a run's
    unit = tmp_path / "hparams.yaml"
    unit.write_text(
        "optimizer: !!python/object:argparse.Namespace\n  lr: 0.01\n  momentum: 0.9\n"
        "act: !!python/name:os.system ''\n"
        "shape: !!python/tuple [3, 4]\n"
    )
    records, _ = crawl(tmp_path, unit)
    params = {p.key: p.value for p in records if isinstance(p, Param)}
    assert params == {"optimizer.lr": "0.01", "optimizer.momentum": "0.9", "act": "", "shape": "[3, 4]"}


def test_non_mapping_documents_warn_and_keep_the_run(tmp_path: Path) -> None:
    (tmp_path / "train.log").write_text("done\n")
    for name, text in (("params.yaml", "- 1\n- 2\n"), ("metrics.json", '"done"')):
        unit = tmp_path / name
        unit.write_text(text)
        records, warnings = crawl(tmp_path, unit)
        assert [type(r) for r in records] == [Run, Artifact]
        assert len(warnings) == 1 and "not a mapping" in warnings[0].message


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    unit = tmp_path / "metrics.json"
    unit.write_text('{"a": ' + "1" * 200 + "}")
    records, warnings = crawl(tmp_path, unit, max_bytes=100)
    assert [type(r) for r in records] == [Run]  # the run is kept, the document is one error row
    assert [(w.severity, "max_bytes=100" in w.message) for w in warnings] == [("error", True)]


def test_not_utf8_raises(tmp_path: Path) -> None:
    (tmp_path / "model.pt").write_bytes(b"")  # an output: params beside it are a run's
    unit = tmp_path / "config.yaml"
    unit.write_bytes(b"name: caf\xe9\n")
    records, warnings = crawl(tmp_path, unit)
    assert [type(r) for r in records] == [Run]  # the run is kept, the document is one error row
    assert [(w.severity, "not UTF-8" in w.message) for w in warnings] == [("error", True)]


def test_recursive_yaml_alias_raises(tmp_path: Path) -> None:
    (tmp_path / "model.pt").write_bytes(b"")  # an output: params beside it are a run's
    unit = tmp_path / "params.yaml"
    unit.write_text("a: &a\n  x: *a\n")
    records, warnings = crawl(tmp_path, unit)
    assert [type(r) for r in records] == [Run]  # the run is kept, the document is one error row
    assert [(w.severity, "recursive document" in w.message) for w in warnings] == [("error", True)]


def test_yaml_alias_bomb_is_bounded(tmp_path: Path) -> None:
    levels = ["l0: &l0 {a: 1, b: 2}"]
    for i in range(1, 8):  # 2 * 10**7 leaves once expanded
        refs = ", ".join(f"k{j}: *l{i - 1}" for j in range(10))
        levels.append(f"l{i}: &l{i} {{{refs}}}")
    unit = tmp_path / "metrics.yaml"
    unit.write_text("\n".join(levels) + "\n")
    records, warnings = crawl(tmp_path, unit)
    assert [type(r) for r in records] == [Run]  # the loader refuses the expansion: one error row
    assert [(w.severity, "alias bomb" in w.message) for w in warnings] == [("error", True)]


def test_long_or_circular_list_values_are_skipped_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "model.pt").write_bytes(b"")  # an output: params beside it are a run's
    unit = tmp_path / "config.yaml"
    unit.write_text("layers: [" + ", ".join(["'wide-layer-name'"] * 5000) + "]\nlr: 0.1\n")
    records, warnings = crawl(tmp_path, unit)
    assert {p.key: p.value for p in records if isinstance(p, Param)} == {"lr": "0.1"}
    assert [w.message.split(" is ")[0] for w in warnings] == ["value of 'layers'"]


# --- evidence before a run, documents inside another crawler's run folder -----------------------


def test_a_lone_config_file_in_a_source_tree_is_not_a_run(tmp_path: Path) -> None:
    for name in ("config.yaml", "params.yaml", "hparams.yaml"):
        unit = tmp_path / "src" / name
        unit.parent.mkdir(exist_ok=True)
        unit.write_text("lr: 0.1\n")
        (tmp_path / "src" / "train.py").write_text("print(1)\n")
        assert crawl(tmp_path, unit) == ([], [])
    (tmp_path / "src" / "model.ckpt").write_bytes(b"")  # outputs beside it: now a run's params
    records, _ = crawl(tmp_path, tmp_path / "src" / "config.yaml")  # first by name: it yields the Run
    assert [type(r) for r in records][:1] == [Run] and any(isinstance(r, Param) for r in records)
    records, _ = crawl(tmp_path, tmp_path / "src" / "params.yaml")
    assert {r.run_id for r in records} == {"folder:src"} and not any(isinstance(r, Run) for r in records)


def test_one_run_row_per_folder(tmp_path: Path) -> None:
    for name in ("metrics.json", "params.yaml", "results.json"):
        (tmp_path / "run" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "run" / name).write_text('{"a": 1}')
    runs = [r for name in ("metrics.json", "params.yaml", "results.json")
            for r in crawl(tmp_path, tmp_path / "run" / name)[0] if isinstance(r, Run)]
    assert [r.run_id for r in runs] == ["folder:run"]


def test_documents_below_a_run_folder_join_its_run_with_their_origin(tmp_path: Path) -> None:
    job = tmp_path / "outputs" / "job"
    (job / "eval").mkdir(parents=True)
    (job / "eval" / "results.json").write_text('{"acc": 0.9}')
    (job / "eval" / "params.yaml").write_text("k: 3\n")
    (job / ".hydra").mkdir()
    (job / ".hydra" / "config.yaml").write_text("lr: 1\n")
    for name, expected in (("results.json", [("acc", 0.9)]), ("params.yaml", [("k", "3")])):
        ctx = CrawlContext.for_root(tmp_path, job / "eval" / name)
        ctx.enclosing = (("dvc", tmp_path), ("hydra", job))
        ctx.enclosing_runs = ((job, "hydra:outputs/job"),)  # what the core asks hydra's folder_run_id
        records = list(CRAWLER.crawl(ctx.unit, ctx))
        assert not any(isinstance(r, Run) for r in records)
        assert {r.run_id for r in records} == {"hydra:outputs/job"}
        values = [(r.key, r.value) for r in records if isinstance(r, (Metric, Param))]
        assert values == expected
        assert all(r.origin == f"eval/{name}" for r in records if isinstance(r, Param))
        assert [r.path for r in records if isinstance(r, Artifact)] == [f"outputs/job/eval/{name}"]
    ctx = CrawlContext.for_root(tmp_path, job / ".hydra" / "config.yaml")
    ctx.enclosing = (("hydra", job),)
    ctx.enclosing_runs = ((job, "hydra:outputs/job"),)
    assert list(CRAWLER.crawl(ctx.unit, ctx)) == []  # the tool's own bookkeeping


def test_run_ids_unique_over_every_corpus(corpus: Path, tmp_path: Path) -> None:
    from helpers import crawl as full_crawl
    from helpers import rows

    fixtures = Path(__file__).parent.parent / "fixtures"
    for number, root in enumerate([corpus, fixtures]):
        db = tmp_path / f"c{number}.duckdb"
        full_crawl(root, db)
        assert rows(db, "SELECT run_id, count(*) FROM runs GROUP BY run_id HAVING count(*) > 1") == []
        # no run made of a lone configuration file
        lone = rows(db, "SELECT dir FROM runs WHERE source = 'generic'")
        for (rel,) in lone:
            names = {p.name for p in (root / rel).iterdir()}
            assert any(n.startswith(("metrics", "results", "scores")) or n.endswith(("_metrics.json", "_results.json"))
                       or "." + n.rsplit(".", 1)[-1] in (".ckpt", ".pt", ".pth", ".log", ".pkl", ".bin", ".safetensors")
                       for n in names) or Path(rel).name == "metrics", rel
