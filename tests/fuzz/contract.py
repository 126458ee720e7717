"""The crawler contract a fuzzed input is checked against.

A crawler given bad bytes may raise, and the core turns that into one error row: but only an
exception that says what is wrong with the input (a ValueError, an OSError, a YAML or zip error)
is a clear message.  A TypeError, KeyError, IndexError or AttributeError is a crawler bug that
surfaced as a row like "'NoneType' object is not subscriptable"; a RecursionError or a unit that
runs past its time limit is a crash or a hang.  Every record must pass the core's validation.
"""

from __future__ import annotations

import sqlite3
import zipfile
from pathlib import Path

import yaml

from mlcrawl.crawler import BaseCrawler, CrawlContext, options_from
from mlcrawl.unitguard import time_limit
from mlcrawl.validate import validate

#: What a crawler may raise on bad input: each says what is wrong with the file.
INPUT_ERRORS = (ValueError, OSError, yaml.YAMLError, zipfile.BadZipFile, EOFError, sqlite3.DatabaseError)
#: Seconds one fuzzed unit may take (inputs are a few KiB: a slow one is a loop gone wrong).
UNIT_SECONDS = 10.0


def is_input_error(exc: BaseException) -> bool:
    """A refusal that names the input's problem: a generic input error or a crawler's own error class."""
    return isinstance(exc, INPUT_ERRORS) or type(exc).__module__.startswith("mlcrawl.crawlers.")


def crawl_unit(crawler: BaseCrawler, root: Path, unit: Path, **enclosing) -> list:
    """The unit's validated records, or [] when the crawler refused the input with a clear error."""
    ctx = CrawlContext(root=root, unit=unit, options=options_from(crawler.Options, {}, crawler.name), **enclosing)
    records = []
    try:
        with time_limit(UNIT_SECONDS):
            records = [validate(record, crawler.name) for record in crawler.crawl(unit, ctx)]
    except Exception as exc:
        if not is_input_error(exc):
            raise
        return []
    for problem in ctx.warnings:
        validate(problem, crawler.name)
    return records


def check(call, *allowed: type[BaseException]):
    """``call()``'s result, None when it raised one of ``allowed`` (a decoder's own errors)."""
    try:
        with time_limit(UNIT_SECONDS):
            return call()
    except allowed:
        return None
