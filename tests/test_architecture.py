"""Guards that keep the layout honest: the plugin API, crawler imports, no import cycles, SQL in catalog/."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import mlcrawl.api as api
from mlcrawl.records import RECORD_TYPES

SRC = Path(__file__).resolve().parents[1] / "src" / "mlcrawl"
CRAWLERS = Path(__file__).resolve().parents[1] / "crawlers"

#: Modules outside catalog/ that still run SQL: the read-only query layer (CLI query/status/
#: render, serve, provenance and OpenLineage reports) and lineage's incremental edge update.
#: A new module that calls ``execute`` must go through the catalog instead.
SQL_OUTSIDE_CATALOG = {
    "lineage", "provenance", "openlineage", "render", "serve", "cli",
}


def _imports(path: Path, package: str) -> set[str]:
    """Absolute module names imported by ``path`` (module level and inside functions)."""
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _is_type_checking(node.test)
                   for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue  # imports for annotations only are not a runtime dependency
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
                found.add(module)
                if node.module is None:
                    found.update(f"{module}.{a.name}" for a in node.names)
            else:
                found.add(node.module)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _module_name(path: Path, root: Path, prefix: str) -> tuple[str, str]:
    parts = list(path.relative_to(root).with_suffix("").parts)
    is_pkg = parts[-1] == "__init__"
    if is_pkg:
        parts = parts[:-1]
    name = ".".join([prefix, *parts])
    return name, name if is_pkg else name.rsplit(".", 1)[0]


def test_plugin_api_exports_everything_a_crawler_needs():
    assert sorted(api.__all__) == sorted(set(api.__all__))
    for name in api.__all__:
        assert hasattr(api, name), name
    for needed in ("BaseCrawler", "Options", "CrawlContext", "Unit", "Claims", "FolderShape"):
        assert needed in api.__all__
    assert {cls.__name__ for cls in RECORD_TYPES} <= set(api.__all__)
    assert dataclasses.is_dataclass(api.Options)


def test_crawlers_use_only_the_plugin_api_and_never_each_other():
    crawler_modules = {p.stem for p in CRAWLERS.glob("*.py") if not p.stem.startswith("_")}
    for path in CRAWLERS.rglob("*.py"):
        name, package = _module_name(path, CRAWLERS, "mlcrawl.crawlers")
        for imported in _imports(path, package):
            if imported.startswith("mlcrawl.") and not imported.startswith("mlcrawl.crawlers"):
                assert imported == "mlcrawl.api", f"{path.name} imports {imported}: use mlcrawl.api"
            if imported.startswith("mlcrawl.crawlers."):
                target = imported.split(".")[2]
                assert target not in crawler_modules or target == path.stem, \
                    f"{path.name} imports the crawler {target}: move shared code to a private module"


def test_the_import_graph_of_src_has_no_cycle():
    graph: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        name, package = _module_name(path, SRC, "mlcrawl")
        graph[name] = {i for i in _imports(path, package) if i.startswith("mlcrawl") and not i.startswith("mlcrawl.crawlers")}
    modules = set(graph)

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    edges = {m: {o for i in deps if (o := owner(i)) and o != m and not m.startswith(o + ".")}
             for m, deps in graph.items()}
    # A package's __init__ re-exporting its submodules is not a cycle with them.
    edges = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in edges.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in edges.get(node, ()):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep):] + [dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module)


def test_sql_runs_in_catalog_and_the_query_layer_only():
    offenders = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC)
        if rel.parts[0] == "catalog" or rel.parts[0].removesuffix(".py") in SQL_OUTSIDE_CATALOG:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr in ("execute", "executemany", "sql"):
                offenders.append(f"{rel}:{node.lineno}")
    assert not offenders, f"SQL outside catalog/: {offenders}"
