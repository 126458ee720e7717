"""Paths resolve from the working directory the program had when it opened them: os.chdir and %cd
are followed in statement and cell order; a chdir that does not fold leaves paths unguessed."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import crawl, make_tree, rows


def notebook(*sources: str) -> str:
    cells = [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [],
              "source": s} for i, s in enumerate(sources)]
    return json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def references(root: Path, tmp_path: Path, source: str) -> list[tuple]:
    db = tmp_path / "c.duckdb"
    crawl(root, db)
    return rows(db, "SELECT raw, resolved_path, direction, evidence LIKE '%chdir%' FROM \"references\" "
                    "WHERE source_path = ? ORDER BY cell, line", [source])


def test_chdir_and_cd_move_later_paths(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "p", {
        "data/x.csv": "a\n1\n", "models/.keep": "",
        "nb/train.ipynb": notebook("import os\nimport pandas as pd\ndf = pd.read_csv('../data/x.csv')",
                                   "os.chdir('../models')\nopen('m.bin', 'wb').write(b'1')",
                                   "%cd ../data\ndf.to_csv('y.csv')"),
    })
    assert references(root, tmp_path, "nb/train.ipynb") == [
        ("../data/x.csv", "data/x.csv", "read", False),
        ("m.bin", "models/m.bin", "write", True),
        ("y.csv", "data/y.csv", "write", True)]


def test_script_chdir_then_relative_paths(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "p", {
        "src/run.py": "import os\nos.chdir(os.path.join('..', 'out'))\nwith open('log.txt', 'w') as f:\n"
                      "    f.write('x')\n",
        "out/.keep": ""})
    assert references(root, tmp_path, "src/run.py") == [("log.txt", "out/log.txt", "write", True)]


def test_unknown_chdir_is_said_not_guessed(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "p", {
        "run.py": "import os, sys\nos.chdir(sys.argv[1])\nopen('z.txt', 'w')\n"})
    db = tmp_path / "c.duckdb"
    crawl(root, db)
    assert rows(db, "SELECT raw, resolved_path, evidence FROM \"references\"") == [
        ("z.txt", None, "line 3 (cwd unknown after chdir): open")]
