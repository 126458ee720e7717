"""Random access to a large binary file with bounded memory: the core's bytes or an mmap."""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlcrawl.crawler import CrawlContext


@contextmanager
def mapped_bytes(ctx: CrawlContext, path: Path) -> Iterator[bytes | mmap.mmap]:
    """The contents of ``path`` for slicing: the bytes the core already read, else an mmap.

    Event files and W&B transaction logs reach gigabytes; an mmap lets the OS page them in and
    out instead of holding a copy, and slicing it costs only the slice.
    """
    cached = ctx.cached_bytes.get(Path(path))
    if cached is not None:
        yield cached
        return
    with open(path, "rb") as f:
        if f.seek(0, 2) == 0:
            yield b""  # mmap refuses empty files
            return
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            yield mapped
