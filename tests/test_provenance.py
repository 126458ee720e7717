"""Provenance report and lineage CLI commands on the corpus: Markdown, self-contained HTML with SVG."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from mlcrawl.catalog import Catalog
from mlcrawl.cli import main
from mlcrawl.cli.export import COMMANDS as EXPORT_COMMANDS
from mlcrawl.cli.lineage import COMMANDS as LINEAGE_COMMANDS

COMMANDS = LINEAGE_COMMANDS + EXPORT_COMMANDS
from mlcrawl.lineage import UnknownNodeError, rebuild_lineage
from mlcrawl.provenance import build_provenance, render_html, render_markdown, render_svg


@pytest.fixture(scope="module")
def catalog(corpus: Path, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("prov") / "c.duckdb"
    assert CliRunner().invoke(main, ["crawl", str(corpus), "--catalog", str(path)]).exit_code == 0
    with Catalog.at(path).connect() as con:
        rebuild_lineage(con, str(corpus))
    return path


@pytest.fixture(scope="module")
def artifact(catalog: Path) -> str:
    """An output written by an executed notebook that read an input: the richest kind of report."""
    with Catalog.at(catalog).connect(read_only=True) as con:
        return con.execute("""SELECT w.dst FROM lineage w JOIN notebooks n ON n.path = w.src AND n.run_id IS NOT NULL
                              JOIN lineage r ON r.dst = w.src AND r.relation = 'read'
                              WHERE w.relation = 'wrote' AND w.dst_type = 'file' ORDER BY w.dst LIMIT 1""").fetchall()[0][0]


def cli(*args: str):
    return CliRunner().invoke(click.Group(commands=COMMANDS), list(args))


def test_report_names_run_params_metrics_code_and_inputs(catalog: Path, artifact: str) -> None:
    with Catalog.at(catalog).connect(read_only=True) as con:
        report = build_provenance(con, artifact)
        params = con.execute("SELECT key FROM params WHERE run_id = ?", [report.run["run_id"]]).fetchall()
    assert report.run and report.run["run_id"].startswith("notebook:")
    assert {k for k, _ in report.params} == {k for (k,) in params}
    assert report.code and all(c["sha256"] for c in report.code)
    assert report.inputs and all(re.fullmatch(r"[0-9a-f]{64}", i["sha256"]) for i in report.inputs)
    markdown = render_markdown(report)
    for section in ("## Produced by", "## Run", "### Params", "## Code", "## Inputs", "## Environment"):
        assert section in markdown
    assert report.inputs[0]["sha256"][:12] in markdown


def test_html_is_self_contained_with_a_well_formed_svg(catalog: Path, artifact: str) -> None:
    with Catalog.at(catalog).connect(read_only=True) as con:
        report = build_provenance(con, artifact)
    page = render_html(report)
    assert "<svg" in page and "<script" not in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    svg = ET.fromstring(render_svg(report))
    texts = {t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")}
    assert artifact in texts or any(t.startswith("…") for t in texts)
    paths = [p for p in svg.iter("{http://www.w3.org/2000/svg}path") if p.get("marker-end")]
    assert len(paths) >= len({(h.src, h.dst) for h in report.hops if h.depth == 1})


def test_provenance_command_writes_both_files(catalog: Path, artifact: str, tmp_path: Path) -> None:
    result = cli("provenance", artifact, "--catalog", str(catalog), "--html", str(tmp_path / "p.html"),
                 "--markdown", str(tmp_path / "p.md"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "p.md").read_text().startswith(f"# Provenance of `{artifact}`")
    assert (tmp_path / "p.html").read_text().startswith("<!doctype html>")


def test_lineage_command_formats(catalog: Path, artifact: str) -> None:
    tree = cli("lineage", artifact, "--catalog", str(catalog))
    assert tree.exit_code == 0 and tree.output.splitlines()[0] == artifact
    assert tree.output.splitlines()[1].startswith(("├── wrote:", "└── wrote:"))
    data = json.loads(cli("lineage", artifact, "--format", "json", "--catalog", str(catalog)).output)
    assert data["edges"] and all(e["depth"] >= 1 for e in data["edges"])
    shallow = json.loads(cli("lineage", artifact, "--format", "json", "--depth", "1", "--catalog", str(catalog)).output)
    assert {e["depth"] for e in shallow["edges"]} == {1}
    dot = cli("lineage", artifact, "--format", "dot", "--catalog", str(catalog)).output
    assert dot.startswith("digraph lineage {") and "->" in dot
    mermaid = cli("lineage", artifact, "--format", "mermaid", "--catalog", str(catalog)).output
    assert mermaid.startswith("flowchart LR") and "-->|wrote|" in mermaid
    source = data["edges"][-1]["src"]
    down = json.loads(cli("lineage", source, "--down", "--format", "json", "--catalog", str(catalog)).output)
    assert artifact in {e["dst"] for e in down["edges"]}


def test_unknown_path_is_a_user_error(catalog: Path) -> None:
    result = cli("lineage", "no/such/file.csv", "--catalog", str(catalog))
    assert isinstance(result.exception, UnknownNodeError)


def test_stale_command_on_a_fresh_corpus(catalog: Path) -> None:
    with Catalog.at(catalog).connect(read_only=True) as con:
        rows = con.execute("SELECT count(*) FROM stale").fetchall()[0][0]
    result = cli("stale", "--json", "--catalog", str(catalog))
    assert result.exit_code == 0 and len(result.output.splitlines()) == rows
