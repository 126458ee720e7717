"""``mlcrawl export`` (Parquet) and ``mlcrawl export-openlineage`` (OpenLineage run events)."""

from __future__ import annotations

from pathlib import Path

import click

from . import options as opt
from .render import Progress


@click.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--openlineage", "openlineage_file", type=click.Path(dir_okay=False),
              help="Also write one OpenLineage RunEvent per run (JSON lines) to this file.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no listing.")
@opt.catalog_options
def export(directory, openlineage_file, quiet, config_path, catalog) -> None:
    """Write every table and view as Parquet into DIRECTORY (big tables hive-partitioned), replacing an earlier export."""
    from ..catalog.export import export_parquet, export_targets

    store = opt.open_store(opt.load(config_path), catalog)
    with store.connect(read_only=True) as con:
        with Progress("exporting", " tables", len(export_targets(con)), quiet) as progress:
            written = export_parquet(con, Path(directory), progress=progress)
        if openlineage_file:
            from ..openlineage import write_openlineage

            events = write_openlineage(con, Path(openlineage_file))
            if not quiet:
                click.echo(f"openlineage      -> {openlineage_file} ({events} run events)")
    if not quiet:
        for table, target in written:
            click.echo(f"{table:<16} -> {target}")


@click.command("export-openlineage")
@click.argument("file", type=click.Path(dir_okay=False))
@opt.catalog_options
def export_openlineage(file, config_path, catalog) -> None:
    """Write one OpenLineage RunEvent per run to FILE (JSON lines)."""
    from ..openlineage import write_openlineage

    store = opt.open_store(opt.load(config_path), catalog)
    with store.connect(read_only=True) as con:
        count = write_openlineage(con, Path(file))
    click.echo(f"{count} run events -> {file}")


COMMANDS = (export, export_openlineage)
