"""Lineage against what real programs did: tests/fixtures/traced_project, made and traced by
tests/lineage/make_traced_project.py (papermill-run notebook that changes directory, scripts run
from another folder, ``__file__``-relative paths, a loop over a literal list; truth from an audit
hook on ``open``)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from helpers import crawl, rows

from mlcrawl.catalog import Catalog

sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))
from lineage_quality import evaluate

FIXTURE = Path(__file__).parent.parent / "fixtures" / "traced_project"


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("traced") / "project"
    shutil.copytree(FIXTURE, root)
    # a byte copy made by hand, later, that no code wrote
    (root / "backup").mkdir()
    shutil.copyfile(root / "data/raw.csv", root / "backup/raw.csv")
    db = root.parent / "c.duckdb"
    crawl(root, db)
    return db


def test_precision_and_recall_against_the_trace(catalog: Path) -> None:
    truth = json.loads((FIXTURE / "TRUTH.json").read_text())["lineage"]
    with Catalog.at(catalog).connect(read_only=True) as con:
        result = evaluate(con, truth)
    assert result["missed"] == [] and result["unmatched"] == []
    assert result["recall"] >= 0.95 and result["precision"] >= 0.97
    assert set(result["recall_by_kind"]) == {"read", "write", "declared"}
    assert all(row["precision"] == 1.0 for row in result["precision_by_relation"].values())


def test_file_written_then_read_later_is_internal(catalog: Path) -> None:
    edges = rows(catalog, "SELECT src, dst, relation FROM lineage WHERE 'work/tmp.csv' IN (src, dst) ORDER BY ALL")
    assert edges == [("notebooks/train.ipynb", "work/tmp.csv", "wrote"),
                     ("notebooks/train.out.ipynb", "work/tmp.csv", "wrote")]


def test_file_relative_paths_resolve_from_the_script_not_the_cwd(catalog: Path) -> None:
    assert rows(catalog, "SELECT resolved_path, direction FROM \"references\" "
                         "WHERE source_path = 'scripts/prepare.py' ORDER BY ALL") == [
        ("data/raw.csv", "read"), ("data/test.csv", "write"), ("data/train.csv", "write")]


def test_copy_of_only_for_a_later_copy_nothing_wrote(catalog: Path) -> None:
    # train.csv, test.csv and tmp.csv hold raw.csv's bytes too, but code wrote each of them
    assert rows(catalog, "SELECT src, dst FROM lineage WHERE relation = 'copy_of'") == [
        ("data/raw.csv", "backup/raw.csv")]
