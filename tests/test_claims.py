"""Claims: globs matched in DuckDB agree with fnmatch; priorities arbitrate; refinements decide."""

from __future__ import annotations

from fnmatch import fnmatchcase

import duckdb
import pytest

from mlcrawl.api import BaseCrawler, Claims, FolderShape
from mlcrawl.claims import ClaimMatcher
from mlcrawl.rootcrawl import glob_to_re2

NAMES = ["results.tsv", "results_v2.tsv", "Results.TSV", "a.b.c", "events.out.tfevents.1.host", "x[1].json",
         "checkpoint-12", "checkpoint-x", "plain", ".hidden.yaml", "weird+name(1).pt"]
GLOBS = ["results*.tsv", "events.out.tfevents.*", "checkpoint-[0-9]*", "x[[]1].json", "*.pt", "?lain", "[!a]*.c",
         "weird+name(1).pt"]


@pytest.mark.parametrize("glob", GLOBS)
def test_globs_match_in_duckdb_as_fnmatch_does(glob):
    con = duckdb.connect()
    pattern = "(?i)" + glob_to_re2(glob)
    got = {n for n in NAMES if con.execute("SELECT regexp_full_match(lower(?), ?)", [n, pattern]).fetchone()[0]}
    assert got == {n for n in NAMES if fnmatchcase(n.lower(), glob.lower())}


class _Folder(BaseCrawler):
    version = 1

    def __init__(self, name, shape, accept=True):
        self.name, self.claims, self.accept = name, Claims(folders=(shape,)), accept

    def match_folder(self, path, names):
        return self.accept


def test_the_highest_priority_claim_that_still_accepts_owns_the_folder():
    failures = []
    low = _Folder("tensorboard_like", FolderShape(any_of=("events.*",)))
    high = _Folder("lightning_like", FolderShape(name="version_*", any_of=("hparams.yaml",), priority=10))
    matcher = ClaimMatcher([low, high], lambda *a: failures.append(a))
    names = frozenset({"events.1", "hparams.yaml"})
    assert matcher.for_folder("/r/version_0", names) == [high]
    assert matcher.for_folder("/r/other", names) == [low]
    declining = _Folder("lightning_like", FolderShape(name="version_*", any_of=("hparams.yaml",), priority=10), accept=False)
    assert ClaimMatcher([low, declining], failures.append).for_folder("/r/version_0", names) == [low]
    assert not failures


def test_all_of_and_any_of_shapes():
    shape = FolderShape(all_of=("run.json",), any_of=("config.json", "cout.txt"))
    assert shape.matches("1", frozenset({"run.json", "cout.txt"}))
    assert not shape.matches("1", frozenset({"run.json"}))
    assert not shape.matches("1", frozenset({"config.json"}))
