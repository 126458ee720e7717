"""Lineage: edges from every source, versions over re-crawls, macros, the stale view, quality vs TRUTH."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlcrawl.catalog import Catalog
from mlcrawl.cli import main
from mlcrawl.lineage import rebuild_lineage, update_lineage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from lineage_quality import evaluate  # noqa: E402

DUCKDB_CLI = Path(sys.executable).with_name("duckdb")


def crawl(root: Path, catalog: Path) -> int:
    """Crawl ``root`` into ``catalog`` and update its lineage; the crawl id."""
    result = CliRunner().invoke(main, ["crawl", str(root), "--catalog", str(catalog)])
    assert result.exit_code == 0, result.output
    with Catalog.at(catalog).connect() as con:
        crawl_id, = con.execute("SELECT max(crawl_id) FROM crawls").fetchall()[0]
        update_lineage(con, root_of(con), crawl_id)
    return crawl_id


def root_of(con) -> str:
    return con.execute("SELECT DISTINCT root FROM files").fetchall()[0][0]


def notebook(*sources: str) -> str:
    cells = [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [],
              "source": s} for i, s in enumerate(sources)]
    return json.dumps({"cells": cells, "metadata": {"kernelspec": {"name": "python3", "language": "python",
                       "display_name": "Python 3"}}, "nbformat": 4, "nbformat_minor": 5})


@pytest.fixture(scope="module")
def corpus_catalog(corpus: Path, tmp_path_factory) -> Path:
    catalog = tmp_path_factory.mktemp("lineage") / "c.duckdb"
    crawl(corpus, catalog)
    return catalog


def edges(catalog: Path, where: str = "TRUE") -> list[tuple]:
    with Catalog.at(catalog).connect(read_only=True) as con:
        return con.execute(f"SELECT src, dst, relation, src_sha256, dst_sha256, confidence, evidence "
                           f"FROM lineage WHERE {where} ORDER BY ALL").fetchall()


def test_quality_against_truth(corpus_catalog: Path, truth: dict) -> None:
    with Catalog.at(corpus_catalog).connect(read_only=True) as con:
        result = evaluate(con, truth["lineage"])
    assert result["precision"] >= 0.95, result["unmatched"]
    assert result["recall"] >= 0.9, result["missed"]


def test_each_declared_relation_is_in_the_graph(corpus_catalog: Path, truth: dict) -> None:
    declared = {t["relation"] for t in truth["lineage"] if t["kind"] == "declared"}
    with Catalog.at(corpus_catalog).connect(read_only=True) as con:
        evidence = " ".join(r[0] for r in con.execute("SELECT evidence FROM lineage").fetchall())
    # every tool relation either keeps its name in the evidence or is a run hierarchy edge
    assert {r for r in declared if f"({r})" not in evidence} <= {"mlflow_parent_run"}
    assert edges(corpus_catalog, "relation = 'parent_of'")


def test_dvc_edges_carry_the_locked_version(corpus_catalog: Path) -> None:
    with Catalog.at(corpus_catalog).connect(read_only=True) as con:
        rows = con.execute("""SELECT l.src_sha256, f.sha256 FROM lineage l JOIN files f ON f.path = l.src
                              WHERE l.evidence LIKE '%(dvc_dep)%'""").fetchall()
    assert rows and all(used == current for used, current in rows)


def test_inferred_edges_are_below_certainty_and_cite_the_code(corpus_catalog: Path) -> None:
    inferred = edges(corpus_catalog, "relation IN ('read', 'wrote')")
    assert inferred and all(0 < e[5] < 1 for e in inferred)
    assert all(":" in e[6] and ("line" in e[6]) for e in inferred)
    assert not any("(cell not run)" in e[6] for e in inferred)


def test_copies_skip_tiny_files_and_point_from_one_original(corpus_catalog: Path) -> None:
    with Catalog.at(corpus_catalog).connect(read_only=True) as con:
        rows = con.execute("""SELECT l.dst, f.size, count(*) OVER (PARTITION BY l.dst) FROM lineage l
                              JOIN files f ON f.path = l.dst WHERE relation = 'copy_of'""").fetchall()
    assert rows and all(size >= 256 and n == 1 for _, size, n in rows)


def test_macros_run_in_the_duckdb_cli(corpus_catalog: Path) -> None:
    if not DUCKDB_CLI.exists():
        pytest.skip("no duckdb CLI beside the interpreter")
    with Catalog.at(corpus_catalog).connect(read_only=True) as con:
        target = con.execute("SELECT dst FROM lineage WHERE relation = 'wrote' AND dst_type = 'file' "
                             "ORDER BY dst LIMIT 1").fetchall()[0][0]
        source = con.execute("SELECT src FROM lineage WHERE relation = 'read' ORDER BY src LIMIT 1").fetchall()[0][0]
    out = subprocess.run([str(DUCKDB_CLI), "-readonly", "-csv", str(corpus_catalog), "-c",
                          f"SELECT depth, node, len(chain) AS hops FROM upstream('{target}')", "-c",
                          f"SELECT count(*) FROM downstream('{source}')"],
                         capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    assert lines[0] == "depth,node,hops" and lines[1].startswith("1,")
    assert all(int(row.split(",")[0]) == int(row.split(",")[2]) for row in lines[1:-2])
    assert int(lines[-1]) > 0


def test_changed_input_keeps_old_version_and_is_stale(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / "data").mkdir(parents=True)
    (root / "models").mkdir()
    (root / "data" / "train.csv").write_text("a,b\n" + "1,2\n" * 100)
    (root / "models" / "m.pkl").write_bytes(b"\x80model" * 100)
    nb = root / "train.ipynb"
    nb.write_text(notebook("import pandas as pd\ndf = pd.read_csv('data/train.csv')",
                           "import joblib\njoblib.dump(df, 'models/m.pkl')"))
    catalog = tmp_path / "c.duckdb"
    crawl(root, catalog)
    (old,) = {e[3] for e in edges(catalog, "src = 'data/train.csv' AND relation = 'read'")}
    assert old is not None
    with Catalog.at(catalog).connect(read_only=True) as con:
        assert con.execute("SELECT count(*) FROM stale").fetchall()[0][0] == 0

    (root / "data" / "train.csv").write_text("a,b\n" + "3,4\n" * 100)
    later = nb.stat().st_mtime + 3600
    os.utime(root / "data" / "train.csv", (later, later))
    crawl(root, catalog)
    assert {e[3] for e in edges(catalog, "src = 'data/train.csv' AND relation = 'read'")} == {old}
    with Catalog.at(catalog).connect() as con:
        rebuild_lineage(con, root_of(con))
        assert {e[3] for e in edges_in(con, "src = 'data/train.csv' AND relation = 'read'")} == {old}
        stale = con.execute("SELECT output, changed_input, used_sha256, current_sha256 FROM stale").fetchall()
    assert [(s[0], s[1], s[2]) for s in stale] == [("models/m.pkl", "data/train.csv", old)]
    assert stale[0][3] != old


def edges_in(con, where: str) -> list[tuple]:
    return con.execute(f"SELECT src, dst, relation, src_sha256 FROM lineage WHERE {where}").fetchall()


def test_update_touches_only_recrawled_units(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "a.ipynb").write_text(notebook("open('x.txt').read()"))
    (root / "b.ipynb").write_text(notebook("open('y.txt').read()"))
    for name in ("x.txt", "y.txt"):
        (root / name).write_text(name * 100)
    catalog = tmp_path / "c.duckdb"
    crawl(root, catalog)
    before = {e[1]: e for e in edges(catalog, "relation = 'read'")}
    assert set(before) == {"a.ipynb", "b.ipynb"}
    (root / "b.ipynb").write_text(notebook("open('x.txt').read()"))
    second = crawl(root, catalog)
    with Catalog.at(catalog).connect(read_only=True) as con:
        rows = con.execute("SELECT dst, src, crawl_id FROM lineage WHERE relation = 'read' ORDER BY dst").fetchall()
    assert rows == [("a.ipynb", "x.txt", 1), ("b.ipynb", "x.txt", second)]
