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


def _naive_next_header(buf: bytes, start: int) -> int:
    import struct

    from mlcrawl.crawlers._formats.tfevents import masked_crc32c

    for pos in range(start, len(buf) - 12 + 1):
        length, crc = struct.unpack_from("<QI", buf, pos)
        if pos + 12 + length + 4 <= len(buf) and masked_crc32c(buf[pos:pos + 8]) == crc:
            return pos
    return len(buf)


def test_tfevents_resync_finds_what_a_byte_by_byte_scan_finds() -> None:
    import random
    import struct

    from mlcrawl.crawlers._formats.tfevents import find_next_header, masked_crc32c

    rng = random.Random(7)
    for _ in range(300):
        parts = []
        for _ in range(rng.randrange(1, 5)):
            kind = rng.randrange(3)
            if kind == 0:
                parts.append(bytes(rng.randrange(40)))
            elif kind == 1:
                parts.append(rng.randbytes(rng.randrange(40)))
            else:
                length = struct.pack("<Q", rng.randrange(20))
                parts.append(length + struct.pack("<I", masked_crc32c(length)) + rng.randbytes(rng.randrange(24)))
        buf = b"".join(parts)
        start = rng.randrange(len(buf) + 1)
        assert find_next_header(buf, start) == _naive_next_header(buf, start), (buf, start)


def test_tfevents_resync_over_zeros_and_noise_is_fast(tmp_path: Path) -> None:
    """A 64 MiB run of zeros took two minutes to resync over (one Python step per byte)."""
    import random
    import time

    from mlcrawl.crawlers._formats.tfevents import find_next_header

    for buf in (bytes(64 << 20), random.Random(1).randbytes(8 << 20)):
        started = time.monotonic()
        assert find_next_header(buf, 1) == len(buf)
        assert time.monotonic() - started < 5


def test_tfevents_record_longer_than_a_protobuf_is_reported(tmp_path: Path) -> None:
    import struct

    from mlcrawl.crawler import CrawlContext
    from mlcrawl.crawlers._formats.tfevents import iter_tfrecords, masked_crc32c

    length = struct.pack("<Q", 1 << 63)
    buf = length + struct.pack("<I", masked_crc32c(length)) + bytes(64)
    ctx = CrawlContext.for_root(tmp_path, tmp_path / "events.out.tfevents.1")
    assert list(iter_tfrecords(buf, ctx, tmp_path / "events.out.tfevents.1")) == []
    assert [w.error_type for w in ctx.warnings] == ["corrupt_record"]


def test_huge_python_file_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    """A 200 MB .py was read and handed to ast.parse: a MemoryError (several GB without a limit)."""
    import pytest

    from mlcrawl.crawlers.code import CodeCrawler
    from mlcrawl.fileaccess import TooLarge

    from conftest import crawl_unit

    script = tmp_path / "huge.py"
    with open(script, "wb") as f:
        f.write(b"x = 1\n")
        f.truncate(200 << 20)
    with pytest.raises(TooLarge, match="read limit of 16777216"):
        crawl_unit(CodeCrawler(), tmp_path, script)
    small = tmp_path / "small.py"
    small.write_text("import json\n")
    records, _ = crawl_unit(CodeCrawler(), tmp_path, small, max_bytes=64)
    assert [r.module for r in records] == ["json"]


def test_sacred_side_file_that_cannot_be_read_costs_only_itself(tmp_path: Path) -> None:
    """An unreadable config.json (EIO, EACCES) failed the whole Sacred run; it is one warning now."""
    import json

    import errno

    from mlcrawl.crawler import CrawlContext
    from mlcrawl.crawlers.sacred import SacredCrawler
    from mlcrawl.records import Run

    run = tmp_path / "runs" / "1"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"status": "COMPLETED", "experiment": {"name": "e"}}))
    (run / "config.json").write_text("{}")
    ctx = CrawlContext.for_root(tmp_path, run)
    real = ctx.read_bytes

    def read_bytes(path, limit=None):
        if Path(path).name == "config.json":
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real(path, limit)

    ctx.read_bytes = read_bytes
    records = list(SacredCrawler().crawl(run, ctx))
    assert [r.run_id for r in records if isinstance(r, Run)] == ["sacred:runs/1"]
    assert [(w.path, w.error_type) for w in ctx.warnings] == [("runs/1/config.json", "unreadable_file")]


def test_crawl_into_a_catalog_killed_before_its_tables_were_made(tmp_path: Path) -> None:
    """kill -9 while the catalog file was created left it without tables: the next crawl crashed
    on the progress bar's count of known files."""
    import duckdb

    from helpers import run_cli

    db = tmp_path / "catalog.duckdb"
    duckdb.connect(str(db)).close()
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "a.csv").write_text("a\n1\n")
    result = run_cli("crawl", str(tmp_path / "root"), "--catalog", str(db))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert rows(db, "SELECT path FROM files") == [("a.csv",)]


def test_lineage_of_a_crawl_killed_before_its_lineage_is_done_by_the_next(tmp_path: Path, monkeypatch) -> None:
    """Units written by a crawl killed before its lineage step were up to date for the next crawl,
    which recomputed only its own units: their edges kept the old file versions' hashes."""
    import hashlib
    import json

    import pytest

    from helpers import crawl
    from mlcrawl.runner import Runner

    metrics = tmp_path / "root" / "r0" / "metrics.json"
    metrics.parent.mkdir(parents=True)
    metrics.write_text(json.dumps({"acc": 0.1}))
    db = tmp_path / "c.duckdb"
    crawl(tmp_path / "root", db)
    metrics.write_text(json.dumps({"acc": 0.2, "loss": 1.0}))

    def killed(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(Runner, "_update_lineage", killed)
    with pytest.raises(KeyboardInterrupt):
        crawl(tmp_path / "root", db)
    monkeypatch.undo()
    crawl(tmp_path / "root", db)
    new = hashlib.sha256(metrics.read_bytes()).hexdigest()
    assert rows(db, "SELECT DISTINCT dst_sha256 FROM lineage WHERE dst = 'r0/metrics.json'") == [(new,)]


def test_code_with_carriage_return_line_breaks_is_analysed(tmp_path: Path) -> None:
    """ast counts a lone \\r as a line break, the analyser split lines on \\n only: IndexError."""
    from mlcrawl.crawlers._codeanalysis import CodeAnalyzer

    analyzer = CodeAnalyzer(file_path=str(tmp_path / "train.py"))
    analyzer.add_source("\r0")
    analyzer.add_source("import os\rdata = open('data.csv')\r\nx = 1\r")
    assert analyzer.facts.imports == ["os"]
    assert [(r.raw, r.line) for r in analyzer.facts.references] == [("data.csv", 2)]


def test_dvc_stages_that_are_not_mappings_are_refused_clearly() -> None:
    """``stages: text`` was an AttributeError ('str' object has no attribute 'items'), a foreach
    ``do:`` list a TypeError; a matrix of a few short axes expanded to billions of stages."""
    import pytest

    from mlcrawl.crawlers._dvc_expand import Interpolator, expand_stages

    with pytest.raises(ValueError, match="'stages' is a str"):
        list(expand_stages("train", Interpolator({})))
    stages = list(expand_stages({"s": {"foreach": [1, 2], "do": ["not", "a", "mapping"]}}, Interpolator({})))
    assert [s.name for s in stages] == ["s@1", "s@2"]
    matrix = {f"axis{i}": list(range(20)) for i in range(8)}
    with pytest.raises(ValueError, match="expands to 25,600,000,000 stages"):
        list(expand_stages({"grid": {"matrix": matrix, "cmd": "x"}}, Interpolator({})))


def test_hydra_now_pattern_naming_a_field_twice_is_no_time() -> None:
    """``${now:%Y%Y}`` made strptime raise re.error (not ValueError): the unit failed (fuzzing)."""
    from mlcrawl.crawlers.hydra import time_from_pattern

    assert time_from_pattern("multirun/${now:%Ynow:%Y-%m-%d}", {}, "multirun/2024now:2024-01-01") is None
    assert time_from_pattern("outputs/${now:%Y-%m-%d}", {}, "outputs/2024-01-02").day == 2
