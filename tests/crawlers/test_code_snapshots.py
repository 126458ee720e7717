"""Code a run stored as a snapshot is not analysed as live code (its reads and writes did not happen there)."""

from __future__ import annotations

from pathlib import Path

from helpers import crawl, make_tree, rows

SCRIPT = "import pandas as pd\npd.read_csv('data/in.csv').to_csv('data/out.csv')\n"


def test_snapshots_are_not_live_code(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "p", {
        "train.py": SCRIPT,
        "runs/_sources/train_0123abcd.py": SCRIPT,                       # Sacred FileStorageObserver
        "mlruns/1/abc/artifacts/code/train.py": SCRIPT,                  # MLflow code artifact
        "wandb/run-20240101_000000-x1/files/code/train.py": SCRIPT,      # W&B code saving
        "data/in.csv": "a\n1\n",
        "lib/code/helpers.py": SCRIPT,                                   # a package named code is live
    })
    db = tmp_path / "c.duckdb"
    crawl(root, db)
    assert rows(db, "SELECT DISTINCT source_path FROM \"references\" ORDER BY 1") == [
        ("lib/code/helpers.py",), ("train.py",)]
