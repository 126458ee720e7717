"""Every file and folder a built-in crawler reads, replaced by a FIFO, a device, a symlink out of
the root, a symlink loop, a dangling symlink or a folder, all in one tree crawled by the real CLI
under a time and a memory limit (with symlinks followed and not)."""

from __future__ import annotations

from pathlib import Path

import pytest

from . import harness
from .matrix import FILE_KINDS, FOLDER_KINDS, Case, build_special_tree
from .shapes import MARKER_NUM, MARKER_TEXT, SHAPES

#: Kinds the walk or a read must report (a folder where a file is expected may simply be absent data).
REPORTED = frozenset(FILE_KINDS + FOLDER_KINDS) - {"folder"}


@pytest.fixture(scope="module", params=["default", "follow_symlinks"])
def crawled(request, tmp_path_factory) -> tuple[Path, Path, dict, dict]:
    """The special tree crawled twice into one catalog: (catalog, outside folder, first and second summary)."""
    base = tmp_path_factory.mktemp(f"special-{request.param}")
    root, cases = build_special_tree(base)
    db = base / "catalog.duckdb"
    args = ("--follow-symlinks",) if request.param == "follow_symlinks" else ()
    first = harness.assert_clean(harness.crawl(root, db, *args))
    before = harness.snapshot(db)
    second = harness.assert_clean(harness.crawl(root, db, *args))
    assert harness.snapshot(db) == before, "a second crawl of the unchanged tree changed rows"
    return db, base / "outside", first, second


@pytest.fixture(scope="module")
def reported(crawled) -> set[str]:
    """Paths with an errors or symlinks row."""
    return harness.problems(crawled[0])


@pytest.fixture(scope="module")
def file_rows(crawled) -> set[str]:
    """Paths of the files table (not deleted)."""
    return {r[0] for r in harness.query(crawled[0], "SELECT path FROM files WHERE deleted_at IS NULL")}


def _all_cases() -> list[Case]:
    # The case list without building the tree: the same builder, on paths only.
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return build_special_tree(Path(tmp))[1]


CASES = _all_cases()


def test_matrix_covers_every_tool_and_kind() -> None:
    assert {c.tool for c in CASES} == set(SHAPES)
    assert {c.kind for c in CASES} == set(FILE_KINDS + FOLDER_KINDS)
    assert len(CASES) > 300


def test_nothing_from_outside_the_root_reaches_the_catalog(crawled) -> None:
    db, _, _, _ = crawled
    text = harness.dump_text(db)
    assert MARKER_TEXT not in text
    assert repr(MARKER_NUM) not in text


def test_the_outside_copies_would_leak_the_marker(crawled, tmp_path) -> None:
    """The marker check can fail: crawled as a root of its own, the outside folder's marker is read."""
    _, outside, _, _ = crawled
    db = tmp_path / "outside.duckdb"
    harness.assert_clean(harness.crawl(outside, db))
    text = harness.dump_text(db)
    assert MARKER_TEXT in text and repr(MARKER_NUM) in text
    leaked_by = {r[0] for r in harness.query(db, "SELECT DISTINCT crawler FROM params WHERE value LIKE ?",
                                            [f"%{MARKER_TEXT}%"])}
    assert {"mlflow", "mlflow_sqlite", "sacred", "hydra", "lightning", "huggingface"} <= leaked_by


def test_second_crawl_reads_nothing_new(crawled) -> None:
    _, _, first, second = crawled
    assert first["files_seen"] == second["files_seen"]
    assert (second["files_new"], second["files_changed"], second["files_deleted"]) == (0, 0, 0)


@pytest.mark.parametrize("case", [c for c in CASES if c.kind in REPORTED], ids=lambda c: c.id)
def test_special_entry_has_its_own_row(reported, case: Case) -> None:
    assert case.rel in reported, f"no errors or symlinks row for {case.rel}"


@pytest.mark.parametrize("case", [c for c in CASES if c.kind in ("fifo", "chardev", "dev_urandom")], ids=lambda c: c.id)
def test_special_file_is_never_a_file_row(file_rows, case: Case) -> None:
    assert case.rel not in file_rows


def test_every_crawler_unit_outside_the_cases_still_crawled(crawled) -> None:
    """The cases break one file of a shape: the crawl goes on for the rest (units are crawled)."""
    db, _, first, _ = crawled
    crawlers = {r[0] for r in harness.query(db, "SELECT DISTINCT crawler FROM units WHERE status = 'ok'")}
    assert {"mlflow", "sacred", "hydra", "dvc", "lightning", "huggingface", "tensorboard", "notebook", "code",
            "datasets", "models", "generic"} <= crawlers
    assert first["units_crawled"] > 300
