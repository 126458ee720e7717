"""The command line: parse, call the core, render, pick the exit code.

Exit codes: 0 clean, 1 finished with error rows (partial), 2 could not run.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from . import __version__
from .catalog import Catalog, CrawlLock
from .config import DEFAULT_CATALOG, Config, Job, load_config, parse_size, with_overrides
from .errors import ConfigError, MlcrawlError

EXIT_OK, EXIT_PARTIAL, EXIT_FAILED = 0, 1, 2
CONFIG_ENV = "MLCRAWL_CONFIG"
DEFAULT_CONFIG = "mlcrawl.toml"


def _load_config(path: str | None) -> Config:
    path = path or os.environ.get(CONFIG_ENV)
    if path:
        return load_config(path)
    if Path(DEFAULT_CONFIG).is_file():
        return load_config(DEFAULT_CONFIG)
    return Config()


def _catalog(config: Config, catalog: str | None) -> Catalog:
    return Catalog.at(catalog or config.catalog or DEFAULT_CATALOG)


class _Group(click.Group):
    """Turns mlcrawl's own errors into one clear line and exit code 2, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MlcrawlError as exc:
            click.echo(f"mlcrawl: {exc}", err=True)
            ctx.exit(EXIT_FAILED)


catalog_option = click.option("--catalog", type=click.Path(dir_okay=False), help="Catalog file (default: the config's, else ./mlcrawl.duckdb).")
config_option = click.option("--config", "config_path", type=click.Path(dir_okay=False), help=f"TOML config (default: ${CONFIG_ENV}, else ./{DEFAULT_CONFIG} if present).")


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mlcrawl")
def main() -> None:
    """Crawl ML experiment folders, notebooks, datasets and models into a DuckDB catalog."""


@main.command()
@click.argument("roots", nargs=-1, type=click.Path(file_okay=False))
@click.option("--job", "job_name", help="Run the [[jobs]] entry of this name from the config.")
@config_option
@catalog_option
@click.option("--include", multiple=True, help="Only record files matching this glob (repeatable).")
@click.option("--exclude", multiple=True, help="Skip paths matching this gitignore-style glob (repeatable).")
@click.option("--enable", multiple=True, help="Run only these crawlers (repeatable).")
@click.option("--disable", multiple=True, help="Do not run these crawlers (repeatable).")
@click.option("--max-hash-size", help="Do not hash files larger than this (e.g. 2GB).")
@click.option("--follow-symlinks/--no-follow-symlinks", default=None, help="Follow symlinks that stay inside the root.")
@click.option("--threads", type=int, help="Hashing threads (default 2).")
@click.option("--delete-guard", type=float, help="Refuse to mark more than this fraction of a root deleted (default 0.5).")
@click.option("--allow-mass-delete", is_flag=True, help="Mark files deleted even past the delete guard.")
@click.option("--wait", "wait_seconds", type=float, default=0.0, help="Wait up to SECONDS for another crawl of this catalog to finish.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object (for cron logs).")
@click.option("--log-file", type=click.Path(dir_okay=False), help="Append one JSON line per crawl to this file.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
def crawl(roots, job_name, config_path, catalog, include, exclude, enable, disable, max_hash_size,
          follow_symlinks, threads, delete_guard, allow_mass_delete, wait_seconds, as_json, log_file, quiet) -> None:
    """Crawl ROOTS (or a config job) into the catalog; unchanged files are not read again."""
    from .registry import discover, select
    from .runner import Runner

    config = _load_config(config_path)
    if job_name:
        job = config.job(job_name)
        if roots:
            job = with_overrides(job, roots=tuple(roots))
    elif roots:
        job = Job(name="adhoc", roots=tuple(roots))
    else:
        raise ConfigError("give at least one ROOT folder, or --job NAME")
    job = with_overrides(
        job, include=include, exclude=exclude, enabled=enable, disabled=disable,
        max_hash_size=parse_size(max_hash_size, "--max-hash-size") if max_hash_size else None,
        follow_symlinks=follow_symlinks, threads=threads, delete_guard=delete_guard,
    )
    store = _catalog(config, catalog)
    crawlers = select(discover(), job.enabled, job.disabled)
    lock = CrawlLock(store)
    lock.acquire(wait_seconds)
    try:
        with _progress(quiet or as_json) as progress:
            summary = Runner(store, job, crawlers, config.crawlers, progress=progress,
                             allow_mass_delete=allow_mass_delete).run()
    finally:
        lock.release()
    data = summary.as_dict()
    data["catalog"] = str(store.path)
    if log_file:
        with open(log_file, "a", encoding="utf-8") as f:
            f.write(json.dumps(data) + "\n")
    if as_json:
        click.echo(json.dumps(data))
    elif not quiet:
        _print_summary(data)
    sys.exit({"ok": EXIT_OK, "partial": EXIT_PARTIAL}.get(summary.status, EXIT_FAILED))


class _progress:
    """A tqdm bar on stderr when it is a terminal; otherwise nothing."""

    def __init__(self, quiet: bool) -> None:
        self.bar = None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(unit=" files", file=sys.stderr, dynamic_ncols=True, desc="crawling")

    # Never `if self.bar`: tqdm's __bool__ raises TypeError when the total is unknown.
    def __enter__(self):
        return (lambda event, n: self.bar.update(n)) if self.bar is not None else None

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


def _print_summary(d: dict) -> None:
    click.echo(
        f"crawl {d['crawl_id']} {d['status']} in {d['duration_s']}s: {d['files_seen']} files seen, "
        f"{d['files_new']} new, {d['files_changed']} changed, {d['files_unchanged']} unchanged, "
        f"{d['files_deleted']} deleted; {d['bytes_hashed']:,} bytes hashed; units {d['units_crawled']} crawled, "
        f"{d['units_skipped']} unchanged, {d['units_failed']} failed; {d['errors']} errors, {d['warnings']} warnings "
        f"-> {d['catalog']}"
    )
    if d["errors"]:
        click.echo("see: mlcrawl status   (or: select * from errors where crawl_id = "
                   f"{d['crawl_id']} in the duckdb CLI)", err=True)


@main.command()
@click.argument("sql")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "parquet"]), default="table", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to a file (required for parquet).")
@config_option
@catalog_option
def query(sql, fmt, output, config_path, catalog) -> None:
    """Run read-only SQL against the catalog."""
    import duckdb

    from .render import write_result

    store = _catalog(_load_config(config_path), catalog)
    with store.connect(read_only=True) as con:
        try:
            relation = con.sql(sql)
            table = relation.to_arrow_table() if relation is not None else None
        except duckdb.Error as exc:
            raise MlcrawlError(f"query failed: {str(exc).splitlines()[0]}") from None
    if table is not None:
        write_result(table, fmt, output)


@main.command()
@config_option
@catalog_option
def status(config_path, catalog) -> None:
    """Crawls, row counts, last errors and catalog size."""
    from .render import print_status

    store = _catalog(_load_config(config_path), catalog)
    with store.connect(read_only=True) as con:
        print_status(con, store)


@main.command()
@config_option
@catalog_option
def schema(config_path, catalog) -> None:
    """Tables and columns of the catalog, with a one-line meaning for each table."""
    from .render import print_schema

    store = _catalog(_load_config(config_path), catalog)
    if store.path.exists():
        with store.connect(read_only=True) as con:
            print_schema(con)
    else:
        import duckdb

        from .catalog.store import ensure_schema

        con = duckdb.connect(":memory:")
        ensure_schema(con)
        print_schema(con)


@main.command()
def crawlers() -> None:
    """List the crawlers: built-in and from the mlcrawl.crawlers entry points."""
    from .registry import discover

    for entry in discover():
        origin = "built-in" if entry.builtin else "plugin"
        if entry.crawler is not None:
            click.echo(f"{entry.name:<15} v{entry.crawler.version:<3} {origin:<8} {entry.target}")
        else:
            click.echo(f"{entry.name:<15} {'-':<4} {origin:<8} disabled: {entry.problem}")


@main.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--openlineage", "openlineage_file", type=click.Path(dir_okay=False),
              help="Also write one OpenLineage RunEvent per run (JSON lines) to this file.")
@config_option
@catalog_option
def export(directory, openlineage_file, config_path, catalog) -> None:
    """Write every table as Parquet into DIRECTORY (big tables hive-partitioned)."""
    from .catalog.export import export_parquet

    store = _catalog(_load_config(config_path), catalog)
    with store.connect(read_only=True) as con:
        written = export_parquet(con, Path(directory))
        if openlineage_file:
            from .openlineage import write_openlineage

            events = write_openlineage(con, Path(openlineage_file))
            click.echo(f"openlineage      -> {openlineage_file} ({events} run events)")
    for table, target in written:
        click.echo(f"{table:<16} -> {target}")


def _add_commands() -> None:
    from .commands_lineage import COMMANDS
    from .commands_watch import jobs, watch

    main.add_command(watch)
    main.add_command(jobs)
    for command in COMMANDS:
        main.add_command(command)


_add_commands()
