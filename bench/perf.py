"""The crawl core's performance, each figure beside its reference measured in the same run.

Rows (median of --repeat runs each, the issue "core speed" goals beside them):
  unchanged re-crawl, all crawlers / no crawlers   vs  find ROOT -type f -printf '%s %T@ %i\\n'
  cold crawl, all crawlers / core only             vs  find ROOT -type f -print0 | xargs -0 -P2 -n 64 sha256sum
  peak RSS of a cold crawl at --small-files and --files (flat: <= 1.2x and <= 300 MB)
  readers during a cold crawl: read-only queries in a loop (with mlcrawl query's lock retry), failures and slowest read

Usage: python bench/perf.py [--files 100000] [--small-files 10000] [--repeat 3] [--workdir DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The crawl is timed inside its process (the import of duckdb/pyarrow, ~0.3 s, is not crawl time).
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

READERS = """
import os, sys, time
from mlcrawl.catalog import Catalog
catalog, stop = Catalog.at(sys.argv[1]), sys.argv[2]
ok = failed = 0
slowest = 0.0
while not os.path.exists(stop):
    start = time.perf_counter()
    try:
        with catalog.connect(read_only=True) as con:  # the lock retry mlcrawl query uses
            con.execute("SELECT count(*) FROM files").fetchall()
        ok += 1
    except Exception as exc:
        if "no catalog" in str(exc):
            time.sleep(0.05)
            continue
        failed += 1
    slowest = max(slowest, time.perf_counter() - start)
    time.sleep(0.05)
print(ok, failed, round(slowest, 3))
"""

GOALS = {"recrawl_all": 3.0, "recrawl_none": 2.0, "cold_all": 1.0, "cold_none": 0.6}


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
    """Wall seconds of a shell command (the reference tools)."""
    start = time.perf_counter()
    subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def crawl(root: Path, db: Path, crawlers: str) -> dict:
    """One crawl in a fresh process; its own timing, RSS and summary."""
    out = subprocess.run([sys.executable, "-c", CRAWL, str(root), str(db), crawlers], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout)


def fresh(db: Path) -> Path:
    for stale in (db, db.with_name(db.name + ".wal"), db.with_name(db.name + ".lock")):
        stale.unlink(missing_ok=True)
    return db


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def measure(root: Path, workdir: Path, repeat: int) -> dict:
    """Every timed row for one tree, with its reference, median of ``repeat``."""
    root = root.resolve()  # find does not follow a symlinked root
    rows = {}
    for crawlers in ("all", "none"):
        cold, ref_sha, warm, ref_stat, rss = [], [], [], [], []
        for i in range(repeat):
            db = fresh(workdir / f"perf-{crawlers}.duckdb")
            ref_sha.append(timed(f"find {root} -type f -print0 | xargs -0 -P2 -n 64 sha256sum"))
            first = crawl(root, db, crawlers)
            cold.append(first["seconds"])
            rss.append(first["max_rss_mb"])
            ref_stat.append(timed(f"find {root} -type f -printf '%s %T@ %i\\n'"))
            again = crawl(root, db, crawlers)
            assert again["bytes_hashed"] == 0, again
            warm.append(again["seconds"])
        rows[f"cold_{crawlers}"] = {"seconds": median(cold), "reference_s": median(ref_sha),
                                    "ratio": round(median(cold) / median(ref_sha), 2), "goal": GOALS[f"cold_{crawlers}"]}
        rows[f"recrawl_{crawlers}"] = {"seconds": median(warm), "reference_s": median(ref_stat),
                                       "ratio": round(median(warm) / median(ref_stat), 2), "goal": GOALS[f"recrawl_{crawlers}"]}
        rows[f"peak_rss_mb_{crawlers}"] = max(rss)
    return rows


def readers_during_crawl(root: Path, workdir: Path) -> dict:
    """Read-only queries in a loop while a cold crawl writes: failures and the slowest read."""
    root = root.resolve()
    db = fresh(workdir / "perf-readers.duckdb")
    stop = workdir / "readers.stop"
    stop.unlink(missing_ok=True)
    readers = subprocess.Popen([sys.executable, "-c", READERS, str(db), str(stop)], stdout=subprocess.PIPE, text=True)
    crawl(root, db, "all")
    stop.touch()
    ok, failed, slowest = readers.communicate()[0].split()
    return {"reads": int(ok), "failed": int(failed), "slowest_read_s": float(slowest), "goal": "0 failed, each < 1 s"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--small-files", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mlcrawl-perf-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        trees = {}
        for files in (args.small_files, args.files):
            root = workdir / f"tree{files}"
            if not root.exists():
                generate(root, files)
            trees[files] = root
        big = measure(trees[args.files], workdir, args.repeat)
        small = measure(trees[args.small_files], workdir, 1)
        result = {
            "files": args.files, "load_average": os.getloadavg(), **big,
            "rss_growth_all": round(big["peak_rss_mb_all"] / small["peak_rss_mb_all"], 2),
            "readers": readers_during_crawl(trees[args.files], workdir),
        }
    finally:
        if not args.workdir:
            shutil.rmtree(workdir)
    print(f"{'work':<38} {'mlcrawl s':>10} {'reference s':>12} {'ratio':>7} {'goal':>7}")
    labels = {"recrawl_all": "unchanged re-crawl, all crawlers", "recrawl_none": "unchanged re-crawl, no crawlers",
              "cold_all": "cold crawl, all crawlers", "cold_none": "cold crawl, core only"}
    for key, label in labels.items():
        row = result[key]
        print(f"{label:<38} {row['seconds']:>10} {row['reference_s']:>12} {row['ratio']:>6}x {row['goal']:>6}x")
    print(f"peak RSS: {result['peak_rss_mb_all']} MB at {args.files} files, {result['rss_growth_all']}x the "
          f"{args.small_files}-file crawl (goal <= 1.2x, <= 300 MB)")
    r = result["readers"]
    print(f"readers during a cold crawl: {r['reads']} reads, {r['failed']} failed, slowest {r['slowest_read_s']} s")
    print(f"load average {result['load_average']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
