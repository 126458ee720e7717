"""A lineage node is its name within its crawl root: the same relative path in two roots is two nodes."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import crawl, make_tree, rows, run_cli

from mlcrawl.catalog import Catalog
from mlcrawl.lineage import locate_node, walk

SCRIPT = "import pandas as pd\ndf = pd.read_csv('data/{name}.csv')\ndf.to_csv('out/result.csv')\n"


def two_roots(tmp_path: Path) -> tuple[Path, Path, Path]:
    a = make_tree(tmp_path / "a", {"train.py": SCRIPT.format(name="alpha"), "data/alpha.csv": "x\n1\n" * 50,
                                   "out/result.csv": "a\n" * 300})
    b = make_tree(tmp_path / "b", {"train.py": SCRIPT.format(name="beta"), "data/beta.csv": "y\n2\n" * 50,
                                   "out/result.csv": "b\n" * 300})
    db = tmp_path / "c.duckdb"
    crawl(a, db)
    crawl(b, db)
    return a, b, db


def test_same_path_in_two_roots_is_two_nodes(tmp_path: Path) -> None:
    a, b, db = two_roots(tmp_path)
    keys = rows(db, "SELECT root, dst_key FROM lineage WHERE dst = 'out/result.csv' AND relation = 'wrote'")
    assert len(keys) == 2 and len({k for _, k in keys}) == 2
    with Catalog.at(db).connect(read_only=True) as con:
        up_a = {h.src for h in walk(con, "out/result.csv", "up", root=str(a))}
        up_b = {h.src for h in walk(con, "out/result.csv", "up", root=str(b))}
        assert locate_node(con, str(a / "out/result.csv")) == (str(a), "out/result.csv")
        assert locate_node(con, "out/result.csv") == (None, "out/result.csv")
        # the SQL macro walks keys, so each root's upstream stays in that root
        macro = con.execute("SELECT node FROM upstream('out/result.csv') ORDER BY node").fetchall()
    assert "data/alpha.csv" in up_a and "data/beta.csv" not in up_a
    assert "data/beta.csv" in up_b and "data/alpha.csv" not in up_b
    assert ("data/alpha.csv",) in macro and ("data/beta.csv",) in macro


def test_cli_walks_the_root_of_the_path_given(tmp_path: Path) -> None:
    a, b, db = two_roots(tmp_path)
    only_a = run_cli("lineage", str(a / "out/result.csv"), "--format", "json", "--catalog", str(db))
    assert only_a.returncode == 0, only_a.stderr
    assert {e["root"] for e in json.loads(only_a.stdout)["edges"]} == {str(a)}
    both = run_cli("lineage", "out/result.csv", "--catalog", str(db))
    assert f"in {a}:" in both.stdout and f"in {b}:" in both.stdout
    assert "data/alpha.csv" in both.stdout and "data/beta.csv" in both.stdout


def test_min_confidence_drops_weak_edges(tmp_path: Path) -> None:
    a, _, db = two_roots(tmp_path)
    target = str(a / "out/result.csv")
    every = json.loads(run_cli("lineage", target, "--format", "json", "--catalog", str(db)).stdout)["edges"]
    weakest = min(e["confidence"] for e in every)
    strong = json.loads(run_cli("lineage", target, "--format", "json", "--min-confidence",
                                str(weakest + 0.01), "--catalog", str(db)).stdout)["edges"]
    assert every and all(e["confidence"] > weakest for e in strong) and len(strong) < len(every)
