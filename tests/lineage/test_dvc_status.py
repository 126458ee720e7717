"""`mlcrawl stale` against `dvc status` on DVC projects built and changed by the real DVC.

The projects under tests/fixtures/dvc_status were made by tests/lineage/make_dvc_projects.py
(dvc 3.67.1: ``dvc init``, ``dvc stage add``, ``dvc repro``, then one change each); each holds
the ``dvc status --json`` it gave.  DVC is not in the test extra (it pulls ~100 packages), so
the recorded answers are the truth here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import crawl, rows, run_cli

FIXTURES = Path(__file__).parent.parent / "fixtures" / "dvc_status"
PROJECTS = sorted(p.name for p in FIXTURES.iterdir() if (p / "dvc_status.json").is_file())


def dvc_answer(status: dict) -> set[tuple[str, str, str | None, str | None]]:
    """``dvc status --json`` as (stage, change, path, state) facts; params as ``file:key``."""
    facts = set()
    for stage, changes in status.items():
        for change in changes:
            if isinstance(change, str):
                facts.add((stage, change, None, None))
                continue
            for kind, entries in change.items():
                for path, state in entries.items():
                    if isinstance(state, dict):
                        facts |= {(stage, kind, f"{path}:{key}", value) for key, value in state.items()}
                    else:
                        facts.add((stage, kind, path, state))
    return facts


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dvc") / "projects"
    shutil.copytree(FIXTURES, root)
    db = root.parent / "c.duckdb"
    crawl(root, db)
    return db


def test_there_are_projects_of_every_kind() -> None:
    answers = {name: json.loads((FIXTURES / name / "dvc_status.json").read_text()) for name in PROJECTS}
    assert len(PROJECTS) >= 10
    assert any(a == {} for a in answers.values()) and sum(bool(a) for a in answers.values()) >= 8


@pytest.mark.parametrize("project", PROJECTS)
def test_dvc_status_view_equals_dvc_status(catalog: Path, project: str) -> None:
    truth = dvc_answer(json.loads((FIXTURES / project / "dvc_status.json").read_text()))
    prefix = f"{project}/"
    found = {(stage.removeprefix(prefix + "dvc.yaml:"), change, path.removeprefix(prefix) if path else None, state)
             for stage, change, path, state in rows(
                 catalog, "SELECT stage, change, path, state FROM dvc_status WHERE starts_with(stage, ?)", [prefix])}
    assert found == truth


def test_stale_outputs_follow_the_pipeline(catalog: Path) -> None:
    stale = rows(catalog, "SELECT output, changed_input, depth, path FROM stale "
                          "WHERE starts_with(output, 'input_changed/') ORDER BY depth")
    assert [(o, c, d) for o, c, d, _ in stale] == [
        ("input_changed/data/prepared.txt", "input_changed/data/raw.txt", 0),
        ("input_changed/model.txt", "input_changed/data/raw.txt", 1),
        ("input_changed/scores.json", "input_changed/data/raw.txt", 2)]
    assert stale[-1][3] == ["input_changed/data/raw.txt", "input_changed/data/prepared.txt",
                            "input_changed/model.txt", "input_changed/scores.json"]
    # a param the stage does not declare changed: params.yaml differs, nothing is stale
    assert rows(catalog, "SELECT count(*) FROM stale WHERE starts_with(output, 'unused_param_changed/')") == [(0,)]


def test_stale_command_exit_code_and_json(tmp_path: Path) -> None:
    for name, stale in (("clean", False), ("params_changed", True)):
        root = tmp_path / name
        shutil.copytree(FIXTURES / name, root)
        db = tmp_path / f"{name}.duckdb"
        crawl(root, db)
        quiet = run_cli("stale", "--exit-code", "--catalog", str(db))
        assert quiet.returncode == (1 if stale else 0), quiet.stderr
        assert ("nothing stale" in quiet.stdout) is not stale
        as_json = run_cli("stale", "--json", "--catalog", str(db))
        items = [json.loads(line) for line in as_json.stdout.splitlines()]
        assert as_json.returncode == 0 and bool(items) is stale
        if stale:
            assert {(i["output"], i["changed_input"], i["depth"]) for i in items} == {
                ("model.txt", "params.yaml:train.lr", 0), ("scores.json", "params.yaml:train.lr", 1)}
            assert "model.txt" in quiet.stdout and "params.yaml:train.lr" in quiet.stdout
