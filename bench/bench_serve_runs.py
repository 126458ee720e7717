"""The runs page of `mlcrawl serve` over 10,000 runs: time per page, against a plain count(*) of the runs.

    python bench/bench_serve_runs.py [RUNS]

Builds a catalog in a temporary folder (5 params, 3 metrics of 20 points and 2 tags per run)
and prints the seconds of each runs-page request (default, filtered, sorted by a metric, grouped,
a late page) and their ratio to one read-only open + count of the runs.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from starlette.testclient import TestClient

from mlcrawl.catalog import Catalog
from mlcrawl.serve.app import create_app


def build(path: Path, n: int) -> Catalog:
    catalog = Catalog.at(path)
    with catalog.connect() as con:
        con.execute("""INSERT INTO runs (root, crawler, unit, crawl_id, run_id, source, experiment, name, status, start_time)
                       SELECT '/r', 'x', 'u' || i, 1, 'mlflow:' || i, CASE WHEN i % 3 = 0 THEN 'lightning' ELSE 'mlflow' END,
                              'exp' || (i % 20), 'run' || i, 'FINISHED', TIMESTAMPTZ '2026-01-01' + to_seconds(i)
                       FROM range(?) t(i)""", [n])
        con.execute("""INSERT INTO params (root, crawler, unit, crawl_id, run_id, key, value, value_num)
                       SELECT '/r', 'x', 'u' || i, 1, 'mlflow:' || i, 'p' || k, CAST((i * k) % 97 AS VARCHAR), (i * k) % 97
                       FROM range(?) t(i), range(5) s(k)""", [n])
        con.execute("""INSERT INTO metrics (root, crawler, unit, crawl_id, run_id, key, value, step)
                       SELECT '/r', 'x', 'u' || i, 1, 'mlflow:' || i, 'm' || k, random(), s
                       FROM range(?) t(i), range(3) u(k), range(20) v(s)""", [n])
        con.execute("""INSERT INTO tags (root, crawler, unit, crawl_id, run_id, key, value)
                       SELECT '/r', 'x', 'u' || i, 1, 'mlflow:' || i, 't' || k, CASE WHEN i % 2 = 0 THEN 'dev' ELSE 'prod' END
                       FROM range(?) t(i), range(2) s(k)""", [n])
    return catalog


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory() as tmp:
        catalog = build(Path(tmp) / "bench.duckdb", n)
        client = TestClient(create_app(catalog))

        def reference():
            with catalog.connect(read_only=True) as con:
                con.execute("SELECT count(*) FROM runs").fetchall()

        ref = min(timed(reference) for _ in range(3))
        cases = {
            "default": {},
            "filtered": {"q": "metrics.m1 > 0.5 and params.p2 < 50 and source = 'mlflow' and tags.t0 != 'dev'"},
            "sorted by metric": {"sort": "metrics.m0", "cols": "source,name,metrics.m0,params.p1,tags.t0"},
            "grouped": {"group": "experiment"},
            "page 100": {"page": "100", "size": "50"},
        }
        print(f"{n} runs; reference (open read-only + count) {ref:.4f} s")
        for name, params in cases.items():
            assert client.get("/runs", params=params).status_code == 200
            best = min(timed(lambda: client.get("/runs", params=params)) for _ in range(3))
            print(f"{name:<18} {best:.3f} s  ({best / ref:.0f}x reference)")


if __name__ == "__main__":
    main()
