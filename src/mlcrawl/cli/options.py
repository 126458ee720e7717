"""Options every command shares, declared once, and the config, catalog and crawlers they name."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import click

from ..catalog import Catalog
from ..config import DEFAULT_CATALOG, Config, Job, load_config
from ..errors import CatalogError, ConfigError

EXIT_OK, EXIT_PROBLEMS, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 130
CONFIG_ENV = "MLCRAWL_CONFIG"
DEFAULT_CONFIG = "mlcrawl.toml"
_DUCKDB_MAGIC = b"DUCK"  # bytes 8-11 of every DuckDB database file

config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False),
    help=f"TOML config (default: ${CONFIG_ENV}, else ./{DEFAULT_CONFIG} if present).")
catalog_option = click.option(
    "--catalog", type=click.Path(),
    help="Catalog: a DuckDB file, ducklake:META.ducklake or ducklake:postgres:dbname=... host=... "
         "(default: the config's, else ./mlcrawl.duckdb).")
data_path_option = click.option(
    "--data-path", type=click.Path(file_okay=False), expose_value=False, is_eager=True, envvar="MLCRAWL_DATA_PATH",
    callback=lambda ctx, _p, value: ctx.meta.__setitem__("mlcrawl.data_path", value),
    help="A DuckLake catalog's Parquet data folder (default: the config's data_path).")
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
wait_option = click.option("--wait", "wait_seconds", type=float, default=0.0,
                           help="Wait up to SECONDS for another crawl of this catalog to finish.")


def catalog_options(command):
    """``--config`` and ``--catalog``, which every command that opens the catalog takes."""
    return config_option(catalog_option(data_path_option(command)))


def load(config_path: str | None) -> Config:
    """The config named by ``--config``, ``$MLCRAWL_CONFIG`` or ./mlcrawl.toml; else the defaults."""
    path = config_path or os.environ.get(CONFIG_ENV)
    if path:
        return load_config(path)
    if Path(DEFAULT_CONFIG).is_file():
        return load_config(DEFAULT_CONFIG)
    return Config()


def open_store(config: Config, catalog: str | None) -> Catalog:
    """The catalog named by ``--catalog`` or the config, refused at once when it cannot be one."""
    data_path = click.get_current_context(silent=True)
    data_path = (data_path.meta.get("mlcrawl.data_path") if data_path else None) or config.data_path
    lease = float(os.environ.get("MLCRAWL_LEASE_SECONDS") or 60)
    store = Catalog.at(catalog or config.catalog or DEFAULT_CATALOG, data_path, lease)
    if store.lake is not None:
        return store
    if store.path.is_dir():
        raise CatalogError(f"catalog {store.path} is a folder; name a file, e.g. {store.path / DEFAULT_CATALOG}")
    if store.path.is_file() and store.path.stat().st_size:
        with open(store.path, "rb") as f:
            head = f.read(12)
        if head[8:12] != _DUCKDB_MAGIC:
            raise CatalogError(f"{store.path} is not a DuckDB file, so not an mlcrawl catalog; "
                               "name another file (mlcrawl crawl creates it)")
    return store


def roots_job(config: Config, roots: tuple[str, ...], job_name: str | None, adhoc: str) -> Job:
    """The job to run: ``--job NAME`` (ROOTS replacing its roots) or an ad-hoc job over ROOTS."""
    from ..config import with_overrides

    if job_name:
        job = config.job(job_name)
        job = with_overrides(job, roots=roots) if roots else job
    elif roots:
        job = Job(name=adhoc, roots=roots)
    else:
        raise ConfigError("give at least one ROOT folder, or --job NAME")
    for root in job.roots:
        if Path(root).expanduser().is_file():
            raise ConfigError(f"root {root} is a file; give the folder that holds it "
                              f"({Path(root).expanduser().absolute().parent})")
    return job


def choose_crawlers(config: Config, job: Job) -> tuple[list, dict]:
    """The crawlers the job runs and the ``[crawlers.NAME]`` options of those.

    A section naming no crawler is a mistake (a misspelling would silently drop its options),
    whether or not that crawler runs in this job.
    """
    from ..registry import discover, select

    entries = discover()
    known = sorted(e.name for e in entries)
    for name in config.crawlers:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            where = f" in {config.source}" if config.source else ""
            raise ConfigError(f"[crawlers.{name}]{where}: no such crawler; {hint}valid: {', '.join(known)}")
    crawlers = select(entries, job.enabled, job.disabled)
    chosen = {c.name for c in crawlers}
    return crawlers, {k: v for k, v in config.crawlers.items() if k in chosen}
