"""Hydra crawler: every Hydra run of TRUTH.json, its sweep, plus damaged folders in tmp_path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import crawl_unit
from mlcrawl.crawlers.hydra import HydraCrawler

from mlcrawl.crawler import CrawlContext
from mlcrawl.parsing import flatten
from mlcrawl.records import Artifact, Metric, Param, Run, Tag
from mlcrawl.secrets import REDACTED, redact_record


def of_type(records: list, cls: type) -> list:
    return [r for r in records if isinstance(r, cls)]


def hydra_truth(truth: dict) -> list[dict]:
    runs = [r for r in truth["runs"] if r["source"] == "hydra"]
    assert runs, "TRUTH.json has no hydra runs"
    return runs


def as_text(value: object) -> str | None:
    return value if isinstance(value, str) or value is None else json.dumps(value)


def test_claims_run_folders_and_sweep_roots() -> None:
    crawler = HydraCrawler()
    assert crawler.match_folder(Path("outputs/2026-01-01/10-00-00"), frozenset({".hydra", "a.log"}))
    assert crawler.match_folder(Path("multirun/2026-01-01/10-00-00"), frozenset({"multirun.yaml", "0"}))
    assert not crawler.match_folder(Path("conf"), frozenset({"config.yaml"}))


def test_every_truth_run(corpus: Path, truth: dict) -> None:
    for expected in hydra_truth(truth):
        records, warnings = crawl_unit(HydraCrawler(), corpus, corpus / expected["dir"])
        assert warnings == []
        run_id = f"hydra:{expected['dir']}"
        (run,) = of_type(records, Run)
        assert (run.run_id, run.source, run.dir) == (run_id, "hydra", expected["dir"])
        assert run.experiment == expected["job_name"]

        params = {p.key: p for p in of_type(records, Param)}
        assert {k: p.value for k, p in params.items()} == {
            k: as_text(v) for k, v in flatten(expected["config"])}
        overridden = {o.split("=", 1)[0] for o in expected["task_overrides"]}
        assert {k for k, p in params.items() if p.origin == "override"} == overridden

        tags = {t.key: t.value for t in of_type(records, Tag)}
        assert [tags[f"override.{i}"] for i in range(len(expected["overrides_yaml"]))] == \
            expected["overrides_yaml"]
        assert not any(k == f"override.{len(expected['overrides_yaml'])}" for k in tags)
        assert tags["hydra.mode"] == expected["mode"]
        assert tags["hydra.job.name"] == expected["job_name"]
        assert tags.get("hydra.job.num") == (None if expected["job_num"] == "???"
                                             else str(expected["job_num"]))
        assert tags["hydra.job.override_dirname"] == expected["override_dirname"]
        assert tags["hydra.runtime.version"] == expected["hydra_version"]
        assert tags["hydra.runtime.output_dir"].endswith("/" + expected["runtime_output_dir"])
        assert tags["hydra.runtime.cwd_local"] == expected["runtime_cwd"]
        assert {k.removeprefix("hydra.runtime.choices."): v for k, v in tags.items()
                if k.startswith("hydra.runtime.choices.")} == expected["choices"]

        metrics = {m.key: m.value for m in of_type(records, Metric)}
        assert metrics == expected["app_metrics"]
        check_files(records, expected)
        check_sweep(run, expected)


def check_files(records: list, expected: dict) -> None:
    roles = {a.path: a.role for a in of_type(records, Artifact)}
    hydra_files = {p: r for p, r in roles.items() if "/.hydra/" in p}
    assert set(hydra_files.values()) == {"config"} and len(hydra_files) == 3
    others = {p: r for p, r in roles.items() if p not in hydra_files}
    assert set(others) == set(expected["files"])
    assert others[f"{expected['dir']}/{expected['job_name']}.log"] == "log"
    assert {r for p, r in others.items() if not p.endswith(".log")} == {"output"}


def check_sweep(run: Run, expected: dict) -> None:
    if expected["mode"] == "RUN":
        assert run.parent_run_id is None and run.group is None
        return
    sweep_dir = expected["multirun_yaml"].rsplit("/", 1)[0]
    assert run.group == sweep_dir
    assert run.parent_run_id == f"hydra:{sweep_dir}"


def test_sweep_root_is_the_parent_run(corpus: Path, truth: dict) -> None:
    sweeps = {r["multirun_yaml"] for r in hydra_truth(truth) if r["mode"] == "MULTIRUN"}
    assert sweeps
    for multirun_yaml in sweeps:
        sweep_dir = multirun_yaml.rsplit("/", 1)[0]
        jobs = [r for r in hydra_truth(truth) if r.get("multirun_yaml") == multirun_yaml]
        records, warnings = crawl_unit(HydraCrawler(), corpus, corpus / sweep_dir)
        assert warnings == []
        (run,) = of_type(records, Run)
        assert (run.run_id, run.group, run.parent_run_id) == (f"hydra:{sweep_dir}", None, None)
        assert run.experiment == jobs[0]["job_name"]
        tags = {t.key: t.value for t in of_type(records, Tag)}
        assert tags["hydra.mode"] == "MULTIRUN"
        assert "hydra.job.num" not in tags  # "???" in multirun.yaml: not set
        # The sweep's overrides list every value of each swept key that its jobs received.
        sweep_overrides = [v for k, v in sorted(tags.items()) if k.startswith("override.")]
        swept = {o.split("=", 1)[0]: set(o.split("=", 1)[1].split(",")) for o in sweep_overrides}
        for job in jobs:
            for override in job["task_overrides"]:
                key, value = override.split("=", 1)
                assert value in swept[key]
        assert {a.path: a.role for a in of_type(records, Artifact)} == {multirun_yaml: "config"}
        assert of_type(records, Param) == []


def copy_run(corpus: Path, truth: dict, tmp_path: Path) -> tuple[Path, dict]:
    expected = next(r for r in hydra_truth(truth) if r["mode"] == "RUN")
    folder = tmp_path / "outputs" / "run"
    shutil.copytree(corpus / expected["dir"], folder)
    return folder, expected


def test_folder_missing_config_yaml(tmp_path: Path, corpus: Path, truth: dict) -> None:
    folder, expected = copy_run(corpus, truth, tmp_path)
    (folder / ".hydra" / "config.yaml").unlink()
    records, warnings = crawl_unit(HydraCrawler(), tmp_path, folder)
    assert [(w.error_type, w.path) for w in warnings] == [
        ("missing_file", "outputs/run/.hydra/config.yaml")]
    assert of_type(records, Param) == []
    (run,) = of_type(records, Run)
    assert run.experiment == expected["job_name"]
    tags = {t.key: t.value for t in of_type(records, Tag)}
    assert tags["hydra.mode"] == expected["mode"]
    assert {m.key for m in of_type(records, Metric)} == set(expected["app_metrics"])


def test_only_config_yaml(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text(
        "lr: 0.1\nmodel: !!python/object:builtins.dict {depth: 3}\n")
    records, warnings = crawl_unit(HydraCrawler(), tmp_path, folder)
    assert {p.key: p.value for p in of_type(records, Param)} == {"lr": "0.1", "model.depth": "3"}
    assert sorted(w.error_type for w in warnings) == ["missing_file", "missing_file"]
    assert of_type(records, Run)[0].experiment is None


def test_damaged_yaml_and_app_json(tmp_path: Path, corpus: Path, truth: dict) -> None:
    folder, _ = copy_run(corpus, truth, tmp_path)
    (folder / ".hydra" / "overrides.yaml").write_text("- a=1\n- [b\n")
    (folder / "history.json").write_text(json.dumps(
        [{"epoch": 0, "step": 10, "loss": 0.5, "note": "x"}, {"epoch": 1, "loss": 0.25}]))
    (folder / "broken.json").write_text('{"acc": 0.')
    (folder / "ckpt").mkdir()
    (folder / "ckpt" / "model.bin").write_bytes(b"\0")
    records, warnings = crawl_unit(HydraCrawler(), tmp_path, folder)
    assert sorted(w.error_type for w in warnings) == ["bad_json", "bad_yaml"]
    history = sorted((m.step, m.epoch, m.value) for m in of_type(records, Metric) if m.key == "loss")
    assert history == [(1, 1, 0.25), (10, 0, 0.5)]
    roles = {a.path: a.role for a in of_type(records, Artifact)}
    assert roles["outputs/run/ckpt/model.bin"] == roles["outputs/run/broken.json"] == "output"
    assert not any(t.key.startswith("override.") for t in of_type(records, Tag))


def test_sweep_found_through_enclosing_units(tmp_path: Path, corpus: Path, truth: dict) -> None:
    """Jobs nested deeper than the default subdir find their sweep through the runner's units."""
    job_truth = next(r for r in hydra_truth(truth) if r["mode"] == "MULTIRUN")
    sweep = tmp_path / "sweep"
    job = sweep / "a" / "b" / "c" / "0"
    shutil.copytree(corpus / job_truth["dir"], job)
    shutil.copy(corpus / job_truth["multirun_yaml"], sweep)
    ctx = CrawlContext.for_root(tmp_path, job)
    assert of_type(list(HydraCrawler().crawl(ctx.unit, ctx)), Run)[0].parent_run_id is None
    ctx = CrawlContext.for_root(tmp_path, job)
    ctx.enclosing = (("hydra", sweep), ("lightning", sweep / "a"))
    (run,) = of_type(list(HydraCrawler().crawl(ctx.unit, ctx)), Run)
    assert (run.parent_run_id, run.group) == ("hydra:sweep", "sweep")


def test_secret_config_keys_are_redacted(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text("db:\n  password: hunter2\n  host: h\n")
    (folder / ".hydra" / "overrides.yaml").write_text("- db.password=hunter2\n- lr=1,2\n")
    (folder / ".hydra" / "hydra.yaml").write_text(
        "hydra:\n  job:\n    override_dirname: db.password=hunter2,lr=1,2\n")
    records, _ = crawl_unit(HydraCrawler(), tmp_path, folder)
    params = {p.key: p.value for p in map(redact_record, of_type(records, Param))}
    assert params == {"db.password": REDACTED, "db.host": "h"}
    tags = {t.key: t.value for t in map(redact_record, of_type(records, Tag))}
    assert tags["override.0"] == f"db.password={REDACTED}"
    assert tags["override.1"] == "lr=1,2"
    assert tags["hydra.job.override_dirname"] == f"db.password={REDACTED},lr=1,2"
    assert "hunter2" not in repr([redact_record(r) for r in records])
