"""Lineage commands: ``lineage``, ``stale``, ``provenance``.  They read the catalog only."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..lineage import Hop, locate_node, walk
from . import options as opt

FORMATS = ("tree", "json", "dot", "mermaid")

def open_catalog(config_path: str | None, catalog: str | None):
    """A read-only connection to the catalog the CLI options name."""
    return opt.open_store(opt.load(config_path), catalog).connect(read_only=True)


def render_tree(start: str, hops: list[Hop], direction: str) -> str:
    """An indented tree: each node once, under the node it was first reached from."""
    # Nodes are (root, name): the same relative path in two roots is two nodes.
    children: dict[tuple[str, str], list[Hop]] = {}
    for hop in hops:
        children.setdefault((hop.root, hop.dst if direction == "up" else hop.src), []).append(hop)
    lines = [start]
    roots = sorted({hop.root for hop in hops if hop.depth == 1})
    shown = {(root, start) for root in roots}

    def visit(node: tuple[str, str], prefix: str) -> None:
        kids = children.get(node, [])
        for i, hop in enumerate(kids):
            last = i == len(kids) - 1
            far = hop.far_end(direction)
            sha = hop.src_sha256 if direction == "up" else hop.dst_sha256
            version = f" @{sha[:10]}" if sha else ""
            again = " (see above)" if (hop.root, far) in shown else ""
            lines.append(f"{prefix}{'└── ' if last else '├── '}{hop.relation}: {far}{version}"
                         f"  [{hop.confidence:.2f}] {hop.evidence}{again}")
            if not again:
                shown.add((hop.root, far))
                visit((hop.root, far), prefix + ("    " if last else "│   "))

    for root in roots:
        if len(roots) > 1:
            lines.append(f"in {root}:")
        visit((root, start), "")
    return "\n".join(lines)


def render_json(start: str, hops: list[Hop], direction: str) -> str:
    """The walk as one JSON document."""
    return json.dumps({"node": start, "direction": direction,
                       "edges": [hop.__dict__ for hop in hops]}, indent=2)


def _nodes(hops: list[Hop]) -> dict[str, str]:
    nodes: dict[str, str] = {}
    for hop in hops:
        nodes.setdefault(hop.src, hop.src_type)
        nodes.setdefault(hop.dst, hop.dst_type)
    return nodes


_DOT_SHAPES = {"file": "note", "dir": "folder", "run": "box", "stage": "box"}


def render_dot(start: str, hops: list[Hop], direction: str) -> str:
    """Graphviz DOT, edges pointing the way data flowed."""
    ids = {name: f"n{i}" for i, name in enumerate(_nodes(hops) or {start: "file"})}
    out = ["digraph lineage {", "  rankdir=LR;"]
    for name, node_id in ids.items():
        kind = _nodes(hops).get(name, "file")
        bold = ", penwidth=2" if name == start else ""
        out.append(f"  {node_id} [label={json.dumps(name)}, shape={_DOT_SHAPES.get(kind, 'ellipse')}{bold}];")
    for hop in hops:
        out.append(f"  {ids[hop.src]} -> {ids[hop.dst]} [label={json.dumps(hop.relation)}];")
    out.append("}")
    return "\n".join(out)


def render_mermaid(start: str, hops: list[Hop], direction: str) -> str:
    """A Mermaid flowchart, edges pointing the way data flowed."""
    nodes = _nodes(hops) or {start: "file"}
    ids = {name: f"n{i}" for i, name in enumerate(nodes)}
    out = ["flowchart LR"]
    for name, node_id in ids.items():
        label = name.replace('"', "'")
        out.append(f'  {node_id}["{label}"]' if nodes[name] in ("file", "dir") else f'  {node_id}(["{label}"])')
    for hop in hops:
        out.append(f"  {ids[hop.src]} -->|{hop.relation}| {ids[hop.dst]}")
    return "\n".join(out)


RENDERERS = {"tree": render_tree, "json": render_json, "dot": render_dot, "mermaid": render_mermaid}


@click.command("lineage")
@click.argument("path")
@click.option("--up", "direction", flag_value="up", default=True, help="What PATH was made from (default).")
@click.option("--down", "direction", flag_value="down", help="What depends on PATH.")
@click.option("--depth", type=click.IntRange(min=1), default=1000, show_default=True, help="Stop this many edges away.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="tree", show_default=True)
@click.option("--min-confidence", type=click.FloatRange(0.0, 1.0), default=0.0, show_default=True,
              help="Follow only edges at least this confident.")
@opt.catalog_options
def lineage_command(path, direction, depth, fmt, min_confidence, config_path, catalog) -> None:
    """Trace PATH (a file path or run id) upstream or downstream through the lineage graph."""
    with open_catalog(config_path, catalog) as con:
        root, node = locate_node(con, path)
        hops = walk(con, node, direction, depth, root=root, min_confidence=min_confidence)
    click.echo(RENDERERS[fmt](node, hops, direction))


@click.command("stale")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per stale output.")
@click.option("--exit-code", is_flag=True, help="Exit 1 when something is stale (for CI).")
@opt.catalog_options
def stale_command(as_json, exit_code, config_path, catalog) -> None:
    """Outputs made from an input, code, param or command that changed since (DVC stages as `dvc status`)."""
    keys = ("root", "output", "maker", "changed_input", "used_sha256", "current_sha256", "input_deleted",
            "relation", "evidence", "depth", "path")
    with open_catalog(config_path, catalog) as con:
        rows = con.execute(f"SELECT {', '.join(keys)} FROM stale ORDER BY root, depth, output, changed_input").fetchall()
    for row in rows:
        item = dict(zip(keys, row))
        if as_json:
            click.echo(json.dumps(item))
        elif item["used_sha256"] or item["current_sha256"]:
            now = "deleted" if item["input_deleted"] else f"now {(item['current_sha256'] or '?')[:10]}"
            click.echo(f"{item['output']}: {item['changed_input']} was {(item['used_sha256'] or '?')[:10]}, "
                       f"{now} (via {' -> '.join(item['path'])}; made by {item['maker']})")
        else:
            click.echo(f"{item['output']}: {item['evidence']} (via {' -> '.join(item['path'])}; "
                       f"made by {item['maker']})")
    if not rows and not as_json:
        click.echo("nothing stale")
    if exit_code and rows:
        raise SystemExit(1)


@click.command("provenance")
@click.argument("path")
@click.option("--html", "html_file", type=click.Path(dir_okay=False), help="Write a self-contained HTML report here.")
@click.option("--markdown", "markdown_file", type=click.Path(dir_okay=False), help="Write the Markdown report here.")
@opt.catalog_options
def provenance_command(path, html_file, markdown_file, config_path, catalog) -> None:
    """A one-page report for an artifact: run, params, metrics, code, input versions, environment."""
    from ..provenance import build_provenance, render_html, render_markdown

    with open_catalog(config_path, catalog) as con:
        root, node = locate_node(con, path)
        report = build_provenance(con, node, root)
    markdown = render_markdown(report)
    if markdown_file:
        Path(markdown_file).write_text(markdown, encoding="utf-8")
    if html_file:
        Path(html_file).write_text(render_html(report), encoding="utf-8")
    if not (html_file or markdown_file):
        click.echo(markdown)


COMMANDS = (lineage_command, stale_command, provenance_command)
