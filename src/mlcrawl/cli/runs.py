"""``mlcrawl runs``: logical runs, the source runs several tools logged for one training."""

from __future__ import annotations

import click

from . import options as opt
from .render import write_result

BATCH_ROWS = 65536


@click.command()
@click.option("--linked", is_flag=True, help="Only logical runs made of two or more source runs.")
@click.option("--experiment", help="Only source runs of this experiment (and the runs linked to them).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@opt.catalog_options
def runs(linked, experiment, fmt, config_path, catalog) -> None:
    """Source runs grouped into logical runs, with the evidence that links them (view logical_runs)."""
    store = opt.open_store(opt.load(config_path), catalog)
    where, args = [], []
    if linked:
        where.append("source_runs > 1")
    if experiment is not None:
        where.append("logical_run_id IN (SELECT logical_run_id FROM logical_runs WHERE experiment = ?)")
        args.append(experiment)
    sql = ("SELECT logical_run_id, run_id, source, experiment, name, status, start_time, dir, evidence "
           "FROM logical_runs" + (" WHERE " + " AND ".join(where) if where else "")
           + " ORDER BY logical_run_id, run_id")
    with store.connect(read_only=True) as con:
        write_result(con.sql(sql, params=args or None).to_arrow_reader(BATCH_ROWS), fmt, None)


COMMANDS = (runs,)
