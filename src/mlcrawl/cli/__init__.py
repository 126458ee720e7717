"""The command line: parse, call the core, render, pick the exit code.

Exit codes: 0 ok, 1 the crawl met new problems, 2 could not run, 130 interrupted (Ctrl-C).
Each command group lives in its own module; options shared by them in ``options``, output in
``render``.
"""

from __future__ import annotations

import click
import duckdb

from .. import __version__
from ..errors import MlcrawlError
from . import crawl, export, lake, lineage, query, runs, serve, status, watch
from .options import EXIT_FAILED, EXIT_INTERRUPTED


class _Group(click.Group):
    """mlcrawl's own errors become one line and exit 2; Ctrl-C one line and exit 130, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MlcrawlError as exc:
            click.echo(f"mlcrawl: {exc}", err=True)
            ctx.exit(EXIT_FAILED)
        except (KeyboardInterrupt, duckdb.InterruptException):
            click.echo("\ninterrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mlcrawl")
def main() -> None:
    """Crawl ML experiment folders, notebooks, datasets and models into a DuckDB catalog."""


for _module in (crawl, query, status, export, watch, lineage, runs, lake, serve):
    for _command in _module.COMMANDS:
        main.add_command(_command)
