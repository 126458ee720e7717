"""Benchmark: crawl a generated MLflow file store, against ``mlflow.search_runs`` on the same store.

Store generated (MLflow's on-disk format, written directly)::

    <path>/mlruns/<exp id>/meta.yaml
    <path>/mlruns/<exp id>/<run id>/{meta.yaml, params/*, tags/*, metrics/<m>}  (<steps> lines each)

Usage: ``python bench/bench_mlflow.py [--runs 2000 --metrics 20 --steps 100] [--dir D]``.
``mlflow.search_runs`` is timed only when ``mlflow`` imports (a separate bench venv; never a
project dependency), from a scratch cwd with an absolute ``file:`` URI so nothing is written
into the store.  The catalog/DuckDB half is added by the core.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

EXPERIMENT_ID = "123456789012345678"
START_MS = 1_795_000_000_000
PARAM_FILTER = "params.optimizer = 'adam'"


def generate_store(path: Path | str, runs: int = 2000, metrics: int = 20, steps: int = 100, seed: int = 0) -> Path:
    """Write an MLflow file store under ``path/mlruns``; returns the store folder."""
    rng = random.Random(seed)
    store = Path(path) / "mlruns"
    exp_dir = store / EXPERIMENT_ID
    exp_dir.mkdir(parents=True, exist_ok=True)
    (exp_dir / "meta.yaml").write_text(
        f"artifact_location: file://{exp_dir}\ncreation_time: {START_MS}\nexperiment_id: '{EXPERIMENT_ID}'\n"
        f"last_update_time: {START_MS}\nlifecycle_stage: active\nname: bench\n")
    for index in range(runs):
        write_run(exp_dir, index, metrics, steps, rng)
    return store


def write_run(exp_dir: Path, index: int, metrics: int, steps: int, rng: random.Random) -> None:
    """One run folder with 4 params, 3 tags and ``metrics`` files of ``steps`` points."""
    run_id = uuid.UUID(int=rng.getrandbits(128)).hex
    run_dir = exp_dir / run_id
    for sub in ("params", "metrics", "tags", "artifacts"):
        (run_dir / sub).mkdir(parents=True)
    start = START_MS + index * 10_000
    (run_dir / "meta.yaml").write_text(
        f"artifact_uri: file://{run_dir}/artifacts\nend_time: {start + 9000}\nentry_point_name: ''\n"
        f"experiment_id: '{EXPERIMENT_ID}'\nlifecycle_stage: active\nrun_id: {run_id}\nrun_name: run-{index}\n"
        f"source_name: ''\nsource_type: 4\nsource_version: ''\nstart_time: {start}\nstatus: 3\n"
        f"tags: []\nuser_id: bench\n")
    params = {"optimizer": rng.choice(["adam", "sgd", "rmsprop"]), "lr": str(rng.choice([0.1, 0.01, 0.001])),
              "batch_size": str(rng.choice([32, 64, 128])), "seed": str(index)}
    for key, value in params.items():
        (run_dir / "params" / key).write_text(value)
    for key, value in {"mlflow.runName": f"run-{index}", "mlflow.user": "bench",
                       "mlflow.source.name": "train.py"}.items():
        (run_dir / "tags" / key).write_text(value)
    for m in range(metrics):
        lines = [f"{start + s * 10} {rng.random()!r} {s}\n" for s in range(steps)]
        (run_dir / "metrics" / f"metric_{m:02d}").write_text("".join(lines))


def crawl_store(root: Path) -> tuple[int, int, float, float]:
    """Crawl every unit the file-store crawler claims under ``root``.

    Returns (units, records, wall seconds, CPU seconds): CPU time is the fair figure on a
    shared machine.
    """
    from mlcrawl.crawler import CrawlContext
    from mlcrawl.crawlers.mlflow import MlflowFileStoreCrawler

    crawler = MlflowFileStoreCrawler()
    started, cpu = time.perf_counter(), time.process_time()
    units = records = 0
    for dirpath, dirnames, filenames in os.walk(root):
        folder = Path(dirpath)
        claimed = [folder] if crawler.match_folder(folder, frozenset(dirnames + filenames)) else []
        claimed += [folder / f for f in filenames if crawler.match(folder / f, False)]
        for unit in claimed:
            ctx = CrawlContext.for_root(root, unit)
            records += sum(1 for _ in crawler.crawl(ctx.unit, ctx))
            units += 1
    return units, records, time.perf_counter() - started, time.process_time() - cpu


def time_search_runs(store: Path, python: str) -> tuple[float, float] | None:
    """(wall, CPU) seconds of one ``mlflow.search_runs`` with a param filter, in its own interpreter."""
    code = (
        "import os, time, mlflow\n"
        f"mlflow.set_tracking_uri({store.absolute().as_uri()!r})\n"
        "t, c = time.perf_counter(), time.process_time()\n"
        f"df = mlflow.search_runs(experiment_ids=[{EXPERIMENT_ID!r}], filter_string={PARAM_FILTER!r}, "
        "order_by=['metrics.metric_00 DESC'], max_results=10)\n"
        "print(time.perf_counter() - t, time.process_time() - c, len(df))\n")
    env = dict(os.environ, MLFLOW_ALLOW_FILE_STORE="true")
    with tempfile.TemporaryDirectory() as scratch:  # MLflow may create ./mlflow.db in its cwd
        done = subprocess.run([python, "-c", code], cwd=scratch, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"search_runs failed: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    wall, cpu, rows = done.stdout.split()
    print(f"search_runs returned {rows} rows")
    return float(wall), float(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--metrics", type=int, default=20)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--dir", type=Path, help="where to generate (default: a temporary folder)")
    parser.add_argument("--mlflow-python", default=os.environ.get("MLFLOW_PYTHON", "/tmp/venv-mlflow/bin/python"),
                        help="an interpreter with mlflow installed (skipped when absent)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.dir or Path(tmp)
        started = time.perf_counter()
        store = generate_store(root, args.runs, args.metrics, args.steps)
        print(f"generated {args.runs} runs x {args.metrics} metrics x {args.steps} steps "
              f"in {time.perf_counter() - started:.1f} s")
        units, records, crawl_s, crawl_cpu = crawl_store(root)
        print(f"crawl: {units} units, {records} records in {crawl_s:.2f} s wall, {crawl_cpu:.2f} s CPU "
              f"({records / crawl_cpu:,.0f} records per CPU second)")
        if Path(args.mlflow_python).exists():
            searched = time_search_runs(store, args.mlflow_python)
            if searched:
                print(f"mlflow.search_runs ({PARAM_FILTER}, top 10): {searched[0]:.2f} s wall, "
                      f"{searched[1]:.2f} s CPU; crawl / search_runs (CPU) = {crawl_cpu / searched[1]:.2f}")
        else:
            print("mlflow not available: search_runs not timed")


if __name__ == "__main__":
    main()
