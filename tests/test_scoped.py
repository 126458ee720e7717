"""Watch batches walk only what holds the changed paths: a file's folder, or its innermost folder unit."""

from __future__ import annotations

import shutil

from helpers import make_tree, rows

from mlcrawl.catalog import Catalog
from mlcrawl.config import Job
from mlcrawl.registry import discover, select
from mlcrawl.rootcrawl import scopes_for
from mlcrawl.runner import Runner


def _tree(tmp_path):
    files = {f"other{i}/f{j}.txt": "x" for i in range(5) for j in range(20)}
    files |= {"exp/run1/.hydra/config.yaml": "lr: 0.1\n", "exp/run1/.hydra/hydra.yaml": "hydra: {}\n",
              "exp/run1/.hydra/overrides.yaml": "[]\n", "exp/run1/metrics.json": '{"acc": 0.5}',
              "exp/run1/logs/train.log": "start\n", "notes/a.txt": "a"}
    return make_tree(tmp_path / "root", files)


def _crawl(root, db, changed=None):
    return Runner(Catalog.at(db), Job(roots=(str(root),)), select(discover()), changed=changed).run()


def test_a_change_deep_in_a_run_folder_walks_that_run_only(tmp_path):
    root = _tree(tmp_path)
    db = tmp_path / "c.duckdb"
    full = _crawl(root, db)
    (root / "exp/run1/logs/train.log").write_text("start\nepoch 1\n")
    batch = _crawl(root, db, {str(root): {str(root / "exp/run1/logs/train.log")}})
    assert batch.files_changed == 1 and batch.files_seen < 10 < full.files_seen
    assert batch.files_deleted == 0
    assert rows(db, "SELECT count(*) FROM current_files")[0][0] == full.files_seen


def test_a_deleted_and_a_renamed_folder_in_one_batch(tmp_path):
    root = _tree(tmp_path)
    db = tmp_path / "c.duckdb"
    _crawl(root, db)
    shutil.rmtree(root / "other1")
    (root / "notes").rename(root / "notes-2026")
    changed = {str(root / "other1"), str(root / "notes"), str(root / "notes-2026")}
    batch = _crawl(root, db, {str(root): changed})
    assert batch.files_deleted == 20 + 1 and batch.files_new == 1
    assert rows(db, "SELECT path FROM files WHERE path LIKE 'notes%' ORDER BY 1") == [("notes-2026/a.txt",), ("notes/a.txt",)]
    assert rows(db, "SELECT count(*) FROM file_versions WHERE path = 'notes/a.txt'")[0][0] == 1  # history kept


def test_scopes_pick_the_innermost_unit_and_merge_nested_folders(tmp_path):
    root = _tree(tmp_path)
    units = {"exp/run1"}
    assert scopes_for(str(root), {str(root / "exp/run1/logs/train.log")}, units) == ["exp/run1"]
    assert scopes_for(str(root), {str(root / "other1/f1.txt"), str(root / "other1/f2.txt")}, units) == ["other1"]
    assert scopes_for(str(root), {str(root / "gone/deeper/x")}, units) == [""]  # nearest existing folder
    assert scopes_for(str(root), {str(root / "exp/run1/a"), str(root / "exp/run1/logs/b")}, units) == ["exp/run1"]
