"""``mlcrawl query``: read-only SQL against the catalog, streamed in record batches."""

from __future__ import annotations

import click
import duckdb

from ..errors import ConfigError, MlcrawlError
from . import options as opt
from .render import write_result

#: Statement types that only read; anything else is refused before DuckDB sees it.
READ_ONLY = {"SELECT", "EXPLAIN", "PRAGMA", "CALL"}
BATCH_ROWS = 65536


class QueryError(MlcrawlError):
    """DuckDB refused the statement; the message is DuckDB's own, hint lines included."""


@click.command()
@click.argument("sql")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "parquet"]), default="table", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to a file (required for parquet).")
@click.option("--at", "at", help="A DuckLake catalog as of a snapshot id or timestamp (time travel).")
@opt.catalog_options
def query(sql, fmt, output, at, config_path, catalog) -> None:
    """Run one read-only SQL statement against the catalog."""
    if fmt == "parquet" and not output:
        raise ConfigError("--format parquet needs --output FILE")
    store = opt.open_store(opt.load(config_path), catalog)
    with store.connect(read_only=True, at=at) as con:
        try:
            statements = con.extract_statements(sql)
            if not statements:
                raise ConfigError('empty SQL statement; e.g. mlcrawl query "select count(*) from files"')
            if len(statements) > 1:
                raise ConfigError(f"give one SQL statement, got {len(statements)}")
            kind = statements[0].type.name
            if kind not in READ_ONLY:
                raise ConfigError(f"mlcrawl query only reads (SELECT, EXPLAIN, PRAGMA, CALL); this is {kind}. "
                                  "The catalog is written by mlcrawl crawl")
            relation = con.sql(sql)
            if fmt == "parquet":
                relation.to_parquet(output)  # DuckDB's own writer: native types, streamed
            else:
                write_result(relation.to_arrow_reader(BATCH_ROWS), fmt, output)
        except duckdb.Error as exc:
            if isinstance(exc, duckdb.InterruptException):
                raise
            raise QueryError(f"query failed: {exc}") from None


COMMANDS = (query,)
