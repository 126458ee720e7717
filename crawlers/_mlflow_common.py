"""What the MLflow file-store and SQLite crawlers share: statuses, URI mapping, MLmodel, records.

Both stores describe the same entities, and both point at artifacts by URIs written on the
machine that ran the code, not on the one that crawls::

    artifact_uri   file:///srv/share/proj/mlruns/1234/<run>/artifacts     (file store)
                   /srv/share/proj/mlartifacts/<run>/artifacts             (SQLite store)
    crawl root     <root>/mlruns/1234/<run>/artifacts      <- longest tail that exists here
                   <root>/mlartifacts/<run>/artifacts

    <artifact dir>/...            every file -> Artifact(role "artifact") + Edge(run -> file)
    <artifact dir>/**/MLmodel     flavors, signature, run_id (YAML)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import yaml

from mlcrawl.api import Artifact, CrawlContext, Edge, Experiment, Param, Record, Run, Tag, from_epoch_ms
from mlcrawl.api import load_json, load_yaml, to_text

SOURCE = "mlflow"

#: MLflow's RunStatus enum as the file store writes it (``status: 3`` in meta.yaml).
RUN_STATUS = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}

#: MLflow 3's LoggedModelStatus enum.
MODEL_STATUS = {0: "UNSPECIFIED", 1: "PENDING", 2: "READY", 3: "FAILED"}

PARENT_TAG = "mlflow.parentRunId"
GIT_COMMIT_TAG = "mlflow.source.git.commit"
RUN_NAME_TAG = "mlflow.runName"
USER_TAG = "mlflow.user"


@dataclass(frozen=True, slots=True)
class RunFacts:
    """One run as either store describes it, before it becomes records."""

    run_id: str
    experiment_id: str
    experiment_name: str | None
    name: str | None
    status: Any
    start_ms: Any
    end_ms: Any
    user: str | None
    lifecycle: str | None
    artifact_uri: str | None
    dir: str | None


def load_meta_yaml(data: bytes) -> Any:
    """Parse an MLflow ``meta.yaml`` (written by ``yaml.safe_dump``).

    The core's loader is libyaml's safe loader when present (a store holds one meta.yaml per
    run and experiment) and bounds alias expansion.
    """
    return load_yaml(data)


def mlflow_run_id(run_id: str) -> str:
    """The catalog id of an MLflow run (run uuids are globally unique)."""
    return f"{SOURCE}:{run_id}"


def mlflow_experiment_id(store: str, experiment_id: str) -> str:
    """The catalog id of an experiment: ids repeat across stores (``0`` is always Default)."""
    return f"{SOURCE}:{store}:{experiment_id}"


def normalise_status(value: Any) -> str | None:
    """A run status as upper-case text, from MLflow's int enum or a status string."""
    if value is None:
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return RUN_STATUS.get(value, str(value))
    text = str(value).strip()
    if text.isdigit():
        return RUN_STATUS.get(int(text), text)
    return text.upper() or None


def normalise_model_status(value: Any) -> str | None:
    """A logged model's status as text, from MLflow's int enum or a status string."""
    if isinstance(value, int) and not isinstance(value, bool):
        return MODEL_STATUS.get(value, str(value))
    return str(value).upper() if value is not None else None


def uri_path(uri: str) -> str | None:
    """The path part of an artifact URI: ``file://``, ``mlflow-artifacts:``, s3... or a plain path."""
    if not uri:
        return None
    parsed = urlparse(uri)
    if len(parsed.scheme) <= 1:  # no scheme, or a Windows drive letter
        return uri
    path = unquote(parsed.path)
    if parsed.scheme != "file" and parsed.netloc:
        path = f"{parsed.netloc}/{path.lstrip('/')}"  # s3://bucket/key: the bucket may be a folder
    return path or None


def map_into_root(uri: str | None, root: Path, bases: Iterable[Path] = (), min_parts: int = 1) -> Path | None:
    """Where a foreign URI or path lives under ``root``, or None.

    A relative path is taken against each of ``bases`` (nearest first); an absolute one is
    cut to its longest tail that exists under ``root``, with at least ``min_parts``
    components so that a bare ``artifacts`` does not match some unrelated folder.
    """
    path = uri_path(uri or "")
    if path is None:
        return None
    parts = [p for p in path.replace("\\", "/").split("/") if p and p != "."]
    if ".." in parts or not parts:
        return None
    if not (path.startswith(("/", "\\")) or (len(parts[0]) == 2 and parts[0][1] == ":")):
        for base in bases:
            candidate = base.joinpath(*parts)
            if os.path.lexists(candidate) and _is_under(candidate, root):
                return candidate
    for start in range(len(parts) - min_parts + 1):
        candidate = root.joinpath(*parts[start:])
        if os.path.lexists(candidate):
            return candidate
    return None


def _is_under(path: Path, root: Path) -> bool:
    return os.path.abspath(path).startswith(os.path.abspath(root).rstrip(os.sep) + os.sep)


def iso_ms(ms: Any) -> str | None:
    """Epoch milliseconds as ISO text, for facts (JSON has no datetime)."""
    moment = from_epoch_ms(ms)
    return moment.isoformat() if moment else None


def build_run(facts: RunFacts, tags: Mapping[str, str]) -> Run:
    """The Run record of one MLflow run; name, user, parent and commit fall back to tags."""
    parent = tags.get(PARENT_TAG)
    return Run(
        run_id=mlflow_run_id(facts.run_id),
        source=SOURCE,
        source_run_id=facts.run_id,
        experiment=facts.experiment_name or facts.experiment_id,
        name=facts.name or tags.get(RUN_NAME_TAG),
        status=normalise_status(facts.status) or "RUNNING",  # MLflow's reading of a missing status
        start_time=from_epoch_ms(facts.start_ms),
        end_time=from_epoch_ms(facts.end_ms),
        user=facts.user or tags.get(USER_TAG),
        git_commit=tags.get(GIT_COMMIT_TAG),
        parent_run_id=mlflow_run_id(parent) if parent else None,
        dir=facts.dir,
        lifecycle=facts.lifecycle or "active",
    )


def build_experiment(store: str, experiment_id: str, meta: Mapping[str, Any], tags: Mapping[str, str],
                     ctx: CrawlContext, bases: Iterable[Path] = ()) -> Experiment:
    """The Experiment record; its artifact location is mapped into the root when it is there."""
    location = to_text(meta.get("artifact_location"))
    mapped = map_into_root(location, ctx.root, bases)
    return Experiment(
        experiment_id=mlflow_experiment_id(store, experiment_id),
        source=SOURCE,
        name=to_text(meta.get("name")),
        lifecycle=to_text(meta.get("lifecycle_stage")) or "active",
        artifact_location=ctx.relpath(mapped) if mapped else location,
        tags=dict(tags),
    )


def yield_params_tags(run_id: str, params: Mapping[str, str], tags: Mapping[str, str]) -> Iterator[Record]:
    """Param and Tag records, all of them (``mlflow.*`` system tags included)."""
    key = mlflow_run_id(run_id)
    for name, value in params.items():
        yield Param(key, name, value)
    for name, value in tags.items():
        yield Tag(key, name, value)


def yield_artifacts(run_id: str, artifact_dir: Path | None, artifact_uri: str | None,
                    ctx: CrawlContext) -> Iterator[Record]:
    """An Artifact and an Edge for every file under the run's artifact folder."""
    if artifact_dir is None or not artifact_dir.is_dir():
        return
    key = mlflow_run_id(run_id)
    for path in walk_files(artifact_dir):
        rel = ctx.relpath(path)
        inner = path.relative_to(artifact_dir).as_posix()
        facts = {"artifact_path": inner, "artifact_uri": artifact_uri}
        yield Artifact(key, rel, "artifact", facts)
        yield Edge(key, rel, "mlflow_artifact", evidence=f"artifact of MLflow run {run_id}",
                   src_type="run", facts={"artifact_path": inner})


def walk_files(folder: Path) -> Iterator[Path]:
    """Every file (or file symlink) under ``folder``, sorted, without following folder links."""
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath, name)


def read_mlmodel(path: Path, ctx: CrawlContext) -> dict[str, Any] | None:
    """Flavors, signature and ids from an ``MLmodel`` file; None (with a warning) if unreadable."""
    try:
        data = load_yaml(ctx.read_bytes(path))
    except (OSError, ValueError, yaml.YAMLError) as exc:
        ctx.warn(f"MLmodel cannot be read as YAML: {exc}", path)
        return None
    if not isinstance(data, dict):
        ctx.warn("MLmodel is not a YAML mapping", path)
        return None
    return mlmodel_facts(data)


def mlmodel_facts(data: Mapping[str, Any]) -> dict[str, Any]:
    """The facts worth keeping from a parsed ``MLmodel``; JSON strings in the signature parsed."""
    flavors = data.get("flavors") if isinstance(data.get("flavors"), dict) else {}
    facts: dict[str, Any] = {
        "flavors": sorted(flavors),
        "flavor_details": flavors,
        "signature": decode_signature(data.get("signature")),
    }
    for key in ("run_id", "model_id", "model_uuid", "mlflow_version", "utc_time_created",
                "artifact_path", "model_size_bytes", "saved_input_example_info"):
        if data.get(key) is not None:
            facts[key] = data[key]
    return facts


def decode_signature(signature: Any) -> Any:
    """MLmodel stores ``inputs``/``outputs`` as JSON text inside YAML; decode them."""
    if not isinstance(signature, dict):
        return signature
    return {key: decode_json_text(value) for key, value in signature.items()}


def decode_json_text(value: Any) -> Any:
    """A JSON string as data; anything else (or invalid JSON) unchanged."""
    if isinstance(value, str):
        try:
            return load_json(value)
        except ValueError:
            return value
    return value


def dataset_records(run_id: str, dataset: Mapping[str, Any], context: Mapping[str, str],
                    ctx: CrawlContext, bases: Iterable[Path], evidence_path: str | None) -> Iterator[Record]:
    """Artifact(role dataset_input) and an Edge(dataset -> run) for one logged dataset input."""
    source = decode_json_text(dataset.get("source"))
    uri = source.get("uri") if isinstance(source, dict) else None
    uri = uri or (source.get("path") if isinstance(source, dict) else None)
    mapped = map_into_root(uri, ctx.root, bases) if isinstance(uri, str) else None
    facts = {
        "name": dataset.get("name"),
        "digest": dataset.get("digest"),
        "source_type": dataset.get("source_type"),
        "source": source,
        "schema": decode_json_text(dataset.get("schema")),
        "profile": decode_json_text(dataset.get("profile")),
        "context": dict(context),
        "meta": evidence_path,
    }
    key = mlflow_run_id(run_id)
    where = ctx.relpath(mapped) if mapped else (uri or f"dataset:{facts['name']}@{facts['digest']}")
    yield Artifact(key, where, "dataset_input", facts)
    yield Edge(where, key, "mlflow_dataset_input", evidence=f"dataset input of MLflow run {run_id}",
               src_type="file" if mapped else "uri", dst_type="run",
               facts={"name": facts["name"], "digest": facts["digest"], "uri": uri})


def logged_model_records(model: Mapping[str, Any], model_dir: Path | None, ctx: CrawlContext) -> Iterator[Record]:
    """Artifact(role model) on the model's source run and an Edge(run -> model artifacts)."""
    run_id = model.get("source_run_id")
    if not run_id:
        ctx.warn(f"logged model {model.get('model_id')} names no source run; not linked")
        return
    key = mlflow_run_id(str(run_id))
    where = ctx.relpath(model_dir) if model_dir else str(model.get("artifact_location") or model.get("model_id"))
    facts = {k: v for k, v in model.items() if v is not None}
    yield Artifact(key, where, "model", facts)
    yield Edge(key, where, "mlflow_logged_model", evidence=f"MLflow logged model {model.get('model_id')}",
               src_type="run", facts={"model_id": model.get("model_id"), "name": model.get("name")})


def model_output_record(run_id: str, model_id: str, where: str, step: Any) -> Artifact:
    """Artifact(role output): the run logged this model as an output (MLflow 3)."""
    return Artifact(mlflow_run_id(run_id), where, "output", {"model_id": model_id, "step": step})
