"""Shared fixtures: the real-tool corpus beside the project, and crawl helpers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mlcrawl.crawler import CrawlContext, options_from

# Installed third-party crawlers must never leak into the tests.
os.environ["MLCRAWL_NO_PLUGINS"] = "1"

# tests/lake need the lake extra (duckdb 1.5); without it, tests/test_lake_suite.py runs them in a venv that has it.
try:
    import duckdb_extension_ducklake  # noqa: F401
except ImportError:
    collect_ignore = ["lake"]

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


@pytest.fixture(scope="session")
def corpus() -> Path:
    """``../shared/corpus``: output written by the real tools (skips when it is absent)."""
    if not (CORPUS / "TRUTH.json").is_file():
        pytest.skip("../shared/corpus is not beside the project")
    return CORPUS


@pytest.fixture(scope="session")
def truth(corpus: Path) -> dict:
    """The corpus's TRUTH.json: what each tool reports about its own files."""
    return json.loads((corpus / "TRUTH.json").read_text())


def crawl_unit(crawler, root: Path, unit: Path, **options):
    """Run one crawler over one unit outside a catalog; returns (records, warnings)."""
    ctx = CrawlContext.for_root(root, unit, options=options_from(crawler.Options, options, crawler.name))
    records = list(crawler.crawl(ctx.unit, ctx))
    return records, ctx.warnings
