"""OpenLineage export: every event valid against the 2-0-2 spec, runs' inputs and outputs as versioned files."""

from __future__ import annotations

import json
from pathlib import Path

import click
import jsonschema
import pytest
from click.testing import CliRunner
from referencing import Registry, Resource

from mlcrawl.catalog import Catalog
from mlcrawl.cli import main
from mlcrawl.cli.export import COMMANDS as EXPORT_COMMANDS
from mlcrawl.cli.lineage import COMMANDS as LINEAGE_COMMANDS
from mlcrawl.lineage import rebuild_lineage
from mlcrawl.openlineage import FACET_SCHEMAS, write_openlineage

COMMANDS = LINEAGE_COMMANDS + EXPORT_COMMANDS
VENDORED = Path(__file__).parent / "fixtures" / "openlineage"
SPEC = VENDORED / "OpenLineage.json"
#: Every vendored schema by its ``$id``: facet ``$ref``s to the core spec resolve here, never on the network.
REGISTRY = Registry().with_resources(
    (doc["$id"], Resource.from_contents(doc))
    for doc in (json.loads(p.read_text()) for p in [SPEC, *sorted((VENDORED / "facets").glob("*.json"))]))


def _validator(ref: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({"$ref": ref}, registry=REGISTRY, format_checker=jsonschema.FormatChecker())


RUN_EVENT = _validator(json.loads(SPEC.read_text())["$id"] + "#/$defs/RunEvent")


def _facets(event: dict):
    yield from event["run"].get("facets", {}).items()
    yield from event["job"].get("facets", {}).items()
    for dataset in event["inputs"] + event["outputs"]:
        yield from dataset.get("facets", {}).items()


def assert_valid_event(event: dict) -> None:
    """The event is a valid RunEvent and each official facet valid against the schema its _schemaURL names."""
    errors = [e.message for e in RUN_EVENT.iter_errors(event)]
    assert not errors, (event["job"], errors)
    for key, value in _facets(event):
        url = value["_schemaURL"]
        if url not in FACET_SCHEMAS.values():
            continue  # mlcrawl's own facet: no published schema
        document, _, pointer = url.partition("#")
        # The facet file's top-level object wraps the facet under its key (e.g. {"parent": {...}}).
        errors = [e.message for e in _validator(document).iter_errors({key: value})]
        assert not errors, (key, event["job"], errors)
        assert pointer and key in REGISTRY.contents(document)["properties"], (key, url)


@pytest.fixture(scope="module")
def catalog(corpus: Path, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ol") / "c.duckdb"
    assert CliRunner().invoke(main, ["crawl", str(corpus), "--catalog", str(path)]).exit_code == 0
    with Catalog.at(path).connect() as con:
        rebuild_lineage(con, str(corpus))
    return path


@pytest.fixture(scope="module")
def events(catalog: Path, tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("ol") / "events.jsonl"
    with Catalog.at(catalog).connect(read_only=True) as con:
        count = write_openlineage(con, out)
    lines = out.read_text().splitlines()
    assert len(lines) == count
    return [json.loads(line) for line in lines]


def test_every_event_and_facet_is_valid(events: list[dict]) -> None:
    assert json.loads(SPEC.read_text())["$id"].endswith("/2-0-2/OpenLineage.json")
    for event in events:
        assert_valid_event(event)
    used = {value["_schemaURL"] for event in events for _, value in _facets(event)}
    assert set(FACET_SCHEMAS.values()) <= used, set(FACET_SCHEMAS.values()) - used


def test_a_facet_that_breaks_its_schema_is_caught(events: list[dict]) -> None:
    event = next(e for e in events if "parent" in e["run"]["facets"])
    broken = json.loads(json.dumps(event))
    broken["run"]["facets"]["parent"]["run"]["runId"] = "not-a-uuid"
    with pytest.raises(AssertionError):
        assert_valid_event(broken)


def test_one_event_per_run_with_distinct_stable_ids(catalog: Path, events: list[dict], tmp_path: Path) -> None:
    with Catalog.at(catalog).connect(read_only=True) as con:
        runs = {r[0] for r in con.execute("SELECT run_id FROM runs").fetchall()}
        write_openlineage(con, tmp_path / "again.jsonl")
    assert {e["run"]["facets"]["mlcrawl"]["runId"] for e in events} == runs
    assert len({e["run"]["runId"] for e in events}) == len(runs)
    again = [json.loads(line) for line in (tmp_path / "again.jsonl").read_text().splitlines()]
    assert [e["run"]["runId"] for e in again] == [e["run"]["runId"] for e in events]


def test_inputs_and_outputs_are_files_with_versions(catalog: Path, events: list[dict]) -> None:
    with Catalog.at(catalog).connect(read_only=True) as con:
        expected = con.execute("""SELECT l.dst, l.src FROM lineage l JOIN runs r ON r.run_id = l.dst
                                  WHERE l.src_type = 'file' AND l.src_sha256 IS NOT NULL""").fetchall()
        shas = dict(con.execute("SELECT path, sha256 FROM files").fetchall())
    assert expected
    by_run = {e["run"]["facets"]["mlcrawl"]["runId"]: e for e in events}
    for run_id, path in expected:
        inputs = {d["name"]: d for d in by_run[run_id]["inputs"]}
        name = next(n for n in inputs if n.endswith("/" + path))
        assert inputs[name]["namespace"] == "file" and Path(name).is_absolute()
        assert inputs[name]["facets"]["version"]["datasetVersion"] == shas[path]
    assert any(e["outputs"] for e in events)


def test_cli_command_writes_the_file(catalog: Path, tmp_path: Path) -> None:
    group = click.Group(commands=COMMANDS)
    out = tmp_path / "x.jsonl"
    result = CliRunner().invoke(group, ["export-openlineage", str(out), "--catalog", str(catalog)])
    assert result.exit_code == 0, result.output
    assert "run events" in result.output and out.read_text().count("\n") > 0
