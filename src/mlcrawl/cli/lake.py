"""``mlcrawl lake maintain`` and ``mlcrawl catalog copy``: DuckLake upkeep and moving between backends."""

from __future__ import annotations

import click

from ..catalog import schema
from ..errors import ConfigError
from . import options as opt


@click.group()
def lake() -> None:
    """DuckLake catalog upkeep (ducklake:... catalogs only)."""


@lake.command()
@click.option("--retention-days", type=float, default=30.0, show_default=True,
              help="Expire snapshots older than this many days (time travel reaches back this far).")
@opt.catalog_options
def maintain(retention_days, config_path, catalog) -> None:
    """Merge small Parquet files, expire old snapshots, delete files no snapshot needs."""
    store = opt.open_store(opt.load(config_path), catalog)
    if store.lake is None:
        raise ConfigError(f"{store.path} is a DuckDB file; lake maintain works on ducklake:... catalogs")
    with store.connect() as con:
        before = con.execute("SELECT count(*) FROM ducklake_snapshots('lake')").fetchall()[0][0]
        con.execute("CALL ducklake_merge_adjacent_files('lake')")
        con.execute(f"CALL ducklake_expire_snapshots('lake', older_than => now() - INTERVAL '{float(retention_days) * 86400} seconds')")
        con.execute("CALL ducklake_cleanup_old_files('lake', cleanup_all => true)")
        con.execute("CALL ducklake_delete_orphaned_files('lake', cleanup_all => true)")
        after = con.execute("SELECT count(*) FROM ducklake_snapshots('lake')").fetchall()[0][0]
    click.echo(f"snapshots: {before} -> {after}; small files merged, unreferenced files deleted")


@click.group("catalog")
def catalog_group() -> None:
    """Whole-catalog operations."""


@catalog_group.command()
@click.argument("src")
@click.argument("dst")
@click.option("--data-path", "data_path", type=click.Path(file_okay=False),
              help="Data folder of whichever side is a DuckLake.")
def copy(src, dst, data_path) -> None:
    """Copy every table of catalog SRC into catalog DST (a DuckDB file or ducklake:...), replacing DST's rows."""
    from ..catalog import Catalog

    source, target = Catalog.at(src, data_path), Catalog.at(dst, data_path)
    with source.connect(read_only=True) as s, target.connect() as t:
        have = {r[0] for r in s.execute("SELECT table_name FROM information_schema.tables "
                                        "WHERE table_type = 'BASE TABLE'").fetchall()}
        t.execute("BEGIN TRANSACTION")
        copied = 0
        for table in schema.all_tables():
            if table == "schema_version" or table not in have:
                continue
            batch = s.sql(f'SELECT * FROM "{table}"').to_arrow_table()
            t.execute(f'DELETE FROM "{table}"')
            t.register("copy_rows", batch)
            t.execute(f'INSERT INTO "{table}" BY NAME SELECT * FROM copy_rows')
            t.unregister("copy_rows")
            copied += batch.num_rows
        t.execute("COMMIT")
    click.echo(f"copied {copied} rows from {src} to {dst}")


COMMANDS = (lake, catalog_group)
