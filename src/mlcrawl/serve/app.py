"""The Starlette application of ``mlcrawl serve``: read-only pages over one catalog.

The catalog is opened read-only for each request and closed at once, so a crawl or watch is
never blocked for longer than one page; while a writer holds the file the open is retried
briefly, then the page says the catalog is busy (503).  Every route is a GET.
"""

from __future__ import annotations

import hmac
from pathlib import Path
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..catalog import Catalog
from ..errors import CatalogError, CatalogLocked
from . import queries as q
from . import svg
from .filter import FilterError

HERE = Path(__file__).parent
LOCK_RETRY_SECONDS = 2.0


def environment() -> Environment:
    """The Jinja environment of the web view (autoescaped; SVG is marked safe where built)."""
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
    env.filters["short"] = lambda s, n=12: (s or "-")[:n]
    env.filters["num"] = lambda v: "" if v is None else (f"{v:.5g}" if isinstance(v, float) else str(v))
    env.filters["bytes"] = _human_bytes
    env.globals["urlencode"] = lambda d: urlencode({k: v for k, v in d.items() if v not in (None, "")}, doseq=True)
    return env


def _human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


class _TokenCheck(BaseHTTPMiddleware):
    """Every request carries the token: ``?token=``, ``Authorization: Bearer`` or the cookie set from them."""

    def __init__(self, app, token: str) -> None:
        super().__init__(app)
        self.token = token

    async def dispatch(self, request: Request, call_next):
        given = (request.query_params.get("token") or request.cookies.get("mlcrawl_token")
                 or request.headers.get("authorization", "").removeprefix("Bearer ").strip())
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return PlainTextResponse("a token is required: open the URL with ?token=... as printed by mlcrawl serve",
                                     status_code=401)
        response = await call_next(request)
        if request.query_params.get("token"):
            response.set_cookie("mlcrawl_token", self.token, httponly=True, samesite="strict")
        return response


def create_app(catalog: Catalog, token: str | None = None) -> Starlette:
    """The web view of ``catalog``; with ``token``, every request must carry it."""
    env = environment()

    def page(request: Request, template: str, status_code: int = 200, **context) -> HTMLResponse:
        html = env.get_template(template).render(request=request, path=request.url.path, **context)
        return HTMLResponse(html, status_code=status_code)

    def with_catalog(view):
        async def endpoint(request: Request):
            try:
                with catalog.connect(read_only=True, retry_seconds=LOCK_RETRY_SECONDS) as con:
                    return view(request, con)
            except FilterError as exc:
                return page(request, "error.html", 400, title="Filter not understood", message=str(exc))
            except CatalogLocked as exc:
                return page(request, "error.html", 503, title="Catalog busy", message=str(exc))
            except CatalogError as exc:
                return page(request, "error.html", 500, title="Catalog unavailable", message=str(exc))
        return endpoint

    def runs(request: Request, con):
        query = q.RunsQuery.from_args(request.query_params)
        result = q.runs_page(con, query)
        state = dict(request.query_params)
        return page(request, "runs.html", query=query, result=result, state=state,
                    cols=",".join(c.label for c in result.columns))

    def run(request: Request, con):
        run_id = request.path_params["run_id"]
        details = q.run_details(con, run_id)
        if details is None:
            raise HTTPException(404, f"no run {run_id!r} in the catalog")
        charts = _charts(request, {k: {run_id: v[run_id]} for k, v in details["history"].items()})
        return page(request, "run.html", d=details, charts=charts, chart_state=_chart_state(request))

    def compare(request: Request, con):
        ids = request.query_params.getlist("run")
        data = q.compare_runs(con, ids)
        if len(data["ids"]) < 2:
            return page(request, "error.html", 400, title="Pick two runs or more",
                        message="select runs in the runs table (checkboxes), then Compare; found: "
                                + (", ".join(data["ids"]) or "none") + (f"; unknown: {', '.join(data['missing'])}"
                                                                         if data["missing"] else ""))
        charts = _charts(request, data["history"])
        metric = request.query_params.get("metric") or next(iter(data["metrics"]), "")
        numeric = [k for k in data["differ"] if all(_float(data["params"][k].get(i)) is not None for i in data["ids"])]
        axes = numeric + ([f"metrics.{metric}"] if metric else [])
        lines = [(i, [_float(data["params"][k].get(i)) for k in numeric]
                  + ([data["metrics"].get(metric, {}).get(i)] if metric else [])) for i in data["ids"]]
        return page(request, "compare.html", d=data, charts=charts, chart_state=_chart_state(request),
                    metric=metric, parallel=Markup(svg.parallel_coordinates(axes, lines)))

    def lineage(request: Request, con):
        node = request.query_params.get("node", "")
        try:
            depth = min(20, max(1, int(request.query_params.get("depth", 3))))
        except ValueError:
            depth = 3
        if not node:
            text = request.query_params.get("q", "")
            return page(request, "lineage.html", graph=None, matches=q.lineage_nodes(con, text) if text else [],
                        text=text, depth=depth)
        graph = q.lineage_graph(con, node, request.query_params.get("root") or None, depth)
        if graph is None:
            raise HTTPException(404, f"{node!r} is not in the lineage graph")
        return page(request, "lineage.html", graph=graph, depth=depth, text="", matches=[],
                    picture=Markup(svg.lineage_svg(graph, depth)), legend=Markup(svg.legend_svg()))

    def search(request: Request, con):
        what = request.path_params["what"]
        if what not in q.SEARCH_KINDS:
            raise HTTPException(404, f"no such list {what!r}")
        text = request.query_params.get("q", "")
        return page(request, "search.html", what=what, text=text, found=q.search_files(con, what, text))

    def file(request: Request, con):
        path = request.query_params.get("path", "")
        details = q.file_details(con, request.query_params.get("root") or None, path)
        if details is None:
            raise HTTPException(404, f"no file {path!r} in the catalog")
        return page(request, "file.html", d=details)

    def status(request: Request, con):
        return page(request, "status.html", s=q.status(con), catalog=catalog.path)

    async def not_found(request: Request, exc: HTTPException):
        return page(request, "error.html", exc.status_code, title="Not found" if exc.status_code == 404 else "Error",
                    message=exc.detail)

    routes = [
        Route("/", with_catalog(runs)),
        Route("/runs", with_catalog(runs)),
        Route("/run/{run_id:path}", with_catalog(run)),
        Route("/compare", with_catalog(compare)),
        Route("/lineage", with_catalog(lineage)),
        Route("/list/{what}", with_catalog(search)),
        Route("/file", with_catalog(file)),
        Route("/status", with_catalog(status)),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    middleware = [Middleware(_TokenCheck, token=token)] if token else []
    return Starlette(routes=routes, middleware=middleware, exception_handlers={HTTPException: not_found})


def _float(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _chart_state(request: Request) -> dict:
    args = request.query_params
    return {"x": "time" if args.get("x") == "time" else "step", "log": args.get("log") == "1",
            "smooth": _smoothing(args.get("smooth"))}


def _smoothing(text: str | None) -> float:
    value = _float(text) or 0.0
    return min(0.99, max(0.0, value))


def _charts(request: Request, history: dict[str, dict[str, list[tuple]]]) -> list[tuple[str, Markup, int]]:
    state = _chart_state(request)
    return [(key, Markup(svg.line_chart(series, state["x"], state["log"], state["smooth"])),
             sum(len(p) for p in series.values())) for key, series in history.items()]



