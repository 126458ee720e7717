"""The plugin API: everything a crawler (built-in or third-party) may import from mlcrawl.

A crawler module imports from here and from nothing else in mlcrawl (a test enforces it for
``crawlers/``).  See docs/writing-a-crawler.md for a worked example.
"""

from __future__ import annotations

from .crawler import BaseCrawler, Claims, CrawlContext, FolderShape, Options, Unit
from .fileaccess import TooLarge, UnsafeFile
from .parsing import flatten, from_epoch_ms, from_epoch_s, load_json, load_yaml, parse_iso, to_float, to_text
from .paths import MappedPath, Resolved, map_foreign_path, split_foreign
from .records import (
    RECORD_TYPES,
    Artifact,
    CrawlError,
    DatasetSchema,
    Edge,
    Experiment,
    Import,
    Metric,
    Model,
    Notebook,
    Param,
    Record,
    Reference,
    Run,
    Tag,
)
from .secrets import REDACTED, is_secret_key, redact_text, redact_value

__all__ = [
    "RECORD_TYPES", "Artifact", "BaseCrawler", "Claims", "CrawlContext", "CrawlError", "DatasetSchema",
    "Edge", "Experiment", "FolderShape", "Import", "MappedPath", "Metric", "Model", "Notebook", "Options",
    "Param", "Record", "Reference", "Resolved", "Run", "Tag", "TooLarge", "Unit", "UnsafeFile", "flatten",
    "from_epoch_ms", "from_epoch_s", "load_json", "load_yaml", "map_foreign_path", "parse_iso",
    "split_foreign", "to_float", "to_text", "REDACTED", "is_secret_key", "redact_text", "redact_value",
]
