"""Lineage at scale: ``upstream()`` of a deep artifact in the duckdb CLI, and one notebook's incremental update.

    python bench/bench_lineage.py [--files 100000] [--edges 300000] [--keep DIR]

A synthetic catalog is written straight into the tables (no crawl): files in 50 layers, 5%
of them notebooks; each notebook reads files of its layer and writes files of the next, as
``references`` rows (half reads, half writes), so ``rebuild_lineage`` turns them into the
edges.  Then: (1) ``SELECT ... FROM upstream(<file of the last layer>)`` through the duckdb
CLI binary (the time includes starting the CLI and opening the file), (2) one notebook changes
(new sha256, new references) in crawl 2 and ``update_lineage`` runs.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlcrawl.catalog import Catalog
from mlcrawl.lineage import rebuild_lineage, update_lineage

ROOT = "/synthetic"
LAYERS = 50


def populate(con, files: int, edges: int) -> None:
    """Fill files, file_versions, units, crawls and references for a layered synthetic graph."""
    per_layer = files // LAYERS
    notebooks = max(1, per_layer // 20)
    con.execute("INSERT INTO crawls (crawl_id, kind, started_at, status) VALUES (1, 'bench', now(), 'ok')")
    con.execute(f"""CREATE TEMP TABLE nodes AS
        SELECT i, i // {per_layer} AS layer, i % {per_layer} AS slot,
               CASE WHEN i % {per_layer} < {notebooks} THEN 'nb/l' || (i // {per_layer}) || '/n' || i || '.ipynb'
                    ELSE 'data/l' || (i // {per_layer}) || '/f' || i || '.csv' END AS path,
               sha256(i::VARCHAR) AS sha256
        FROM range({per_layer * LAYERS}) t(i)""")
    con.execute("""INSERT INTO files (root, path, size, mtime, kind, sha256, first_seen, last_seen, crawl_id)
        SELECT $1, path, 1000 + i, TIMESTAMPTZ '2026-01-01' + to_seconds(i), CASE WHEN path LIKE '%.ipynb' THEN 'notebook' ELSE 'dataset' END,
               sha256, now(), now(), 1 FROM nodes""", [ROOT])
    con.execute("""INSERT INTO file_versions (root, path, sha256, size, mtime, first_seen, last_seen)
        SELECT root, path, sha256, size, mtime, first_seen, last_seen FROM files""")
    con.execute("""INSERT INTO units (root, crawler, unit, is_dir, crawler_version, crawl_id, crawled_at)
        SELECT $1, 'notebook', path, false, 1, 1, now() FROM nodes WHERE path LIKE '%.ipynb'""", [ROOT])
    # Edge e: a notebook of layer L reads a data file of layer L (even e) or writes one of L+1 (odd e).
    con.execute(f"""INSERT INTO "references" (root, crawler, unit, crawl_id, source_path, raw, resolved_path, direction, evidence)
        WITH e AS (SELECT e, e % {LAYERS - 1} AS layer, hash(e) AS h1, hash(e * 7 + 1) AS h2 FROM range({edges}) t(e)),
        picked AS (
            SELECT e, layer * {per_layer} + h1 % {notebooks} AS nb,
                   CASE WHEN e % 2 = 0 THEN layer ELSE layer + 1 END * {per_layer}
                       + {notebooks} + h2 % {per_layer - notebooks} AS target,
                   CASE WHEN e % 2 = 0 THEN 'read' ELSE 'write' END AS direction
            FROM e)
        SELECT DISTINCT $1, 'notebook', n.path, 1, n.path, t.path, t.path, p.direction, 'cell 1, line 1: synthetic'
        FROM picked p JOIN nodes n ON n.i = p.nb JOIN nodes t ON t.i = p.target""", [ROOT])


def change_one_notebook(con) -> tuple[int, str]:
    """Crawl 2 rewrote one notebook of a middle layer: new content, one new read; its crawl id and path."""
    path = con.execute(f"SELECT unit FROM units WHERE unit LIKE 'nb/l{LAYERS // 2}/%' ORDER BY unit LIMIT 1").fetchall()[0][0]
    extra = con.execute("SELECT path FROM files WHERE path LIKE 'data/l0/%' ORDER BY path LIMIT 1").fetchall()[0][0]
    con.execute("INSERT INTO crawls (crawl_id, kind, started_at, status) VALUES (2, 'bench', now(), 'ok')")
    con.execute("UPDATE files SET sha256 = sha256('changed'), mtime = now(), crawl_id = 2 WHERE root = ? AND path = ?", [ROOT, path])
    con.execute("""INSERT INTO file_versions (root, path, sha256, size, mtime, first_seen, last_seen)
                   SELECT root, path, sha256, size, mtime, now(), now() FROM files WHERE root = ? AND path = ?""", [ROOT, path])
    con.execute("UPDATE units SET crawl_id = 2 WHERE root = ? AND unit = ?", [ROOT, path])
    con.execute("""UPDATE "references" SET crawl_id = 2 WHERE root = ? AND unit = ?""", [ROOT, path])
    con.execute("""INSERT INTO "references" (root, crawler, unit, crawl_id, source_path, raw, resolved_path, direction, evidence)
                   VALUES (?, 'notebook', ?, 2, ?, ?, ?, 'read', 'cell 9, line 1: synthetic')""", [ROOT, path, path, extra, extra])
    return 2, path


def time_upstream_cli(catalog: Path, target: str, chains: bool) -> tuple[float, str]:
    """Wall time of the duckdb CLI running ``upstream(target)``, and its output."""
    cli = str(Path(sys.executable).with_name("duckdb"))
    if not Path(cli).exists():
        cli = shutil.which("duckdb") or "duckdb"
    sql = (f"SELECT count(*) AS nodes, max(depth) AS depth, max(len(chain)) AS chain "
           f"FROM upstream('{target}', chains := {str(chains).lower()})")
    start = time.perf_counter()
    out = subprocess.run([cli, "-readonly", "-csv", str(catalog), "-c", sql], capture_output=True, text=True, check=True)
    return time.perf_counter() - start, out.stdout.strip().replace("\n", " ")


def main() -> None:
    """Build the synthetic catalog, time both operations, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--edges", type=int, default=300_000)
    parser.add_argument("--keep", type=Path, help="Write the catalog into this folder and keep it.")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-lineage-"))
    folder.mkdir(parents=True, exist_ok=True)
    catalog = folder / "bench.duckdb"
    catalog.unlink(missing_ok=True)
    store = Catalog.at(catalog)
    with store.connect() as con:
        start = time.perf_counter()
        populate(con, args.files, args.edges)
        built = time.perf_counter() - start
        start = time.perf_counter()
        full = rebuild_lineage(con, ROOT)
        rebuilt = time.perf_counter() - start
        target = con.execute(f"SELECT dst FROM lineage WHERE dst LIKE 'data/l{LAYERS - 1}/%' ORDER BY dst LIMIT 1").fetchall()[0][0]
        files, edges = (con.execute("SELECT (SELECT count(*) FROM files), (SELECT count(*) FROM lineage)").fetchall()[0])
    print(f"synthetic catalog: {files:,} files, {edges:,} lineage edges (tables filled in {built:.2f}s, "
          f"full rebuild {rebuilt:.2f}s, {full.edges_added:,} edges)")
    for chains in (False, True):
        seconds, result = time_upstream_cli(catalog, target, chains)
        print(f"upstream('{target}', chains := {chains}) in duckdb CLI: {seconds:.3f}s wall "
              f"(incl. CLI start) -> {result}")
    with store.connect() as con:
        crawl_id, path = change_one_notebook(con)
        start = time.perf_counter()
        stats = update_lineage(con, ROOT, crawl_id)
        seconds = time.perf_counter() - start
    print(f"incremental update after changing {path}: {seconds:.3f}s ({stats})")
    if args.keep is None:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
