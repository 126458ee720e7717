"""OpenLineage events: one RunEvent (spec 2-0-2) per catalogued run, its inputs and outputs as files.

    {"eventType": "COMPLETE", "eventTime": ..., "producer": ..., "schemaURL": ".../2-0-2/OpenLineage.json",
     "run": {"runId": <uuid5 of root + run id>,
             "facets": {"nominalTime", "parent", "errorMessage", "mlcrawl"}},
     "job": {"namespace": <crawl root>, "name": "<source>:<experiment or name>",
             "facets": {"jobType", "sourceCodeLocation"}},
     "inputs":  [{"namespace": "file", "name": <absolute path>, "facets": {"version", "schema"}}],
     "outputs": [...]}

A run's edges are those of the run node itself and of the things that stand for it in the
graph: an executed notebook's file, a DVC stage.  Its parent is the run its tool names (a sweep,
an MLflow parent run) or else the DVC stage that declares as its output a file the run wrote
(a notebook or script run inside a pipeline stage).  Every text that comes from crawled
metadata (a git remote, a code path, an error message) is redacted again before it leaves.

``eventTime`` is the run's end, else its start, else when its unit was crawled: it only changes
when the run does, so the same state of a run is the same event and is sent once.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from urllib.parse import quote

import duckdb

from . import __version__
from .gitinfo import strip_credentials
from .secrets import redact_text

SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
PRODUCER = f"https://pypi.org/project/mlcrawl/{__version__}"
_FACET_VERSIONS = {
    "DatasetVersionDatasetFacet": "1-0-1", "NominalTimeRunFacet": "1-0-1", "ParentRunFacet": "1-2-0",
    "ErrorMessageRunFacet": "1-0-1", "SchemaDatasetFacet": "1-2-0", "SourceCodeLocationJobFacet": "1-1-0",
    "JobTypeJobFacet": "2-0-4",
}
#: Facet class -> the ``_schemaURL`` of the official schema version mlcrawl writes.
FACET_SCHEMAS = {name: f"https://openlineage.io/spec/facets/{version}/{name}.json#/$defs/{name}"
                 for name, version in _FACET_VERSIONS.items()}
MLCRAWL_FACET = "https://pypi.org/project/mlcrawl/#run-facet"
EVENT_TYPES = {"FINISHED": "COMPLETE", "FAILED": "FAIL", "CRASHED": "FAIL", "KILLED": "ABORT",
               "RUNNING": "RUNNING", "SCHEDULED": "START"}
FAILED = ("FAILED", "CRASHED")
#: Tags in which tools record the code they ran, and the remote of its repository.
CODE_TAGS = ("mlflow.source.name", "wandb.code_path", "sacred.experiment.mainfile")
REMOTE_TAGS = ("mlflow.source.git.repoURL", "mlflow.gitRepoURL", "wandb.git.remote", "mlcrawl.git.remote_url")
_TAGS_READ = (*CODE_TAGS, *REMOTE_TAGS, "sacred.fail_trace", "wandb.exit_code", "cmd")
CODE_SUFFIXES = (".py", ".ipynb", ".r", ".R", ".jl", ".sh", ".scala")
_HOST_ROOT = re.compile(r"^(?P<host>[^/:]+):(?P<path>/.*)$")
_FORGES = ("github.com", "gitlab.com", "codeberg.org")


@dataclass(frozen=True, slots=True)
class RunRow:
    """The columns of one run that its event is made from."""

    root: str
    run_id: str
    source: str
    tool_id: str
    experiment: str | None
    name: str | None
    status: str | None
    start: datetime | None
    end: datetime | None
    commit: str | None
    parent_run_id: str | None
    seen: datetime | None


def write_openlineage(con: duckdb.DuckDBPyConnection, path: Path) -> int:
    """Write one RunEvent per run to ``path`` as JSON lines; the number of events."""
    count = 0
    with Path(path).open("w", encoding="utf-8") as out:
        for event in run_events(con):
            out.write(json.dumps(event, sort_keys=True) + "\n")
            count += 1
    return count


def run_events(con: duckdb.DuckDBPyConnection) -> Iterator[dict]:
    """Yield the RunEvent dict of every run, ordered by root and run id."""
    runs = [RunRow(*row) for row in con.execute("""
        SELECT r.root, r.run_id, r.source, r.source_run_id, r.experiment, r.name, r.status,
               r.start_time, r.end_time, r.git_commit, r.parent_run_id, coalesce(u.crawled_at, c.started_at)
        FROM runs r
        LEFT JOIN units u ON u.root = r.root AND u.crawler = r.crawler AND u.unit = r.unit
        LEFT JOIN crawls c ON c.crawl_id = r.crawl_id
        ORDER BY r.root, r.run_id""").fetchall()]
    by_id = {(r.root, r.run_id): r for r in runs}
    edges = load_run_edges(con)
    schemas = load_schemas(con)
    tags = load_tags(con)
    stage_parents = load_stage_parents(con)
    code_edges = load_code_files(con)
    parents_of = {(r.root, r.parent_run_id) for r in runs if r.parent_run_id}
    for run in runs:
        key = (run.root, run.run_id)
        inputs, outputs = edges.get(key, ({}, {}))
        run_tags = tags.get(key, {})
        parent = by_id.get((run.root, run.parent_run_id)) if run.parent_run_id else None
        parent = parent or by_id.get((run.root, stage_parents.get(key, "")))
        run_facets = base_run_facets(run)
        if parent is not None:
            run_facets["parent"] = parent_facet(parent, root_of(parent, by_id, stage_parents))
        if (run.status or "").upper() in FAILED:
            run_facets["errorMessage"] = error_facet(run, run_tags, con)
        job = {"namespace": run.root, "name": job_name(run),
               "facets": {"jobType": job_type_facet(run, key in parents_of)}}
        code = source_code_facet(run, run_tags, code_edges.get(key))
        if code is not None:
            job["facets"]["sourceCodeLocation"] = code
        yield {
            "eventType": EVENT_TYPES.get((run.status or "").upper(), "OTHER"),
            "eventTime": iso(run.end or run.start or run.seen or datetime(1970, 1, 1, tzinfo=timezone.utc)),
            "producer": PRODUCER,
            "schemaURL": SCHEMA_URL,
            "run": {"runId": run_uuid(run.root, run.run_id), "facets": run_facets},
            "job": job,
            "inputs": [dataset(run.root, p, sha, schemas) for p, sha in sorted(inputs.items())],
            "outputs": [dataset(run.root, p, sha, schemas) for p, sha in sorted(outputs.items())],
        }


def run_uuid(root: str, run_id: str) -> str:
    """The run's OpenLineage id: the same for the same root and run id in every export."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"mlcrawl:{root}:{run_id}"))


def job_name(run: RunRow) -> str:
    """``<tool>:<experiment, else run name, else the tool's id>``."""
    return f"{run.source}:{run.experiment or run.name or run.tool_id}"


def root_of(run: RunRow, by_id: dict, stage_parents: dict) -> RunRow:
    """The topmost ancestor of ``run`` (itself when it has no parent); a cycle stops the climb."""
    seen = {run.run_id}
    while True:
        parent = by_id.get((run.root, run.parent_run_id)) if run.parent_run_id else None
        parent = parent or by_id.get((run.root, stage_parents.get((run.root, run.run_id), "")))
        if parent is None or parent.run_id in seen:
            return run
        seen.add(parent.run_id)
        run = parent


def load_run_edges(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], tuple[dict, dict]]:
    """(root, run id) -> (inputs, outputs), each path -> sha256, from the run's graph nodes."""
    rows = con.execute("""
        WITH stands_for AS (
            SELECT root, run_id, run_id AS node FROM runs
            UNION SELECT root, run_id, path FROM notebooks WHERE run_id IS NOT NULL
            UNION SELECT r.root, r.run_id, r.source_run_id FROM runs r
                  WHERE EXISTS (SELECT 1 FROM lineage l WHERE l.root = r.root AND l.src_type = 'stage'
                                AND l.src = r.source_run_id))
        SELECT s.root, s.run_id, 'in', l.src, l.src_sha256 FROM lineage l
        JOIN stands_for s ON s.root = l.root AND s.node = l.dst
        WHERE l.src_type IN ('file', 'dir') AND l.relation <> 'copy_of'
        UNION ALL
        SELECT s.root, s.run_id, 'out', l.dst, l.dst_sha256 FROM lineage l
        JOIN stands_for s ON s.root = l.root AND s.node = l.src
        WHERE l.dst_type IN ('file', 'dir') AND l.relation <> 'copy_of'""").fetchall()
    edges: dict[tuple[str, str], tuple[dict, dict]] = {}
    for root, run_id, side, path, sha in rows:
        inputs, outputs = edges.setdefault((root, run_id), ({}, {}))
        target = inputs if side == "in" else outputs
        target[path] = target.get(path) or sha
    return edges


def load_stage_parents(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], str]:
    """(root, run id) -> the DVC stage run that declares as its output a file the run wrote.

    A run's written files are its ``run -> file`` edges and, for an executed notebook, the
    notebook itself; a declared output folder holds what is written under it.  A run a tool
    gives a parent keeps that one (see ``run_events``); two stages claiming a run make it the
    first by name.
    """
    rows = con.execute("""
        WITH written AS (
            SELECT root, src AS run_id, dst AS path FROM lineage
            WHERE src_type = 'run' AND dst_type IN ('file', 'dir') AND relation <> 'copy_of'
            UNION SELECT root, run_id, path FROM notebooks WHERE run_id IS NOT NULL),
        stage_outs AS (
            SELECT l.root, r.run_id AS stage_run, l.dst AS path FROM lineage l
            JOIN runs r ON r.root = l.root AND r.source = 'dvc' AND r.source_run_id = l.src
            WHERE l.src_type = 'stage' AND l.relation = 'declared_output')
        SELECT w.root, w.run_id, min(s.stage_run) FROM written w
        JOIN stage_outs s ON s.root = w.root AND (w.path = s.path OR starts_with(w.path, s.path || '/'))
        WHERE w.run_id <> s.stage_run
        GROUP BY ALL""").fetchall()
    return {(root, run_id): stage for root, run_id, stage in rows}


def load_schemas(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], dict[str | None, list]]:
    """(root, path) -> {sha256: columns} of every dataset schema the catalog read."""
    schemas: dict[tuple[str, str], dict[str | None, list]] = {}
    for root, path, sha, columns in con.execute(
            "SELECT root, path, sha256, columns FROM dataset_schemas WHERE columns IS NOT NULL").fetchall():
        try:
            parsed = json.loads(columns)
        except ValueError:
            continue
        if isinstance(parsed, list):
            schemas.setdefault((root, path), {})[sha] = parsed
    return schemas


def load_tags(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], dict[str, str]]:
    """(root, run id) -> the tags that name a run's code, remote, command and failure."""
    tags: dict[tuple[str, str], dict[str, str]] = {}
    for root, run_id, key, value in con.execute(
            "SELECT root, run_id, key, value FROM tags WHERE list_contains(?, key) AND value IS NOT NULL",
            [list(_TAGS_READ)]).fetchall():
        tags.setdefault((root, run_id), {})[key] = value
    return tags


def load_code_files(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], str]:
    """(root, run id) -> the code file a run ran, from the lineage graph.

    A tool's own record of its source wins over a stored snapshot of it (a run artifact);
    an executed notebook ran its papermill input, else itself; a DVC stage ran the script of
    its command that it declares as a dependency.
    """
    rows = con.execute("""
        SELECT root, dst, src, CASE WHEN evidence LIKE 'run artifact%' THEN 2 ELSE 1 END FROM lineage
        WHERE relation = 'code' AND src_type = 'file' AND dst_type = 'run'
        UNION ALL
        SELECT n.root, n.run_id, coalesce(l.src, n.path), 1 FROM notebooks n
        LEFT JOIN lineage l ON l.root = n.root AND l.relation = 'executed_as' AND l.dst = n.path
        WHERE n.run_id IS NOT NULL
        UNION ALL
        SELECT r.root, r.run_id, l.src, 3 FROM runs r
        JOIN lineage l ON l.root = r.root AND l.dst = r.source_run_id AND l.dst_type = 'stage'
             AND l.relation = 'declared_input'
        JOIN tags t ON t.root = r.root AND t.run_id = r.run_id AND t.key = 'cmd' AND contains(t.value, l.src)
        WHERE r.source = 'dvc'""").fetchall()
    best: dict[tuple[str, str], tuple[int, str]] = {}
    for root, run_id, path, rank in rows:
        if rank == 3 and not path.endswith(CODE_SUFFIXES):
            continue
        if (root, run_id) not in best or (rank, path) < best[(root, run_id)]:
            best[(root, run_id)] = (rank, path)
    return {key: path for key, (_, path) in best.items()}


def facet(name: str, **fields: object) -> dict:
    """An official facet: the producer, the schema URL of its version, and its fields."""
    return {"_producer": PRODUCER, "_schemaURL": FACET_SCHEMAS[name], **fields}


def dataset(root: str, path: str, sha256: str | None, schemas: dict | None = None) -> dict:
    """A dataset named by its absolute path in the root's file namespace: versioned by sha256,
    with its columns when the catalog read its schema (that version's, else the latest read)."""
    namespace, base = dataset_namespace(root)
    item: dict = {"namespace": namespace, "name": str(PurePosixPath(base) / path)}
    facets: dict = {}
    if sha256:
        facets["version"] = facet("DatasetVersionDatasetFacet", datasetVersion=sha256)
    versions = (schemas or {}).get((root, path))
    if versions:
        columns = versions.get(sha256) or versions[max(versions, key=lambda s: s or "")]
        facets["schema"] = facet("SchemaDatasetFacet", fields=schema_fields(columns))
    if facets:
        item["facets"] = facets
    return item


def schema_fields(columns: list) -> list[dict]:
    """The catalog's ``[{name, type, fields?}]`` columns as SchemaDatasetFacet fields."""
    fields = []
    for position, column in enumerate(c for c in columns if isinstance(c, dict) and c.get("name") is not None):
        field: dict = {"name": str(column["name"]), "ordinal_position": position + 1}
        if column.get("type") is not None:
            field["type"] = str(column["type"])
        if isinstance(column.get("fields"), list):
            field["fields"] = schema_fields(column["fields"])
        fields.append(field)
    return fields


def dataset_namespace(root: str) -> tuple[str, str]:
    """(namespace, base path) of a root's files: ``file`` for a local path, ``file://HOST`` for a
    ``host:/path`` root, ``file://NAME`` for a named root (its files named from ``/``)."""
    named = _HOST_ROOT.match(root)
    if named:
        return f"file://{named['host']}", named["path"]
    if root.startswith("/"):
        return "file", root
    return f"file://{quote(root, safe='')}", "/"


def base_run_facets(run: RunRow) -> dict:
    """The nominalTime facet when the run has a start, and mlcrawl's own ids and status."""
    facets: dict = {"mlcrawl": {"_producer": PRODUCER, "_schemaURL": MLCRAWL_FACET, "runId": run.run_id,
                                "source": run.source, "sourceRunId": run.tool_id, "status": run.status,
                                "gitCommit": run.commit}}
    if run.start is not None:
        times = {"nominalStartTime": iso(run.start), **({"nominalEndTime": iso(run.end)} if run.end else {})}
        facets["nominalTime"] = facet("NominalTimeRunFacet", **times)
    return facets


def parent_facet(parent: RunRow, root: RunRow) -> dict:
    """The ParentRunFacet naming the parent run and job, and the topmost ancestor as its root."""
    return facet("ParentRunFacet",
                 run={"runId": run_uuid(parent.root, parent.run_id)},
                 job={"namespace": parent.root, "name": job_name(parent)},
                 root={"run": {"runId": run_uuid(root.root, root.run_id)},
                       "job": {"namespace": root.root, "name": job_name(root)}})


def error_facet(run: RunRow, tags: dict[str, str], con: duckdb.DuckDBPyConnection) -> dict:
    """The ErrorMessageRunFacet of a failed run: the notebook's error, the tool's traceback or
    exit code, else the status the tool recorded."""
    stack = tags.get("sacred.fail_trace")
    notebook = con.execute("SELECT error_name, error_value FROM notebooks WHERE root = ? AND run_id = ? "
                           "AND has_errors LIMIT 1", [run.root, run.run_id]).fetchall()
    if notebook:
        message = ": ".join(p for p in notebook[0] if p)
    elif stack:
        lines = [line for line in stack.splitlines() if line.strip()]
        message = lines[-1].strip() if lines else stack
    elif tags.get("wandb.exit_code"):
        message = f"exit code {tags['wandb.exit_code']}"
    else:
        message = f"{run.source} recorded status {run.status}"
    fields = {"message": redact_text(message or f"{run.source} recorded status {run.status}"),
              "programmingLanguage": "PYTHON"}
    if stack:
        fields["stackTrace"] = redact_text(stack)
    return facet("ErrorMessageRunFacet", **fields)


def job_type_facet(run: RunRow, has_children: bool) -> dict:
    """Batch jobs of the tool's integration: a DVC STAGE, a NOTEBOOK, a SWEEP (a run with
    children) or a RUN."""
    kind = ("STAGE" if run.source == "dvc" else "NOTEBOOK" if run.source == "notebook"
            else "SWEEP" if has_children else "RUN")
    return facet("JobTypeJobFacet", processingType="BATCH", integration=run.source.upper(), jobType=kind)


def source_code_facet(run: RunRow, tags: dict[str, str], code_file: str | None) -> dict | None:
    """Where the job's code is: the repository (its remote without credentials), the commit and
    the file, as a forge URL when the remote is one, else the file's URL under the root.

    None when the catalog knows neither the code nor a commit.
    """
    remote = next((tags[k] for k in REMOTE_TAGS if tags.get(k)), None)
    path = next((tags[k] for k in CODE_TAGS if tags.get(k)), None) or code_file
    if path is None and run.commit is None and remote is None:
        return None
    repo_url = redact_text(strip_credentials(remote)) if remote else None
    path = redact_text(path) if path else None
    fields: dict = {"type": "git" if run.commit or remote else "file", "url": code_url(run, repo_url, path)}
    if repo_url:
        fields["repoUrl"] = repo_url
    if path:
        fields["path"] = path
    if run.commit:
        fields["version"] = run.commit
    return facet("SourceCodeLocationJobFacet", **fields)


def code_url(run: RunRow, repo_url: str | None, path: str | None) -> str:
    """A forge's blob URL for the commit and file when the remote is on a known forge, else
    the file (or the root) as a ``file:`` URL."""
    if repo_url and run.commit and path and not path.startswith("/"):
        web = forge_web_url(repo_url)
        if web:
            return f"{web}/blob/{run.commit}/{quote(path)}"
    namespace, base = dataset_namespace(run.root)
    host = namespace.removeprefix("file").removeprefix("://")
    target = PurePosixPath(base) / (path or "")
    return f"file://{host}{quote(str(target))}"


def forge_web_url(repo_url: str) -> str | None:
    """``https://github.com/o/r`` for an https or scp-like remote on a known forge, else None."""
    match = re.match(r"^(?:https?://|ssh://)?(?:[^@/]+@)?(?P<host>[^/:@]+)[:/](?P<repo>[^:]+?)(?:\.git)?/?$",
                     repo_url)
    if not match or match["host"] not in _FORGES:
        return None
    return f"https://{match['host']}/{match['repo'].lstrip('/')}"


def iso(moment: datetime) -> str:
    """An ISO 8601 timestamp with offset, as the spec's date-time format wants."""
    return moment.astimezone(timezone.utc).isoformat()
