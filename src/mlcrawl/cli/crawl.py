"""``mlcrawl crawl``: one crawl of ROOTS or a config job into the catalog."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import duckdb

from ..catalog import Catalog
from ..config import parse_size, with_overrides
from ..errors import ConfigError
from . import options as opt
from .export import openlineage_option, send_openlineage
from .render import Progress, crawl_problems, print_summary

PROBLEMS_IN_JSON = 20


@click.command()
@click.argument("roots", nargs=-1, type=click.Path())
@click.option("--job", "job_name", help="Run the [[jobs]] entry of this name from the config.")
@opt.catalog_options
@click.option("--include", multiple=True, help="Only record files matching this glob (repeatable).")
@click.option("--exclude", multiple=True, help="Skip paths matching this gitignore-style glob (repeatable).")
@click.option("--enable", multiple=True, help="Run only these crawlers (repeatable).")
@click.option("--disable", multiple=True, help="Do not run these crawlers (repeatable).")
@click.option("--max-hash-size", help="Do not hash files larger than this (e.g. 2GB).")
@click.option("--follow-symlinks/--no-follow-symlinks", default=None, help="Follow symlinks that stay inside the root.")
@click.option("--threads", type=int, help="Hashing threads (default 2).")
@click.option("--delete-guard", type=float, help="Refuse to mark more than this fraction of a root deleted (default 0.5).")
@click.option("--allow-mass-delete", is_flag=True, help="Mark files deleted even past the delete guard.")
@click.option("--retry-failed", is_flag=True, help="Read again the unchanged units that failed before (e.g. after installing an extra).")
@opt.wait_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object (for cron logs).")
@click.option("--log-file", type=click.Path(dir_okay=False), help="Append one JSON line per crawl to this file (its folder is created).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
@openlineage_option
def crawl(roots, job_name, config_path, catalog, include, exclude, enable, disable, max_hash_size, follow_symlinks,
          threads, delete_guard, allow_mass_delete, retry_failed, wait_seconds, as_json, log_file, quiet,
          openlineage_url) -> None:
    """Crawl ROOTS (or a config job) into the catalog; unchanged files are not read again."""
    from ..runner import Runner

    config = opt.load(config_path)
    job = with_overrides(
        opt.roots_job(config, tuple(roots), job_name, "adhoc"), include=include, exclude=exclude,
        enabled=enable, disabled=disable,
        max_hash_size=parse_size(max_hash_size, "--max-hash-size") if max_hash_size else None,
        follow_symlinks=follow_symlinks, threads=threads, delete_guard=delete_guard,
    )
    store = opt.open_store(config, catalog)
    crawlers, crawler_options = opt.choose_crawlers(config, job)
    log = _open_log(log_file)
    lock = store.crawl_lock(list(job.roots))
    lock.acquire(wait_seconds)
    try:
        with Progress("crawling", " files", _expected_files(store, job.roots), quiet or as_json) as progress:
            summary = Runner(store, job, crawlers, crawler_options, progress=progress,
                             allow_mass_delete=allow_mass_delete, retry_failed=retry_failed).run()
    finally:
        lock.release()
    send_openlineage(store, openlineage_url or config.openlineage_url)
    data = summary.as_dict()
    data["catalog"] = str(store.path)
    problems = crawl_problems(store, summary.crawl_id, PROBLEMS_IN_JSON)
    if log is not None:
        with log:
            log.write(json.dumps(data | {"problems": problems}) + "\n")
    if as_json:
        click.echo(json.dumps(data | {"problems": problems}))
    elif not quiet:
        print_summary(data, problems)
    sys.exit({"ok": opt.EXIT_OK, "partial": opt.EXIT_PROBLEMS}.get(summary.status, opt.EXIT_FAILED))


def _open_log(log_file: str | None):
    """The ``--log-file`` opened for appending before the crawl, its folder created if missing."""
    if not log_file:
        return None
    path = Path(log_file).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "a", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--log-file {log_file}: {exc.strerror}") from None


def _expected_files(store: Catalog, roots: tuple[str, ...]) -> int | None:
    """Files the last crawls found under these roots: the bar's total (None on a first crawl)."""
    if not store.path.exists():
        return None
    absolute = [str(Path(r).expanduser().absolute()) for r in roots]
    with store.connect(read_only=True) as con:
        try:
            count = con.execute("SELECT count(*) FROM files WHERE deleted_at IS NULL AND list_contains(?, root)",
                                [absolute]).fetchall()[0][0]
        except duckdb.CatalogException:  # a crawl killed while it created the catalog left no tables
            return None
    return count or None


COMMANDS = (crawl,)
