"""Bounded binary access to one file for crawlers that must not read a whole file.

``CrawlContext.read_bytes`` returns every byte of a file; a 10 GB safetensors model or CSV
needs only its header, footer or a streamed pass.  These helpers use the bytes the core already
holds when it has them, and otherwise open the file for a seekable, bounded read.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from mlcrawl.crawler import CrawlContext


@contextmanager
def open_binary(ctx: CrawlContext, path: Path) -> Iterator[BinaryIO]:
    """A seekable binary stream of ``path``: the core's cached bytes, else the file itself."""
    cached = ctx.cached_bytes.get(Path(path))
    if cached is not None:
        yield io.BytesIO(cached)
        return
    with open(path, "rb") as f:
        yield f


def file_size(ctx: CrawlContext, path: Path) -> int:
    """Size of ``path`` in bytes, without reading it."""
    cached = ctx.cached_bytes.get(Path(path))
    return len(cached) if cached is not None else os.stat(path).st_size


def read_prefix(ctx: CrawlContext, path: Path, limit: int) -> bytes:
    """At most the first ``limit`` bytes of ``path``."""
    with open_binary(ctx, path) as f:
        return f.read(limit)
