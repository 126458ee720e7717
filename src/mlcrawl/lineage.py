"""The ``lineage`` table: one graph of file versions, runs and stages from declared and inferred evidence.

Nodes are ``(type, name, sha256)``: ``file`` (root-relative path at the version present when
the run or notebook ran), ``dir`` (a folder written as a whole, e.g. a tracking store),
``run`` (``<source>:<id>``) and ``stage`` (``<dvc.yaml path>:<stage>``).  Edges come from::

    declared_edges   tools' own metadata (DVC, MLflow, Sacred, Lightning, HF, papermill)  conf 1.0
    run_artifacts    files a run wrote or used, by role                                    conf 0.9
    runs             a child run's parent (``parent_of``)                                  conf 1.0
    params           a run parameter whose value names an existing file                    conf 0.7
    references       notebook/script reads and writes found in code (inferred)             conf 0.8
    files            identical content at two paths: ``copy_of`` (earliest path first)     conf 0.9
                     only where nothing else says what wrote the later path

Every edge but ``copy_of`` belongs to the crawler unit whose records it came from (column
``unit``), so a crawl recomputes only the edges of the units it crawled; ``copy_of`` edges are
recomputed for the contents of files that changed.  The catalog does the work in SQL.
A node is its name within its crawl root: two roots holding the same relative path are two
nodes.  ``src_key``/``dst_key`` are 64-bit hashes of (root, node name), stored so the recursive
``upstream``/``downstream`` macros join integers (the macros look keys up, never recompute
them, so a duckdb CLI of another version reads them right).
``walk`` reads the graph back for the CLI, the provenance report and the OpenLineage export.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from .errors import MlcrawlError

# A copy is only evidence when the content is distinctive: not empty or tiny boilerplate,
# and not the same bytes dropped in many places (licences, empty configs, placeholder files).
COPY_MIN_BYTES = 256
COPY_MAX_PATHS = 8

# Artifact roles that are inputs of their run; every other role is something the run wrote.
_INPUT_ROLES = {"dataset_input": "declared_input", "resource": "declared_input", "source": "code",
                "environment": "environment", "config": "config"}
_OUTPUT_ROLES = {"artifact": "logged_artifact"}

# Tool relations mapped onto the graph's vocabulary; the tool's own word stays in the evidence.
DECLARED_RELATIONS = {
    "dvc_dep": "declared_input", "dvc_params": "config", "dvc_out": "declared_output",
    "dvc_tracks": "tracks", "dvc_cmd_script": "code",
    "mlflow_artifact": "logged_artifact", "mlflow_logged_model": "logged_artifact",
    "mlflow_dataset_input": "declared_input",
    "sacred_source": "code", "sacred_resource": "declared_input", "sacred_artifact": "logged_artifact",
    "lightning_checkpoint": "produced", "hf_checkpoint_file": "produced",
    "papermill_input_to_output": "executed_as",
}

# Code a run stored as a snapshot: Sacred ``_sources/``, MLflow ``artifacts/code/``, W&B ``run-*/files/code/``.
_SNAPSHOT_PATTERN = r"(^|/)_sources/[^/]+$|(^|/)artifacts/code/|(^|/)[^/]*run-[^/]*/files/code/"

# Relations that say what wrote a file (its origin, where a copy_of would only guess).
_WRITER_RELATIONS = "'wrote', 'produced', 'declared_output', 'logged_artifact', 'executed_as'"

# A write must be seen this long after a run's end before it is taken as a later version.
_CLOCK_SLACK = "INTERVAL 2 SECOND"

_COLUMNS = ("src_type, src, src_sha256, dst_type, dst, dst_sha256, relation, evidence, confidence, "
            "crawler, crawl_id, root, unit, src_key, dst_key")


class UnknownNodeError(MlcrawlError):
    """A path or run id the lineage graph does not know."""


@dataclass(frozen=True)
class LineageStats:
    """What one lineage update did."""

    units: int
    edges_removed: int
    edges_added: int
    copies: int


def rebuild_lineage(con: duckdb.DuckDBPyConnection, root: str) -> LineageStats:
    """Recompute every lineage edge of ``root`` from the catalog's tables."""
    crawl_id = con.execute("SELECT coalesce(max(crawl_id), 0) FROM units WHERE root = ?", [root]).fetchall()[0][0]
    return _update(con, root, crawl_id, full=True)


def update_lineage(con: duckdb.DuckDBPyConnection, root: str, crawl_id: int) -> LineageStats:
    """Recompute the edges of the units crawled in ``crawl_id`` and the copies of changed files."""
    return _update(con, root, crawl_id, full=False)


def _update(con: duckdb.DuckDBPyConnection, root: str, crawl_id: int, full: bool) -> LineageStats:
    con.execute("BEGIN TRANSACTION")
    try:
        units = select_scope(con, root, crawl_id, full)
        removed = delete_scope(con, root, full)
        collect_edges(con, root)
        resolve_versions(con, root)
        added = insert_edges(con, root, crawl_id)
        copies = refresh_copies(con, root, crawl_id, full)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    finally:
        for table in ("lin_scope", "lin_raw", "lin_new", "lin_shas"):
            con.execute(f"DROP TABLE IF EXISTS {table}")
    return LineageStats(units=units, edges_removed=removed, edges_added=added, copies=copies)


def select_scope(con: duckdb.DuckDBPyConnection, root: str, crawl_id: int, full: bool) -> int:
    """Fill ``lin_scope`` with the (crawler, unit) pairs whose edges are recomputed.

    Besides this crawl's units, those of every crawl since the last one that finished: a crawl
    killed after writing units but before its lineage left their edges stale, and the next crawl
    finds those units up to date and would not re-read them.
    """
    condition = "" if full else """AND (crawl_id = ? OR crawl_id > (
        SELECT coalesce(max(c.crawl_id), 0) FROM crawls c
        WHERE list_contains(c.roots, ?) AND c.status IN ('ok', 'partial', 'failed') AND c.crawl_id < ?))"""
    params = [root] if full else [root, crawl_id, root, crawl_id]
    con.execute(f"""CREATE OR REPLACE TEMP TABLE lin_scope AS
        SELECT DISTINCT crawler, unit FROM units
        WHERE root = ? AND deleted_at IS NULL {condition}""", params)
    return con.execute("SELECT count(*) FROM lin_scope").fetchall()[0][0]


def delete_scope(con: duckdb.DuckDBPyConnection, root: str, full: bool) -> int:
    """Drop the edges of re-crawled units and of units that no longer exist."""
    if full:
        where = "root = ?"
    else:
        where = """root = ? AND relation <> 'copy_of' AND (
            EXISTS (SELECT 1 FROM lin_scope s WHERE s.crawler = lineage.crawler AND s.unit = lineage.unit)
            OR NOT EXISTS (SELECT 1 FROM units u WHERE u.root = lineage.root AND u.crawler = lineage.crawler
                           AND u.unit = lineage.unit AND u.deleted_at IS NULL))"""
    return con.execute(f"DELETE FROM lineage WHERE {where}", [root]).fetchall()[0][0]


def collect_edges(con: duckdb.DuckDBPyConnection, root: str) -> None:
    """Fill ``lin_raw`` with the candidate edges of the scope, each with the time it happened."""
    declared = ", ".join(f"('{k}', '{v}')" for k, v in DECLARED_RELATIONS.items())
    inputs = ", ".join(f"('{k}', '{v}')" for k, v in _INPUT_ROLES.items())
    outputs = ", ".join(f"('{k}', '{v}')" for k, v in _OUTPUT_ROLES.items())
    con.execute(f"""CREATE OR REPLACE TEMP TABLE lin_raw AS
    WITH rel(tool, relation) AS (VALUES {declared}),
    inrole(role, relation) AS (VALUES {inputs}),
    outrole(role, relation) AS (VALUES {outputs}),
    run_at AS (SELECT run_id, start_time, coalesce(end_time, start_time) AS end_time, dir FROM runs WHERE root = $root),
    md5v AS (SELECT path, md5, arg_max(sha256, mtime) AS sha256 FROM file_versions
             WHERE root = $root AND md5 IS NOT NULL GROUP BY path, md5),
    declared AS (
        SELECT d.src_type, d.src,
               CASE WHEN d.src_type = 'file' AND d.dst_type <> 'file' THEN coalesce(d.sha256, m.sha256) END AS src_sha256,
               rs.start_time AS src_at,
               d.dst_type, d.dst,
               CASE WHEN d.dst_type = 'file' THEN coalesce(
                    CASE WHEN d.src_type <> 'file' THEN d.sha256 END, m2.sha256) END AS dst_sha256,
               coalesce(rs.end_time, rd.start_time) AS dst_at,
               coalesce(rel.relation, d.relation) AS relation,
               d.evidence || ' (' || d.relation || ')' AS evidence,
               coalesce(d.confidence, 1.0) AS confidence, d.crawler, d.unit, 1 AS priority
        FROM declared_edges d JOIN lin_scope s USING (crawler, unit)
        LEFT JOIN rel ON rel.tool = d.relation
        LEFT JOIN run_at rs ON d.src_type = 'run' AND rs.run_id = d.src
        LEFT JOIN run_at rd ON d.dst_type = 'run' AND rd.run_id = d.dst
        LEFT JOIN md5v m ON d.src_type = 'file' AND d.dst_type <> 'file' AND m.path = d.src AND m.md5 = d.md5
        LEFT JOIN md5v m2 ON d.dst_type = 'file' AND d.src_type <> 'file' AND m2.path = d.dst AND m2.md5 = d.md5
        WHERE d.root = $root),
    artifacts AS (
        SELECT CASE WHEN i.role IS NULL THEN 'run' ELSE 'file' END AS src_type,
               CASE WHEN i.role IS NULL THEN a.run_id ELSE a.path END AS src, NULL AS src_sha256,
               r.start_time AS src_at,
               CASE WHEN i.role IS NULL THEN 'file' ELSE 'run' END AS dst_type,
               CASE WHEN i.role IS NULL THEN a.path ELSE a.run_id END AS dst, NULL AS dst_sha256,
               r.end_time AS dst_at,
               coalesce(i.relation, o.relation, 'produced') AS relation,
               'run artifact (' || a.role || ')' AS evidence, 0.9 AS confidence, a.crawler, a.unit, 2 AS priority
        FROM run_artifacts a JOIN lin_scope s USING (crawler, unit)
        LEFT JOIN inrole i ON i.role = a.role
        LEFT JOIN outrole o ON o.role = a.role
        LEFT JOIN run_at r ON r.run_id = a.run_id
        WHERE a.root = $root),
    param_files AS (
        SELECT 'file' AS src_type, f.path AS src, NULL AS src_sha256, r.start_time AS src_at,
               'run' AS dst_type, p.run_id AS dst, NULL AS dst_sha256, NULL::TIMESTAMPTZ AS dst_at,
               'config' AS relation, 'param ' || p.key || ' = ' || p.value AS evidence,
               0.7 AS confidence, p.crawler, p.unit, 3 AS priority
        FROM params p JOIN lin_scope s USING (crawler, unit)
        LEFT JOIN run_at r ON r.run_id = p.run_id
        JOIN files f ON f.root = $root AND f.deleted_at IS NULL AND f.size > 0
             AND (f.path = regexp_replace(p.value, '^\\./', '')
                  OR (r.dir IS NOT NULL AND r.dir <> '.' AND f.path = r.dir || '/' || regexp_replace(p.value, '^\\./', '')))
        WHERE p.root = $root AND p.value_num IS NULL AND length(p.value) BETWEEN 3 AND 1024
              AND regexp_matches(p.value, '[/.][A-Za-z0-9_-]+$')),
    parents AS (
        SELECT 'run' AS src_type, r.parent_run_id AS src, NULL AS src_sha256, NULL::TIMESTAMPTZ AS src_at,
               'run' AS dst_type, r.run_id AS dst, NULL AS dst_sha256, NULL::TIMESTAMPTZ AS dst_at,
               'parent_of' AS relation, 'parent_run_id of ' || r.run_id AS evidence, 1.0 AS confidence,
               r.crawler, r.unit, 1 AS priority
        FROM runs r JOIN lin_scope s USING (crawler, unit)
        WHERE r.root = $root AND r.parent_run_id IS NOT NULL),
    folders AS (
        SELECT DISTINCT array_to_string(parts[1:k], '/') AS dir
        FROM (SELECT string_split(path, '/') AS parts FROM files WHERE root = $root AND deleted_at IS NULL),
             LATERAL (SELECT unnest(range(1, len(parts))) AS k)),
    nb_run AS (SELECT n.path, r.start_time, r.end_time FROM notebooks n JOIN run_at r ON r.run_id = n.run_id
               WHERE n.root = $root),
    refs AS (
        SELECT x.source_path, x.resolved_path, x.direction, x.evidence, x.crawler, x.unit,
               coalesce(CASE WHEN x.direction = 'read' THEN nb.start_time ELSE nb.end_time END, sf.mtime) AS t_at,
               CASE WHEN f.path IS NULL AND d.dir IS NOT NULL THEN 'dir' ELSE 'file' END AS target_type,
               CASE WHEN f.path IS NULL THEN 0.6 ELSE 0.8 END AS confidence
        FROM "references" x JOIN lin_scope s USING (crawler, unit)
        LEFT JOIN nb_run nb ON nb.path = x.source_path
        LEFT JOIN files sf ON sf.root = $root AND sf.path = x.source_path
        LEFT JOIN files f ON f.root = $root AND f.path = x.resolved_path AND f.deleted_at IS NULL
        LEFT JOIN folders d ON d.dir = x.resolved_path
        WHERE x.root = $root AND x.resolved_path IS NOT NULL AND x.direction IN ('read', 'write')
              -- code in a cell that never ran in an executed notebook did not touch the file
              AND x.evidence NOT LIKE '%(cell not run)%'
              -- a file read after the same code wrote it (later cell, later line) is internal:
              -- the read is not an input, else every write-then-read would be a self-loop
              AND NOT (x.direction = 'read' AND EXISTS (
                  SELECT 1 FROM "references" w
                  WHERE w.root = x.root AND w.source_path = x.source_path AND w.resolved_path = x.resolved_path
                    AND w.direction = 'write' AND w.evidence NOT LIKE '%(cell not run)%'
                    AND [coalesce(w.cell, -1), coalesce(w.line, 0)] < [coalesce(x.cell, -1), coalesce(x.line, 0)]))),
    ref_edges AS (
        SELECT CASE WHEN direction = 'read' THEN target_type ELSE 'file' END AS src_type,
               CASE WHEN direction = 'read' THEN resolved_path ELSE source_path END AS src,
               NULL AS src_sha256, t_at AS src_at,
               CASE WHEN direction = 'read' THEN 'file' ELSE target_type END AS dst_type,
               CASE WHEN direction = 'read' THEN source_path ELSE resolved_path END AS dst,
               NULL AS dst_sha256, t_at AS dst_at,
               CASE WHEN direction = 'read' THEN 'read' ELSE 'wrote' END AS relation,
               source_path || ' ' || evidence AS evidence, confidence, crawler, unit, 4 AS priority
        FROM refs)
    SELECT * FROM declared UNION ALL SELECT * FROM artifacts UNION ALL SELECT * FROM param_files
    UNION ALL SELECT * FROM parents     UNION ALL SELECT * FROM ref_edges""", {"root": root})


def resolve_versions(con: duckdb.DuckDBPyConnection, root: str) -> None:
    """Fill ``lin_new``: each file endpoint gets the version present at its edge's time.

    That is the latest version whose mtime is not after the time (the earliest one when all
    are later); without a time, the current content.  One edge per node pair survives, the
    one from the strongest kind of evidence.
    """
    con.execute("""CREATE OR REPLACE TEMP TABLE lin_new AS
    WITH ranked AS (
        SELECT *, row_number() OVER (PARTITION BY src_type, src, dst_type, dst
                                     ORDER BY priority, confidence DESC, evidence) AS rn
        FROM lin_raw),
    edges AS (SELECT * EXCLUDE (rn, priority) FROM ranked WHERE rn = 1),
    ends AS (
        SELECT DISTINCT src AS path, src_at AS at FROM edges WHERE src_type = 'file' AND src_sha256 IS NULL
        UNION SELECT DISTINCT dst, dst_at FROM edges WHERE dst_type = 'file' AND dst_sha256 IS NULL),
    picked AS (
        SELECT e.path, e.at,
               coalesce(
                   CASE WHEN e.at IS NULL THEN any_value(f.sha256) END,
                   arg_max(v.sha256, v.mtime) FILTER (WHERE v.mtime <= e.at + """ + _CLOCK_SLACK + """),
                   arg_min(v.sha256, v.mtime),
                   any_value(f.sha256)) AS sha256
        FROM ends e
        LEFT JOIN file_versions v ON v.root = ? AND v.path = e.path
        LEFT JOIN files f ON f.root = ? AND f.path = e.path AND f.deleted_at IS NULL
        GROUP BY e.path, e.at)
    SELECT e.src_type, e.src, coalesce(e.src_sha256, ps.sha256) AS src_sha256,
           e.dst_type, e.dst, coalesce(e.dst_sha256, pd.sha256) AS dst_sha256,
           e.relation, e.evidence, e.confidence, e.crawler, e.unit
    FROM edges e
    LEFT JOIN picked ps ON e.src_type = 'file' AND ps.path = e.src AND ps.at IS NOT DISTINCT FROM e.src_at
    LEFT JOIN picked pd ON e.dst_type = 'file' AND pd.path = e.dst AND pd.at IS NOT DISTINCT FROM e.dst_at""",
                [root, root])


def insert_edges(con: duckdb.DuckDBPyConnection, root: str, crawl_id: int) -> int:
    """Append ``lin_new`` to ``lineage``; the number of edges added."""
    return con.execute(f"""INSERT INTO lineage ({_COLUMNS})
        SELECT src_type, src, src_sha256, dst_type, dst, dst_sha256, relation, evidence, confidence,
               crawler, $crawl_id, $root, unit, hash($root, src), hash($root, dst) FROM lin_new""",
        {"crawl_id": crawl_id, "root": root}).fetchall()[0][0]


def refresh_copies(con: duckdb.DuckDBPyConnection, root: str, crawl_id: int, full: bool) -> int:
    """Recompute ``copy_of`` edges for the contents that changed in this crawl (all when ``full``).

    Each copy points from the earliest path holding the content (oldest mtime, then path) to
    the later ones, so a group of n copies gives n-1 edges, not n².
    """
    if full:
        con.execute("CREATE OR REPLACE TEMP TABLE lin_shas AS SELECT DISTINCT sha256 FROM files WHERE root = ? AND sha256 IS NOT NULL", [root])
    else:
        con.execute("""CREATE OR REPLACE TEMP TABLE lin_shas AS
            SELECT sha256 FROM files WHERE root = $1 AND crawl_id = $2 AND sha256 IS NOT NULL
            UNION SELECT f.sha256 FROM files f JOIN crawls c ON c.crawl_id = $2
                  WHERE f.root = $1 AND f.deleted_at >= c.started_at AND f.sha256 IS NOT NULL
            UNION SELECT l.src_sha256 FROM lineage l JOIN files f ON f.root = l.root AND f.path IN (l.src, l.dst)
                  WHERE l.root = $1 AND l.relation = 'copy_of' AND f.crawl_id = $2""", [root, crawl_id])
        con.execute("DELETE FROM lineage WHERE root = ? AND relation = 'copy_of' AND src_sha256 IN (SELECT sha256 FROM lin_shas)", [root])
    return con.execute(f"""INSERT INTO lineage ({_COLUMNS})
        WITH run_dirs AS (SELECT DISTINCT dir FROM runs WHERE root = $1 AND dir IS NOT NULL AND dir NOT IN ('', '.')),
        marked AS (
            SELECT f.path, f.sha256, f.mtime,
                   regexp_matches(f.path, '{_SNAPSHOT_PATTERN}') AS snapshot,
                   EXISTS (SELECT 1 FROM run_dirs d WHERE starts_with(f.path, d.dir || '/')) AS in_run
            FROM files f JOIN lin_shas s USING (sha256)
            WHERE f.root = $1 AND f.deleted_at IS NULL AND f.size >= {COPY_MIN_BYTES}),
        holders AS (
            -- a stored code snapshot is the copy, whatever the mtimes say: the live file is the original
            SELECT *, count(*) OVER (PARTITION BY sha256) AS n,
                   first_value(path) OVER (PARTITION BY sha256 ORDER BY snapshot, mtime, path) AS original,
                   first_value(in_run) OVER (PARTITION BY sha256 ORDER BY snapshot, mtime, path) AS original_in_run
            FROM marked)
        SELECT 'file', original, sha256, 'file', path, sha256, 'copy_of',
               CASE WHEN snapshot THEN 'code snapshot, ' ELSE '' END
                   || 'identical sha256 ' || left(sha256, 12) || ' at ' || n || ' paths', 0.9,
               'lineage', $2, $1, path, hash($1, original), hash($1, path)
        FROM holders h WHERE n BETWEEN 2 AND {COPY_MAX_PATHS} AND path <> original
             -- two runs' folders holding equal files (each tool wrote its own requirements.txt
             -- or config.json) are not copies of each other
             AND NOT (in_run AND original_in_run AND NOT snapshot)
             -- a file some code or run wrote is explained by its writer: equal bytes written
             -- independently (two runs' identical configs, a re-saved table) are not copies
             AND NOT EXISTS (SELECT 1 FROM lineage w WHERE w.root = $1 AND w.dst_type = 'file' AND w.dst = h.path
                             AND w.relation IN ({_WRITER_RELATIONS}))""",
                       [root, crawl_id]).fetchall()[0][0]


@dataclass(frozen=True)
class Hop:
    """One edge met while walking the graph, ``depth`` edges away from the start."""

    depth: int
    src_type: str
    src: str
    src_sha256: str | None
    dst_type: str
    dst: str
    dst_sha256: str | None
    relation: str
    evidence: str
    confidence: float
    root: str

    def far_end(self, direction: str) -> str:
        """The node this hop reaches when walking ``direction`` (``up`` or ``down``)."""
        return self.src if direction == "up" else self.dst


def locate_node(con: duckdb.DuckDBPyConnection, name: str) -> tuple[str | None, str]:
    """``(root, node name)`` of what ``name`` means; the root is None when a bare name is in several roots.

    A path under a crawl root names the node of that root; a bare node name names it in every
    root that holds it.  Raises UnknownNodeError when nothing in the graph has that name.
    """
    path = Path(name).expanduser().absolute().resolve()
    candidates: list[tuple[str | None, str]] = []
    for (root,) in con.execute("SELECT DISTINCT root FROM lineage ORDER BY root").fetchall():
        if path.is_relative_to(Path(root).resolve()):
            candidates.append((root, path.relative_to(Path(root).resolve()).as_posix()))
    candidates += [(None, name), (None, name.rstrip("/"))]
    for root, candidate in candidates:
        roots = [r for (r,) in con.execute(
            "SELECT DISTINCT root FROM lineage WHERE (src = $n OR dst = $n) AND ($r IS NULL OR root = $r)",
            {"n": candidate, "r": root}).fetchall()]
        if roots:
            return (roots[0] if len(roots) == 1 else None), candidate
    raise UnknownNodeError(f"{name!r} is not in the lineage graph (no edge names it; crawl its folder, "
                           "or check the path relative to the crawl root)")


def walk(con: duckdb.DuckDBPyConnection, node: str, direction: str = "up", max_depth: int = 1000,
         root: str | None = None, min_confidence: float = 0.0) -> list[Hop]:
    """Every edge reachable from ``node`` upstream (``up``) or downstream (``down``), breadth first.

    Nodes are (root, name) pairs: the walk never crosses from one root's node to another's of
    the same name.  ``root`` None starts from the node in every root that holds it.  Edges below
    ``min_confidence`` are not followed.  Each node is expanded once, at its shortest depth, so
    shared inputs and cycles cost nothing.
    """
    near, far = ("dst", "src") if direction == "up" else ("src", "dst")
    starts = con.execute(f"SELECT DISTINCT root FROM lineage WHERE {near} = $n AND ($r IS NULL OR root = $r)",
                         {"n": node, "r": root}).fetchall()
    frontier = [(r, node) for (r,) in starts]
    seen = set(frontier)
    hops: list[Hop] = []
    depth = 0
    while frontier and depth < max_depth:
        depth += 1
        rows = con.execute(f"""SELECT l.src_type, l.src, l.src_sha256, l.dst_type, l.dst, l.dst_sha256, l.relation,
                                      l.evidence, l.confidence, l.root
                               FROM lineage l
                               JOIN (SELECT unnest($roots) AS r, unnest($names) AS n) f
                                 ON l.root = f.r AND l.{near} = f.n
                               WHERE l.confidence >= $min
                               ORDER BY l.root, l.{near}, l.{far}, l.relation""",
                           {"roots": [r for r, _ in frontier], "names": [n for _, n in frontier],
                            "min": min_confidence}).fetchall()
        frontier = []
        for row in rows:
            hop = Hop(depth, *row)
            hops.append(hop)
            reached = (hop.root, hop.far_end(direction))
            if reached not in seen:
                seen.add(reached)
                frontier.append(reached)
    return hops
