"""``mlcrawl watch`` (keep the catalog current) and ``mlcrawl jobs`` (the config's jobs and their last run)."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from datetime import datetime, timezone

import click

from ..config import Job
from ..errors import ConfigError
from . import options as opt
from .export import openlineage_option, send_openlineage

def _log_to_stderr(quiet: bool):
    def log(level: str, message: str) -> None:
        if quiet and level == "info":
            return
        stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        click.echo(f"{stamp} {level}: {message}", err=True)
    return log


@click.command()
@click.argument("roots", nargs=-1, type=click.Path(file_okay=False))
@click.option("--job", "job_name", help="Watch the roots of the [[jobs]] entry of this name.")
@click.option("--poll", is_flag=True, help="Poll instead of inotify (automatic on NFS/SMB/sshfs/Lustre/FUSE).")
@click.option("--interval", type=float, help="Seconds between polls (default: [watch] poll_interval, 30).")
@click.option("--settle", type=float, help="Index a file once it has been quiet this many seconds (default 2).")
@click.option("--batch-seconds", type=float, help="While other files are still being written, crawl at most this long after the first settled (default 5).")
@opt.wait_option
@click.option("--quiet", "-q", is_flag=True, help="Log warnings only.")
@opt.catalog_options
@openlineage_option
def watch(roots, job_name, poll, interval, settle, batch_seconds, wait_seconds, quiet, config_path, catalog,
          openlineage_url) -> None:
    """Catch up, then keep the catalog current as files under ROOTS change (Ctrl-C or SIGTERM stops)."""
    from ..watch import Watcher

    config = opt.load(config_path)
    job = opt.roots_job(config, tuple(roots), job_name, "watch")
    settings = config.watch
    if interval is not None:
        settings = replace(settings, poll_interval=interval)
    if settle is not None:
        settings = replace(settings, settle=settle)
    if batch_seconds is not None:
        settings = replace(settings, batch_seconds=batch_seconds)
    store = opt.open_store(config, catalog)
    crawlers, crawler_options = opt.choose_crawlers(config, job)
    lock = store.crawl_lock(list(job.roots))
    lock.acquire(wait_seconds)
    try:
        log = _log_to_stderr(quiet)
        url = openlineage_url or config.openlineage_url
        after_batch = (lambda: send_openlineage(store, url, lambda m: log("warning", m))) if url else None
        watcher = Watcher(store, job, crawlers, crawler_options, settings, force_poll=poll, log=log,
                          after_batch=after_batch)
        watcher.install_signal_handlers()
        report = watcher.run()
    finally:
        lock.release()
    if not quiet:
        click.echo(f"watch session {report.session_id} ended: {report.batches} batches, "
                   f"{report.totals['files_new']} new, {report.totals['files_changed']} changed, "
                   f"{report.totals['files_deleted']} deleted, {report.totals['errors']} errors", err=True)
    sys.exit(opt.EXIT_OK)


_LAST_RUNS = """
    SELECT job, kind, status, started_at, finished_at, epoch(finished_at - started_at) AS seconds,
           files_seen, errors
    FROM crawls WHERE kind IN ('crawl', 'watch')
    QUALIFY row_number() OVER (PARTITION BY job ORDER BY crawl_id DESC) = 1
"""


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per job.")
@opt.catalog_options
def jobs(as_json, config_path, catalog) -> None:
    """List the config's jobs with their last run, status and duration."""
    config = opt.load(config_path)
    if not config.jobs:
        raise ConfigError("the config defines no [[jobs]]" + (f" ({config.source})" if config.source else ""))
    store = opt.open_store(config, catalog)
    last: dict[str, tuple] = {}
    if store.path.exists():
        with store.connect(read_only=True) as con:
            last = {row[0]: row for row in con.execute(_LAST_RUNS).fetchall()}
    rows = [_job_row(job, last.get(job.name)) for job in config.jobs]
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return
    click.echo(f"{'job':<16} {'last run (UTC)':<20} {'kind':<6} {'status':<11} {'seconds':>8}  roots")
    for row in rows:
        seconds = "" if row["duration_s"] is None else f"{row['duration_s']:.1f}"
        click.echo(f"{row['job']:<16} {row['last_run'] or 'never':<20} {row['kind'] or '':<6} "
                   f"{row['status'] or '':<11} {seconds:>8}  {', '.join(row['roots'])}")


def _job_row(job: Job, last: tuple | None) -> dict:
    _, kind, status, started, _, seconds, files_seen, errors = last or (None,) * 8
    return {
        "job": job.name, "roots": list(job.roots), "kind": kind, "status": status,
        "last_run": started.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S") if started else None,
        "duration_s": round(float(seconds), 3) if seconds is not None else None,
        "files_seen": files_seen, "errors": errors,
    }


COMMANDS = (watch, jobs)
