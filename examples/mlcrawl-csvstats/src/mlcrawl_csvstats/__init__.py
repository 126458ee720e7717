"""An example crawler: each row of a ``results*.tsv`` file is one run of a sweep.

    sweep/
      results.tsv        run_id <TAB> lr <TAB> accuracy ...   (one line per run)

Columns named in ``param_columns`` become params, every other numeric column a metric.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mlcrawl.api import BaseCrawler, Claims, CrawlContext, Metric, Options, Param, Record, Run, to_float


@dataclass(frozen=True)
class TsvResultsOptions(Options):
    """Options of ``[crawlers.tsv_results]``."""

    param_columns: tuple[str, ...] = ("lr", "batch_size", "seed")
    max_bytes: int = 16 << 20


class TsvResultsCrawler(BaseCrawler):
    """One run per line of a sweep's ``results*.tsv``."""

    name = "tsv_results"
    version = 1
    claims = Claims(files=("results*.tsv",), file_priority=5)
    Options = TsvResultsOptions

    def crawl(self, unit: Path, ctx: CrawlContext) -> Iterator[Record]:
        """Yield a run, its params and its metrics for every data line."""
        lines = ctx.read_text(unit, limit=ctx.options.max_bytes).splitlines()
        if not lines:
            ctx.warn("empty results table", unit)
            return
        header = lines[0].split("\t")
        for number, line in enumerate(lines[1:], start=2):
            cells = line.split("\t")
            if len(cells) != len(header):
                ctx.warn(f"line {number}: {len(cells)} cells, the header has {len(header)}", unit, "bad_row")
                continue
            row = dict(zip(header, cells))
            source_id = row.get("run_id") or str(number - 1)
            run_id = f"{self.name}:{ctx.relpath(unit)}:{source_id}"
            yield Run(run_id=run_id, source=self.name, source_run_id=source_id, dir=ctx.relpath(unit.parent))
            for key, value in row.items():
                if key in ctx.options.param_columns:
                    yield Param(run_id=run_id, key=key, value=ctx.redact(key, value))
                elif key != "run_id" and (number_value := to_float(value)) is not None:
                    yield Metric(run_id=run_id, key=key, value=number_value)
