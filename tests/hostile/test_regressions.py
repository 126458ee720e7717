"""Bugs the hostile suite and the fuzzers found, each pinned by a plain test."""

from __future__ import annotations

import os
from pathlib import Path

from mlcrawl.catalog import Catalog
from mlcrawl.catalog.writer import BatchWriter
from mlcrawl.records import CrawlError

from helpers import rows


def test_error_rows_quoting_undecodable_names_are_stored_escaped(tmp_path: Path) -> None:
    """A crawler warning (or an exception message) quoting a non-UTF-8 path crashed the writer."""
    db = tmp_path / "catalog.duckdb"
    writer = BatchWriter(Catalog.at(db), 1, str(tmp_path))
    bad = os.fsdecode(b"run\xff")
    writer.add_error("hydra", "u", CrawlError(f"a/{bad}/f.yaml", "warning", f"cannot read '/r/a/{bad}/f.yaml'",
                                              "warning"))
    writer.flush()
    assert rows(db, "SELECT path, message FROM errors") == [("a/run\\xff/f.yaml", "cannot read '/r/a/run\\xff/f.yaml'")]
