"""DuckLake vs DuckDB files: the three ratios of issue 19 (scaled by --files; the issue asks 25,000).

    python bench/lake.py --pg 'ducklake:postgres:dbname=bench host=127.0.0.1 port=5432 user=postgres' --files 25000

1. four crawlers on four trees into one Postgres-backed lake vs one crawler per tree into its own
   DuckDB file, all four at once: aggregate throughput ratio (lake / files; want >= 0.8);
2. an unchanged re-crawl: lake time / file time (want <= 1.5);
3. a query over the lake's files vs the same rows in one DuckDB file (want <= 2).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = [sys.executable, "-m", "mlcrawl"]
QUERY = "select kind, count(*), sum(size) from files where deleted_at is null group by kind"


def make_tree(root: Path, n: int) -> None:
    for i in range(n):
        path = root / f"d{i % 50}" / f"f{i}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{i}\n")


def crawl_all(targets: list[list[str]], roots: list[Path]) -> float:
    start = time.perf_counter()
    procs = [subprocess.Popen([*CLI, "crawl", str(r), *t, "-q", "--wait", "120"]) for r, t in zip(roots, targets)]
    codes = [p.wait() for p in procs]
    assert codes == [0] * len(procs), codes
    return time.perf_counter() - start


def timed_query(target: list[str], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([*CLI, "query", QUERY, *target], check=True, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pg", required=True, help="ducklake:postgres:... of an empty database")
    parser.add_argument("--files", type=int, default=2500)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mlcrawl-bench-lake-"))
    roots = [work / f"tree{i}" for i in range(4)]
    for r in roots:
        make_tree(r, args.files)
    lake = ["--catalog", args.pg, "--data-path", str(work / "data")]
    files = [["--catalog", str(work / f"c{i}.duckdb")] for i in range(4)]
    t_files = crawl_all(files, roots)
    t_lake = crawl_all([lake] * 4, roots)
    r_files = crawl_all(files, roots)
    r_lake = crawl_all([lake] * 4, roots)
    subprocess.run([*CLI, "catalog", "copy", args.pg, str(work / "all.duckdb"), "--data-path", str(work / "data")],
                   check=True, capture_output=True)
    q_file = timed_query(["--catalog", str(work / "all.duckdb")])
    q_lake = timed_query(lake)
    total = 4 * (args.files)
    print(f"{'measure':44} {'files':>9} {'lake':>9} {'ratio':>7}  want")
    print(f"{'first crawl, 4 x ' + str(args.files) + ' files, files/s':44} {total / t_files:9.0f} {total / t_lake:9.0f} "
          f"{t_files / t_lake:7.2f}  >= 0.8")
    print(f"{'unchanged re-crawl, s':44} {r_files:9.2f} {r_lake:9.2f} {r_lake / r_files:7.2f}  <= 1.5")
    print(f"{'query over ' + str(total) + ' files, s (CLI, best of 3)':44} {q_file:9.2f} {q_lake:9.2f} "
          f"{q_lake / q_file:7.2f}  <= 2")


if __name__ == "__main__":
    main()
