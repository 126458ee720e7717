"""OpenLineage export: one RunEvent (spec 2-0-2) per catalogued run, its inputs and outputs as files.

    {"eventType": "COMPLETE", "eventTime": ..., "producer": ..., "schemaURL": ".../2-0-2/OpenLineage.json",
     "run": {"runId": <uuid5 of root + run id>, "facets": {"nominalTime": ..., "mlcrawl": ...}},
     "job": {"namespace": <crawl root>, "name": "<source>:<experiment or name>"},
     "inputs":  [{"namespace": "file", "name": <absolute path>, "facets": {"version": sha256}}],
     "outputs": [...]}

A run's edges are those of the run node itself and of the things that stand for it in the
graph: an executed notebook's file, a DVC stage.  Written as JSON lines, one event a line.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

import duckdb

from . import __version__

SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
PRODUCER = f"https://pypi.org/project/mlcrawl/{__version__}"
VERSION_FACET = "https://openlineage.io/spec/facets/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet"
NOMINAL_TIME_FACET = "https://openlineage.io/spec/facets/1-0-1/NominalTimeRunFacet.json#/$defs/NominalTimeRunFacet"
MLCRAWL_FACET = "https://pypi.org/project/mlcrawl/#run-facet"
EVENT_TYPES = {"FINISHED": "COMPLETE", "FAILED": "FAIL", "CRASHED": "FAIL", "KILLED": "ABORT",
               "RUNNING": "RUNNING", "SCHEDULED": "START"}


def write_openlineage(con: duckdb.DuckDBPyConnection, path: Path) -> int:
    """Write one RunEvent per run to ``path`` as JSON lines; the number of events."""
    count = 0
    with Path(path).open("w", encoding="utf-8") as out:
        for event in run_events(con):
            out.write(json.dumps(event, sort_keys=True) + "\n")
            count += 1
    return count


def run_events(con: duckdb.DuckDBPyConnection):
    """Yield the RunEvent dict of every run, ordered by root and run id."""
    runs = con.execute("""
        SELECT r.root, r.run_id, r.source, r.source_run_id, r.experiment, r.name, r.status,
               r.start_time, r.end_time, r.git_commit, u.crawled_at
        FROM runs r LEFT JOIN units u ON u.root = r.root AND u.crawler = r.crawler AND u.unit = r.unit
        ORDER BY r.root, r.run_id""").fetchall()
    edges = load_run_edges(con)
    for root, run_id, source, tool_id, experiment, name, status, start, end, commit, crawled in runs:
        inputs, outputs = edges.get((root, run_id), ({}, {}))
        yield {
            "eventType": EVENT_TYPES.get(status or "", "OTHER"),
            "eventTime": iso(end or start or crawled or datetime.now(timezone.utc)),
            "producer": PRODUCER,
            "schemaURL": SCHEMA_URL,
            "run": {"runId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"mlcrawl:{root}:{run_id}")),
                    "facets": run_facets(run_id, source, tool_id, status, start, end, commit)},
            "job": {"namespace": root, "name": f"{source}:{experiment or name or tool_id}"},
            "inputs": [dataset(root, p, sha) for p, sha in sorted(inputs.items())],
            "outputs": [dataset(root, p, sha) for p, sha in sorted(outputs.items())],
        }


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


def dataset(root: str, path: str, sha256: str | None) -> dict:
    """A dataset in the ``file`` namespace named by its absolute path, versioned by sha256."""
    item: dict = {"namespace": "file", "name": str(PurePosixPath(root) / path)}
    if sha256:
        item["facets"] = {"version": {"_producer": PRODUCER, "_schemaURL": VERSION_FACET, "datasetVersion": sha256}}
    return item


def run_facets(run_id: str, source: str, tool_id: str, status: str | None, start: datetime | None,
               end: datetime | None, commit: str | None) -> dict:
    """The nominalTime facet when the run has a start, and mlcrawl's own ids and status."""
    facets: dict = {"mlcrawl": {"_producer": PRODUCER, "_schemaURL": MLCRAWL_FACET, "runId": run_id,
                                "source": source, "sourceRunId": tool_id, "status": status, "gitCommit": commit}}
    if start is not None:
        facets["nominalTime"] = {"_producer": PRODUCER, "_schemaURL": NOMINAL_TIME_FACET,
                                 "nominalStartTime": iso(start), **({"nominalEndTime": iso(end)} if end else {})}
    return facets


def iso(moment: datetime) -> str:
    """An ISO 8601 timestamp with offset, as the spec's date-time format wants."""
    return moment.astimezone(timezone.utc).isoformat()
