"""The example plugin of docs/writing-a-crawler.md, installed as a real distribution (CI does)."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points

import pytest
from helpers import CLI, make_tree, rows


def _installed() -> bool:
    return any(ep.name == "tsv_results" for ep in entry_points(group="mlcrawl.crawlers"))


@pytest.fixture
def plugin_env():
    if not _installed():
        if os.environ.get("CI") == "true":
            pytest.fail("examples/mlcrawl-csvstats is not installed (.ci/run installs it)")
        pytest.skip("pip install -e examples/mlcrawl-csvstats to run this test")
    env = dict(os.environ, HOME="/tmp")
    env.pop("MLCRAWL_NO_PLUGINS", None)
    return env


def test_the_example_plugin_is_listed_and_crawls(tmp_path, plugin_env):
    listed = subprocess.run([*CLI, "crawlers"], capture_output=True, text=True, env=plugin_env, check=True)
    assert "tsv_results" in listed.stdout and "plugin" in listed.stdout
    root = make_tree(tmp_path / "sweep", {
        "results.tsv": "run_id\tlr\taccuracy\ttoken\na\t0.1\t0.8\tx\nb\t0.01\t0.9\ty\nbroken\n",
    })
    db = tmp_path / "c.duckdb"
    done = subprocess.run([*CLI, "crawl", str(root), "--catalog", str(db), "--json"],
                          capture_output=True, text=True, env=plugin_env)
    assert done.returncode == 0, done.stderr
    assert rows(db, "SELECT run_id FROM runs ORDER BY 1") == [("tsv_results:results.tsv:a",), ("tsv_results:results.tsv:b",)]
    assert rows(db, "SELECT value FROM metrics WHERE key = 'accuracy' ORDER BY 1") == [(0.8,), (0.9,)]
    assert rows(db, "SELECT error_type FROM errors") == [("bad_row",)]


def test_the_plugin_options_are_validated(tmp_path, plugin_env):
    (tmp_path / "mlcrawl.toml").write_text("[crawlers.tsv_results]\nparam_colums = ['lr']\n")
    root = make_tree(tmp_path / "sweep", {"results.tsv": "lr\n0.1\n"})
    done = subprocess.run([*CLI, "crawl", str(root)], capture_output=True, text=True, env=plugin_env, cwd=tmp_path)
    assert done.returncode == 2 and "param_colums" in done.stderr and "param_columns" in done.stderr
    assert "Traceback" not in done.stderr


def test_plugins_stay_out_when_disabled_by_the_environment(plugin_env):
    env = dict(plugin_env, MLCRAWL_NO_PLUGINS="1")
    listed = subprocess.run([sys.executable, "-c", "from mlcrawl.cli import main; main()", "crawlers"],
                            capture_output=True, text=True, env=env, check=True)
    assert "tsv_results" not in listed.stdout
