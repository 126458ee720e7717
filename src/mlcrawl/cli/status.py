"""``mlcrawl status``, ``schema`` and ``crawlers``: what the catalog and the installation hold."""

from __future__ import annotations

import click

from . import options as opt
from .render import print_schema, print_status


@click.command()
@opt.catalog_options
def status(config_path, catalog) -> None:
    """Crawls, row counts, current problems by crawler and type, and catalog size."""
    store = opt.open_store(opt.load(config_path), catalog)
    with store.connect(read_only=True) as con:
        print_status(con, store)


@click.command()
@opt.catalog_options
def schema(config_path, catalog) -> None:
    """Tables and columns of the catalog, with a one-line meaning for each table."""
    store = opt.open_store(opt.load(config_path), catalog)
    if store.path.exists():
        with store.connect(read_only=True) as con:
            print_schema(con)
    else:
        import duckdb

        from ..catalog.store import ensure_schema

        con = duckdb.connect(":memory:")
        ensure_schema(con)
        print_schema(con)


@click.command()
def crawlers() -> None:
    """List the crawlers: built-in and from the mlcrawl.crawlers entry points."""
    from ..registry import discover

    for entry in discover():
        origin = "built-in" if entry.builtin else "plugin"
        if entry.crawler is not None:
            click.echo(f"{entry.name:<15} v{entry.crawler.version:<3} {origin:<8} {entry.target}")
        else:
            click.echo(f"{entry.name:<15} {'-':<4} {origin:<8} disabled: {entry.problem}")


COMMANDS = (status, schema, crawlers)
