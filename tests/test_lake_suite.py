"""tests/lake, run in an environment with the lake extra.

DuckLake's extension packages exist for duckdb 1.5 only, while the default install takes the newest
duckdb: the lake tests cannot share this interpreter.  Here they run in a virtual environment with
``.[test,lake]`` (made once per pyproject.toml, kept under ``~/.cache``), so README's one test command
covers both backends.  Where this interpreter has the extra itself, tests/lake are collected directly.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _has_lake_extra() -> bool:
    try:
        import duckdb_extension_ducklake  # noqa: F401
    except ImportError:
        return False
    return True


def lake_python() -> Path:
    """The interpreter of a venv with the project's lake extra (created on first use)."""
    key = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    venv = cache / "mlcrawl-tests" / f"lake-{key}"
    python = venv / "bin" / "python"
    if not (venv / ".complete").exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-e", f"{REPO}[test,lake]"],
                       check=True, capture_output=True, text=True, timeout=1200)
        (venv / ".complete").touch()
    return python


@pytest.mark.skipif(_has_lake_extra(), reason="this interpreter has the lake extra: tests/lake ran directly")
def test_lake_suite_in_its_own_environment(tmp_path):
    """Every test of tests/lake passes under duckdb 1.5 with the DuckLake and postgres extensions."""
    try:
        python = lake_python()
    except subprocess.CalledProcessError as failure:
        pytest.fail(f"could not install .[test,lake]: {failure.stderr or failure}")
    result = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "pt"),
         "tests/lake"], cwd=REPO, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert " passed" in result.stdout.splitlines()[-1]
