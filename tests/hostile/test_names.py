"""Names are data: every tool's shape with non-UTF-8, newline, control-character, leading-dash,
glob-character and near-255-byte names in the parts a user chooses, crawled by the real CLI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlcrawl.walk import display_name

from . import harness
from .matrix import HOSTILE_NAMES, build_names_tree


@pytest.fixture(scope="module")
def crawled(tmp_path_factory) -> tuple[Path, list[str], dict, dict, dict]:
    base = tmp_path_factory.mktemp("names")
    root, made = build_names_tree(base)
    db = base / "catalog.duckdb"
    first = harness.assert_clean(harness.crawl(root, db))
    before = harness.snapshot(db)
    second = harness.assert_clean(harness.crawl(root, db))
    return db, made, first, second, before


def _stored(rel: str) -> str:
    return "/".join(display_name(part) for part in rel.split("/"))


def test_components_near_the_limit_were_made(crawled) -> None:
    _, made, _, _, _ = crawled
    assert max(len(os.fsencode(p.rsplit("/", 1)[-1])) for p in made) >= 210


def test_every_file_is_a_row_under_its_escaped_name(crawled) -> None:
    db, made, _, _, _ = crawled
    stored = {r[0] for r in harness.query(db, "SELECT path FROM files WHERE deleted_at IS NULL")}
    missing = [_stored(p) for p in made if _stored(p) not in stored]
    assert not missing, missing[:10]
    assert any("\\xff\\xfe" in p for p in stored)


def test_recrawl_finds_the_same_rows(crawled) -> None:
    db, _, first, second, before = crawled
    assert (second["files_new"], second["files_changed"], second["files_deleted"]) == (0, 0, 0)
    assert second["units_crawled"] == 0 and second["units_skipped"] == first["units_crawled"] + first["units_skipped"]
    assert harness.snapshot(db) == before


@pytest.mark.parametrize("label", sorted(HOSTILE_NAMES))
def test_each_tool_yields_rows_with_each_name(crawled, label: str) -> None:
    """A hostile name costs nothing: the same runs come out of each tool's shape as with a plain one."""
    db, _, _, _, _ = crawled
    runs = {r[0].split("/")[0] for r in harness.query(
        db, "SELECT unit FROM runs WHERE unit LIKE ?", [f"%/{display_name(label) if label != 'long' else 'L'}%"])}
    assert {"mlflow", "sacred", "hydra", "lightning", "huggingface", "tensorboard"} <= runs, runs


def test_no_failed_unit_because_of_a_name(crawled) -> None:
    db, _, _, _, _ = crawled
    failed = harness.query(db, "SELECT crawler, unit, message FROM errors WHERE severity = 'error'")
    assert not failed, failed[:5]
