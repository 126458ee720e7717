"""Provenance report of one artifact: run, params, final metrics, code, input versions, environment, graph.

Built from the catalog only (plus the ``.git`` of the code's work tree, read without git) and
rendered twice: Markdown, and one self-contained HTML page whose lineage graph is an inline
SVG laid out here (columns by distance from the artifact, inputs on the left): no script,
no stylesheet or font from the network.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from .gitinfo import read_git_info
from .lineage import Hop, walk

GRAPH_DEPTH = 8
CODE_KINDS = ("code", "notebook")


@dataclass
class Provenance:
    """Everything the report shows; lists hold plain dicts ready to render."""

    node: str
    node_type: str
    root: str | None = None
    file: dict | None = None
    producers: list[dict] = field(default_factory=list)
    run: dict | None = None
    params: list[tuple[str, str]] = field(default_factory=list)
    metrics: list[tuple[str, float, int | None]] = field(default_factory=list)
    code: list[dict] = field(default_factory=list)
    inputs: list[dict] = field(default_factory=list)
    environment: list[dict] = field(default_factory=list)
    hops: list[Hop] = field(default_factory=list)


def build_provenance(con: duckdb.DuckDBPyConnection, node: str, root: str | None = None) -> Provenance:
    """Collect the report of ``node`` (a path or run id already known to the graph) in ``root``
    (default: the first root whose graph names it)."""
    root = root or root_of(con, node)
    hops = walk(con, node, "up", GRAPH_DEPTH, root=root)
    node_type = node_type_of(con, node)
    report = Provenance(node=node, node_type=node_type, hops=hops, root=root)
    report.file = file_facts(con, report.root, node) if node_type == "file" else None
    report.producers = [hop_dict(h) for h in hops if h.depth == 1]
    run_id = find_run(con, node, hops)
    if run_id:
        report.run = run_facts(con, run_id)
        report.params = con.execute("SELECT key, value FROM params WHERE run_id = ? ORDER BY key", [run_id]).fetchall()
        report.metrics = con.execute("SELECT key, value, step FROM latest_metrics WHERE run_id = ? ORDER BY key",
                                     [run_id]).fetchall()
        report.environment = environment_facts(con, run_id)
    versions = current_versions(con, report.root, hops)
    kinds = file_kinds(con, report.root, hops)
    for hop in hops:
        if hop.src_type != "file":
            continue
        item = {**hop_dict(hop), "current_sha256": versions.get(hop.src), "kind": kinds.get(hop.src)}
        item["changed"] = hop.src_sha256 is not None and versions.get(hop.src) not in (None, hop.src_sha256)
        (report.code if kinds.get(hop.src) in CODE_KINDS else report.inputs).append(item)
    for item in report.code:
        item["git_commit"] = git_commit(report.root, item["node"], report.run)
    report.code = unique_by_node(report.code)
    report.inputs = unique_by_node(report.inputs)
    return report


def node_type_of(con: duckdb.DuckDBPyConnection, node: str) -> str:
    """The type the graph gives ``node``."""
    rows = con.execute("""SELECT src_type FROM lineage WHERE src = $n
                          UNION ALL SELECT dst_type FROM lineage WHERE dst = $n LIMIT 1""", {"n": node}).fetchall()
    return rows[0][0] if rows else "file"


def root_of(con: duckdb.DuckDBPyConnection, node: str) -> str | None:
    """The crawl root of an edge naming ``node``."""
    rows = con.execute("SELECT root FROM lineage WHERE src = $n OR dst = $n ORDER BY root LIMIT 1",
                       {"n": node}).fetchall()
    return rows[0][0] if rows else None


def hop_dict(hop: Hop) -> dict:
    """A hop as the report shows it: the upstream node and how it reached its neighbour."""
    return {"node": hop.src, "type": hop.src_type, "sha256": hop.src_sha256, "relation": hop.relation,
            "to": hop.dst, "depth": hop.depth, "evidence": hop.evidence, "confidence": hop.confidence}


def file_facts(con: duckdb.DuckDBPyConnection, root: str | None, path: str) -> dict | None:
    """Current hash, size, kind and times of a file."""
    rows = con.execute("""SELECT sha256, md5, size, kind, format, mtime, deleted_at FROM files
                          WHERE root = ? AND path = ?""", [root, path]).fetchall()
    keys = ("sha256", "md5", "size", "kind", "format", "mtime", "deleted_at")
    return dict(zip(keys, rows[0])) if rows else None


def find_run(con: duckdb.DuckDBPyConnection, node: str, hops: list[Hop]) -> str | None:
    """The nearest run behind ``node``: a run node, an executed notebook, or a DVC stage's run."""
    for name in [node, *(h.src for h in hops)]:
        rows = con.execute("""SELECT run_id FROM runs WHERE run_id = $n
                              UNION ALL SELECT run_id FROM notebooks WHERE path = $n AND run_id IS NOT NULL
                              UNION ALL SELECT run_id FROM runs WHERE source_run_id = $n AND source = 'dvc'
                              LIMIT 1""", {"n": name}).fetchall()
        if rows:
            return rows[0][0]
    return None


def run_facts(con: duckdb.DuckDBPyConnection, run_id: str) -> dict:
    """The run's row."""
    keys = ("run_id", "source", "experiment", "name", "status", "start_time", "end_time", "user", "git_commit", "dir")
    row = con.execute(f"SELECT {', '.join(keys)} FROM runs WHERE run_id = ?", [run_id]).fetchall()[0]
    return dict(zip(keys, row))


def environment_facts(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict]:
    """Environment files of the run (with hashes) and the kernel of an executed notebook."""
    files = con.execute("""SELECT a.path, f.sha256 FROM run_artifacts a
                           LEFT JOIN files f ON f.root = a.root AND f.path = a.path
                           WHERE a.run_id = ? AND a.role = 'environment' ORDER BY a.path""", [run_id]).fetchall()
    kernels = con.execute("""SELECT path, kernel, language, language_version FROM notebooks WHERE run_id = ?""",
                          [run_id]).fetchall()
    return ([{"what": "file", "path": p, "sha256": s} for p, s in files]
            + [{"what": "kernel", "path": p, "sha256": None, "detail": f"{k} ({lang} {ver})"}
               for p, k, lang, ver in kernels])


def current_versions(con: duckdb.DuckDBPyConnection, root: str | None, hops: list[Hop]) -> dict[str, str | None]:
    """Path -> current sha256 (None when deleted) of every file the walk met."""
    paths = sorted({h.src for h in hops if h.src_type == "file"})
    rows = con.execute("""SELECT path, CASE WHEN deleted_at IS NULL THEN sha256 END FROM files
                          WHERE root = ? AND path IN (SELECT unnest(?))""", [root, paths]).fetchall()
    return dict(rows)


def file_kinds(con: duckdb.DuckDBPyConnection, root: str | None, hops: list[Hop]) -> dict[str, str]:
    """Path -> file kind (code, notebook, dataset...) of every file the walk met."""
    paths = sorted({h.src for h in hops if h.src_type == "file"})
    return dict(con.execute("SELECT path, kind FROM files WHERE root = ? AND path IN (SELECT unnest(?))",
                            [root, paths]).fetchall())


def git_commit(root: str | None, path: str, run: dict | None) -> str | None:
    """The run's recorded commit, else the HEAD of the work tree holding the code now."""
    if run and run.get("git_commit"):
        return run["git_commit"]
    if root is None:
        return None
    info = read_git_info(Path(root) / path)
    return info.commit if info else None


def unique_by_node(items: list[dict]) -> list[dict]:
    """The first (nearest) entry of each node."""
    seen: dict[str, dict] = {}
    for item in items:
        seen.setdefault(item["node"], item)
    return list(seen.values())


def short(sha: str | None) -> str:
    """The first 12 hex digits of a hash, or a dash."""
    return sha[:12] if sha else "-"


def render_markdown(report: Provenance) -> str:
    """The report as Markdown."""
    out = [f"# Provenance of `{report.node}`", ""]
    if report.file:
        f = report.file
        out += [f"- type: {report.node_type}, kind: {f['kind']} ({f['format'] or '-'}), size: {f['size']} bytes",
                f"- sha256: `{f['sha256']}`", f"- modified: {f['mtime']}", ""]
    out += [f"- crawl root: `{report.root}`", ""]
    out += ["## Produced by", ""]
    out += [f"- `{p['node']}` ({p['type']}), {p['relation']}: {p['evidence']} [confidence {p['confidence']:.2f}]"
            for p in report.producers] or ["- nothing in the graph says what made it"]
    out += ["", "## Run", ""]
    if report.run:
        r = report.run
        out += [f"- run `{r['run_id']}` ({r['source']}), experiment {r['experiment'] or '-'}, name {r['name'] or '-'}",
                f"- status {r['status'] or '-'}, {r['start_time'] or '?'} → {r['end_time'] or '?'}",
                f"- git commit {r['git_commit'] or '-'}, folder `{r['dir'] or '-'}`", ""]
        out += ["### Params", ""] + table(["key", "value"], report.params) + [""]
        out += ["### Final metrics", ""] + table(["key", "value", "step"], report.metrics) + [""]
    else:
        out += ["- no run found upstream", ""]
    out += ["## Code", ""] + table(
        ["path", "sha256 used", "git commit", "changed since"],
        [(f"`{c['node']}`", short(c["sha256"]), short(c["git_commit"]), "yes" if c["changed"] else "no")
         for c in report.code]) + [""]
    out += ["## Inputs (data versions)", ""] + table(
        ["path", "depth", "relation", "sha256 used", "current", "evidence"],
        [(f"`{i['node']}`", i["depth"], i["relation"], short(i["sha256"]),
          "changed" if i["changed"] else short(i["current_sha256"]), i["evidence"]) for i in report.inputs]) + [""]
    out += ["## Environment", ""] + table(
        ["what", "path", "sha256 / detail"],
        [(e["what"], f"`{e['path']}`", e.get("detail") or short(e["sha256"])) for e in report.environment]) + [""]
    out += ["## Lineage", "", "```", *(f"{'  ' * (h.depth - 1)}{h.src} --{h.relation}--> {h.dst}" for h in report.hops),
            "```", ""]
    return "\n".join(out)


def table(header: list[str], rows: list) -> list[str]:
    """A Markdown table, or a dash line when there are no rows."""
    if not rows:
        return ["(none)"]
    cell = lambda v: str(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(cell(v) for v in row) + " |" for row in rows)]


_COLORS = {"file": "#e8f1fb", "dir": "#fdf3dc", "run": "#e6f4e6", "stage": "#f3e6f6"}
_BOX_W, _BOX_H, _COL_GAP, _ROW_GAP, _MARGIN = 250, 34, 90, 14, 20


def layout(report: Provenance) -> dict[str, tuple[float, float, str]]:
    """Node -> (x, y, type): one column per depth, the artifact on the right, inputs leftwards."""
    depth_of = {report.node: 0}
    type_of = {report.node: report.node_type}
    for hop in report.hops:
        depth_of.setdefault(hop.src, hop.depth)
        type_of.setdefault(hop.src, hop.src_type)
    deepest = max(depth_of.values())
    columns: dict[int, list[str]] = {}
    for name, depth in depth_of.items():
        columns.setdefault(depth, []).append(name)
    placed = {}
    for depth, names in columns.items():
        for row, name in enumerate(sorted(names)):
            x = _MARGIN + (deepest - depth) * (_BOX_W + _COL_GAP)
            placed[name] = (x, _MARGIN + row * (_BOX_H + _ROW_GAP), type_of[name])
    return placed


def render_svg(report: Provenance) -> str:
    """The upstream graph as an inline SVG document."""
    placed = layout(report)
    width = max(x for x, _, _ in placed.values()) + _BOX_W + _MARGIN
    height = max(y for _, y, _ in placed.values()) + _BOX_H + _MARGIN
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#667"/></marker></defs>']
    drawn = set()
    for hop in report.hops:
        if hop.src not in placed or hop.dst not in placed or (hop.src, hop.dst) in drawn:
            continue
        drawn.add((hop.src, hop.dst))
        x1, y1, _ = placed[hop.src]
        x2, y2, _ = placed[hop.dst]
        ax, ay, bx, by = x1 + _BOX_W, y1 + _BOX_H / 2, x2, y2 + _BOX_H / 2
        mid = (ax + bx) / 2
        dash = "" if hop.confidence >= 1 else ' stroke-dasharray="4 3"'
        parts.append(f'<path d="M{ax},{ay} C{mid},{ay} {mid},{by} {bx},{by}" fill="none" stroke="#667"{dash} '
                     f'marker-end="url(#arrow)"><title>{html.escape(f"{hop.relation}: {hop.evidence}")}</title></path>')
    for name, (x, y, kind) in placed.items():
        label = name if len(name) <= 38 else "…" + name[-37:]
        stroke = 'stroke="#d33" stroke-width="2"' if name == report.node else 'stroke="#889"'
        parts.append(f'<g><title>{html.escape(f"{kind}: {name}")}</title>'
                     f'<rect x="{x}" y="{y}" width="{_BOX_W}" height="{_BOX_H}" rx="6" fill="{_COLORS.get(kind, "#eee")}" {stroke}/>'
                     f'<text x="{x + 8}" y="{y + 21}">{html.escape(label)}</text></g>')
    parts.append("</svg>")
    return "\n".join(parts)


def render_html(report: Provenance) -> str:
    """One self-contained HTML page: the Markdown report's facts as tables, and the SVG graph."""
    body = []
    in_code = False
    for line in render_markdown(report).splitlines():
        if line.startswith("```"):
            in_code = not in_code
            body.append("<pre>" if in_code else "</pre>")
        elif in_code:
            body.append(html.escape(line))
        elif line.startswith("|---") or line.startswith("|---|"):
            continue
        elif line.startswith("| "):
            cells = [html.escape(c.strip().strip("`").replace("\\|", "|")) for c in line.strip("|").split(" | ")]
            body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line.lstrip('# ').replace('`', ''))}</h{level}>")
        elif line.startswith("- "):
            body.append(f"<p>{html.escape(line[2:].replace('`', ''))}</p>")
        if line.startswith("## Lineage"):
            body.append(render_svg(report))
    page = "\n".join(wrap_tables(body))
    return ("<!doctype html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>Provenance of {html.escape(report.node)}</title><style>"
            "body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:.5em 0}"
            "td{border:1px solid #ccc;padding:2px 6px;font-size:13px}tr:first-child td{font-weight:bold;background:#f4f4f4}"
            "svg{border:1px solid #ddd;max-width:100%;height:auto}pre{background:#f7f7f7;padding:.5em;overflow:auto}"
            f"</style></head><body>\n{page}\n</body></html>\n")


def wrap_tables(lines: list[str]) -> list[str]:
    """Put runs of ``<tr>`` lines inside ``<table>`` elements."""
    out: list[str] = []
    for line in lines:
        is_row = line.startswith("<tr>")
        if is_row and not (out and out[-1].startswith("<tr>")):
            out.append("<table>")
        elif not is_row and out and out[-1].startswith("<tr>"):
            out.append("</table>")
        out.append(line)
    if out and out[-1].startswith("<tr>"):
        out.append("</table>")
    return out
