"""Benchmark of ``mlcrawl watch``: close-to-queryable latency and idle polling CPU.

    python bench/bench_watch.py latency [--files 200] [--settle 2] [--batch-seconds 5]
    python bench/bench_watch.py idle [--files 100000] [--interval 30] [--intervals 3]

latency: a watcher subprocess (inotify, then --poll --interval 2) on a fresh tree; a writer
subprocess closes FILES files at ~10/s and notes each close time; a reader subprocess opens
the catalog read-only every 0.2 s and notes when each path first appears, and how long each
open took (readers must never be locked out for long).

idle: a tree of FILES small files in folders of 100; a polling watcher catches up, then its
CPU time (utime+stime from /proc) is measured over INTERVALS idle polls.  Also times one
FolderScanner.scan() and one no-change incremental crawl in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

MLCRAWL = [sys.executable, "-m", "mlcrawl"]

WRITER = """
import json, os, sys, time
root, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
closed = {}
for i in range(n):
    rel = f"runs/r{i // 20:03d}/metrics_{i:04d}.json"
    os.makedirs(os.path.join(root, os.path.dirname(rel)), exist_ok=True)
    with open(os.path.join(root, rel), "w") as f:
        f.write(json.dumps({"step": i, "loss": 1.0 / (i + 1)}))
    closed[rel] = time.time()
    time.sleep(0.1)
json.dump(closed, open(out, "w"))
"""

READER = """
import json, sys, time
from mlcrawl.catalog import Catalog
catalog, n, out, limit = Catalog.at(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
seen, opens, failures = {}, [], 0
end = time.time() + limit
while len(seen) < n and time.time() < end:
    t0 = time.time()
    try:
        with catalog.connect(read_only=True) as con:
            opened = time.time()
            rows = con.execute("SELECT path FROM files WHERE deleted_at IS NULL AND path LIKE 'runs/%'").fetchall()
        opens.append(opened - t0)
        now = time.time()
        for (path,) in rows:
            seen.setdefault(path, now)
    except Exception as exc:
        failures += 1
    time.sleep(0.2)
json.dump({"seen": seen, "opens": opens, "failures": failures}, open(out, "w"))
"""


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _start_watch(root: Path, catalog: Path, *extra: str) -> subprocess.Popen:
    proc = subprocess.Popen([*MLCRAWL, "watch", str(root), "--catalog", str(catalog), *extra],
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:  # wait until the catch-up crawl is done
        if "catch-up crawl" in line:
            # Keep draining its log so a full pipe never blocks the watcher.
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc
    raise RuntimeError("watcher ended before its catch-up crawl")


def bench_latency(files: int, settle: float, batch_seconds: float) -> None:
    for mode, extra in (("inotify", []), ("poll 2s", ["--poll", "--interval", "2"])):
        with tempfile.TemporaryDirectory() as tmp:
            root, catalog = Path(tmp) / "tree", Path(tmp) / "c.duckdb"
            (root / "seed").mkdir(parents=True)
            (root / "seed" / "a.txt").write_text("seed")
            proc = _start_watch(root, catalog, "--settle", str(settle), "--batch-seconds", str(batch_seconds), *extra)
            reader = subprocess.Popen([sys.executable, "-c", READER, str(catalog), str(files), f"{tmp}/seen.json", str(files * 0.1 + 60)])
            subprocess.run([sys.executable, "-c", WRITER, str(root), str(files), f"{tmp}/closed.json"], check=True)
            reader.wait()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
            closed = json.loads(Path(f"{tmp}/closed.json").read_text())
            result = json.loads(Path(f"{tmp}/seen.json").read_text())
            lat = [result["seen"][p] - t for p, t in closed.items() if p in result["seen"]]
            opens = result["opens"]
            print(f"{mode:>8}: {len(lat)}/{files} files seen; latency p50 {_pct(lat, .5):.2f}s p95 {_pct(lat, .95):.2f}s "
                  f"max {max(lat):.2f}s (settle {settle:g}s, batch_seconds {batch_seconds:g}s); reader opens {len(opens)}, open time p50 "
                  f"{_pct(opens, .5) * 1000:.0f}ms max {max(opens) * 1000:.0f}ms, failures {result['failures']}; exit {code}")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _make_tree(root: Path, files: int) -> None:
    for i in range(files):
        folder = root / f"exp{i // 10000:02d}" / f"run{i // 100:05d}"
        if i % 100 == 0:
            folder.mkdir(parents=True)
        (folder / f"f{i:06d}.txt").write_text(str(i))


def bench_idle(files: int, interval: float, intervals: int) -> None:
    from mlcrawl.catalog import Catalog
    from mlcrawl.config import Job
    from mlcrawl.registry import discover, select
    from mlcrawl.runner import Runner
    from mlcrawl.watch import FolderScanner

    with tempfile.TemporaryDirectory() as tmp:
        root, catalog = Path(tmp) / "tree", Path(tmp) / "c.duckdb"
        t0 = time.perf_counter()
        _make_tree(root, files)
        print(f"tree of {files} files made in {time.perf_counter() - t0:.1f}s")
        scanner = FolderScanner(str(root))
        t0 = time.perf_counter()
        scanner.scan()
        baseline = time.perf_counter() - t0
        t0, stats = time.perf_counter(), 0
        for _ in range(scanner.sweep_every):
            scanner.scan()
            stats += scanner.stats
        steady = (time.perf_counter() - t0) / scanner.sweep_every
        print(f"FolderScanner: baseline {baseline:.2f}s, steady-state scan {steady:.3f}s on average over a "
              f"full sweep of {scanner.sweep_every} scans ({stats / scanner.sweep_every:.0f} stats per scan, 0 listings)")
        store, job = Catalog.at(catalog), Job(name="bench", roots=(str(root),))
        crawlers = select(discover(), (), ())
        t0 = time.perf_counter()
        Runner(store, job, crawlers).run()
        print(f"first full crawl {time.perf_counter() - t0:.1f}s")
        t0 = time.perf_counter()
        Runner(store, job, crawlers).run()
        print(f"no-change incremental crawl (the cost of one watch batch on this tree) {time.perf_counter() - t0:.2f}s")
        proc = _start_watch(root, catalog, "--poll", "--interval", str(interval))
        time.sleep(1.0)
        before, t0 = _cpu_seconds(proc.pid), time.monotonic()
        time.sleep(interval * intervals)
        used, wall = _cpu_seconds(proc.pid) - before, time.monotonic() - t0
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        print(f"idle polling watcher, interval {interval:g}s: {used:.2f} CPU s over {wall:.0f}s = "
              f"{100 * used / wall:.2f}% of one core ({used / intervals:.2f} CPU s per poll)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["latency", "idle"])
    parser.add_argument("--files", type=int)
    parser.add_argument("--settle", type=float, default=2.0)
    parser.add_argument("--batch-seconds", type=float, default=5.0)
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--intervals", type=int, default=3)
    args = parser.parse_args()
    if args.what == "latency":
        bench_latency(args.files or 200, args.settle, args.batch_seconds)
    else:
        bench_idle(args.files or 100_000, args.interval, args.intervals)


if __name__ == "__main__":
    main()
