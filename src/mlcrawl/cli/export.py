"""``mlcrawl export`` (Parquet), ``mlcrawl export-openlineage`` (OpenLineage run events to a file or an endpoint)."""

from __future__ import annotations

from pathlib import Path

import click

from . import options as opt
from .render import Progress

#: ``--openlineage URL`` of ``crawl`` and ``watch``.
openlineage_option = click.option(
    "--openlineage", "openlineage_url", metavar="URL",
    help="After the crawl (each watch batch), send new or changed OpenLineage run events to this "
         "Marquez-compatible endpoint (default: config openlineage_url). Never changes the exit code.")


def send_openlineage(store, url: str | None, warn=None) -> None:
    """Publish to ``url`` after a crawl or batch (nothing without one); problems are warning lines only."""
    if not url:
        return
    from ..openlineage_http import publish_quietly

    publish_quietly(store, url, warn or (lambda message: click.echo(f"warning: {message}", err=True)))


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
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--url", help="Send the new, changed and still pending events to this Marquez-compatible "
                            "endpoint (base URL or .../api/v1/lineage; default: config openlineage_url).")
@opt.catalog_options
def export_openlineage(file, url, config_path, catalog) -> None:
    """Write one OpenLineage RunEvent per run to FILE (JSON lines) and/or send them to --url."""
    config = opt.load(config_path)
    url = url or (None if file else config.openlineage_url)
    if not file and not url:
        raise click.UsageError("give FILE, --url or a config openlineage_url")
    store = opt.open_store(config, catalog)
    if file:
        from ..openlineage import write_openlineage

        with store.connect(read_only=True) as con:
            count = write_openlineage(con, Path(file))
        click.echo(f"{count} run events -> {file}")
    if url:
        from ..openlineage_http import publish, report_lines

        try:
            report = publish(store, url)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--url") from None
        click.echo(f"{report.sent} run events -> {report.url} ({report.queued} newly queued, "
                   f"{report.pending} pending, {report.rejected} rejected)")
        for line in report_lines(report):
            click.echo(f"warning: {line}", err=True)
        if report.error or report.rejected:
            raise SystemExit(opt.EXIT_PROBLEMS)


COMMANDS = (export, export_openlineage)
