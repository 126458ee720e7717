"""Rendering query results and catalog reports for the terminal (used by the CLI only)."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from decimal import Decimal

import click
import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .catalog import Catalog
from .catalog.schema import TABLE_DOCS
from .errors import ConfigError

_MAX_TABLE_ROWS = 1000


def _json_default(value: object) -> object:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def write_result(table: pa.Table, fmt: str, output: str | None) -> None:
    """Write a query result as a table, CSV, JSON lines or Parquet."""
    if fmt == "parquet":
        if not output:
            raise ConfigError("--format parquet needs --output FILE")
        pq.write_table(table, output)
        return
    stream = open(output, "w", encoding="utf-8", newline="") if output else None
    try:
        out = stream or sys.stdout
        if fmt == "csv":
            sink = pa.BufferOutputStream()
            pacsv.write_csv(table, sink)
            out.write(sink.getvalue().to_pybytes().decode("utf-8"))
        elif fmt == "json":
            for row in table.to_pylist():
                out.write(json.dumps(row, default=_json_default) + "\n")
        else:
            out.write(_render_table(table) + "\n")
    finally:
        if stream:
            stream.close()


def _render_table(table: pa.Table) -> str:
    names = table.column_names
    rows = [["" if v is None else str(v) for v in row.values()] for row in table.slice(0, _MAX_TABLE_ROWS).to_pylist()]
    widths = [max([len(n), *(len(r[i]) for r in rows)]) for i, n in enumerate(names)]
    widths = [min(w, 60) for w in widths]

    def line(cells: list[str]) -> str:
        return " | ".join((c if len(c) <= w else c[: w - 1] + "…").ljust(w) for c, w in zip(cells, widths)).rstrip()

    out = [line(names), "-+-".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    if table.num_rows > _MAX_TABLE_ROWS:
        out.append(f"... {table.num_rows - _MAX_TABLE_ROWS} more rows (use --format csv)")
    out.append(f"({table.num_rows} row{'s' if table.num_rows != 1 else ''})")
    return "\n".join(out)


def print_status(con: duckdb.DuckDBPyConnection, catalog: Catalog) -> None:
    """Crawl history, row counts, the last errors and the catalog size."""
    click.echo(f"catalog {catalog.path} ({catalog.size() / 1e6:.1f} MB)")
    crawls = con.sql("""SELECT crawl_id, job, kind, status, started_at, round(epoch(finished_at - started_at), 2) AS seconds,
                               files_seen, files_new, files_changed, files_deleted, bytes_hashed, errors
                        FROM crawls ORDER BY crawl_id DESC LIMIT 5""").to_arrow_table()
    total = con.execute("SELECT count(*) FROM crawls").fetchall()[0][0]
    click.echo(f"\ncrawls: {total} (latest 5)")
    click.echo(_render_table(crawls))
    click.echo("\nrows:")
    counts = []
    for table in TABLE_DOCS:
        try:
            counts.append((table, con.execute(f'SELECT count(*) FROM "{table}"').fetchall()[0][0]))
        except duckdb.Error:
            continue
    click.echo("  " + ", ".join(f"{t} {n}" for t, n in counts))
    live = con.execute("SELECT count(*), coalesce(sum(size), 0) FROM files WHERE deleted_at IS NULL").fetchall()[0]
    click.echo(f"  files present: {live[0]} ({live[1] / 1e6:.1f} MB)")
    errors = con.sql("""SELECT crawl_id, crawler, severity, error_type, path, message FROM errors
                        ORDER BY crawl_id DESC, severity, path LIMIT 10""").to_arrow_table()
    click.echo("\nlast errors:")
    click.echo(_render_table(errors))


def print_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Every table with its meaning and columns."""
    rows = con.execute("""SELECT table_name, list(column_name || ' ' || lower(data_type) ORDER BY ordinal_position)
                          FROM information_schema.columns WHERE table_schema = 'main'
                          GROUP BY table_name ORDER BY table_name""").fetchall()
    for table, columns in rows:
        meaning = TABLE_DOCS.get(table, "view")
        click.echo(f"{table}: {meaning}")
        click.echo("    " + ", ".join(columns))
