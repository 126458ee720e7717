"""Notebook crawler throughput as a ratio to plain ``json.load`` of the same files.

Generates N realistic notebooks in a temp dir (imports, constants, pandas/joblib/open I/O
calls, compute cells, printed metrics, PNG plots, HTML tables, a papermill header on half of
them), then
times, in the same run and over the same files:

    json.load           open + json.load of every file
    NotebookCrawler     the full crawl of every file (read, validate, outputs, code analysis)
    floor               json.load plus ``ast.parse`` of all code, the least any ast-based
                        analysis of every cell can cost

Times are process CPU time, best of ``--repeat`` interleaved rounds.

Usage: python bench/bench_notebooks.py [N] [--image-kb K] [--repeat R] [--all-io] [--parse-all-cells]
"""

from __future__ import annotations

import argparse
import ast
import base64
import json
import os
import random
import tempfile
import time
from pathlib import Path

from mlcrawl.crawlers.notebook import NotebookCrawler

from mlcrawl.crawler import CrawlContext

IMPORTS = ("import os\nimport json\nimport numpy as np\nimport pandas as pd\nimport joblib\n"
           "import matplotlib.pyplot as plt\n")


def make_cell(source: str, count: int | None, outputs: list | None = None, tags: list | None = None) -> dict:
    return {"cell_type": "code", "execution_count": count, "id": f"{random.getrandbits(48):012x}",
            "metadata": {"tags": tags or []}, "outputs": outputs or [], "source": source.splitlines(True)}


def make_notebook(i: int, image_kb: int, rng: random.Random, all_io: bool) -> dict:
    """One notebook of ~27 cells; executed ones carry outputs with a PNG per plot.

    Each of 8 sections reads a table, computes, and plots; every other section writes a
    parquet file and every fourth saves its figure (``all_io``: every cell does I/O).
    """
    executed = i % 2 == 0
    png = base64.b64encode(rng.randbytes(image_kb * 1024)).decode()
    cells = [{"cell_type": "markdown", "id": f"m{i}", "metadata": {}, "source": f"# Experiment {i}\nNotes."}]
    cells.append(make_cell(f"DATA_DIR = '../data'\nlr = {rng.random():.4f}\nepochs = {rng.randint(1, 50)}",
                           1 if executed else None, tags=["parameters"]))
    cells.append(make_cell(IMPORTS, 2 if executed else None))
    count = 3
    for j in range(8):
        write = all_io or j % 2 == 0
        source = (f"df{j} = pd.read_csv(f'{{DATA_DIR}}/part_{j}.csv')\n"
                  f"df{j} = df{j}.dropna().reset_index(drop=True)\n"
                  + (f"df{j}.to_parquet(os.path.join(DATA_DIR, 'clean', 'part_{j}.parquet'))\n"
                     if write else ""))
        table = {"output_type": "execute_result", "execution_count": count, "metadata": {},
                 "data": {"text/plain": ["   a  b\n"] * 20, "text/html": ["<tr><td>1</td></tr>\n"] * 40}}
        cells.append(make_cell(source + f"df{j}.head(20)", count if executed else None,
                               [table] if executed else None))
        count += 1
        compute = (f"X, y = df{j}.drop(columns='y'), df{j}['y']\nmodel = fit(X, y, lr=lr, epochs=epochs)\n"
                   f"score = evaluate(model, X, y)\nprint('loss:', score)\n")
        printed = {"output_type": "stream", "name": "stdout", "text": [f"loss: {rng.random():.4f}\n"] * 5}
        cells.append(make_cell(compute, count if executed else None, [printed] if executed else None))
        count += 1
        save = all_io or j % 4 == 0
        plot = (f"fig, ax = plt.subplots()\nax.plot(df{j}['a'], df{j}['b'])\nax.set_title('part {j}')\n"
                + (f"fig.savefig('../reports/fig_{j}.png')\n" if save else ""))
        image = {"output_type": "display_data", "metadata": {},
                 "data": {"image/png": png, "text/plain": ["<Figure size 640x480 with 1 Axes>"]}}
        cells.append(make_cell(plot, count if executed else None, [image] if executed else None))
        count += 1
    cells.append(make_cell("joblib.dump(model, '../models/model.joblib')\n"
                           "with open('../reports/metrics.json', 'w') as f:\n"
                           "    json.dump({'acc': 0.9}, f)\n",
                           count if executed else None))
    metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                "language_info": {"name": "python", "version": "3.11.7"}}
    if executed:
        metadata["papermill"] = {"input_path": "template.ipynb", "output_path": f"nb_{i}.ipynb",
                                 "parameters": {"lr": 0.1}, "start_time": "2026-01-01T00:00:00+00:00",
                                 "end_time": "2026-01-01T00:01:00+00:00", "duration": 60.0, "exception": None}
    return {"cells": cells, "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}


def write_notebooks(folder: Path, n: int, image_kb: int, all_io: bool = False) -> list[Path]:
    rng = random.Random(0)
    paths = []
    for i in range(n):
        path = folder / f"nb_{i}.ipynb"
        path.write_text(json.dumps(make_notebook(i, image_kb, rng, all_io), indent=1))
        paths.append(path)
    return paths


def time_json(paths: list[Path]) -> float:
    start = time.process_time()
    for path in paths:
        with open(path, "rb") as f:
            json.load(f)
    return time.process_time() - start


def code_of(paths: list[Path]) -> list[str]:
    """Each notebook's code cells joined, as the parse floor's input."""
    notebooks = [json.loads(p.read_bytes()) for p in paths]
    return ["\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
            for nb in notebooks]


def time_parse(sources: list[str]) -> float:
    start = time.process_time()
    for source in sources:
        ast.parse(source)
    return time.process_time() - start


def time_crawler(root: Path, paths: list[Path], **options) -> tuple[float, int]:
    crawler = NotebookCrawler()
    records = 0
    start = time.process_time()
    for path in paths:
        ctx = CrawlContext.for_root(root, path, **options)
        records += sum(1 for _ in crawler.crawl(ctx.unit, ctx))
    return time.process_time() - start, records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, nargs="?", default=400)
    parser.add_argument("--image-kb", type=int, default=20, help="size of each PNG output (KiB)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--all-io", action="store_true", help="every code cell reads or writes a file")
    parser.add_argument("--parse-all-cells", action="store_true", help="crawler option: parse every cell")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = write_notebooks(root, args.n, args.image_kb, args.all_io)
        options = {"parse_all_cells": True} if args.parse_all_cells else {}
        size = sum(os.path.getsize(p) for p in paths)
        time_json(paths)  # warm the page cache for both contenders
        # Interleaved, best of N, CPU time: a shared machine's load hits both alike.
        sources = code_of(paths)
        t_json, t_crawl, t_parse, records = float("inf"), float("inf"), float("inf"), 0
        for _ in range(args.repeat):
            t_json = min(t_json, time_json(paths))
            t_parse = min(t_parse, time_parse(sources))
            elapsed, records = time_crawler(root, paths, **options)
            t_crawl = min(t_crawl, elapsed)
    print(f"{args.n} notebooks, {size / 1e6:.1f} MB, {args.image_kb} KiB per image, {records} records")
    print(f"json.load        {args.n / t_json:10.0f} notebooks/s")
    print(f"NotebookCrawler  {args.n / t_crawl:10.0f} notebooks/s")
    print(f"ratio crawler/json.load: {t_crawl / t_json:.2f}x")
    print(f"floor: json.load + ast.parse of every code cell = {(t_json + t_parse) / t_json:.2f}x json.load")


if __name__ == "__main__":
    main()
