"""Server-side SVG: metric charts and the lineage graph, laid out in Python.

Server-side rendering keeps the page readable with no script and works offline; the lineage
layout is the layered (Sugiyama-style) scheme: each node's column is its walk distance from the
focus (upstream to the left), rows ordered by the barycentre of their neighbours' rows.
"""

from __future__ import annotations

import math
from html import escape
from urllib.parse import urlencode

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
KIND_COLORS = {"file": "#e8f1fb", "dir": "#fdf3dc", "run": "#e6f4e6", "stage": "#f3e6f6", "more": "#f4f4f4"}
FAN_OUT = 8


def smooth(values: list[float], weight: float) -> list[float]:
    """Exponential moving average (TensorBoard's smoothing), debiased at the start."""
    out, last, n = [], 0.0, 0
    for v in values:
        n += 1
        last = last * weight + (1 - weight) * v
        out.append(last / (1 - weight ** n) if weight < 1 else v)
    return out


def line_chart(series: dict[str, list[tuple]], x_axis: str = "step", log: bool = False, weight: float = 0.0,
               width: int = 560, height: int = 240) -> str:
    """One metric's histories (label -> ``(step, epoch, value)`` points) as an SVG chart."""
    left, right, top, bottom = 60, 12, 12, 34
    plotted = {}
    for label, points in series.items():
        xy = []
        for i, (step, at, value) in enumerate(points):
            x = at if x_axis == "time" else (step if step is not None else i)
            if x is None or value is None or (log and value <= 0) or not math.isfinite(value):
                continue
            xy.append((float(x), math.log10(value) if log else float(value)))
        plotted[label] = xy
    every = [p for xy in plotted.values() for p in xy]
    if not every:
        return '<p class="muted">no plottable points</p>'
    x0, x1 = min(p[0] for p in every), max(p[0] for p in every)
    y0, y1 = min(p[1] for p in every), max(p[1] for p in every)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    sx = lambda x: left + (x - x0) / (x1 - x0) * (width - left - right)  # noqa: E731
    sy = lambda y: height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)  # noqa: E731
    out = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-size="12" font-family="sans-serif">']
    for i in range(5):
        y = y0 + (y1 - y0) * i / 4
        label = f"{10 ** y:.3g}" if log else f"{y:.4g}"
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="#eee"/>'
                   f'<text x="{left - 4}" y="{sy(y) + 4:.1f}" text-anchor="end">{label}</text>')
    for i in range(5):
        x = x0 + (x1 - x0) * i / 4
        label = f"{x - x0:.0f}s" if x_axis == "time" else f"{x:.0f}"
        out.append(f'<text x="{sx(x):.1f}" y="{height - 18}" text-anchor="middle">{label}</text>')
    out.append(f'<text x="{(left + width) / 2}" y="{height - 3}" text-anchor="middle">'
               f'{"wall time since first point" if x_axis == "time" else "step"}</text>')
    for n, (label, xy) in enumerate(plotted.items()):
        color = PALETTE[n % len(PALETTE)]
        raw = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in xy)
        faded = ' stroke-opacity="0.3"' if weight else ""
        out.append(f'<polyline class="series" data-run="{escape(label)}" data-points="{len(xy)}" points="{raw}" '
                   f'fill="none" stroke="{color}" stroke-width="1.5"{faded}><title>{escape(label)}</title></polyline>')
        if weight:
            ys = smooth([y for _, y in xy], weight)
            sm = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for (x, _), y in zip(xy, ys))
            out.append(f'<polyline class="smoothed" points="{sm}" fill="none" stroke="{color}" stroke-width="2"/>')
        if len(xy) == 1:
            x, y = xy[0]
            out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{color}"/>')
    out.append("</svg>")
    return "".join(out)


def parallel_coordinates(axes: list[str], runs: list[tuple[str, list[float | None]]], width: int = 760,
                         height: int = 280) -> str:
    """Runs as lines across numeric axes (params, then the chosen metric last)."""
    if len(axes) < 2:
        return '<p class="muted">parallel coordinates need two numeric params or metrics</p>'
    left, right, top, bottom = 40, 40, 24, 24
    gap = (width - left - right) / (len(axes) - 1)
    ranges = []
    for i in range(len(axes)):
        vals = [v[i] for _, v in runs if v[i] is not None]
        ranges.append((min(vals), max(vals)) if vals else (0.0, 1.0))
    out = [f'<svg class="parallel" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-size="12" font-family="sans-serif">']
    for i, axis in enumerate(axes):
        x = left + i * gap
        lo, hi = ranges[i]
        out.append(f'<line x1="{x}" x2="{x}" y1="{top}" y2="{height - bottom}" stroke="#999"/>'
                   f'<text x="{x}" y="{top - 8}" text-anchor="middle">{escape(axis)}</text>'
                   f'<text x="{x + 3}" y="{height - bottom + 14}">{lo:.4g}</text>'
                   f'<text x="{x + 3}" y="{top + 12}">{hi:.4g}</text>')
    for n, (label, values) in enumerate(runs):
        pts = []
        for i, v in enumerate(values):
            if v is None:
                continue
            lo, hi = ranges[i]
            y = height - bottom - ((v - lo) / (hi - lo) if hi > lo else 0.5) * (height - top - bottom)
            pts.append(f"{left + i * gap:.1f},{y:.1f}")
        out.append(f'<polyline points="{" ".join(pts)}" fill="none" stroke="{PALETTE[n % len(PALETTE)]}" '
                   f'stroke-width="2"><title>{escape(label)}</title></polyline>')
    out.append("</svg>")
    return "".join(out)


def _label(name: str, limit: int = 34) -> str:
    return name if len(name) <= limit else "…" + name[-(limit - 1):]


def lineage_svg(graph, depth: int) -> str:
    """The graph around ``graph.node``: upstream columns left, downstream right, fan-outs collapsed."""
    column = {graph.node: 0}
    kinds = {graph.node: graph.node_type}
    edges: dict[tuple[str, str], tuple[str, str]] = {}
    collapsed: dict[str, tuple[str, int, int]] = {}  # placeholder -> (node it hangs on, count, column)
    for sign, hops in ((-1, graph.up), (1, graph.down)):
        by_near: dict[str, list] = {}
        for hop in hops:
            near, far = (hop.dst, hop.src) if sign < 0 else (hop.src, hop.dst)
            by_near.setdefault(near, []).append((hop, far))
        for hop in hops:
            near, far = (hop.dst, hop.src) if sign < 0 else (hop.src, hop.dst)
            if near not in column:
                continue
            siblings = by_near[near]
            if len(siblings) > FAN_OUT and siblings.index((hop, far)) >= FAN_OUT - 1:
                key = f"+{near}{sign}"
                collapsed[key] = (near, len(siblings) - FAN_OUT + 1, column[near] + sign)
                continue
            column.setdefault(far, column[near] + sign)
            kinds.setdefault(far, hop.src_type if sign < 0 else hop.dst_type)
            edges.setdefault((hop.src, hop.dst), (hop.relation, hop.evidence))
    for key, (near, count, col) in collapsed.items():
        column[key] = col
        kinds[key] = "more"
    cols: dict[int, list[str]] = {}
    for name, c in column.items():
        cols.setdefault(c, []).append(name)
    rank = {name: i for c in cols.values() for i, name in enumerate(sorted(c))}
    neighbours: dict[str, list[str]] = {}
    for src, dst in edges:
        neighbours.setdefault(src, []).append(dst)
        neighbours.setdefault(dst, []).append(src)
    for _ in range(4):  # barycentre sweeps reduce crossings
        for c in sorted(cols):
            cols[c].sort(key=lambda n: (sum(rank[m] for m in neighbours.get(n, [])) / len(neighbours[n])
                                        if neighbours.get(n) else rank[n], n))
            rank.update({n: i for i, n in enumerate(cols[c])})
    box_w, box_h, col_gap, row_gap, margin = 270, 40, 130, 22, 20
    first = min(cols)
    pos = {n: (margin + (column[n] - first) * (box_w + col_gap), margin + rank[n] * (box_h + row_gap)) for n in column}
    width = margin * 2 + (max(cols) - first + 1) * (box_w + col_gap) - col_gap
    height = margin * 2 + max(len(c) for c in cols.values()) * (box_h + row_gap)
    out = [f'<svg id="lineage" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-size="13" font-family="sans-serif">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#556"/></marker></defs>']
    for (src, dst), (relation, evidence) in edges.items():
        (ax, ay), (bx, by) = pos[src], pos[dst]
        ax, ay, bx, by = ax + box_w, ay + box_h / 2, bx, by + box_h / 2
        mid = (ax + bx) / 2
        out.append(f'<g class="edge"><path d="M{ax},{ay} C{mid},{ay} {mid},{by} {bx},{by}" fill="none" stroke="#556" '
                   f'marker-end="url(#arrow)"/><text x="{mid:.0f}" y="{(ay + by) / 2 - 4:.0f}" text-anchor="middle" '
                   f'font-size="12" fill="#333">{escape(relation)}</text>'
                   f'<title>{escape(relation)}: {escape(evidence or "")}</title></g>')
    for key, (near, count, _) in collapsed.items():
        (ax, ay), (bx, by) = (pos[near], pos[key]) if column[key] > column[near] else (pos[key], pos[near])
        out.append(f'<path d="M{ax + box_w},{ay + box_h / 2} L{bx},{by + box_h / 2}" stroke="#aaa" '
                   'stroke-dasharray="4 3" fill="none"/>')
    for name, (x, y) in pos.items():
        kind = kinds.get(name, "file")
        if kind == "more":
            near, count, _ = collapsed[name]
            text = f"+{count} more"
            href = "/lineage?" + urlencode({"node": near, "root": graph.root or "", "depth": depth})
        else:
            text = _label(name)
            href = "/lineage?" + urlencode({"node": name, "root": graph.root or "", "depth": depth})
        stale = graph.stale.get(name)
        stroke = ('stroke="#d33" stroke-width="3"' if name == graph.node else
                  'stroke="#e67e00" stroke-width="3" stroke-dasharray="6 3"' if stale else 'stroke="#889"')
        title = f"{kind}: {name}" + (f"\nSTALE: {stale}" if stale else "")
        out.append(f'<a href="{escape(href)}" class="node" data-node="{escape(name)}" data-kind="{kind}">'
                   f'<title>{escape(title)}</title><rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="6" '
                   f'fill="{KIND_COLORS.get(kind, "#eee")}" {stroke}/>'
                   f'<text x="{x + 8}" y="{y + 17}" font-size="13">{escape(text)}</text>'
                   f'<text x="{x + 8}" y="{y + 33}" font-size="12" fill="#666">{kind}{" · stale" if stale else ""}</text></a>')
    out.append("</svg>")
    return "".join(out)


def legend_svg() -> str:
    """Node kinds and edge marks."""
    items = [(k, c) for k, c in KIND_COLORS.items()]
    width = 130 * len(items) + 260
    out = [f'<svg class="legend" xmlns="http://www.w3.org/2000/svg" width="{width}" height="34" font-size="13" '
           'font-family="sans-serif">']
    for i, (kind, color) in enumerate(items):
        out.append(f'<rect x="{i * 130 + 4}" y="6" width="22" height="18" rx="4" fill="{color}" stroke="#889"/>'
                   f'<text x="{i * 130 + 32}" y="20">{"collapsed" if kind == "more" else kind}</text>')
    x = len(items) * 130
    out.append(f'<rect x="{x + 4}" y="6" width="22" height="18" rx="4" fill="#fff" stroke="#e67e00" stroke-width="3" '
               f'stroke-dasharray="6 3"/><text x="{x + 32}" y="20">stale</text>'
               f'<rect x="{x + 100}" y="6" width="22" height="18" rx="4" fill="#fff" stroke="#d33" stroke-width="3"/>'
               f'<text x="{x + 128}" y="20">focus (arrow: data flow)</text></svg>')
    return "".join(out)
