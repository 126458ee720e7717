"""Precision and recall of the lineage table against a corpus's TRUTH.json ``lineage`` list.

    python bench/lineage_quality.py CORPUS [--catalog FILE]

Crawls CORPUS into a fresh catalog (or reads FILE), rebuilds lineage and compares edges,
overall, per relation of ours (precision) and per kind of the truth's (recall).
Truth names nodes the way each tool does (a run folder, a bare tool id, ``mlflow:<store>:<id>``,
a folder with a trailing slash), so a truth endpoint matches one of our nodes when it is the
node's name, or, for a run, its run id, tool id or folder (or a folder inside it); a truth
folder matches a ``dir`` node of that path, a folder holding it, or any file under it.  Precision counts the edges
the truth's kinds cover (declared by a tool, or read/written by code): run-folder artifacts,
file-naming params, copies and run hierarchy are extra facts the truth does not list, reported apart.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import duckdb

# Truth lists run hierarchy for MLflow only, not Hydra sweeps or TensorBoard folders.
UNSCORED_EVIDENCE = ("run artifact (", "param ", "identical sha256 ", "parent_run_id of ")


def load_edges(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """Every lineage edge as (src_type, src, dst_type, dst, relation, evidence)."""
    return con.execute("SELECT src_type, src, dst_type, dst, relation, evidence FROM lineage").fetchall()


def load_run_aliases(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[str, str, str | None]]:
    """run_id -> (run_id, tool id, folder)."""
    rows = con.execute("SELECT run_id, source_run_id, dir FROM runs").fetchall()
    return {r[0]: (r[0], r[1] or r[0], r[2]) for r in rows}


def endpoint_matches(truth: str, node_type: str, node: str, runs: dict) -> bool:
    """Whether a truth endpoint names our node."""
    name = truth.rstrip("/")
    if name == node:
        return True
    if truth.endswith("/"):
        # our folder may be the parent the code named (``lightning_logs`` for ``version_0/``)
        return (node_type in ("file", "dir") and node.startswith(name + "/")) or (
            node_type == "dir" and name.startswith(node + "/"))
    if node_type == "run" and node in runs:
        run_id, tool_id, folder = runs[node]
        if name.split(":")[-1] == tool_id:
            return True
        if folder and folder != "." and (name == folder or name.startswith(folder + "/")):
            return True
    return False


def evaluate(con: duckdb.DuckDBPyConnection, truth_edges: list[dict]) -> dict:
    """Precision, recall, and the edges on each side that found no partner."""
    runs = load_run_aliases(con)
    edges = load_edges(con)
    scored = [e for e in edges if not e[5].startswith(UNSCORED_EVIDENCE)]

    def match(t: dict, e: tuple) -> bool:
        return endpoint_matches(t["from"], e[0], e[1], runs) and endpoint_matches(t["to"], e[2], e[3], runs)

    found = [t for t in truth_edges if any(match(t, e) for e in edges)]
    right = [e for e in scored if any(match(t, e) for t in truth_edges)]
    return {
        "truth_edges": len(truth_edges),
        "our_edges": len(edges),
        "scored_edges": len(scored),
        "recall": len(found) / len(truth_edges) if truth_edges else 1.0,
        "precision": len(right) / len(scored) if scored else 1.0,
        "missed": [t for t in truth_edges if t not in found],
        "unmatched": [e for e in scored if e not in right],
        "unscored_by_relation": dict(Counter(e[4] for e in edges if e[5].startswith(UNSCORED_EVIDENCE))),
        "precision_by_relation": {
            relation: {"edges": n, "precision": Counter(e[4] for e in right)[relation] / n}
            for relation, n in sorted(Counter(e[4] for e in scored).items())},
        "recall_by_kind": {
            kind: {"truth": n, "recall": Counter(t["kind"] for t in found)[kind] / n}
            for kind, n in sorted(Counter(t["kind"] for t in truth_edges).items())},
    }


def crawl(corpus: Path, catalog: Path) -> None:
    """Crawl ``corpus`` into ``catalog`` with the installed mlcrawl."""
    subprocess.run([sys.executable, "-m", "mlcrawl", "crawl", str(corpus), "--catalog", str(catalog)],
                   check=True, capture_output=True)


def main() -> None:
    """Print the figures and what is missing."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--catalog", type=Path)
    args = parser.parse_args()
    from mlcrawl.catalog import Catalog
    from mlcrawl.lineage import rebuild_lineage

    with tempfile.TemporaryDirectory() as tmp:
        catalog = args.catalog or Path(tmp) / "quality.duckdb"
        if args.catalog is None:
            crawl(args.corpus, catalog)
        with Catalog.at(catalog).connect() as con:
            root = con.execute("SELECT DISTINCT root FROM files").fetchall()[0][0]
            rebuild_lineage(con, root)
            truth = json.loads((args.corpus / "TRUTH.json").read_text())["lineage"]
            result = evaluate(con, truth)
    print(f"truth edges {result['truth_edges']}, our edges {result['our_edges']} "
          f"({result['scored_edges']} of kinds the truth covers)")
    print(f"precision {result['precision']:.3f}  recall {result['recall']:.3f}")
    print("unscored extra edges by relation:", result["unscored_by_relation"])
    for relation, row in result["precision_by_relation"].items():
        print(f"  ours  {relation:<18} {row['edges']:>5} edges  precision {row['precision']:.3f}")
    for kind, row in result["recall_by_kind"].items():
        print(f"  truth {kind:<18} {row['truth']:>5} edges  recall    {row['recall']:.3f}")
    for t in result["missed"]:
        print("MISSED   ", t["kind"], t.get("relation", ""), t["from"], "->", t["to"])
    for e in result["unmatched"]:
        print("UNMATCHED", e[4], e[1], "->", e[3], "|", e[5])


if __name__ == "__main__":
    main()
