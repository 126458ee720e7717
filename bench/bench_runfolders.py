"""Benchmark: training-framework run folders crawled, against ``cat`` of the same files.

Generates a tree of N run folders mixed across formats, with realistic file sizes::

    <tree>/lightning/<exp>/version_<n>/   hparams.yaml, metrics.csv (50 epochs), 2 sparse .ckpt
    <tree>/hydra/multirun/<sweep>/        multirun.yaml + 8 jobs (.hydra/*, <job>.log, metrics.json)
    <tree>/hydra/outputs/<run>/           single runs laid out like a job
    <tree>/sacred/obs<k>/<id>/            run.json, config.json, metrics.json (3 x 100 points),
                                          cout.txt, an artifact; _sources/ and _resources/ shared

then crawls every unit the crawlers claim (folders offered with their entry names, as the
walker does), counting every file opened, and times ``cat`` of exactly the files the crawlers
read (warm cache, best of --repeat).  Prints the ratio and the files read per run folder.

    python bench/bench_runfolders.py --runs 5000
"""

from __future__ import annotations

import argparse
import builtins
import io
import json
import os
import random
import resource
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from mlcrawl.crawlers.hydra import HydraCrawler
from mlcrawl.crawlers.lightning import LightningCrawler
from mlcrawl.crawlers.sacred import SacredCrawler

from mlcrawl.crawler import CrawlContext

FORMATS = ("lightning", "hydra", "sacred")
CKPT_SIZE = 50 << 20  # sparse: checkpoints are listed, never read
JOBS_PER_SWEEP = 8
RUNS_PER_OBSERVER = 100


# --- tree generation -----------------------------------------------------------------------------


def write_lightning(folder: Path, rng: random.Random, epochs: int = 50, steps_per_epoch: int = 20) -> None:
    """A CSVLogger version folder: sparse train rows every step, a val row per epoch."""
    (folder / "checkpoints").mkdir(parents=True)
    hparams = {"lr": rng.choice([1e-3, 3e-4, 1e-4]), "batch_size": rng.choice([32, 64]),
               "hidden": rng.choice([128, 256]), "dropout": 0.1, "weight_decay": 0.01,
               "optimizer": "adamw", "scheduler": {"name": "cosine", "warmup": 500},
               "data": {"root": "/srv/data/x", "num_workers": 8}}
    (folder / "hparams.yaml").write_text(yaml.safe_dump(hparams))
    lines = ["epoch,lr-AdamW,step,train_loss,train_acc,val_acc,val_loss"]
    step = 0
    for epoch in range(epochs):
        for _ in range(steps_per_epoch):
            lines.append(f"{epoch},{rng.random():.8g},{step},{rng.random()},{rng.random()},,")
            step += 1
        lines.append(f"{epoch},,{step - 1},,,{rng.random()},{rng.random()}")
    (folder / "metrics.csv").write_text("\n".join(lines) + "\n")
    for name in (f"epoch={epochs - 1}-step={step}.ckpt", "last.ckpt"):
        with open(folder / "checkpoints" / name, "wb") as f:
            f.truncate(CKPT_SIZE)


def hydra_meta(output_dir: str, mode: str, task: list[str], num: int | str) -> dict:
    """``hydra.yaml`` as Hydra 1.3 writes it (help/logging sections included)."""
    logging = {"version": 1, "formatters": {"simple": {"format": "[%(asctime)s][%(name)s] %(message)s"}},
               "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "simple",
                                        "stream": "ext://sys.stdout"}},
               "root": {"level": "INFO", "handlers": ["console"]}, "disable_existing_loggers": False}
    return {"hydra": {
        "run": {"dir": "outputs/${now:%Y-%m-%d}/${now:%H-%M-%S}"},
        "sweep": {"dir": "multirun/${now:%Y-%m-%d}/${now:%H-%M-%S}", "subdir": "${hydra.job.num}"},
        "launcher": {"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"},
        "sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
                    "max_batch_size": None, "params": None},
        "help": {"app_name": "${hydra.job.name}", "header": "${hydra.help.app_name} is powered by Hydra.\n",
                 "footer": "Powered by Hydra (https://hydra.cc)\nUse --hydra-help to view Hydra specific help\n",
                 "template": "${hydra.help.header}\n== Configuration groups ==\n$APP_CONFIG_GROUPS\n"
                             "== Config ==\nOverride anything in the config (foo.bar=value)\n$CONFIG\n"
                             "${hydra.help.footer}\n"},
        "hydra_help": {"template": "Hydra (${hydra.runtime.version})\nSee https://hydra.cc\n$FLAGS_HELP\n"
                                   "$HYDRA_CONFIG_GROUPS\nUse '--cfg hydra' to Show the Hydra config.\n",
                       "hydra_help": "???"},
        "hydra_logging": logging, "job_logging": logging, "env": {}, "mode": mode, "searchpath": [],
        "callbacks": {}, "output_subdir": ".hydra",
        "overrides": {"hydra": [f"hydra.mode={mode}"], "task": task},
        "job": {"name": "train", "chdir": None, "override_dirname": ",".join(task), "id": str(num),
                "num": num, "config_name": "config", "env_set": {}, "env_copy": [],
                "config": {"override_dirname": {"kv_sep": "=", "item_sep": ",", "exclude_keys": []}}},
        "runtime": {"version": "1.3.8", "version_base": "1.3", "cwd": "/srv/share/proj",
                    "config_sources": [{"path": "hydra.conf", "schema": "pkg", "provider": "hydra"},
                                       {"path": "/srv/share/proj/conf", "schema": "file", "provider": "main"}],
                    "output_dir": output_dir,
                    "choices": {"model": "resnet", "data": "cifar", "hydra/launcher": "basic",
                                "hydra/sweeper": "basic", "hydra/output": "default"}},
        "verbose": False}}


def write_hydra_job(folder: Path, rng: random.Random, mode: str, task: list[str], num: int | str) -> None:
    """One Hydra job folder: .hydra/{config,overrides,hydra}.yaml, a log, metrics.json."""
    (folder / ".hydra").mkdir(parents=True)
    config = {"model": {"name": "resnet", "depth": rng.choice([18, 34, 50]), "width": 64,
                        "dropout": 0.1},
              "data": {"name": "cifar", "path": "data/cifar", "batch_size": 128, "augment": True},
              "optim": {"lr": rng.random() / 100, "momentum": 0.9, "weight_decay": 5e-4},
              "trainer": {"max_epochs": 100, "precision": 16, "devices": 1}, "seed": rng.randrange(100)}
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(task))
    meta = hydra_meta(f"/srv/share/proj/{folder.name}", mode, task, num)
    (folder / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    log = "".join(f"[2026-01-01 10:00:{i % 60:02d},000][__main__][INFO] - epoch {i} loss {rng.random():.4f}\n"
                  for i in range(30))
    (folder / "train.log").write_text(log)
    (folder / "metrics.json").write_text(json.dumps({"test_acc": rng.random(), "test_loss": rng.random()}))


def write_hydra_sweep(folder: Path, rng: random.Random, jobs: int) -> None:
    """A multirun sweep root with its numbered jobs."""
    folder.mkdir(parents=True)
    grid = ["optim.lr=0.1,0.01", "model.depth=18,34,50"]
    (folder / "multirun.yaml").write_text(yaml.safe_dump(hydra_meta("???", "MULTIRUN", grid, "???")
                                                         | {"seed": 0}, sort_keys=False))
    for num in range(jobs):
        task = [f"optim.lr={rng.choice(['0.1', '0.01'])}", f"model.depth={rng.choice([18, 34, 50])}"]
        write_hydra_job(folder / str(num), rng, "MULTIRUN", task, num)


def write_sacred_run(base: Path, run_no: int, rng: random.Random) -> None:
    """A FileStorageObserver run folder; sources/resources stored once per observer."""
    folder = base / str(run_no)
    folder.mkdir(parents=True)
    source = "_sources/train_21d7b4adbae40e15cc244b13e9348f7e.py"
    resource = f"{base.name}/_resources/train_6980c3448b097cbbf594992eb6c82756.csv"
    run = {"artifacts": ["model.pt"], "command": "run",
           "experiment": {"base_dir": "/srv/share/proj/src", "dependencies": ["numpy==2.4.6", "sacred==0.8.7"],
                          "mainfile": "train.py", "name": "exp", "repositories": [
                              {"url": "git@host:team/proj.git", "commit": "0" * 40, "dirty": False}],
                          "sources": [["train.py", source]]},
           "heartbeat": "2026-01-01T10:05:00.000000",
           "host": {"ENV": {}, "cpu": "AMD EPYC", "hostname": "node1", "os": ["Linux", "Linux-6.1"],
                    "python_version": "3.11.7"},
           "meta": {"command": "run", "config_updates": {"lr": 0.01}, "named_configs": [],
                    "options": {f"--opt{i}": None for i in range(20)}},
           "resources": [["/srv/share/proj/data/train.csv", resource]], "result": rng.random(),
           "start_time": "2026-01-01T10:00:00.000000", "status": "COMPLETED",
           "stop_time": "2026-01-01T10:05:00.000000"}
    (folder / "run.json").write_text(json.dumps(run, indent=2))
    (folder / "config.json").write_text(json.dumps(
        {"lr": 0.01, "epochs": 100, "batch_size": 64, "model": {"depth": 3, "width": 128},
         "seed": rng.randrange(10**9)}, indent=2))
    metrics = {name: {"steps": list(range(100)),
                      "timestamps": [f"2026-01-01T10:0{i // 20}:{i % 60:02d}.000000" for i in range(100)],
                      "values": [rng.random() for _ in range(100)]}
               for name in ("loss", "acc", "val_loss")}
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (folder / "cout.txt").write_text("".join(f"epoch {i}: loss {rng.random():.4f}\n" for i in range(100)))
    (folder / "model.pt").write_bytes(os.urandom(100_000))


def generate_tree(root: Path, runs: int, seed: int = 0) -> Counter:
    """``runs`` run folders split evenly across the formats; returns run folders per format."""
    rng = random.Random(seed)
    per_format = {fmt: runs // 3 + (1 if i < runs % 3 else 0) for i, fmt in enumerate(FORMATS)}
    for n in range(per_format["lightning"]):
        write_lightning(root / "lightning" / f"exp{n // 50}" / f"version_{n % 50}", rng)
    made = 0
    while made < per_format["hydra"]:
        if made % (JOBS_PER_SWEEP + 1) == 0:
            write_hydra_job(root / "hydra" / "outputs" / f"run{made}", rng, "RUN", [], "???")
            made += 1
        else:
            jobs = min(JOBS_PER_SWEEP, per_format["hydra"] - made)
            write_hydra_sweep(root / "hydra" / "multirun" / f"sweep{made}", rng, jobs)
            made += jobs
    data = root / "sacred" / "data"
    data.mkdir(parents=True)
    (data / "train.csv").write_bytes(os.urandom(3000))
    for n in range(per_format["sacred"]):
        base = root / "sacred" / f"obs{n // RUNS_PER_OBSERVER}"
        if not (base / "_sources").exists():
            for sub in ("_sources", "_resources"):
                (base / sub).mkdir(parents=True)
            (base / "_sources" / "train_21d7b4adbae40e15cc244b13e9348f7e.py").write_text("print(1)\n" * 50)
            (base / "_resources" / "train_6980c3448b097cbbf594992eb6c82756.csv").write_bytes(os.urandom(3000))
        write_sacred_run(base, n % RUNS_PER_OBSERVER + 1, rng)
    return Counter(per_format)


# --- crawling with a read counter ----------------------------------------------------------------


def find_units(root: Path) -> list[tuple[object, Path]]:
    """Every folder a crawler claims, judged from the folder's entry names like the walker."""
    crawlers = (LightningCrawler(), HydraCrawler(), SacredCrawler())
    units = []
    for folder, dirs, files in os.walk(root):
        names = frozenset(dirs) | frozenset(files)
        for crawler in crawlers:
            if crawler.match_folder(Path(folder), names):
                units.append((crawler, Path(folder)))
    return units


@contextmanager
def count_opens(opened: list[str]) -> Iterator[None]:
    """Record every file opened for reading through ``open`` / ``io.open`` (pathlib uses it)."""
    real_open = io.open

    def counting_open(file, mode="r", *args, **kwargs):
        if "r" in mode and not isinstance(file, int):
            opened.append(os.fspath(file))
        return real_open(file, mode, *args, **kwargs)

    io.open = builtins.open = counting_open
    try:
        yield
    finally:
        io.open = builtins.open = real_open


Timing = tuple[float, float]  # (wall seconds, CPU seconds)


def crawl_units(root: Path, units: list[tuple[object, Path]]) -> Timing:
    """Crawl every unit, consuming its records."""
    wall, cpu = time.perf_counter(), time.process_time()
    for crawler, unit in units:
        ctx = CrawlContext.for_root(root, unit)
        for _ in crawler.crawl(ctx.unit, ctx):
            pass
    return time.perf_counter() - wall, time.process_time() - cpu


def best_of(repeat: int, run: Callable[[], Timing]) -> Timing:
    """Best wall and best CPU time of ``repeat`` runs (shared machines are noisy)."""
    timings = [run() for _ in range(repeat)]
    return min(t[0] for t in timings), min(t[1] for t in timings)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_cat(files: list[str]) -> Timing:
    """``cat`` of ``files`` to /dev/null through xargs (few processes, the I/O floor)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lst", delete=False) as f:
        f.write("\0".join(files))
    try:
        wall, cpu = time.perf_counter(), children_cpu()
        subprocess.run(["xargs", "-0", "-a", f.name, "cat"], stdout=subprocess.DEVNULL, check=True)
        return time.perf_counter() - wall, children_cpu() - cpu
    finally:
        os.unlink(f.name)


def time_python_read(files: list[str]) -> Timing:
    wall, cpu = time.perf_counter(), time.process_time()
    for name in files:
        with open(name, "rb") as f:
            f.read()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5000, help="run folders to generate")
    parser.add_argument("--dir", type=Path, help="where to build the tree (default: a temp dir)")
    parser.add_argument("--repeat", type=int, default=3, help="timings: best of this many")
    parser.add_argument("--keep", action="store_true", help="keep the generated tree")
    args = parser.parse_args()

    root = Path(args.dir or tempfile.mkdtemp(prefix="bench-runfolders-")).absolute()
    t0 = time.perf_counter()
    per_format = generate_tree(root, args.runs)
    print(f"tree: {root}  {sum(per_format.values())} run folders {dict(per_format)} "
          f"generated in {time.perf_counter() - t0:.1f}s")
    try:
        units = find_units(root)
        opened: list[str] = []
        with count_opens(opened):
            crawl_units(root, units)  # also warms the page cache
        reads = Counter(opened)
        files = sorted(reads)
        report_reads(root, units, reads, per_format)

        per_crawler = {name: best_of(args.repeat, lambda n=name: crawl_units(
            root, [(c, u) for c, u in units if c.name == n])) for name in FORMATS}
        crawl = tuple(sum(t[i] for t in per_crawler.values()) for i in (0, 1))
        cat = best_of(args.repeat, lambda: time_cat(files))
        py = best_of(args.repeat, lambda: time_python_read(files))
        size = sum(os.path.getsize(f) for f in files)
        print(f"\nfiles read: {len(files)} ({size / 1e6:.1f} MB); times are wall / CPU, best of "
              f"{args.repeat}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"cat (xargs) of the same files: {cat[0]:.3f}s / {cat[1]:.3f}s   "
              f"python open+read: {py[0]:.3f}s / {py[1]:.3f}s")
        for name, (wall, cpu) in per_crawler.items():
            n = per_format[name]
            print(f"  {name:10s} {wall:7.3f}s / {cpu:7.3f}s   "
                  f"{1e3 * wall / n:6.2f} / {1e3 * cpu / n:6.2f} ms per run folder")
        print(f"crawl total: {crawl[0]:.3f}s / {crawl[1]:.3f}s   ratio crawl/cat = "
              f"{crawl[0] / cat[0]:.1f}x wall, {crawl[1] / cat[1]:.1f}x CPU   crawl/python-read = "
              f"{crawl[0] / py[0]:.1f}x wall")
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(root)


def report_reads(root: Path, units: list, reads: Counter, per_format: Counter) -> None:
    """Files read per run folder and format, and whether any file was read twice."""
    by_format: Counter = Counter()
    kinds: dict[str, Counter] = {fmt: Counter() for fmt in FORMATS}
    for path in reads:
        fmt = Path(path).relative_to(root).parts[0]
        by_format[fmt] += reads[path]
        kinds[fmt][Path(path).name if not Path(path).name[0].isdigit() else "<n>"] += reads[path]
    twice = [p for p, n in reads.items() if n > 1]
    print(f"units crawled: {len(units)} ({Counter(c.name for c, _ in units)})")
    for fmt in FORMATS:
        print(f"  {fmt:10s} files read per run folder: {by_format[fmt] / per_format[fmt]:.2f}  "
              f"{dict(kinds[fmt].most_common())}")
    print(f"files read more than once: {len(twice)}")


if __name__ == "__main__":
    main()
