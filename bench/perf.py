"""Benchmark the core crawl against reference tools measured in the same run.

(a) cold crawl that hashes everything  vs  find ROOT -type f -print0 | xargs -0 -P2 sha256sum
(b) re-crawl of the unchanged tree     vs  find ROOT -type f -printf '%s %T@ %i\\n'
(c) peak RSS of a crawl at two tree sizes (it must not grow with the tree)

Each is measured with no crawlers (the core: walk, stat cache, hashing, catalog writes) and with
every crawler (which also parses the 80% of files that are metrics, params and CSV files).

Usage: python bench/bench_crawl.py [--files 100000] [--small-files 10000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CRAWL = """
import json, resource, sys, time
from mlcrawl.catalog import Catalog
from mlcrawl.config import Job
from mlcrawl.registry import discover, select
from mlcrawl.runner import Runner
t = time.perf_counter()
crawlers = select(discover()) if sys.argv[3] == "all" else []
s = Runner(Catalog.at(sys.argv[2]), Job(roots=(sys.argv[1],)), crawlers).run()
print(json.dumps({"seconds": time.perf_counter() - t, "bytes_hashed": s.bytes_hashed, "files": s.files_seen,
                  "status": s.status, "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def generate(root: Path, files: int) -> int:
    """A tree of ``files`` files: mostly small (100 B - 8 KB), one in 500 of 1-8 MB."""
    rng = __import__("random").Random(42)
    total = 0
    for i in range(files):
        folder = root / f"exp{i // 2000:03d}" / f"run{(i // 100) % 20:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        if i % 500 == 0:
            content = os.urandom(rng.randint(1, 8) << 20)
            name = "model.bin"
        else:
            name, content = _small_file(i, rng)
        (folder / f"{i}_{name}").write_bytes(content)
        total += len(content)
    return total


def _small_file(i: int, rng) -> tuple[str, bytes]:
    """Realistic small files: valid JSON metrics, YAML params, CSV data, text, binary blobs."""
    kind = i % 5
    if kind == 0:
        return "metrics.json", json.dumps({"accuracy": rng.random(), "loss": rng.random(), "epoch": i % 50}).encode()
    if kind == 1:
        return "params.yaml", f"lr: {rng.random():.5f}\nbatch_size: {rng.choice([16, 32, 64])}\noptimizer: adam\n".encode()
    if kind == 2:
        rows = "\n".join(f"{rng.random():.4f},{rng.random():.4f},{rng.randint(0, 2)}" for _ in range(rng.randint(5, 120)))
        return "data.csv", ("x1,x2,label\n" + rows + "\n").encode()
    if kind == 3:
        return "notes.txt", ("lorem ipsum " * rng.randint(10, 600)).encode()
    return "blob.bin", os.urandom(rng.randint(100, 8192))


def timed(cmd: str) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def crawl(root: Path, db: Path, crawlers: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CRAWL, str(root), str(db), crawlers], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def measure(workdir: Path, files: int, crawlers: str) -> dict:
    root = workdir / f"tree{files}"
    if not root.exists():
        generate(root, files)
    db = workdir / f"bench{files}-{crawlers}.duckdb"
    for stale in (db, db.with_name(db.name + ".wal")):
        stale.unlink(missing_ok=True)
    sha_ref = timed(f"find {root} -type f -print0 | xargs -0 -P2 sha256sum")
    cold = crawl(root, db, crawlers)
    stat_ref = timed(f"find {root} -type f -printf '%s %T@ %i\\n'")
    warm = crawl(root, db, crawlers)
    return {
        "files": files, "crawlers": crawlers,
        "cold_crawl_s": round(cold["seconds"], 3), "sha256sum_s": round(sha_ref, 3),
        "cold_ratio": round(cold["seconds"] / sha_ref, 3),
        "recrawl_s": round(warm["seconds"], 3), "find_stat_s": round(stat_ref, 3),
        "recrawl_ratio": round(warm["seconds"] / stat_ref, 3), "recrawl_bytes_hashed": warm["bytes_hashed"],
        "peak_rss_mb_cold": round(cold["max_rss_mb"], 1), "peak_rss_mb_recrawl": round(warm["max_rss_mb"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--small-files", type=int, default=10_000)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the generated trees")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mlcrawl-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        for files in (args.small_files, args.files):
            for crawlers in ("none", "all"):
                print(json.dumps(measure(workdir, files, crawlers)), flush=True)
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
