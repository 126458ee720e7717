"""Rendering for the CLI: query results, catalog reports, crawl summaries and the progress bar."""

from __future__ import annotations

import json
import math
import sys
from datetime import date, datetime, time, timedelta
from decimal import Decimal

import click
import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ..catalog import Catalog
from ..catalog.schema import TABLE_DOCS
from ..errors import ConfigError

_MAX_TABLE_ROWS = 1000


def jsonable(value: object) -> object:
    """A query value as JSON: maps as objects, times as ISO 8601, NaN and infinity as null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, tuple) and type(value).__name__ == "MonthDayNano":
        return f"P{value.months}M{value.days}DT{value.nanoseconds / 1e9:g}S"
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, timedelta):
        return f"PT{value.total_seconds():g}S"
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def _portable(array: pa.Array) -> pa.Array:
    """Dates and timestamps (nested ones too) as ISO 8601 text: Python's datetime cannot hold DuckDB's range."""
    kind = array.type
    mask = array.is_null() if array.null_count else None
    if pa.types.is_timestamp(kind):
        if kind.tz:
            return pc.strftime(array.cast(pa.timestamp(kind.unit, "UTC")), format="%Y-%m-%dT%H:%M:%SZ")
        return pc.strftime(array, format="%Y-%m-%dT%H:%M:%S")
    if pa.types.is_date(kind):
        return pc.strftime(array.cast(pa.timestamp("s")), format="%Y-%m-%d")
    if pa.types.is_map(kind):
        return pa.MapArray.from_arrays(array.offsets, _portable(array.keys), _portable(array.items), mask=mask)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return type(array).from_arrays(array.offsets, _portable(array.values), mask=mask)
    if pa.types.is_fixed_size_list(kind):
        return pa.FixedSizeListArray.from_arrays(_portable(array.values), kind.list_size, mask=mask)
    if pa.types.is_struct(kind) and kind.num_fields:
        return pa.StructArray.from_arrays([_portable(array.field(i)) for i in range(kind.num_fields)],
                                          names=[kind.field(i).name for i in range(kind.num_fields)], mask=mask)
    return array


def _portable_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([_portable(c) for c in batch.columns], names=batch.schema.names)


def _is_nested(kind: pa.DataType) -> bool:
    return (pa.types.is_nested(kind) or pa.types.is_interval(kind) or pa.types.is_binary(kind)
            or isinstance(kind, pa.BaseExtensionType))


def _csv_text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _csv_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Nested values (lists, structs, maps, unions) as JSON text, which a CSV cell can hold."""
    columns = []
    for column in _portable_batch(batch).columns:
        if _is_nested(column.type) or pa.types.is_dictionary(column.type):
            values = column.to_pylist(maps_as_pydicts="lossy")
            text = [None if v is None else _csv_text(jsonable(v)) for v in values]
            column = pa.array(text, pa.string())
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def write_result(reader: pa.RecordBatchReader, fmt: str, output: str | None) -> None:
    """Write a query result batch by batch (bounded memory) as a table, CSV or JSON lines."""
    stream = open(output, "w", encoding="utf-8", newline="") if output else None
    try:
        out = stream or sys.stdout
        if fmt == "csv":
            writer = None
            for batch in reader:
                batch = _csv_batch(batch)
                sink = pa.BufferOutputStream()
                options = pacsv.WriteOptions(include_header=writer is None)
                pacsv.write_csv(batch, sink, write_options=options)
                writer = True
                out.write(sink.getvalue().to_pybytes().decode("utf-8"))
            if writer is None:
                out.write(",".join(f'"{n}"' for n in reader.schema.names) + "\n")
        elif fmt == "json":
            for batch in reader:
                for row in _portable_batch(batch).to_pylist(maps_as_pydicts="lossy"):
                    out.write(json.dumps(jsonable(row), ensure_ascii=False) + "\n")
        else:
            out.write(_render_reader(reader) + "\n")
    finally:
        if stream:
            stream.close()


def _render_reader(reader: pa.RecordBatchReader) -> str:
    shown, total = [], 0
    for batch in reader:
        if total < _MAX_TABLE_ROWS:
            shown.append(batch.slice(0, _MAX_TABLE_ROWS - total))
        total += batch.num_rows
    shown = [_portable_batch(b) for b in shown]
    table = pa.Table.from_batches(shown) if shown else pa.table({n: [] for n in reader.schema.names})
    return _render_table(table, total)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(jsonable(value), ensure_ascii=False)
    return str(value)


def _render_table(table: pa.Table, total: int | None = None) -> str:
    names = table.column_names
    total = table.num_rows if total is None else total
    rows = [[_cell(v) for v in row.values()]
            for row in table.slice(0, _MAX_TABLE_ROWS).to_pylist(maps_as_pydicts="lossy")]
    widths = [max([len(n), *(len(r[i]) for r in rows)]) for i, n in enumerate(names)]
    widths = [min(w, 60) for w in widths]

    def line(cells: list[str]) -> str:
        return " | ".join((c if len(c) <= w else c[: w - 1] + "…").ljust(w) for c, w in zip(cells, widths)).rstrip()

    out = [line(names), "-+-".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    if total > _MAX_TABLE_ROWS:
        out.append(f"... {total - _MAX_TABLE_ROWS} more rows (use --format csv)")
    out.append(f"({total} row{'s' if total != 1 else ''})")
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
    problems = con.sql("""SELECT crawler, error_type, severity, count(*) AS paths,
                                 min(path) AS example, arg_min(message, path) AS message
                          FROM open_errors GROUP BY ALL ORDER BY severity, paths DESC, crawler, error_type""").to_arrow_table()
    click.echo("\nproblems now, by crawler and type (all of them: mlcrawl query \"select * from open_errors\"):")
    click.echo(_render_table(problems))


def print_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Every table with its meaning and columns."""
    rows = con.execute("""SELECT table_name, list(column_name || ' ' || lower(data_type) ORDER BY ordinal_position)
                          FROM information_schema.columns WHERE table_schema = 'main'
                          GROUP BY table_name ORDER BY table_name""").fetchall()
    for table, columns in rows:
        meaning = TABLE_DOCS.get(table, "view")
        click.echo(f"{table}: {meaning}")
        click.echo("    " + ", ".join(columns))


class Progress:
    """A tqdm bar on stderr when it is a terminal, else nothing; ``total`` None draws a counter."""

    def __init__(self, desc: str, unit: str, total: int | None = None, quiet: bool = False) -> None:
        self.bar = None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit=unit, file=sys.stderr, dynamic_ncols=True, desc=desc)

    # Never `if self.bar`: tqdm's __bool__ raises TypeError when the total is unknown.
    def __enter__(self):
        return self.update if self.bar is not None else None

    def update(self, event: str, n: int) -> None:
        """The runner's progress callback; a total that proves too small grows."""
        if self.bar.total is not None and self.bar.n + n > self.bar.total:
            self.bar.total = self.bar.n + n
        self.bar.update(n)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


def crawl_problems(catalog: Catalog, crawl_id: int, limit: int) -> list[dict]:
    """The first ``limit`` problems of one crawl, errors before warnings, as JSON-ready objects."""
    keys = ("severity", "crawler", "root", "path", "error_type", "message")
    with catalog.connect(read_only=True) as con:
        rows = con.execute(f"""SELECT {', '.join(keys)} FROM errors WHERE crawl_id = ?
                               ORDER BY severity <> 'error', root, path LIMIT ?""", [crawl_id, limit]).fetchall()
    return [dict(zip(keys, row)) for row in rows]


SHOWN_PROBLEMS = 5


def _redactions(count: int) -> str:
    return f", {count:,} secret{'s' if count != 1 else ''} redacted" if count else ""


def print_summary(d: dict, problems: list[dict]) -> None:
    """The crawl's counts on stdout; its first problems and how to see all of them on stderr."""
    click.echo(
        f"crawl {d['crawl_id']} {d['status']} in {d['duration_s']}s: {d['files_seen']} files seen, "
        f"{d['files_new']} new, {d['files_changed']} changed, {d['files_unchanged']} unchanged, "
        f"{d['files_deleted']} deleted; {d['bytes_hashed']:,} bytes hashed; units {d['units_crawled']} crawled, "
        f"{d['units_skipped']} unchanged, {d['units_failed']} failed; {d['errors']} errors, {d['warnings']} warnings"
        f"{_redactions(d.get('secrets_redacted', 0))} -> {d['catalog']}"
    )
    if not problems:
        return
    several_roots = len(d["roots"]) > 1
    total = d["errors"] + d["warnings"]
    click.echo(f"problems (first {min(SHOWN_PROBLEMS, len(problems))} of {total}):", err=True)
    for p in problems[:SHOWN_PROBLEMS]:
        where = f"{p['root']}/{p['path']}" if several_roots else p["path"]
        message = p["message"].removeprefix(f"{p['path']}: ")
        click.echo(f"  {p['severity']:<7} {p['crawler']:<12} {where}: {message}", err=True)
    click.echo(f"see all: mlcrawl status, or mlcrawl query \"select * from errors where crawl_id = {d['crawl_id']}\"",
               err=True)
