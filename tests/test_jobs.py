"""Scheduled jobs: `crawl --job` under cron (lock, --json, --log-file), `mlcrawl jobs`, and the deploy examples."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "scheduling.md"
SERVICE = ROOT / "deploy" / "systemd" / "mlcrawl@.service"
TIMER = ROOT / "deploy" / "systemd" / "mlcrawl@.timer"
CRONJOB = ROOT / "deploy" / "k8s" / "cronjob.yaml"
MLCRAWL = [sys.executable, "-m", "mlcrawl"]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*MLCRAWL, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "exp" / "run1").mkdir(parents=True)
    (tmp_path / "exp" / "run1" / "params.yaml").write_text("lr: 0.1\n")
    (tmp_path / "mlcrawl.toml").write_text(
        'catalog = "cat.duckdb"\n\n[[jobs]]\nname = "nightly"\nroots = ["exp"]\n\n'
        '[[jobs]]\nname = "weekly"\nroots = ["elsewhere"]\n')
    return tmp_path


def test_cron_crawl_json_log_file_and_jobs_listing(project: Path) -> None:
    first = _run("crawl", "--job", "nightly", "--json", "--log-file", "crawls.jsonl", cwd=project)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)  # exactly one object on stdout
    assert summary["status"] == "ok" and summary["files_new"] == 1 and summary["job"] == "nightly"
    _run("crawl", "--job", "nightly", "--json", "--log-file", "crawls.jsonl", cwd=project)
    lines = (project / "crawls.jsonl").read_text().splitlines()
    assert [json.loads(line)["crawl_id"] for line in lines] == [1, 2]

    listing = _run("jobs", "--json", cwd=project)
    assert listing.returncode == 0, listing.stderr
    rows = {row["job"]: row for row in map(json.loads, listing.stdout.splitlines())}
    assert rows["nightly"]["status"] == "ok" and rows["nightly"]["kind"] == "crawl"
    assert rows["nightly"]["duration_s"] is not None and rows["nightly"]["last_run"]
    assert rows["weekly"]["status"] is None and rows["weekly"]["last_run"] is None
    table = _run("jobs", cwd=project).stdout
    assert re.search(r"^nightly\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+crawl\s+ok", table, re.M)
    assert re.search(r"^weekly\s+never", table, re.M)


def test_second_crawl_exits_2_at_once_or_waits(project: Path) -> None:
    lock_path = project / "cat.duckdb.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another crawl holds the catalog
    try:
        started = time.monotonic()
        locked = _run("crawl", "--job", "nightly", "--json", cwd=project)
        assert locked.returncode == 2 and "locked" in locked.stderr
        assert locked.stdout == ""
        assert time.monotonic() - started < 10
        waiter = subprocess.Popen([*MLCRAWL, "crawl", "--job", "nightly", "--json", "--wait", "30"], cwd=project,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        assert waiter.poll() is None
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    out, err = waiter.communicate(timeout=60)
    assert waiter.returncode == 0, err
    assert json.loads(out)["status"] == "ok"


def test_lock_of_a_killed_crawl_is_taken_over(project: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from mlcrawl.catalog import Catalog, CrawlLock; "
        "CrawlLock(Catalog.at('cat.duckdb')).acquire(); print('held', flush=True); time.sleep(60)")],
        cwd=project, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    assert _run("crawl", "--job", "nightly", cwd=project).returncode == 2
    holder.kill()  # kill -9: no cleanup ran, the lock file stays behind
    holder.wait(timeout=10)
    assert (project / "cat.duckdb.lock").exists()
    taken = _run("crawl", "--job", "nightly", "--json", cwd=project)
    assert taken.returncode == 0, taken.stderr


# -- the deploy examples ---------------------------------------------------------------------

_CRON_FIELD = r"(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*"
_CRON_LINE = re.compile(rf"^({_CRON_FIELD}\s+){{5}}\S.*$")


def _fenced(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", DOC.read_text(), re.M | re.S)


def test_crontab_lines_are_well_formed() -> None:
    blocks = _fenced("crontab")
    lines = [line for block in blocks for line in block.splitlines() if line.strip() and not line.startswith("#")]
    assert lines
    for line in lines:
        assert _CRON_LINE.match(line), line
        minute, hour, dom, month, dow = line.split()[:5]
        assert minute == "*" or 0 <= int(minute) <= 59
        assert hour == "*" or 0 <= int(hour) <= 23
        assert "mlcrawl crawl --job" in line and "--wait" in line


def test_docs_show_the_deploy_files_verbatim() -> None:
    text = DOC.read_text()
    for path in (SERVICE, TIMER, CRONJOB):
        assert path.read_text() in text, f"{path.name} in docs/scheduling.md differs from the file"


def test_kubernetes_cronjob_has_required_keys_and_shared_volumes() -> None:
    docs = [d for d in yaml.safe_load_all(CRONJOB.read_text()) if d]
    cron = next(d for d in docs if d["kind"] == "CronJob")
    assert cron["apiVersion"] == "batch/v1" and cron["metadata"]["name"]
    spec = cron["spec"]
    assert len(spec["schedule"].split()) == 5 and _CRON_LINE.match(spec["schedule"] + " x")
    assert spec["concurrencyPolicy"] == "Forbid"
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] in ("Never", "OnFailure")
    (container,) = pod["containers"]
    assert container["image"] and container["args"][:3] == ["crawl", "--job", "nightly"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in container["volumeMounts"]:
        assert mount["name"] in volumes
    claims = [v for v in volumes.values() if "persistentVolumeClaim" in v]
    assert len(claims) >= 2
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    assert "[[jobs]]" in config["data"]["mlcrawl.toml"]
    import tomllib

    from mlcrawl.config import parse_config

    parsed = parse_config(tomllib.loads(config["data"]["mlcrawl.toml"]))
    assert parsed.job("nightly").roots == ("/data/experiments",)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_units_verify(tmp_path: Path) -> None:
    binary = shutil.which("mlcrawl", path=str(Path(sys.executable).parent)) or sys.executable
    for template in (SERVICE, TIMER):
        # verify needs a concrete instance and an ExecStart binary that exists here.
        text = template.read_text().replace("/usr/local/bin:", f"{Path(binary).parent}:")
        (tmp_path / template.name.replace("@.", "@nightly.")).write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", "mlcrawl@nightly.timer", "mlcrawl@nightly.service"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    problems = [line for line in result.stderr.splitlines() if "mlcrawl@" in line]
    assert result.returncode == 0 and not problems, result.stderr
