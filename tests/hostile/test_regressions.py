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


def test_mlflow_store_with_a_non_utf8_name_is_read(tmp_path: Path) -> None:
    """sqlite's URI was quoted from text: a name with undecodable bytes failed the unit."""
    import sqlite3

    from mlcrawl.crawlers.mlflow_sqlite import open_readonly
    from mlcrawl.crawler import CrawlContext

    path = tmp_path / os.fsdecode(b"store\xff.db")
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    conn = open_readonly(path, CrawlContext.for_root(tmp_path, path), 1.0)
    assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("t",)]
    conn.close()


def test_mlflow_store_path_is_checked_by_the_context(tmp_path: Path) -> None:
    """sqlite opens a path itself: a FIFO or a symlink out of the root is refused before it."""
    import pytest

    from mlcrawl.crawlers.mlflow_sqlite import open_readonly
    from mlcrawl.crawler import CrawlContext
    from mlcrawl.fileaccess import UnsafeFile

    fifo = tmp_path / "mlflow.db"
    os.mkfifo(fifo)
    with pytest.raises(UnsafeFile):
        open_readonly(fifo, CrawlContext.for_root(tmp_path, fifo), 1.0)
