"""copy_of only for real copies: a stored code snapshot points from the live file; files that
several runs' folders hold with the same bytes (each tool wrote its own) are not copies."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import crawl, rows

SNAPSHOT = re.compile(r"(^|/)_sources/[^/]+$|(^|/)artifacts/code/|(^|/)[^/]*run-[^/]*/files/code/")


@pytest.fixture(scope="module")
def catalog(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("copies") / "c.duckdb"
    crawl(corpus, db)
    return db


def test_snapshots_are_copies_of_the_live_file(catalog: Path) -> None:
    snapshots = rows(catalog, "SELECT src, dst, evidence FROM lineage WHERE relation = 'copy_of' "
                              "AND evidence LIKE 'code snapshot%'")
    assert snapshots
    assert all(SNAPSHOT.search(dst) and not SNAPSHOT.search(src) for src, dst, _ in snapshots)


def test_no_copy_between_files_two_runs_wrote(catalog: Path) -> None:
    dirs = [d for (d,) in rows(catalog, "SELECT DISTINCT dir FROM runs WHERE dir NOT IN ('', '.')")]

    def in_run(path: str) -> bool:
        return any(path.startswith(d + "/") for d in dirs)

    copies = rows(catalog, "SELECT src, dst FROM lineage WHERE relation = 'copy_of'")
    assert copies
    assert not [(s, d) for s, d in copies if in_run(s) and in_run(d) and not SNAPSHOT.search(d)]
    # equal files in several runs' folders exist in this corpus: the rule above was exercised
    sizes = rows(catalog, "SELECT sha256, list(path) FROM files WHERE size >= 256 GROUP BY sha256 HAVING count(*) > 1")
    assert any(sum(in_run(p) for p in paths) >= 2 for _, paths in sizes)
