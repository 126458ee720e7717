"""What the web view reads from the catalog: one function per page, plain SQL with bound parameters.

Every function takes an open read-only connection and returns typed records or lists of dicts
ready for the templates.  The runs page is paginated in SQL: only the rows of one page are read
back with their chosen params, metrics and tags.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import duckdb

from ..lineage import Hop, walk
from .filter import RUN_COLUMNS, Field, FilterError, compile_filter, field_sql

PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_COLUMNS = ("source", "experiment", "name", "status", "start_time")
MAX_COLUMNS = 40
MAX_COMPARE = 12

# One row per run (several units may describe one run): the newest, as in run_summary.
_RUNS = "(SELECT * FROM runs QUALIFY row_number() OVER (PARTITION BY run_id ORDER BY crawl_id DESC, unit) = 1)"


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | dict | None = None) -> list[dict]:
    """The result of ``sql`` as dicts."""
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


@dataclass(frozen=True)
class RunsQuery:
    """The state of the runs table, all of it in the query string."""

    filter: str = ""
    columns: tuple[Field, ...] = ()
    sort: Field | None = None
    descending: bool = True
    group: bool = False
    page: int = 1
    page_size: int = 50

    @classmethod
    def from_args(cls, args) -> RunsQuery:
        """Read the query string; an unknown column or bad number is a FilterError."""
        names = [c for c in args.get("cols", "").split(",") if c.strip()][:MAX_COLUMNS]
        columns = tuple(Field.parse(c.strip()) for c in names)
        sort = Field.parse(args["sort"]) if args.get("sort") else None
        try:
            page = max(1, int(args.get("page", 1)))
            size = int(args.get("size", 50))
        except ValueError:
            raise FilterError("page and size must be whole numbers") from None
        if size not in PAGE_SIZES:
            raise FilterError(f"size must be one of {', '.join(map(str, PAGE_SIZES))}")
        return cls(filter=args.get("q", ""), columns=columns, sort=sort,
                   descending=args.get("dir", "desc") != "asc", group=args.get("group") == "experiment",
                   page=page, page_size=size)


@dataclass
class RunsPage:
    """One page of the runs table."""

    columns: list[Field]
    runs: list[dict]
    total: int
    pages: int
    available: dict[str, list[str]] = field(default_factory=dict)


def default_columns(con: duckdb.DuckDBPyConnection) -> list[Field]:
    """The run columns and the three metrics most runs have."""
    keys = [k for (k,) in con.execute("""SELECT key FROM latest_metrics GROUP BY key
                                          ORDER BY count(*) DESC, key LIMIT 3""").fetchall()]
    return [Field("run", c) for c in DEFAULT_COLUMNS] + [Field("metrics", k) for k in keys]


def available_columns(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    """Every column a user can pick: run columns, metric, param and tag keys (most common first)."""
    out = {"run": list(RUN_COLUMNS)}
    for family, table in (("metrics", "latest_metrics"), ("params", "params"), ("tags", "tags")):
        out[family] = [k for (k,) in con.execute(
            f"SELECT key FROM {table} GROUP BY key ORDER BY count(DISTINCT run_id) DESC, key LIMIT 500").fetchall()]
    return out


def runs_page(con: duckdb.DuckDBPyConnection, query: RunsQuery) -> RunsPage:
    """Filter, sort and paginate the runs in SQL, then read the chosen columns of that page only."""
    where, params = compile_filter(query.filter)
    columns = list(query.columns) or default_columns(con)
    order_params: list = []
    order = []
    if query.group:
        order.append("r.experiment NULLS LAST")
    sort = query.sort or Field("run", "start_time")
    order.append(f"{field_sql(sort, order_params)} {'DESC' if query.descending else 'ASC'} NULLS LAST")
    order.append("r.run_id")
    try:
        total = con.execute(f"SELECT count(*) FROM {_RUNS} r WHERE {where}", params).fetchall()[0][0]
    except duckdb.ConversionException as exc:
        raise FilterError(f"a value cannot be compared with that field: {str(exc).splitlines()[0]}") from None
    offset = (query.page - 1) * query.page_size
    page = rows(con, f"""SELECT r.run_id, r.source, r.experiment, r.name, r.status, r.start_time, r.end_time,
                                r.user, r.git_commit, r.dir, r.root
                         FROM {_RUNS} r WHERE {where} ORDER BY {', '.join(order)} LIMIT ? OFFSET ?""",
                params + order_params + [query.page_size, offset])
    ids = [r["run_id"] for r in page]
    values: dict[tuple[str, str, str], object] = {}
    for family, table in (("metrics", "latest_metrics"), ("params", "params"), ("tags", "tags")):
        keys = [c.key for c in columns if c.family == family]
        if not keys or not ids:
            continue
        latest = "ORDER BY crawl_id DESC" if table != "latest_metrics" else ""
        for run_id, key, value in con.execute(
                f"""SELECT run_id, key, first(value {latest}) FROM {table}
                    WHERE run_id IN (SELECT unnest(?)) AND key IN (SELECT unnest(?)) GROUP BY run_id, key""",
                [ids, keys]).fetchall():
            values[(family, run_id, key)] = value
    for run in page:
        run["cells"] = [run.get(c.key) if c.family == "run" else values.get((c.family, run["run_id"], c.key))
                        for c in columns]
    pages = max(1, -(-total // query.page_size))
    return RunsPage(columns=columns, runs=page, total=total, pages=pages, available=available_columns(con))


def run_row(con: duckdb.DuckDBPyConnection, run_id: str) -> dict | None:
    """The run's newest row, or None."""
    found = rows(con, f"SELECT * FROM {_RUNS} r WHERE run_id = ?", [run_id])
    return found[0] if found else None


def fold_params(pairs: list[tuple[str, str]]) -> list[dict]:
    """Dotted keys folded into a tree: ``{'name', 'value', 'children'}`` nodes, sorted by key."""
    tree: dict = {}
    for key, value in pairs:
        node = tree
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {}).setdefault("\0children", {})
        node.setdefault(parts[-1], {})["\0value"] = value

    def build(level: dict, prefix: str) -> list[dict]:
        out = []
        for name in sorted(level):
            item = level[name]
            full = f"{prefix}{name}"
            out.append({"name": name, "key": full, "value": item.get("\0value"),
                        "children": build(item.get("\0children", {}), full + ".")})
        return out

    return build(tree, "")


def metric_history(con: duckdb.DuckDBPyConnection, run_ids: list[str]) -> dict[str, dict[str, list[tuple]]]:
    """metric key -> run id -> every point ``(step, epoch seconds or None, value)``, step order."""
    out: dict[str, dict[str, list[tuple]]] = {}
    for run_id, key, step, at, value in con.execute(
            """SELECT run_id, key, step, epoch(timestamp), value FROM metrics WHERE run_id IN (SELECT unnest(?))
               ORDER BY key, run_id, step NULLS FIRST, timestamp""", [run_ids]).fetchall():
        out.setdefault(key, {}).setdefault(run_id, []).append((step, at, value))
    return out


def run_details(con: duckdb.DuckDBPyConnection, run_id: str) -> dict | None:
    """Everything the run page shows, or None when no such run."""
    run = run_row(con, run_id)
    if run is None:
        return None
    root = run["root"]
    params = con.execute("""SELECT key, arg_max(value, crawl_id) FROM params WHERE run_id = ?
                            GROUP BY key ORDER BY key""", [run_id]).fetchall()
    tags = con.execute("SELECT DISTINCT key, value FROM tags WHERE run_id = ? ORDER BY key", [run_id]).fetchall()
    artifacts = rows(con, """SELECT DISTINCT a.path, a.role, f.size, f.sha256, f.kind, f.deleted_at IS NOT NULL AS deleted
                             FROM run_artifacts a LEFT JOIN files f ON f.root = a.root AND f.path = a.path
                             WHERE a.run_id = ? ORDER BY a.role, a.path""", [run_id])
    latest = rows(con, "SELECT key, value, step, points FROM latest_metrics WHERE run_id = ? ORDER BY key", [run_id])
    notebooks = rows(con, """SELECT DISTINCT path, kernel, language, executed, has_errors, error_name,
                                    papermill_input_path, papermill_duration
                             FROM notebooks WHERE run_id = ? ORDER BY path""", [run_id])
    code = rows(con, """SELECT DISTINCT src AS path, relation, evidence FROM lineage
                        WHERE dst = ? AND root = ? AND relation IN ('code', 'executed_as') ORDER BY path""",
                [run_id, root])
    inputs = rows(con, """SELECT DISTINCT src AS path, relation, evidence, src_sha256 AS sha256 FROM lineage
                          WHERE dst = ? AND root = ? AND src_type = 'file' AND relation NOT IN ('code')
                          ORDER BY relation, path""", [run_id, root])
    outputs = rows(con, """SELECT DISTINCT dst AS path, relation, evidence, dst_sha256 AS sha256 FROM lineage
                           WHERE src = ? AND root = ? AND dst_type = 'file' ORDER BY relation, path""",
                   [run_id, root])
    environment = [a for a in artifacts if a["role"] == "environment"]
    stale = rows(con, """SELECT DISTINCT output, changed_input, evidence FROM stale
                         WHERE root = ? AND output IN (SELECT dst FROM lineage WHERE src = ? AND root = ?)
                         ORDER BY output""", [root, run_id, root])
    files = {a["path"] for a in artifacts} | {o["path"] for o in outputs} | {n["path"] for n in notebooks}
    problems = rows(con, """SELECT path, crawler, error_type, severity, message FROM open_errors
                            WHERE root = $root AND (path IN (SELECT unnest($files))
                                  OR ($dir NOT IN ('.', '') AND starts_with(path, $dir || '/')))
                            ORDER BY severity, path""", {"root": root, "files": sorted(files), "dir": run["dir"] or ""})
    linked = rows(con, """SELECT o.run_id, o.source, o.name, o.experiment FROM logical_runs me
                          JOIN logical_runs o ON o.logical_run_id = me.logical_run_id AND o.run_id <> me.run_id
                          WHERE me.run_id = ? ORDER BY o.run_id""", [run_id])
    evidence = con.execute("SELECT evidence FROM logical_runs WHERE run_id = ?", [run_id]).fetchall()
    return {"run": run, "params": fold_params(params), "param_count": len(params), "tags": tags,
            "artifacts": artifacts, "latest": latest, "notebooks": notebooks, "code": code, "inputs": inputs,
            "outputs": outputs, "environment": environment, "stale": stale, "problems": problems,
            "linked": linked, "link_evidence": (evidence[0][0] if evidence else None) or [],
            "history": metric_history(con, [run_id])}


def compare_runs(con: duckdb.DuckDBPyConnection, run_ids: list[str]) -> dict:
    """Runs side by side: their params (those that differ first), latest metrics and histories."""
    found = [r for r in (run_row(con, i) for i in run_ids[:MAX_COMPARE]) if r is not None]
    ids = [r["run_id"] for r in found]
    params: dict[str, dict[str, str]] = {}
    for run_id, key, value in con.execute("""SELECT run_id, key, arg_max(value, crawl_id) FROM params
                                             WHERE run_id IN (SELECT unnest(?)) GROUP BY run_id, key""",
                                          [ids]).fetchall():
        params.setdefault(key, {})[run_id] = value
    differ = sorted(k for k, v in params.items() if len({v.get(i) for i in ids}) > 1)
    same = sorted(k for k, v in params.items() if len({v.get(i) for i in ids}) == 1)
    metrics: dict[str, dict[str, float]] = {}
    for run_id, key, value in con.execute("SELECT run_id, key, value FROM latest_metrics WHERE run_id IN (SELECT unnest(?))",
                                          [ids]).fetchall():
        metrics.setdefault(key, {})[run_id] = value
    return {"runs": found, "ids": ids, "params": params, "differ": differ, "same": same,
            "metrics": dict(sorted(metrics.items())), "history": metric_history(con, ids),
            "missing": [i for i in run_ids if i not in ids]}


@dataclass(frozen=True)
class Graph:
    """The neighbourhood of one lineage node: hops upstream and downstream, stale outputs."""

    node: str
    root: str | None
    node_type: str
    up: list[Hop]
    down: list[Hop]
    stale: dict[str, str]  # node -> what changed


def lineage_graph(con: duckdb.DuckDBPyConnection, node: str, root: str | None, depth: int) -> Graph | None:
    """The upstream and downstream walks of ``node`` (None when the graph does not name it)."""
    roots = [r for (r,) in con.execute("""SELECT DISTINCT root FROM lineage WHERE (src = $n OR dst = $n)
                                          AND ($r IS NULL OR root = $r) ORDER BY root""", {"n": node, "r": root}).fetchall()]
    if not roots:
        return None
    root = roots[0]
    kind = con.execute("""SELECT src_type FROM lineage WHERE src = $n AND root = $r
                          UNION ALL SELECT dst_type FROM lineage WHERE dst = $n AND root = $r LIMIT 1""",
                       {"n": node, "r": root}).fetchall()[0][0]
    up = walk(con, node, "up", depth, root=root)
    down = walk(con, node, "down", depth, root=root)
    names = {node} | {h.src for h in up + down} | {h.dst for h in up + down}
    stale = {}
    for output, changed, evidence in con.execute(
            """SELECT output, arg_min(changed_input, depth), arg_min(evidence, depth) FROM stale
               WHERE root = ? AND output IN (SELECT unnest(?)) GROUP BY output""", [root, sorted(names)]).fetchall():
        stale[output] = f"{changed} changed: {evidence}"
    return Graph(node=node, root=root, node_type=kind, up=up, down=down, stale=stale)


def lineage_nodes(con: duckdb.DuckDBPyConnection, text: str, limit: int = 50) -> list[dict]:
    """Nodes of the graph whose name contains ``text``."""
    return rows(con, """SELECT DISTINCT name, type, root FROM (
                            SELECT src AS name, src_type AS type, root FROM lineage
                            UNION SELECT dst, dst_type, root FROM lineage)
                        WHERE contains(lower(name), lower(?)) ORDER BY name LIMIT ?""", [text, limit])


SEARCH_KINDS = {
    "datasets": ("dataset_schemas", "dataset"),
    "models": ("models", "model"),
    "notebooks": ("notebooks", "notebook"),
    "files": (None, None),
}


def search_files(con: duckdb.DuckDBPyConnection, what: str, text: str, limit: int = 200) -> list[dict]:
    """Current files of one kind (datasets, models, notebooks, or all files) whose path contains ``text``."""
    table, _ = SEARCH_KINDS[what]
    join = f"AND f.path IN (SELECT path FROM {table} t WHERE t.root = f.root)" if table else ""
    return rows(con, f"""SELECT f.root, f.path, f.kind, f.format, f.size, f.mtime, f.sha256,
                               (SELECT count(*) FROM file_versions v WHERE v.root = f.root AND v.path = f.path) AS versions
                        FROM current_files f WHERE contains(lower(f.path), lower(?)) {join}
                        ORDER BY f.path LIMIT ?""", [text, limit])


def file_details(con: duckdb.DuckDBPyConnection, root: str | None, path: str) -> dict | None:
    """A file's row, versions, dataset schemas, model facts, notebook facts, references and problems."""
    found = rows(con, "SELECT * FROM files WHERE path = ? AND (? IS NULL OR root = ?) ORDER BY root LIMIT 1",
                 [path, root, root])
    if not found:
        return None
    file = found[0]
    key = [file["root"], path]
    schemas = rows(con, """SELECT DISTINCT s.sha256, s.format, s.row_count, s.columns, v.first_seen
                           FROM dataset_schemas s LEFT JOIN file_versions v
                             ON v.root = s.root AND v.path = s.path AND v.sha256 = s.sha256
                           WHERE s.root = ? AND s.path = ? ORDER BY v.first_seen NULLS LAST""", key)
    for schema in schemas:
        schema["columns"] = _json_list(schema["columns"])
    changes = []
    for before, after in zip(schemas, schemas[1:]):
        old = {c.get("name"): c.get("type") for c in before["columns"] if isinstance(c, dict)}
        new = {c.get("name"): c.get("type") for c in after["columns"] if isinstance(c, dict)}
        changes.append({"sha256": after["sha256"],
                        "added": sorted(set(new) - set(old)), "removed": sorted(set(old) - set(new)),
                        "retyped": sorted(k for k in set(old) & set(new) if old[k] != new[k])})
    return {
        "file": file,
        "versions": rows(con, """SELECT sha256, size, mtime, first_seen, last_seen FROM file_versions
                                 WHERE root = ? AND path = ? ORDER BY first_seen""", key),
        "schemas": schemas, "schema_changes": changes,
        "models": rows(con, """SELECT DISTINCT format, sha256, tensor_count, parameter_count, dtypes, inputs,
                                      outputs, opset, metadata, warning FROM models WHERE root = ? AND path = ?""", key),
        "notebooks": rows(con, """SELECT DISTINCT sha256, kernel, language, language_version, code_cells, executed,
                                         has_errors, error_name, error_value, papermill_input_path, run_id, facts
                                  FROM notebooks WHERE root = ? AND path = ?""", key),
        "notebook_params": rows(con, """SELECT DISTINCT p.key, p.value FROM params p JOIN notebooks n
                                        ON n.run_id = p.run_id WHERE n.root = ? AND n.path = ? ORDER BY p.key""", key),
        "references": rows(con, """SELECT DISTINCT raw, resolved_path, direction, evidence, line FROM "references"
                                   WHERE root = ? AND source_path = ? ORDER BY line NULLS LAST, raw""", key),
        "runs": rows(con, """SELECT DISTINCT run_id, role FROM run_artifacts WHERE root = ? AND path = ?
                             ORDER BY run_id""", key),
        "problems": rows(con, """SELECT crawler, error_type, severity, message, last_seen FROM open_errors
                                 WHERE root = ? AND path = ? ORDER BY severity""", key),
        "in_graph": bool(con.execute("SELECT 1 FROM lineage WHERE root = $1 AND (src = $2 OR dst = $2) LIMIT 1",
                                     key).fetchall()),
    }


def _json_list(text: str | None) -> list:
    try:
        value = json.loads(text) if text else []
    except ValueError:
        return []
    return value if isinstance(value, list) else []


def status(con: duckdb.DuckDBPyConnection) -> dict:
    """Crawls and watch sessions, open problems by crawler and type, stale outputs, table sizes."""
    return {
        "crawls": rows(con, """SELECT crawl_id, job, kind, roots, started_at, finished_at, status, files_seen,
                                      units_crawled, units_failed, errors, warnings FROM crawls
                               ORDER BY crawl_id DESC LIMIT 50"""),
        "problem_groups": rows(con, """SELECT crawler, error_type, severity, count(*) AS n, arg_max(path, last_seen) AS example
                                      FROM open_errors GROUP BY ALL ORDER BY n DESC, crawler"""),
        "problems": rows(con, """SELECT root, path, crawler, error_type, severity, message FROM open_errors
                                 ORDER BY crawler, error_type, path LIMIT 500"""),
        "stale": rows(con, """SELECT root, output, maker, changed_input, evidence, depth FROM stale
                              ORDER BY root, depth, output LIMIT 500"""),
        "counts": rows(con, f"""SELECT (SELECT count(*) FROM {_RUNS} x) AS runs, (SELECT count(*) FROM current_files) AS files,
                                      (SELECT count(*) FROM lineage) AS edges, (SELECT count(*) FROM metrics) AS points""")[0],
    }
