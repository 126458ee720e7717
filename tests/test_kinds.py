"""File kinds from names: the string-based name split agrees with pathlib, and the rules hold."""

from __future__ import annotations

import random
from pathlib import PurePosixPath

import pytest

from mlcrawl.kinds import classify, name_parts


def test_name_parts_agree_with_pathlib_on_random_and_tricky_names():
    rng = random.Random(7)
    names = [".bashrc", ".hidden.json", "x.", "a..b", "..x", "a.tar.gz", "A.CSV.GZ", "plain", "...", "a.b.c.d."]
    names += ["".join(rng.choice("ab._-") for _ in range(rng.randint(1, 12))) for _ in range(5000)]
    for name in names:
        if name in (".", ".."):
            continue
        path = PurePosixPath(name)
        assert name_parts(name) == (path.suffixes, path.stem), name


@pytest.mark.parametrize("path, expected", [
    ("notebooks/train.ipynb", ("notebook", "ipynb")),
    ("src/train.py", ("code", "py")),
    ("data/train.csv.gz", ("dataset", "csv.gz")),
    ("data/notes.txt", ("other", "txt")),
    ("data/train.txt", ("dataset", "txt")),
    ("out/eval_results.json", ("metrics", "json")),
    ("mlruns/0/abc/metrics/loss", ("metrics", "mlflow-metric")),
    ("checkpoints/last.pt", ("checkpoint", "pt")),
    ("out/checkpoint-500/optimizer.pt", ("checkpoint", "pt")),
    ("logs/events.out.tfevents.1700000000.host.1.0", ("log", "tfevents")),
    ("dvc.lock", ("config", "dvc-lock")),
    ("model/MLmodel", ("config", "mlmodel")),
    ("backup.tar.gz", ("archive", "gz")),
    (".gitignore", ("other", "")),
    ("README", ("other", "")),
])
def test_classify(path, expected):
    assert classify(path) == expected
