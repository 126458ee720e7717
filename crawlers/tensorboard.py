"""TensorBoard event files: one run per folder of ``events.out.tfevents.*`` files.

Layout read::

    <any>/<run folder>/                                  run  tensorboard:<rel folder>
        events.out.tfevents.<secs>.<host>.<pid>.<n>      TFRecord-framed ``Event`` protos
        <float timestamp>/                               torch ``add_hparams`` sub-run: its own
            events.out.tfevents.*                        run, parent = the run of the folder above

A folder that another crawler claims at a higher priority (a Lightning version folder) is
theirs: the core arbitrates, and that crawler reads the event files with the same decoder
(``_formats/tfevents.py``, where the framing and fields read are described).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from mlcrawl.api import BaseCrawler, Claims, CrawlContext, FolderShape, Record, Run, Tag, from_epoch_s
from mlcrawl.api import to_text

from ._formats.tfevents import (
    EVENT_PREFIX,
    EventScan,
    has_event_files,
    hparam_records,
    scan_events,
)


class TensorboardCrawler(BaseCrawler):
    """One run per folder holding TensorBoard event files."""

    name: ClassVar[str] = "tensorboard"
    claims = Claims(folders=(FolderShape(any_of=(EVENT_PREFIX + "*",)),))
    version: ClassVar[int] = 1

    def folder_run_id(self, folder: Path, rel: str) -> str | None:
        """Each claimed folder is one run: ``tensorboard:<rel folder>``."""
        return f"{self.name}:{rel}"

    def crawl(self, unit: Path, ctx: CrawlContext) -> Iterator[Record]:
        """Metrics stream first; the run, its params and tags follow once the files are read."""
        rel = ctx.relpath(unit)
        run_id = f"tensorboard:{rel}"
        scan = EventScan()
        yield from scan_events(unit, ctx, run_id, scan)
        yield build_run(unit, ctx, run_id, scan)
        yield from hparam_records(scan.hparams, run_id)
        yield from scan_tags(scan, run_id)


def build_run(unit: Path, ctx: CrawlContext, run_id: str, scan: EventScan) -> Run:
    """The run of one event-file folder."""
    rel = ctx.relpath(unit)
    start = scan.first_wall_time
    if scan.hparams.start_time is not None and (start is None or scan.hparams.start_time < start):
        start = scan.hparams.start_time
    return Run(
        run_id=run_id,
        source="tensorboard",
        source_run_id=rel,
        name=unit.name,
        status=scan.hparams.status,
        start_time=from_epoch_s(start),
        end_time=from_epoch_s(scan.last_wall_time),
        parent_run_id=find_parent_run(unit, ctx),
        dir=rel,
        group=scan.hparams.group_name,
    )


def find_parent_run(unit: Path, ctx: CrawlContext) -> str | None:
    """The run of the folder above when it is a unit holding event files too (torch
    ``add_hparams``): ``<its crawler>:<its folder>``, whichever crawler claimed it."""
    parent = os.path.abspath(unit.parent)
    owners = [name for name, folder in ctx.enclosing if os.path.abspath(folder) == parent]
    if not owners:
        return None
    try:
        names = os.listdir(parent)
    except OSError:
        return None
    return f"{owners[-1]}:{ctx.relpath(parent)}" if has_event_files(names) else None


def scan_tags(scan: EventScan, run_id: str) -> Iterator[Tag]:
    """How each scalar tag was stored, and the metrics the hparams experiment declares."""
    if scan.storage:
        yield Tag(run_id, "tensorboard.scalar_storage", to_text(scan.storage))
    if scan.hparams.metric_tags:
        yield Tag(run_id, "tensorboard.hparams.metrics", to_text(scan.hparams.metric_tags))
