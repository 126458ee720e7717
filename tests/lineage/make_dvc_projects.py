"""Generate the DVC staleness fixtures by running real DVC (not part of the test run).

    /work/toolvenvs/lineage/bin/python tests/lineage/make_dvc_projects.py tests/fixtures/dvc_status

Each scenario is a DVC project built with ``dvc init --no-scm``, ``dvc stage add`` and
``dvc repro``, then changed the way a user changes a project (an edited input, params or
script, a deleted output, a file added to a directory dependency, an edited command, a stage
never run).  ``dvc status --json`` of the changed project is stored beside it as
``dvc_status.json``: the truth the tests compare ``mlcrawl stale`` with.  DVC's temporary
files are dropped; the cache stays (``.dir`` manifests live there).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

DVC = str(Path(sys.executable).with_name("dvc"))
PY = "python"  # found on PATH (the venv of this script), so the fixtures hold no absolute path

PREPARE = """import pathlib, sys
rows = pathlib.Path(sys.argv[1]).read_text().splitlines()
pathlib.Path(sys.argv[2]).parent.mkdir(parents=True, exist_ok=True)
pathlib.Path(sys.argv[2]).write_text("\\n".join(r.upper() for r in rows) + "\\n")
"""
TRAIN = """import pathlib, sys, yaml
params = yaml.safe_load(open("params.yaml"))["train"]
data = pathlib.Path(sys.argv[1]).read_text()
pathlib.Path(sys.argv[2]).write_text(f"model lr={params['lr']} rows={len(data.splitlines())}\\n")
"""
EVALUATE = """import json, pathlib, sys
model = pathlib.Path(sys.argv[1]).read_text()
pathlib.Path(sys.argv[2]).write_text(json.dumps({"score": len(model) / 100}))
"""
CONCAT = """import pathlib, sys
folder = pathlib.Path(sys.argv[1])
text = "".join(p.read_text() for p in sorted(folder.iterdir()))
pathlib.Path(sys.argv[2]).write_text(text)
"""


def run(cwd: Path, *args: str) -> str:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env={**os.environ, "DVC_NO_ANALYTICS": "1",
                                 "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"})
    if result.returncode != 0:
        raise SystemExit(f"{args} in {cwd} failed: {result.stdout}\n{result.stderr}")
    return result.stdout


def pipeline(project: Path) -> None:
    """raw.txt -> prepare -> train (params) -> evaluate, scripts under src/."""
    (project / "src").mkdir(parents=True)
    (project / "data").mkdir()
    (project / "src/prepare.py").write_text(PREPARE)
    (project / "src/train.py").write_text(TRAIN)
    (project / "src/evaluate.py").write_text(EVALUATE)
    (project / "data/raw.txt").write_text("".join(f"row {i}\n" for i in range(40)))
    (project / "params.yaml").write_text("train:\n  lr: 0.1\n  epochs: 3\nother: 1\n")
    run(project, DVC, "init", "--no-scm", "-q")
    run(project, DVC, "stage", "add", "-n", "prepare", "-d", "src/prepare.py", "-d", "data/raw.txt",
        "-o", "data/prepared.txt", f"{PY} src/prepare.py data/raw.txt data/prepared.txt")
    run(project, DVC, "stage", "add", "-n", "train", "-d", "src/train.py", "-d", "data/prepared.txt",
        "-p", "train.lr", "-o", "model.txt", f"{PY} src/train.py data/prepared.txt model.txt")
    run(project, DVC, "stage", "add", "-n", "evaluate", "-d", "src/evaluate.py", "-d", "model.txt",
        "-M", "scores.json", f"{PY} src/evaluate.py model.txt scores.json")
    run(project, DVC, "repro", "-q")


def dir_pipeline(project: Path) -> None:
    """A directory dependency (hashed as a .dir manifest) and a stage running in a wdir."""
    (project / "shards").mkdir(parents=True)
    for i in range(3):
        (project / f"shards/part-{i}.txt").write_text(f"shard {i}\n" * (i + 2))
    (project / "sub").mkdir()
    (project / "sub/concat.py").write_text(CONCAT)
    run(project, DVC, "init", "--no-scm", "-q")
    run(project, DVC, "stage", "add", "-n", "concat", "-w", "sub", "-d", "concat.py", "-d", "../shards",
        "-o", "all.txt", f"{PY} concat.py ../shards all.txt")
    run(project, DVC, "repro", "-q")


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


SCENARIOS: dict[str, tuple[Callable[[Path], None], Callable[[Path], None]]] = {
    "clean": (pipeline, lambda p: None),
    "input_changed": (pipeline, lambda p: append(p / "data/raw.txt", "row extra\n")),
    "params_changed": (pipeline, lambda p: (p / "params.yaml").write_text("train:\n  lr: 0.5\n  epochs: 3\nother: 1\n")),
    "unused_param_changed": (pipeline, lambda p: (p / "params.yaml").write_text("train:\n  lr: 0.1\n  epochs: 9\nother: 2\n")),
    "script_changed": (pipeline, lambda p: append(p / "src/evaluate.py", "# tuned\n")),
    "output_deleted": (pipeline, lambda p: (p / "model.txt").unlink()),
    "output_modified": (pipeline, lambda p: append(p / "data/prepared.txt", "EDITED\n")),
    "cmd_changed": (pipeline, lambda p: (p / "dvc.yaml").write_text((p / "dvc.yaml").read_text().replace(
        "src/evaluate.py model.txt scores.json", "src/evaluate.py model.txt scores.json --verbose"))),
    "never_run": (pipeline, lambda p: run(p, DVC, "stage", "add", "-n", "report", "-d", "scores.json",
                                          "-o", "report.txt", "cp scores.json report.txt")),
    "dir_clean": (dir_pipeline, lambda p: None),
    "dir_file_added": (dir_pipeline, lambda p: (p / "shards/part-9.txt").write_text("late shard\n")),
    "dir_file_changed": (dir_pipeline, lambda p: append(p / "shards/part-0.txt", "more\n")),
    "wdir_script_changed": (dir_pipeline, lambda p: append(p / "sub/concat.py", "# v2\n")),
}


def main(out: Path) -> None:
    """Build every scenario under ``out`` with its ``dvc status --json``."""
    shutil.rmtree(out, ignore_errors=True)
    for name, (build, change) in SCENARIOS.items():
        project = out / name
        project.mkdir(parents=True)
        build(project)
        change(project)
        status = json.loads(run(project, DVC, "status", "--json") or "{}")
        shutil.rmtree(project / ".dvc/tmp", ignore_errors=True)
        (project / "dvc_status.json").write_text(json.dumps(status, indent=1, sort_keys=True) + "\n")
        print(name, json.dumps(status))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
