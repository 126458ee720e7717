"""Generate tests/fixtures/traced_project by running its programs, with the truth they gave.

    /work/toolvenvs/lineage/bin/python tests/lineage/make_traced_project.py tests/fixtures/traced_project

Scripts run from a working directory that is not their folder; a notebook runs under papermill
in its own folder and changes directory (``os.chdir``, ``%cd``) as it goes, writes a file and
reads it back in a later cell.  Every ``open`` of each program is recorded by the audit hook in
traced/sitecustomize.py; the truth (TRUTH.json, the corpus's ``lineage`` format) is what the
programs opened inside the project: a read that follows the same program's write of that file is
internal and no edge.  The template notebook names the same files (``executed: false``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

HERE = Path(__file__).parent

PREPARE = '''from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
df = pd.read_csv(ROOT / "data" / "raw.csv")
for split in ["train", "test"]:
    df.to_csv(ROOT / "data" / f"{split}.csv", index=False)
'''
EVALUATE = '''import json
import os

os.chdir(os.path.dirname(os.path.abspath(__file__)))
with open("../models/model_0.1.txt") as handle:
    model = handle.read()
with open(os.path.join("..", "reports", "score.json"), "w") as out:
    json.dump({"size": len(model)}, out)
'''
CELLS = [
    "import os\nimport pandas as pd",
    "lr = 0.1",
    'df = pd.read_csv("../data/train.csv")',
    'os.chdir("..")\nos.makedirs("work", exist_ok=True)',
    'df.to_csv("work/tmp.csv", index=False)',
    'tmp = pd.read_csv("work/tmp.csv")\ntmp.describe()',
    'with open(f"models/model_{lr}.txt", "w") as handle:\n    handle.write(str(len(tmp)))',
    "%cd notebooks",
    'open("notes.txt", "w").write("done")',
]


def build(project: Path) -> None:
    """The project's files before anything ran."""
    for folder in ("data", "scripts", "notebooks", "models", "reports"):
        (project / folder).mkdir(parents=True, exist_ok=True)
    (project / "data/raw.csv").write_text("a,b\n" + "".join(f"{i},{i * i}\n" for i in range(60)))
    (project / "scripts/prepare.py").write_text(PREPARE)
    (project / "scripts/evaluate.py").write_text(EVALUATE)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in CELLS]
    nb.cells[1].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, project / "notebooks/train.ipynb")


def traced(project: Path, program: str, args: list[str], cwd: Path) -> list[dict]:
    """Run one program and return what it opened inside the project, in order."""
    with tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False) as log:
        log_path = Path(log.name)
    env = {**os.environ, "MLCRAWL_TRACE_LOG": str(log_path), "PYTHONPATH": str(HERE / "traced"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(args, cwd=cwd, env=env, check=True, capture_output=True)
    opened = []
    for line in log_path.read_text().splitlines():
        item = json.loads(line)
        path = Path(item["path"])
        if path.is_relative_to(project) and "__pycache__" not in path.parts and path.suffix != ".py":
            opened.append({"path": path.relative_to(project).as_posix(), "write": item["write"], "program": program})
    log_path.unlink()
    return opened


def truth_edges(opened: list[dict], executed: bool = True, via: str | None = None) -> list[dict]:
    """Corpus-format lineage edges: reads before the program's own write of the file, and writes."""
    edges: list[dict] = []
    written: set[str] = set()
    for item in opened:
        program = via or item["program"]
        if item["write"]:
            edge = {"from": program, "to": item["path"], "via": program, "kind": "write", "executed": executed}
            written.add(item["path"])
        elif item["path"] in written:
            continue
        else:
            edge = {"from": item["path"], "to": program, "via": program, "kind": "read", "executed": executed}
        if edge not in edges:
            edges.append(edge)
    return edges


def main(out: Path) -> None:
    """Build, run and record the project under ``out``."""
    shutil.rmtree(out, ignore_errors=True)
    project = out.resolve()
    build(project)
    elsewhere = Path(tempfile.mkdtemp())
    edges = truth_edges(traced(project, "scripts/prepare.py",
                               [sys.executable, str(project / "scripts/prepare.py")], elsewhere))
    notebook = traced(project, "notebooks/train.out.ipynb",
                      ["papermill", "train.ipynb", "train.out.ipynb", "-p", "lr", "0.1", "-k", "python3"],
                      project / "notebooks")
    edges += truth_edges(notebook)
    edges += truth_edges(notebook, executed=False, via="notebooks/train.ipynb")
    edges.append({"from": "notebooks/train.ipynb", "to": "notebooks/train.out.ipynb",
                  "via": "papermill", "kind": "declared", "executed": True})
    edges += truth_edges(traced(project, "scripts/evaluate.py",
                                [sys.executable, "scripts/evaluate.py"], project))
    shutil.rmtree(elsewhere)
    (project / "TRUTH.json").write_text(json.dumps({"lineage": edges}, indent=1) + "\n")
    print(json.dumps(edges, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
