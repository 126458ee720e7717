"""A catalog crawled from the shared corpus (copied to a temporary folder), once per session (a fixture imported by the tests of this folder; a conftest.py here would shadow tests/conftest.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"


@pytest.fixture(scope="session")
def corpus_catalog(tmp_path_factory) -> Path:
    if not CORPUS.is_dir():
        pytest.fail(f"the shared corpus is missing at {CORPUS}")
    base = tmp_path_factory.mktemp("serve")
    root = base / "corpus"
    shutil.copytree(CORPUS, root, symlinks=True)
    catalog = base / "cat.duckdb"
    done = subprocess.run([sys.executable, "-m", "mlcrawl", "crawl", str(root), "--catalog", str(catalog)],
                          capture_output=True, text=True)
    assert done.returncode in (0, 1), done.stderr
    return catalog
