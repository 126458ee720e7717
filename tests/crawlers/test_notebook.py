"""Notebook crawler: the corpus's real papermill notebooks against TRUTH.json, plus bad input."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import nbformat
import pytest
from conftest import crawl_unit
from mlcrawl.crawlers.notebook import NotebookCrawler

from mlcrawl.parsing import to_text
from mlcrawl.records import Edge, Import, Metric, Notebook, Param, Reference, Run, Tag
from mlcrawl.secrets import REDACTED, redact_record

CRAWLER = NotebookCrawler()


def crawl(root: Path, path: Path):
    records, warnings = crawl_unit(CRAWLER, root, path)
    return records, warnings


def of(records, kind):
    return [r for r in records if isinstance(r, kind)]


def notebook_of(records) -> Notebook:
    (nb,) = of(records, Notebook)
    return nb


def literal_assignments(source: str | None) -> dict:
    """The expected defaults: every ``name = literal`` in TRUTH's parameters-cell source."""
    if not source:
        return {}
    return {s.targets[0].id: ast.literal_eval(s.value) for s in ast.parse(source).body
            if isinstance(s, ast.Assign)}


def write_nb(path: Path, cells: list[dict], metadata: dict | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    notebook = {"cells": cells, "metadata": metadata or {}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(notebook))
    return path


def code(source: str, outputs: list | None = None, count: int | None = None, **metadata) -> dict:
    return {"cell_type": "code", "execution_count": count, "id": f"c{abs(hash(source)) % 10**8}",
            "metadata": metadata, "outputs": outputs or [], "source": source}


# --- the corpus -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def crawled(corpus, truth):
    """Every TRUTH notebook crawled once: path -> (records, warnings)."""
    return {entry["path"]: crawl(corpus, corpus / entry["path"]) for entry in truth["notebooks"]}


def test_every_corpus_notebook_is_read_without_warnings(crawled, truth):
    assert len(crawled) == len(truth["notebooks"]) > 0
    for path, (records, warnings) in crawled.items():
        assert warnings == [], path
        nb = notebook_of(records)
        assert nb.path == path


def test_notebook_facts_match_truth(crawled, truth):
    for entry in truth["notebooks"]:
        nb = notebook_of(crawled[entry["path"]][0])
        assert nb.nbformat == entry["nbformat"] and nb.nbformat_minor == entry["nbformat_minor"]
        assert nb.code_cells == entry["n_code_cells"]
        assert nb.code_cells + nb.markdown_cells + nb.raw_cells == entry["n_cells"]
        assert nb.kernel == entry["kernelspec"]["name"]
        assert nb.language == entry["kernelspec"]["language"]
        assert nb.executed == entry["executed"]
        assert nb.has_errors == entry["has_error"]
        assert nb.error_name == entry.get("error_name")
        papermill = entry["papermill"] or {}
        assert nb.papermill_input_path == papermill.get("input_path")
        assert nb.papermill_output_path == papermill.get("output_path")
        assert nb.papermill_exception == papermill.get("exception")
        if entry["executed"]:
            assert nb.executed_in_order is True and nb.run_id == f"notebook:{entry['path']}"
        else:
            assert nb.executed_in_order is None and nb.run_id is None


def test_parameters_match_truth(crawled, truth):
    for entry in truth["notebooks"]:
        records = crawled[entry["path"]][0]
        defaults = literal_assignments(entry["parameters_cell_source"])
        injected = entry["injected_parameters"] or {}
        facts = notebook_of(records).facts["parameters"]
        assert facts["default"] == {k: to_text(v) for k, v in defaults.items()}, entry["path"]
        assert facts["injected"] == {k: to_text(v) for k, v in injected.items()}, entry["path"]
        params = {p.key: (p.value, p.origin) for p in of(records, Param)}
        if not entry["executed"]:
            assert params == {}
            continue
        expected = {k: (to_text(v), "default") for k, v in defaults.items()}
        expected |= {k: (to_text(v), "injected") for k, v in injected.items()}
        assert params == expected, entry["path"]
        overridden = {t.key: t.value for t in of(records, Tag) if t.key.startswith("default.")}
        assert overridden == {f"default.{k}": to_text(defaults[k]) for k in injected if k in defaults}


def test_scraps_match_truth(crawled, truth):
    for entry in truth["notebooks"]:
        records = crawled[entry["path"]][0]
        scraps = entry.get("scraps") or {}
        metrics = {m.key: m.value for m in of(records, Metric) if not m.inferred}
        tags = {t.key[len("scrap."):]: t.value for t in of(records, Tag) if t.key.startswith("scrap.")}
        expected_metrics = {k: v for k, v in scraps.items() if isinstance(v, (int, float))}
        assert metrics == expected_metrics
        assert tags == {k: v for k, v in scraps.items() if k not in expected_metrics}


def test_runs_of_executed_notebooks(crawled, truth):
    for entry in truth["notebooks"]:
        runs = of(crawled[entry["path"]][0], Run)
        if not entry["executed"]:
            assert runs == []
            continue
        (run,) = runs
        assert run.source == "notebook" and run.source_run_id == entry["path"]
        assert run.status == ("FAILED" if entry["has_error"] else "FINISHED")
        assert run.start_time is not None and run.start_time <= run.end_time
        assert run.experiment == entry.get("template")


def test_references_match_truth_reads_and_writes(crawled, truth):
    for entry in truth["notebooks"]:
        refs = of(crawled[entry["path"]][0], Reference)
        ran = [r for r in refs if "(cell not run)" not in r.evidence]
        assert {r.resolved_path for r in ran if r.direction == "read"} == set(entry["reads"]), entry["path"]
        assert {r.resolved_path for r in ran if r.direction == "write"} == set(entry["writes"]), entry["path"]
        not_run = {r.resolved_path for r in refs if r not in ran}
        assert not_run == set(entry.get("referenced_not_written", [])), entry["path"]
        for ref in refs:
            assert ref.evidence.startswith(f"cell {ref.cell}, line {ref.line}")


def test_papermill_edges_match_truth_lineage(crawled, truth):
    expected = {(e["from"], e["to"]) for e in truth["lineage"]
                if e.get("relation") == "papermill_input_to_output"}
    found = {(e.src, e.dst) for records, _ in crawled.values() for e in of(records, Edge)}
    assert found == expected
    assert all(e.relation == "papermill_input_to_output" for records, _ in crawled.values()
               for e in of(records, Edge))


def test_imports_are_recorded(crawled):
    for path, (records, _) in crawled.items():
        modules = {i.module for i in of(records, Import)}
        assert "pandas" in modules, path


# --- behaviour on small notebooks -----------------------------------------------------------

def test_checkpoints_and_other_files_are_not_claimed(tmp_path):
    assert CRAWLER.match(tmp_path / "a.ipynb", False)
    assert not CRAWLER.match(tmp_path / ".ipynb_checkpoints" / "a-checkpoint.ipynb", False)
    assert not CRAWLER.match(tmp_path / "x" / ".ipynb_checkpoints" / "a.ipynb", False)
    assert not CRAWLER.match(tmp_path / "a.ipynb", True)
    assert not CRAWLER.match(tmp_path / "a.json", False)


def test_truncated_json_raises_with_path(tmp_path):
    path = write_nb(tmp_path / "nb.ipynb", [code("print(1)")])
    path.write_text(path.read_text()[:40])
    with pytest.raises(ValueError, match=r"nb\.ipynb.*invalid JSON"):
        crawl(tmp_path, path)


@pytest.mark.parametrize("text", ["", "[1, 2]", '{"cells": []}', '{"nbformat": "four"}'])
def test_json_that_is_no_notebook_raises(tmp_path, text):
    path = tmp_path / "nb.ipynb"
    path.write_text(text)
    with pytest.raises(ValueError, match="not a notebook"):
        crawl(tmp_path, path)


def test_notebook_failing_validation_is_read_with_a_warning(tmp_path):
    cells = [code("import pandas as pd\npd.read_csv('a.csv')", count="one"),
             {"cell_type": "code", "source": ["open('b.txt', 'w')"]},  # no metadata/outputs/count
             {"cell_type": "mystery", "source": "x"}, "not even a cell"]
    path = write_nb(tmp_path / "bad.ipynb", cells, {"kernelspec": "python3"})
    records, warnings = crawl(tmp_path, path)
    assert [w.error_type for w in warnings] == ["nbformat_validation"]
    assert warnings[0].path == "bad.ipynb"
    nb = notebook_of(records)
    assert nb.code_cells == 2 and nb.kernel is None
    assert {(r.raw, r.direction) for r in of(records, Reference)} == {("a.csv", "read"), ("b.txt", "write")}


def test_syntax_error_cell_warns_and_other_cells_count(tmp_path):
    cells = [code("import os\ndef broken(:\n    pass"), code("x = [1,"), code("open('ok.csv')")]
    path = write_nb(tmp_path / "nb.ipynb", cells)
    records, warnings = crawl(tmp_path, path)
    # The second broken cell can name no file, so it is not even parsed by default.
    assert [(w.error_type, "cell 0" in w.message) for w in warnings] == [("syntax_error", True)]
    assert [r.raw for r in of(records, Reference)] == ["ok.csv"]
    assert [i.module for i in of(records, Import)] == []
    assert notebook_of(records).facts["cells_with_syntax_errors"] == [0]
    records, warnings = crawl_unit(CRAWLER, tmp_path, path, parse_all_cells=True)
    assert [w.message.split(",")[0] for w in warnings] == ["cell 0", "cell 1"]
    assert [r.raw for r in of(records, Reference)] == ["ok.csv"]


def test_magics_everywhere(tmp_path):
    cells = [code("%load_ext autoreload\n%autoreload 2\n!pip install -q pandas\nimport pandas as pd"),
             code("%%time\nDATA = 'data'\nfiles = !ls {DATA}\ndf = pd.read_csv(f'{DATA}/x.csv')\ndf?"),
             code("%%bash\ncp a b\n"),
             code("for f in files:\n    !echo $f\n    print(f)\n%matplotlib inline\n%sx ls")]
    path = write_nb(tmp_path / "nb.ipynb", cells)
    records, warnings = crawl(tmp_path, path)
    assert warnings == []
    assert [(r.raw, r.cell, r.line) for r in of(records, Reference)] == [("data/x.csv", 1, 4)]
    assert notebook_of(records).facts["masked_ipython_lines"] >= 9


def test_binary_garbage_in_an_output(tmp_path):
    good = code("open('in.bin', 'rb')", outputs=[
        {"output_type": "stream", "name": "stdout", "text": "\x00\x01garbage\ufffd\n"},
        {"output_type": "display_data", "metadata": {},
         "data": {"image/png": 12345, "text/plain": [None, 3]}},
        {"output_type": "weird", "data": "x"}, 17], count=1)
    path = tmp_path / "nb.ipynb"
    payload = json.dumps({"cells": [good], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode()
    path.write_bytes(payload.replace(b"garbage", b"\xff\xfe\x80garbage"))
    records, warnings = crawl(tmp_path, path)
    assert "encoding" in {w.error_type for w in warnings}
    nb = notebook_of(records)
    assert nb.executed and nb.image_outputs == 1 and nb.facts["outputs"]["count"] == 3
    assert [r.raw for r in of(records, Reference)] == ["in.bin"]


def test_empty_notebook(tmp_path):
    path = write_nb(tmp_path / "empty.ipynb", [])
    records, warnings = crawl(tmp_path, path)
    assert warnings == []
    nb = notebook_of(records)
    assert (nb.code_cells, nb.executed, nb.has_errors, nb.executed_in_order) == (0, False, False, None)
    assert records == [nb]


def test_v3_notebook_is_converted(tmp_path):
    v3 = nbformat.v3
    cell = v3.new_code_cell(input="import numpy as np\nnp.save('w.npy', x)", prompt_number=1,
                            outputs=[v3.new_output("stream", output_text="loss: 0.25\n")])
    nb3 = v3.new_notebook(worksheets=[v3.new_worksheet(cells=[cell])])
    path = tmp_path / "old.ipynb"
    path.write_text(v3.nbjson.writes(nb3))
    records, warnings = crawl(tmp_path, path)
    nb = notebook_of(records)
    assert (nb.nbformat, nb.code_cells, nb.executed) == (3, 1, True)
    assert [(r.raw, r.direction) for r in of(records, Reference)] == [("w.npy", "write")]
    assert [(m.key, m.value, m.inferred) for m in of(records, Metric)] == [("loss", 0.25, True)]


def test_printed_metrics_are_conservative_and_secrets_are_redacted(tmp_path):
    printed = "epoch: 1\nloss: 0.5\nloss = 0.25\naccuracy=0.9 f1=0.8\nval loss: 3\npassword: 1234\nn: 1e-3\n"
    cells = [code("api_token = 'default-token'\nlr = 0.1", count=1, tags=["parameters"]),
             code("# Parameters\napi_token = 'hunter2'\n", count=2, tags=["injected-parameters"]),
             code("train()", count=3, outputs=[{"output_type": "stream", "name": "stdout", "text": printed},
                                               {"output_type": "error", "ename": "ValueError",
                                                "evalue": "bad --password=hunter2", "traceback": []}])]
    path = write_nb(tmp_path / "nb.ipynb", cells)
    records, _ = crawl(tmp_path, path)
    metrics = [(m.key, m.value, m.step) for m in of(records, Metric)]
    assert metrics == [("epoch", 1.0, 0), ("loss", 0.5, 0), ("loss", 0.25, 1), ("n", 0.001, 0)]
    assert all(m.inferred for m in of(records, Metric))
    nb = notebook_of(records)
    assert nb.facts["parameters"] == {"default": {"api_token": REDACTED, "lr": "0.1"},
                                      "injected": {"api_token": REDACTED}}
    assert "hunter2" not in nb.error_value and nb.error_name == "ValueError"
    stored = [redact_record(r) for r in records if isinstance(r, (Param, Tag))]
    assert "hunter2" not in repr(stored) and "default-token" not in repr(stored)
    assert of(records, Run)[0].status == "FAILED"


def test_scrapbook_encoders(tmp_path):
    def scrap(name, encoder, data, mime=None):
        mime = mime or f"application/scrapbook.scrap.{encoder}+json"
        return {"output_type": "display_data", "metadata": {"scrapbook": {"name": name}},
                "data": {mime: {"name": name, "data": data, "encoder": encoder, "version": 1}}}
    outputs = [scrap("auc", "json", 0.91), scrap("label", "text", "best"), scrap("cfg", "json", {"a": 1}),
               scrap("table", "pandas", "QVJST1cx" * 10), scrap("auc", "json", 0.93)]
    path = write_nb(tmp_path / "nb.ipynb", [code("sb.glue(...)", outputs=outputs, count=1)])
    records, _ = crawl(tmp_path, path)
    assert [(m.key, m.value) for m in of(records, Metric)] == [("auc", 0.93)]
    assert {t.key: t.value for t in of(records, Tag)} == {
        "scrap.label": "best", "scrap.cfg": '{"a": 1}', "scrap.table": "<pandas>"}
    assert notebook_of(records).facts["scraps"][-1] == {"name": "table", "encoder": "pandas"}


def test_execution_order_and_image_outputs(tmp_path):
    image = {"output_type": "display_data", "metadata": {},
             "data": {"image/png": "iVBOR" * 1000, "text/plain": "<Figure>"}}
    cells = [code("a = 1", count=3), code("plot()", count=1, outputs=[image, image]), code("b", count=None)]
    records, _ = crawl(tmp_path, write_nb(tmp_path / "nb.ipynb", cells))
    nb = notebook_of(records)
    assert nb.executed and nb.executed_in_order is False and nb.image_outputs == 2
    assert nb.facts["outputs"]["bytes_by_mime"]["image/png"] == 10000
    assert "iVBOR" not in repr(records)


def test_references_resolve_against_papermill_input_folder_and_rebased_absolute_paths(tmp_path):
    (tmp_path / "proj" / "data").mkdir(parents=True)
    (tmp_path / "proj" / "data" / "in.csv").write_text("x\n")
    template = write_nb(tmp_path / "proj" / "nbs" / "t.ipynb", [code("x")])
    meta = {"papermill": {"input_path": "/srv/old/proj/nbs/t.ipynb",
                          "output_path": "/srv/old/proj/nbs/out/run.ipynb", "parameters": {}}}
    cells = [code("import pandas as pd\npd.read_csv('../data/in.csv')\n"
                  "pd.read_csv('/srv/old/proj/data/in.csv')\npd.read_csv('s3://bucket/x.csv')\n"
                  "open('/etc/passwd')\nopen('../../../../x')", count=1)]
    out = write_nb(tmp_path / "proj" / "nbs" / "out" / "run.ipynb", cells, meta)
    records, _ = crawl(tmp_path, out)
    resolved = [(r.raw, r.resolved_path) for r in of(records, Reference)]
    assert resolved == [("../data/in.csv", "proj/data/in.csv"),
                        ("/srv/old/proj/data/in.csv", "proj/data/in.csv"),
                        ("s3://bucket/x.csv", None), ("/etc/passwd", None), ("../../../../x", None)]
    (edge,) = of(records, Edge)
    assert (edge.src, edge.dst) == ("proj/nbs/t.ipynb", "proj/nbs/out/run.ipynb")
    assert template.exists()


# --- nbformat's own test suite (tests/fixtures/notebooks/nbformat, BSD licence, see README) ---

NBFORMAT_SUITE = Path(__file__).parents[1] / "fixtures" / "notebooks" / "nbformat"


def _nbformat_verdict(path: Path) -> tuple[bool, bool, bool]:
    """(nbformat.read opens it, nbformat.validate rejects what it read, nbformat warned while reading)."""
    import warnings

    import nbformat

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception:
            return False, False, False
    try:
        nbformat.validate(nb)
        invalid = False
    except nbformat.ValidationError:
        invalid = True
    return True, invalid, any(w.category.__module__.startswith("nbformat") for w in caught)


def test_every_notebook_nbformat_reads_gets_a_row_and_the_same_verdict(tmp_path: Path) -> None:
    import shutil

    from helpers import crawl, rows

    root = tmp_path / "suite"
    shutil.copytree(NBFORMAT_SUITE, root)
    db = tmp_path / "c.duckdb"
    crawl(root, db)
    have = {path for (path,) in rows(db, "SELECT path FROM notebooks")}
    messages: dict[str, list[str]] = {}
    for path, message in rows(db, "SELECT path, message FROM errors WHERE crawler = 'notebook'"):
        messages.setdefault(path, []).append(message)
    names = sorted(p.name for p in NBFORMAT_SUITE.glob("*.ipynb"))
    assert len(names) >= 20 and {"test2.ipynb", "test3.ipynb", "test4.5.ipynb", "test4plus.ipynb"} <= set(names)
    for name in names:
        opens, invalid, warned = _nbformat_verdict(NBFORMAT_SUITE / name)
        ours = messages.get(name, [])
        if not opens:
            continue
        assert name in have, (name, ours)
        assert any("fails nbformat validation" in m for m in ours) is invalid, (name, ours)
        assert any(m.startswith("nbformat: ") for m in ours) is warned, (name, ours)
