"""MLflow file stores (``mlruns/``) read directly, without MLflow: experiments, runs, logged models.

Layout read (MLflow 1.x to 3.x; the store folder may have any name)::

    mlruns/
      <exp id>/                          experiment unit
        meta.yaml                        experiment_id, name, artifact_location, lifecycle_stage
        tags/<key>                       experiment tags (one file each, value = contents)
        datasets/<digest id>/meta.yaml   name, digest, source (JSON {"uri": ...}), schema, profile
        models/m-<id>/                   logged model unit (MLflow 3)
          meta.yaml                      model_id, name, source_run_id, status, artifact_location
          params/ tags/ metrics/         metric lines: "timestamp value step run_id [ds digest]"
          artifacts/MLmodel              flavors, signature, run_id
        <run id>/                        run unit (32-hex uuid)
          meta.yaml                      run_id, run_name, status (1..5), start/end_time ms,
                                         user_id, lifecycle_stage, artifact_uri
          params/<key>  tags/<key>       value = file contents; keys with "/" are nested folders
          metrics/<key>                  one line per point: "timestamp value step"
                                         (legacy "timestamp value"; "... step dataset digest")
          artifacts/**                   every file is linked to the run
          inputs/<id>/meta.yaml          source_id -> ../datasets/<source_id>, tags = context
          outputs/m-<id>/meta.yaml       logged models this run produced
      .trash/<exp id>/...                deleted experiments, same layout
    <anywhere>/MLmodel                   file unit: an MLflow model's flavors and signature
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

import yaml

from mlcrawl.api import BaseCrawler, Claims, CrawlContext, FolderShape, Metric, Model, Record, to_text

from ._mlflow_common import (
    RunFacts,
    build_experiment,
    build_run,
    dataset_records,
    iso_ms,
    load_meta_yaml,
    logged_model_records,
    map_into_root,
    mlflow_run_id,
    model_output_record,
    normalise_model_status,
    read_mlmodel,
    yield_artifacts,
    yield_params_tags,
)

META = "meta.yaml"
TRASH = ".trash"
RUN_ID = re.compile(r"[0-9a-f]{32}")
RUN_PARTS = frozenset({"params", "metrics", "tags"})
UTC = timezone.utc

#: Field counts MLflow itself accepts: runs 2/3/5, logged models 4/6.
RUN_METRIC_FIELDS = frozenset({2, 3, 5})
MODEL_METRIC_FIELDS = frozenset({4, 6})


def classify_folder(path: Path, names: frozenset[str] | set[str]) -> str | None:
    """``run``, ``experiment``, ``model`` or None for a folder, from its name and entries."""
    hex_name = RUN_ID.fullmatch(path.name) is not None
    if META not in names and not (hex_name and names & RUN_PARTS):
        return None
    if path.name.startswith("m-") and path.parent.name == "models":
        return "model"
    if names & {"params", "metrics"} or (hex_name and names & (RUN_PARTS | {"artifacts", "inputs", "outputs"})):
        return "run"
    if path.name.isdigit() and (
        path.parent.name in ("mlruns", TRASH)
        or names & {"tags", "models", "datasets"}
        or any(RUN_ID.fullmatch(n) for n in names)
    ):
        return "experiment"
    return None


class MlflowFileStoreCrawler(BaseCrawler):
    """Runs, experiments and logged models of an MLflow file store; ``MLmodel`` files anywhere."""

    name: ClassVar[str] = "mlflow"
    claims = Claims(files=("MLmodel",), folders=(FolderShape(any_of=(META, *RUN_PARTS)),))
    version: ClassVar[int] = 1

    def match(self, path: Path, is_dir: bool) -> bool:
        """Claim ``MLmodel`` files; folders are claimed by ``match_folder``."""
        return not is_dir and path.name == "MLmodel"

    def match_folder(self, path: Path, names: frozenset[str]) -> bool:
        """Claim run, experiment and logged-model folders."""
        return classify_folder(path, names) is not None

    def folder_run_id(self, folder: Path, rel: str) -> str | None:
        """A run folder is named after its run id: ``mlflow:<id>``."""
        return f"mlflow:{folder.name}" if RUN_ID.fullmatch(folder.name) else None

    def crawl(self, unit: Path, ctx: CrawlContext) -> Iterator[Record]:
        """Yield the records of one run, experiment, logged model or MLmodel file."""
        if unit.is_file():
            yield from crawl_mlmodel(unit, ctx)
            return
        kind = classify_folder(unit, frozenset(os.listdir(unit)))
        if kind == "run":
            yield from crawl_run(unit, ctx)
        elif kind == "experiment":
            yield from crawl_experiment(unit, ctx)
        elif kind == "model":
            yield from crawl_logged_model(unit, ctx)
        else:
            raise ValueError(f"{ctx.relpath(unit)} is not an MLflow run, experiment or model folder")


# --- runs -----------------------------------------------------------------------------------

def crawl_run(run_dir: Path, ctx: CrawlContext) -> Iterator[Record]:
    """One run folder: the Run, its params, tags, every metric point, artifacts, inputs, outputs."""
    meta = read_meta(run_dir, ctx)
    run_id = to_text(meta.get("run_id") or meta.get("run_uuid")) or run_dir.name
    tags = read_key_files(run_dir / "tags", ctx)
    exp_dir = run_dir.parent
    facts = run_facts(meta, run_id, run_dir, exp_dir, ctx)
    yield build_run(facts, tags)
    yield from yield_params_tags(run_id, read_key_files(run_dir / "params", ctx), tags)
    yield from read_run_metrics(run_id, run_dir / "metrics", ctx)
    yield from yield_artifacts(run_id, locate_artifacts(facts.artifact_uri, run_dir, ctx),
                               facts.artifact_uri, ctx)
    yield from read_dataset_inputs(run_id, run_dir, exp_dir, ctx)
    yield from read_model_outputs(run_id, run_dir, exp_dir, ctx)


def run_facts(meta: dict, run_id: str, run_dir: Path, exp_dir: Path, ctx: CrawlContext) -> RunFacts:
    """The run's meta.yaml joined with its experiment's name (from ``../meta.yaml``)."""
    exp_meta = read_experiment_meta(exp_dir, ctx)
    lifecycle = to_text(meta.get("lifecycle_stage"))
    if exp_dir.parent.name == TRASH:
        lifecycle = "deleted"  # deleting an experiment deletes its runs (MLflow marks them too)
    return RunFacts(
        run_id=run_id,
        experiment_id=to_text(meta.get("experiment_id")) or exp_dir.name,
        experiment_name=to_text(exp_meta.get("name")),
        name=to_text(meta.get("run_name")) or None,
        status=meta.get("status"),
        start_ms=meta.get("start_time"),
        end_ms=meta.get("end_time"),
        user=to_text(meta.get("user_id")) or None,
        lifecycle=lifecycle,
        artifact_uri=to_text(meta.get("artifact_uri")),
        dir=ctx.relpath(run_dir),
    )


def read_experiment_meta(exp_dir: Path, ctx: CrawlContext) -> dict:
    """The experiment's meta.yaml, or {} with a warning (the run is still worth reading)."""
    path = exp_dir / META
    try:
        data = load_meta_yaml(ctx.read_bytes(path))
    except FileNotFoundError:
        ctx.warn("experiment folder has no meta.yaml; experiment name unknown", exp_dir)
        return {}
    except (OSError, ValueError, yaml.YAMLError) as exc:
        ctx.warn(f"experiment meta.yaml cannot be read: {exc}", path)
        return {}
    return data if isinstance(data, dict) else {}


def locate_artifacts(uri: str | None, run_dir: Path, ctx: CrawlContext) -> Path | None:
    """The run's artifact folder here: its URI mapped into the root, else ``<run>/artifacts``."""
    mapped = map_into_root(uri, ctx.root, min_parts=2)
    if mapped is not None and mapped.is_dir():
        return mapped
    # No warning when neither exists: a run that logged no artifacts has no folder once copied.
    local = run_dir / "artifacts"
    return local if local.is_dir() else None


def read_dataset_inputs(run_id: str, run_dir: Path, exp_dir: Path, ctx: CrawlContext) -> Iterator[Record]:
    """``inputs/<id>/meta.yaml`` joined with ``<exp>/datasets/<source_id>/meta.yaml``."""
    store_bases = (store_dir(exp_dir).parent, ctx.root)
    for meta_path in sorted((run_dir / "inputs").glob(f"*/{META}")):
        link = read_yaml_mapping(meta_path, ctx)
        if link is None or str(link.get("source_type", "DATASET")).upper() != "DATASET":
            continue
        dataset_meta = exp_dir / "datasets" / str(link.get("source_id")) / META
        dataset = read_yaml_mapping(dataset_meta, ctx)
        if dataset is None:
            continue
        context = {str(k): to_text(v) for k, v in (link.get("tags") or {}).items()}
        yield from dataset_records(run_id, dataset, context, ctx, store_bases, ctx.relpath(dataset_meta))


def read_model_outputs(run_id: str, run_dir: Path, exp_dir: Path, ctx: CrawlContext) -> Iterator[Record]:
    """``outputs/m-<id>/meta.yaml``: the logged models (MLflow 3) this run produced."""
    for meta_path in sorted((run_dir / "outputs").glob(f"*/{META}")):
        link = read_yaml_mapping(meta_path, ctx)
        if link is None:
            continue
        model_id = to_text(link.get("destination_id")) or meta_path.parent.name
        model_dir = exp_dir / "models" / model_id
        target = model_dir / "artifacts" if (model_dir / "artifacts").is_dir() else model_dir
        where = ctx.relpath(target) if target.exists() else model_id
        yield model_output_record(run_id, model_id, where, link.get("step"))


def store_dir(exp_dir: Path) -> Path:
    """The store folder holding an experiment folder (``.trash`` is inside the store)."""
    parent = exp_dir.parent
    return parent.parent if parent.name == TRASH else parent


# --- metrics --------------------------------------------------------------------------------

def read_run_metrics(run_id: str, metrics_dir: Path, ctx: CrawlContext) -> Iterator[Metric]:
    """Every point of every metric file; keys with ``/`` come from nested folders."""
    if not metrics_dir.is_dir():
        return
    key_id = mlflow_run_id(run_id)
    # log_metrics() stamps every key of a step with one timestamp: build each datetime once.
    moments: dict[int, datetime | None] = {}
    for key, path in iter_key_files(metrics_dir):
        for ts, value, step in parse_metric_file(path, RUN_METRIC_FIELDS, ctx):
            moment = moments.get(ts)
            if moment is None:
                moment = moments[ts] = ms_to_datetime(ts)
            yield Metric(key_id, key, value, step, moment)


def parse_metric_file(path: Path, allowed: frozenset[int], ctx: CrawlContext) -> list[tuple[int, float, int]]:
    """``(timestamp_ms, value, step)`` per line; bad lines skipped with one warning.

    A last line without its newline and with fewer fields than the line before is a write cut
    short (the run was killed mid-write): it is dropped, not read as a legacy 2-field point.
    MLflow reads step 0 for 2-field lines (and, by a bug, for 5-field ones); the step the file
    holds is kept here.  Extra fields (dataset name and digest, a model metric's run id) are
    not kept.
    """
    lines = ctx.read_bytes(path).split(b"\n")
    cut = lines.pop()  # complete lines end with "\n"; the remainder is b"" or a cut line
    if cut.strip():
        if lines and len(cut.split()) < len(lines[-1].split()):
            ctx.warn(f"metric file ends in a truncated line {cut[:80]!r}; dropped", path)
        else:
            lines.append(cut)
    points, bad = [], []
    for number, line in enumerate(lines, 1):
        parts = line.split()
        if len(parts) in allowed:
            try:
                points.append((int(parts[0]), float(parts[1]), int(parts[2]) if len(parts) > 2 else 0))
                continue
            except ValueError:
                pass
        if parts:
            bad.append(number)
    if bad:
        ctx.warn(f"{len(bad)} malformed metric line(s) skipped (first: line {bad[0]})", path)
    return points


def ms_to_datetime(ms: int) -> datetime | None:
    """Epoch milliseconds as a UTC datetime (None for values no datetime can hold)."""
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


# --- experiments ----------------------------------------------------------------------------

def crawl_experiment(exp_dir: Path, ctx: CrawlContext) -> Iterator[Record]:
    """One experiment folder: the Experiment record with its tags."""
    meta = read_meta(exp_dir, ctx)
    experiment_id = to_text(meta.get("experiment_id")) or exp_dir.name
    tags = read_key_files(exp_dir / "tags", ctx)
    store = store_dir(exp_dir)
    yield build_experiment(ctx.relpath(store), experiment_id, meta, tags, ctx, (store.parent, ctx.root))


# --- logged models --------------------------------------------------------------------------

def crawl_logged_model(model_dir: Path, ctx: CrawlContext) -> Iterator[Record]:
    """A ``models/m-<id>`` folder: an Artifact(role model) on its source run, with its facts."""
    meta = read_meta(model_dir, ctx)
    location = to_text(meta.get("artifact_location"))
    mapped = map_into_root(location, ctx.root, min_parts=2)
    artifacts = mapped if mapped is not None and mapped.is_dir() else model_dir / "artifacts"
    mlmodel = read_mlmodel(artifacts / "MLmodel", ctx) if (artifacts / "MLmodel").is_file() else None
    model = {
        "model_id": to_text(meta.get("model_id")) or model_dir.name,
        "name": to_text(meta.get("name")),
        "experiment_id": to_text(meta.get("experiment_id")),
        "source_run_id": to_text(meta.get("source_run_id")),
        "status": normalise_model_status(meta.get("status")),
        "model_type": to_text(meta.get("model_type")),
        "created": iso_ms(meta.get("creation_timestamp")),
        "updated": iso_ms(meta.get("last_updated_timestamp")),
        "artifact_location": location,
        "folder": ctx.relpath(model_dir),
        "params": read_key_files(model_dir / "params", ctx),
        "tags": read_key_files(model_dir / "tags", ctx),
        "metrics": latest_model_metrics(model_dir / "metrics", ctx),
        "mlmodel": mlmodel,
    }
    yield from logged_model_records(model, artifacts if artifacts.is_dir() else None, ctx)


def latest_model_metrics(metrics_dir: Path, ctx: CrawlContext) -> dict[str, float | str]:
    """Each logged-model metric's latest value (max step, then timestamp, then value: MLflow's rule)."""
    latest: dict[str, Any] = {}
    if not metrics_dir.is_dir():
        return latest
    for key, path in iter_key_files(metrics_dir):
        points = parse_metric_file(path, MODEL_METRIC_FIELDS, ctx)
        if points:
            value = max(points, key=lambda p: (p[2], p[0], p[1]))[1]
            latest[key] = value if math.isfinite(value) else str(value)
    return latest


# --- MLmodel files --------------------------------------------------------------------------

def crawl_mlmodel(path: Path, ctx: CrawlContext) -> Iterator[Record]:
    """An ``MLmodel`` file: a Model record whose metadata holds flavors, signature and run id."""
    facts = read_mlmodel(path, ctx)
    if facts is None:
        raise ValueError(f"{ctx.relpath(path)} is not a readable MLmodel (YAML mapping)")
    yield Model(path=ctx.relpath(path), format="mlflow_model", metadata=facts)


# --- small readers --------------------------------------------------------------------------

def read_meta(folder: Path, ctx: CrawlContext) -> dict:
    """A folder's meta.yaml as a mapping; raises with the path when it is missing or not YAML."""
    path = folder / META
    if not path.is_file():
        raise FileNotFoundError(f"MLflow folder {ctx.relpath(folder)} has no meta.yaml")
    try:
        data = load_meta_yaml(ctx.read_bytes(path))
    except (ValueError, yaml.YAMLError) as exc:
        raise ValueError(f"{ctx.relpath(path)} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{ctx.relpath(path)} is not a YAML mapping (got {type(data).__name__})")
    return data


def read_yaml_mapping(path: Path, ctx: CrawlContext) -> dict | None:
    """A small YAML mapping, or None with a warning when it is missing or broken."""
    try:
        data = load_meta_yaml(ctx.read_bytes(path))
    except (OSError, ValueError, yaml.YAMLError) as exc:
        ctx.warn(f"cannot read {path.name}: {exc}", path)
        return None
    if not isinstance(data, dict):
        ctx.warn("not a YAML mapping", path)
        return None
    return data


def iter_key_files(folder: Path, prefix: str = "") -> Iterator[tuple[str, Path]]:
    """``(key, file)`` under a params/, tags/ or metrics/ folder; sub-folders give ``a/b`` keys."""
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.is_dir(follow_symlinks=False):
                yield from iter_key_files(Path(entry.path), f"{prefix}{entry.name}/")
            else:
                yield f"{prefix}{entry.name}", Path(entry.path)


def read_key_files(folder: Path, ctx: CrawlContext) -> dict[str, str]:
    """``{key: file contents}`` for a params/ or tags/ folder; nested folders give ``a/b`` keys."""
    values: dict[str, str] = {}
    if not folder.is_dir():
        return values
    for key, path in iter_key_files(folder):
        try:
            values[key] = ctx.read_text(path)
        except UnicodeDecodeError:
            ctx.warn("value is not UTF-8; undecodable bytes replaced", path)
            values[key] = ctx.read_text(path, errors="replace")
    return values
