"""MLflow SQLite tracking stores (``mlflow.db``) read read-only with sqlite3, without MLflow.

Tables read (columns added by later MLflow migrations are optional)::

    mlflow.db
      alembic_version        schema revision (reported, never migrated)
      experiments            experiment_id, name, artifact_location, lifecycle_stage
      experiment_tags        key, value, experiment_id
      runs                   run_uuid, name, status ('FINISHED'...), start/end_time ms, user_id,
                             lifecycle_stage, artifact_uri (a plain absolute path), experiment_id
      params, tags           key, value, run_uuid
      metrics                key, value, timestamp, step, is_nan, run_uuid   (full history)
      inputs + input_tags    DATASET -> RUN links with their context; RUN_OUTPUT -> MODEL_OUTPUT
      datasets               name, digest, dataset_source (JSON), dataset_schema, dataset_profile
      logged_models (+ _params, _tags, _metrics)                             (MLflow 3)
    <artifact_uri mapped into the root>/**   e.g. mlartifacts/<run>/artifacts/...

The file is opened with ``mode=ro`` (``immutable=1`` when its folder is read-only and a
WAL file cannot be opened); nothing is ever written or migrated.
"""

from __future__ import annotations

import math
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

from mlcrawl.api import BaseCrawler, Claims, CrawlContext, Metric, Options, Record, from_epoch_ms, to_text

from ._mlflow_common import (
    RunFacts,
    build_experiment,
    build_run,
    dataset_records,
    iso_ms,
    logged_model_records,
    map_into_root,
    mlflow_run_id,
    model_output_record,
    normalise_model_status,
    read_mlmodel,
    yield_artifacts,
    yield_params_tags,
)

REQUIRED_TABLES = frozenset({"experiments", "runs", "params", "metrics", "tags", "alembic_version"})
SUFFIXES = (".db", ".sqlite", ".sqlite3")
DEFAULT_TIMEOUT_S = 5.0


class MlflowDatabaseError(Exception):
    """An ``mlflow.db`` that cannot be read: not SQLite, not MLflow, locked or corrupt."""


@dataclass(frozen=True)
class MlflowSqliteOptions(Options):
    """Options of ``[crawlers.mlflow_sqlite]``."""

    sqlite_timeout: float = DEFAULT_TIMEOUT_S
    """seconds to wait for a database that MLflow is writing"""


class MlflowSqliteCrawler(BaseCrawler):
    """Experiments, runs, params, tags, full metric history and artifacts of an MLflow SQLite store."""

    name: ClassVar[str] = "mlflow_sqlite"
    claims = Claims(files=tuple("*" + s for s in SUFFIXES))
    Options = MlflowSqliteOptions
    version: ClassVar[int] = 1

    def match(self, path: Path, is_dir: bool) -> bool:
        """Claim ``mlflow.db`` and other SQLite-looking names; the schema is checked in ``crawl``."""
        return not is_dir and path.name.lower().endswith(SUFFIXES)

    def crawl(self, unit: Path, ctx: CrawlContext) -> Iterator[Record]:
        """Yield every experiment, run and logged model of one database.

        Only a file named ``mlflow.db`` must be an MLflow store: any other ``*.db`` that is not
        SQLite or has no MLflow tables is someone else's file and yields nothing.
        """
        strict = unit.name == "mlflow.db"
        timeout = float(ctx.options.get("sqlite_timeout", DEFAULT_TIMEOUT_S))
        with closing(open_readonly(unit, ctx, timeout)) as conn:
            tables = check_schema(conn, unit, ctx, strict)
            if tables is None:
                return
            try:
                yield from read_store(conn, tables, unit, ctx)
            except sqlite3.DatabaseError as exc:
                raise describe_error(exc, unit, ctx) from exc


def open_readonly(path: Path, ctx: CrawlContext, timeout: float) -> sqlite3.Connection:
    """A read-only connection; ``immutable=1`` when a read-only folder makes ``mode=ro`` fail."""
    # sqlite needs a path: the context checks it first (a regular file inside the root, no FIFO).
    with ctx.open(path):
        pass
    # Quoted as bytes: a name that is not UTF-8 reaches sqlite as the bytes the filesystem has.
    uri = f"file:{quote(os.fsencode(path.absolute()))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=timeout)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or os.access(path.parent, os.W_OK):
            raise describe_error(exc, path, ctx) from exc
    except sqlite3.DatabaseError as exc:
        raise describe_error(exc, path, ctx) from exc
    # A WAL database in a folder we may not write: no -shm can be made, and no writer can be
    # active there either, so reading the file as immutable is safe.
    ctx.warn("folder is read-only; database opened as immutable", path)
    try:
        conn = sqlite3.connect(uri + "&immutable=1", uri=True, timeout=timeout)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.DatabaseError as exc:
        raise describe_error(exc, path, ctx) from exc


def describe_error(exc: sqlite3.DatabaseError, path: Path, ctx: CrawlContext) -> MlflowDatabaseError:
    """A sqlite3 error rephrased to say what is wrong with which file."""
    rel, text = ctx.relpath(path), str(exc)
    if "locked" in text or "busy" in text:
        return MlflowDatabaseError(f"{rel}: SQLite database is locked by another process ({text}); retry later")
    if "not a database" in text:
        return MlflowDatabaseError(f"{rel}: not a SQLite database ({text})")
    if "malformed" in text or "corrupt" in text:
        return MlflowDatabaseError(f"{rel}: SQLite database is corrupt ({text})")
    return MlflowDatabaseError(f"{rel}: cannot read SQLite database ({type(exc).__name__}: {text})")


def check_schema(conn: sqlite3.Connection, path: Path, ctx: CrawlContext, strict: bool) -> dict | None:
    """``{table: set(columns)}`` of an MLflow store; None (or an error if strict) for other files."""
    try:
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        if strict:
            raise describe_error(exc, path, ctx) from exc
        return None
    missing = REQUIRED_TABLES - names
    if missing:
        if strict:
            raise MlflowDatabaseError(
                f"{ctx.relpath(path)}: SQLite database but not an MLflow tracking store "
                f"(missing tables: {', '.join(sorted(missing))})")
        return None
    return {name: {row[1] for row in conn.execute(f'PRAGMA table_info("{name}")')} for name in names}


def read_store(conn: sqlite3.Connection, tables: dict, db: Path, ctx: CrawlContext) -> Iterator[Record]:
    """The table of contents of one store: experiments, then each run, then logged models."""
    store = ctx.relpath(db)
    bases = (db.parent, ctx.root)
    experiments = read_experiments(conn, tables)
    for experiment_id, (meta, tags) in experiments.items():
        yield build_experiment(store, experiment_id, meta, tags, ctx, bases)
    for facts in read_runs(conn, tables, experiments):
        yield from crawl_run(conn, tables, facts, ctx, bases)
    if "logged_models" in tables:
        yield from read_logged_models(conn, tables, ctx, bases)


def select(conn: sqlite3.Connection, tables: dict, table: str, wanted: list[str], where: str = "",
           args: tuple = ()) -> list[dict]:
    """Rows as dicts; columns a schema revision lacks come back as None."""
    have = tables.get(table, set())
    cols = ", ".join(f'"{c}"' if c in have else f'NULL AS "{c}"' for c in wanted)
    return [dict(zip(wanted, row)) for row in conn.execute(f'SELECT {cols} FROM "{table}" {where}', args)]


def read_experiments(conn: sqlite3.Connection, tables: dict) -> dict[str, tuple[dict, dict]]:
    """``{experiment_id: (row, tags)}`` in id order."""
    rows = select(conn, tables, "experiments", ["experiment_id", "name", "artifact_location", "lifecycle_stage"],
                  "ORDER BY experiment_id")
    tags: dict[str, dict[str, str]] = {}
    if "experiment_tags" in tables:
        for row in select(conn, tables, "experiment_tags", ["experiment_id", "key", "value"], 'ORDER BY "key"'):
            tags.setdefault(str(row["experiment_id"]), {})[row["key"]] = row["value"]
    return {str(row["experiment_id"]): (row, tags.get(str(row["experiment_id"]), {})) for row in rows}


def read_runs(conn: sqlite3.Connection, tables: dict, experiments: dict) -> Iterator[RunFacts]:
    """Every run row (deleted ones included, with their lifecycle) as RunFacts."""
    wanted = ["run_uuid", "name", "status", "start_time", "end_time", "user_id", "lifecycle_stage",
              "artifact_uri", "experiment_id"]
    for row in select(conn, tables, "runs", wanted, "ORDER BY start_time, run_uuid"):
        experiment_id = str(row["experiment_id"])
        meta = experiments.get(experiment_id, ({}, {}))[0]
        yield RunFacts(
            run_id=row["run_uuid"],
            experiment_id=experiment_id,
            experiment_name=to_text(meta.get("name")),
            name=row["name"] or None,
            status=row["status"],
            start_ms=row["start_time"],
            end_ms=row["end_time"],
            user=row["user_id"] or None,
            lifecycle=row["lifecycle_stage"],
            artifact_uri=row["artifact_uri"],
            dir=None,
        )


def crawl_run(conn: sqlite3.Connection, tables: dict, facts: RunFacts, ctx: CrawlContext,
              bases: tuple[Path, ...]) -> Iterator[Record]:
    """One run: Run, params, tags, every metric row, artifacts, dataset inputs, model outputs."""
    run_id = facts.run_id
    params = key_values(conn, tables, "params", run_id)
    tags = key_values(conn, tables, "tags", run_id)
    yield build_run(facts, tags)
    yield from yield_params_tags(run_id, params, tags)
    yield from read_metrics(conn, tables, run_id)
    artifact_dir = map_into_root(facts.artifact_uri, ctx.root, bases, min_parts=2)
    yield from yield_artifacts(run_id, artifact_dir, facts.artifact_uri, ctx)
    if {"inputs", "datasets"} <= tables.keys():
        yield from read_dataset_inputs(conn, tables, run_id, ctx, bases)
        yield from read_model_outputs(conn, tables, run_id)


def key_values(conn: sqlite3.Connection, tables: dict, table: str, run_id: str) -> dict[str, str]:
    """A run's params or tags as ``{key: value}``."""
    rows = select(conn, tables, table, ["key", "value"], 'WHERE run_uuid = ? ORDER BY "key"', (run_id,))
    return {row["key"]: row["value"] for row in rows}


def read_metrics(conn: sqlite3.Connection, tables: dict, run_id: str) -> Iterator[Metric]:
    """Every metric row of a run (streamed); ``is_nan`` rows read back as NaN, as MLflow does."""
    key_id = mlflow_run_id(run_id)
    cols = tables["metrics"]
    step = "step" if "step" in cols else "0"  # both added by MLflow 1.x migrations
    is_nan = "is_nan" if "is_nan" in cols else "0"
    rows = conn.execute(f'SELECT "key", value, timestamp, {step}, {is_nan} FROM metrics '
                        'WHERE run_uuid = ? ORDER BY "key", timestamp', (run_id,))
    for key, value, timestamp, step, is_nan in rows:
        number = math.nan if is_nan else (float(value) if value is not None else None)
        yield Metric(key_id, key, number, int(step or 0), from_epoch_ms(timestamp))


def read_dataset_inputs(conn: sqlite3.Connection, tables: dict, run_id: str, ctx: CrawlContext,
                        bases: tuple[Path, ...]) -> Iterator[Record]:
    """DATASET -> RUN rows of ``inputs`` joined with ``datasets`` and their ``input_tags``."""
    query = (
        "SELECT i.input_uuid, d.name, d.digest, d.dataset_source_type, d.dataset_source, "
        "d.dataset_schema, d.dataset_profile FROM inputs i JOIN datasets d ON d.dataset_uuid = i.source_id "
        "WHERE i.destination_type = 'RUN' AND i.destination_id = ? AND i.source_type = 'DATASET' "
        "ORDER BY d.name, d.digest")
    for input_uuid, name, digest, source_type, source, schema, profile in conn.execute(query, (run_id,)):
        context = {}
        if "input_tags" in tables:
            context = {k: v for k, v in conn.execute(
                "SELECT name, value FROM input_tags WHERE input_uuid = ? ORDER BY name", (input_uuid,))}
        dataset = {"name": name, "digest": digest, "source_type": source_type, "source": source,
                   "schema": schema, "profile": profile}
        yield from dataset_records(run_id, dataset, context, ctx, bases, None)


def read_model_outputs(conn: sqlite3.Connection, tables: dict, run_id: str) -> Iterator[Record]:
    """RUN_OUTPUT -> MODEL_OUTPUT rows of ``inputs``: logged models this run produced."""
    if "step" not in tables["inputs"]:
        return
    query = ("SELECT destination_id, step FROM inputs WHERE source_type = 'RUN_OUTPUT' "
             "AND source_id = ? AND destination_type = 'MODEL_OUTPUT' ORDER BY destination_id")
    for model_id, step in conn.execute(query, (run_id,)):
        yield model_output_record(run_id, model_id, model_id, step)


def read_logged_models(conn: sqlite3.Connection, tables: dict, ctx: CrawlContext,
                       bases: tuple[Path, ...]) -> Iterator[Record]:
    """Each logged model (MLflow 3) as an Artifact(role model) on its source run."""
    wanted = ["model_id", "experiment_id", "name", "artifact_location", "creation_timestamp_ms",
              "last_updated_timestamp_ms", "status", "lifecycle_stage", "model_type", "source_run_id"]
    for row in select(conn, tables, "logged_models", wanted, "ORDER BY model_id"):
        location = row["artifact_location"]
        mapped = map_into_root(location, ctx.root, bases, min_parts=2)
        artifacts = mapped if mapped is not None and mapped.is_dir() else None
        mlmodel = read_mlmodel(artifacts / "MLmodel", ctx) if artifacts and (artifacts / "MLmodel").is_file() else None
        model = {
            "model_id": row["model_id"],
            "name": row["name"],
            "experiment_id": to_text(row["experiment_id"]),
            "source_run_id": row["source_run_id"],
            "status": normalise_model_status(row["status"]),
            "lifecycle_stage": row["lifecycle_stage"],
            "model_type": row["model_type"],
            "created": iso_ms(row["creation_timestamp_ms"]),
            "updated": iso_ms(row["last_updated_timestamp_ms"]),
            "artifact_location": location,
            "params": model_pairs(conn, tables, "logged_model_params", "param", row["model_id"]),
            "tags": model_pairs(conn, tables, "logged_model_tags", "tag", row["model_id"]),
            "metrics": latest_model_metrics(conn, tables, row["model_id"]),
            "mlmodel": mlmodel,
        }
        yield from logged_model_records(model, artifacts, ctx)


def model_pairs(conn: sqlite3.Connection, tables: dict, table: str, prefix: str, model_id: str) -> dict:
    """A logged model's params or tags."""
    if table not in tables:
        return {}
    query = f"SELECT {prefix}_key, {prefix}_value FROM {table} WHERE model_id = ? ORDER BY {prefix}_key"
    return dict(conn.execute(query, (model_id,)))


def latest_model_metrics(conn: sqlite3.Connection, tables: dict, model_id: str) -> dict:
    """A logged model's latest value per metric (max step, then timestamp, then value)."""
    if "logged_model_metrics" not in tables:
        return {}
    latest: dict[str, Any] = {}
    query = ("SELECT metric_name, metric_value FROM logged_model_metrics WHERE model_id = ? "
             "ORDER BY metric_name, metric_step, metric_timestamp_ms, metric_value")
    for name, value in conn.execute(query, (model_id,)):
        latest[name] = value  # the ORDER BY leaves the latest row last
    return latest
