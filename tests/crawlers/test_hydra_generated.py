"""Hydra folders written by real hydra-core 1.3.8 with non-default options, against Hydra's own objects.

tests/fixtures/hydra/generate.py made them (custom hydra.run.dir and hydra.sweep.dir/subdir
patterns, hydra.job.name, hydra.job.chdir True/False/unset, multirun from the command line and
from hydra.sweeper.params, hydra/job_logging=none, secrets in overrides, a failing job); its
Hydra callback stored what HydraConfig.get() and JobReturn reported in out/truth/*.json.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import crawl_unit
from mlcrawl.crawlers.hydra import HydraCrawler
from mlcrawl.records import Param, Run, Tag
from mlcrawl.secrets import REDACTED, redact_record

OUT = Path(__file__).resolve().parents[1] / "fixtures" / "hydra" / "out"
SECRETS = ("hunter2", "tok_abcdef123456", "s3cr3tvalue")


def jobs() -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((OUT / "truth").glob("*.json"))]


def local(foreign_output_dir: str) -> Path:
    """The job folder here: the truth holds the generating machine's absolute path."""
    return OUT / foreign_output_dir.split("/out/", 1)[1]


def crawl(folder: Path) -> list:
    records, _ = crawl_unit(HydraCrawler(), OUT, folder)
    return [redact_record(r) for r in records]


def test_the_generator_covered_every_case() -> None:
    truth = jobs()
    assert len(truth) == 8
    assert {t["status"] for t in truth} == {"COMPLETED", "FAILED"}
    assert {t["mode"] for t in truth} == {"RUN", "MULTIRUN"}
    assert {t["chdir"] for t in truth} == {None, True, False}


@pytest.mark.parametrize("job", jobs(), ids=lambda t: t["output_dir"].split("/out/", 1)[1])
def test_job_run_as_hydra_reported_it(job: dict) -> None:
    folder = local(job["output_dir"])
    records = crawl(folder)
    run = next(r for r in records if isinstance(r, Run) and r.dir == folder.relative_to(OUT).as_posix())
    tags = {t.key: t.value for t in records if isinstance(t, Tag) and t.run_id == run.run_id}
    params = {p.key: p for p in records if isinstance(p, Param) and p.run_id == run.run_id}

    assert run.experiment == job["job_name"] == tags["hydra.job.name"]
    assert tags["hydra.runtime.cwd"] == job["cwd"]
    assert tags["hydra.runtime.output_dir"] == job["output_dir"]
    if job["chdir"] is not None:
        assert tags["hydra.job.chdir"] == json.dumps(job["chdir"])
    # The start comes from the folder name (one-second patterns): at most a second or two
    # before the task started (a sweep's dir is named at its launch, before its jobs).
    task_start = datetime.fromtimestamp(job["task_start"], tz=timezone.utc)
    assert run.start_time is not None
    assert 0 <= (task_start - run.start_time).total_seconds() < 3
    has_log = (folder / f"{job['job_name']}.log").is_file()
    if has_log:
        end = datetime.fromtimestamp(job["end_time"], tz=timezone.utc)
        assert 0 <= (end - run.end_time).total_seconds() < 1
        assert run.status == {"COMPLETED": "FINISHED", "FAILED": "FAILED"}[job["status"]]
    else:
        assert run.end_time is None and run.status is None
    for override in job["overrides"]:
        key, value = override.lstrip("+").split("=", 1)
        assert params[key].origin == "override"
        assert params[key].value in (value, REDACTED)
    if job["mode"] == "MULTIRUN":
        sweep = local(job["output_dir"]).parent.relative_to(OUT).as_posix()
        assert sweep == job["sweep_dir"]
        assert run.parent_run_id == f"hydra:{sweep}" and run.group == sweep
        assert tags["hydra.job.num"] == str(job["job_num"])
    else:
        assert run.parent_run_id is None


def test_sweep_roots_start_at_their_launch() -> None:
    for sweep_dir in sorted({t["sweep_dir"] for t in jobs() if t["sweep_dir"]}):
        records = crawl(OUT / sweep_dir)
        run = next(r for r in records if isinstance(r, Run) and r.dir == sweep_dir)
        first = min(t["task_start"] for t in jobs() if t["sweep_dir"] == sweep_dir)
        assert 0 <= first - run.start_time.timestamp() < 3


def test_no_secret_of_an_override_survives() -> None:
    for folder in sorted(p.parent for p in OUT.rglob(".hydra")) + sorted(p.parent for p in OUT.rglob("multirun.yaml")):
        text = repr(crawl(folder))
        assert not any(secret in text for secret in SECRETS), folder
