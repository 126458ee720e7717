"""Every endpoint of the web view over a catalog crawled from the corpus: status codes, token, 404s."""

from __future__ import annotations

from urllib.parse import quote

import duckdb
import pytest
from serve_corpus import corpus_catalog  # noqa: F401  (fixture)
from starlette.testclient import TestClient

from mlcrawl.catalog import Catalog
from mlcrawl.serve.app import create_app


@pytest.fixture(scope="module")
def client(corpus_catalog):
    return TestClient(create_app(Catalog.at(corpus_catalog)))


@pytest.fixture(scope="module")
def facts(corpus_catalog):
    con = duckdb.connect(str(corpus_catalog), read_only=True)
    run_ids = [r for (r,) in con.execute("""SELECT run_id FROM latest_metrics GROUP BY run_id
                                            ORDER BY sum(points) DESC, run_id LIMIT 2""").fetchall()]
    model = con.execute("""SELECT l.dst FROM lineage l JOIN files f ON f.root = l.root AND f.path = l.dst
                           WHERE f.kind = 'model' ORDER BY l.dst LIMIT 1""").fetchall()[0][0]
    dataset = con.execute("SELECT path FROM dataset_schemas ORDER BY path LIMIT 1").fetchall()[0][0]
    con.close()
    return {"runs": run_ids, "model": model, "dataset": dataset}


def test_every_page_answers(client, facts):
    a, b = facts["runs"]
    pages = ["/", "/runs", "/runs?group=experiment&sort=metrics.accuracy&dir=asc&size=25",
             f"/run/{quote(a)}", f"/run/{quote(a)}?x=time&log=1&smooth=0.6",
             f"/compare?run={quote(a)}&run={quote(b)}", "/lineage", "/lineage?q=model",
             f"/lineage?node={quote(facts['model'])}&depth=5", "/list/datasets", "/list/models",
             "/list/notebooks", "/list/files?q=csv", f"/file?path={quote(facts['dataset'])}", "/status",
             "/static/style.css", "/static/app.js"]
    for url in pages:
        assert client.get(url).status_code == 200, url


def test_the_runs_table_filters_sorts_and_pages(client, corpus_catalog):
    con = duckdb.connect(str(corpus_catalog), read_only=True)
    expected = con.execute("""SELECT count(DISTINCT run_id) FROM latest_metrics
                              WHERE key = 'val_accuracy' AND value > 0.5""").fetchall()[0][0]
    con.close()
    page = client.get("/runs", params={"q": "metrics.val_accuracy > 0.5", "cols": "source,metrics.val_accuracy"})
    assert page.status_code == 200 and f"{expected} found" in page.text
    assert page.text.count('class="runlink"') == expected
    small = client.get("/runs", params={"size": 25, "page": 2})
    assert small.status_code == 200 and "page 2 of" in small.text


@pytest.mark.parametrize("args", [
    {"q": "name = 'x' OR 1=1 --"}, {"q": "x" * 10_000}, {"q": "name = 'unbalanced"},
    {"q": "source = 'a'; DROP TABLE runs"}, {"cols": "bogus"}, {"sort": "nope"}, {"page": "two"}, {"size": "7"},
])
def test_hostile_query_strings_are_400_with_a_message(client, args):
    page = client.get("/runs", params=args)
    assert page.status_code == 400
    assert 'id="message"' in page.text and "Traceback" not in page.text
    assert client.get("/runs").status_code == 200  # nothing was dropped


def test_unknown_things_are_404(client):
    for url in ["/run/nope:nothing", "/lineage?node=no/such/file", "/file?path=no/such/file", "/list/bogus", "/nowhere"]:
        assert client.get(url).status_code == 404, url
    assert client.get("/compare?run=only:one").status_code == 400


def test_no_write_endpoint(client):
    for url in ["/", "/runs", "/status"]:
        assert client.post(url).status_code == 405


def test_token_is_required_when_set(corpus_catalog):
    guarded = TestClient(create_app(Catalog.at(corpus_catalog), token="s3cret"))
    assert guarded.get("/runs").status_code == 401
    assert guarded.get("/runs?token=wrong").status_code == 401
    assert guarded.get("/runs", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert guarded.get("/status?token=s3cret").status_code == 200
    assert guarded.get("/status").status_code == 200  # the cookie set by the first visit


def test_a_writer_holding_the_catalog_gives_503_not_500(corpus_catalog, tmp_path, monkeypatch):
    import shutil

    from mlcrawl.serve import app as app_module

    copy = tmp_path / "held.duckdb"
    shutil.copy(corpus_catalog, copy)
    monkeypatch.setattr(app_module, "LOCK_RETRY_SECONDS", 0.2)
    import subprocess
    import sys
    holder = subprocess.Popen([sys.executable, "-c", f"import duckdb,time; c=duckdb.connect({str(copy)!r}); "
                               "print('held', flush=True); time.sleep(30)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        page = TestClient(create_app(Catalog.at(copy))).get("/runs")
        assert page.status_code == 503 and "busy" in page.text.lower()
    finally:
        holder.kill()
        holder.wait()
