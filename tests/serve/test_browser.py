"""`mlcrawl serve` in a real browser: Debian's chromium, headless, driven by Playwright.

CI installs chromium (.ci/run); with CI=true a missing chromium fails these tests, elsewhere it
skips them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import duckdb
import pytest
from serve_corpus import corpus_catalog  # noqa: F401  (fixture)

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update"]
SHOTS = Path(os.environ.get("MLCRAWL_SCREENSHOTS", "/tmp/mlcrawl-screenshots"))


def _need_chromium() -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing in CI: install Debian's chromium (see .ci/run)")
        pytest.skip(f"{CHROMIUM} is not installed")


@pytest.fixture(scope="module")
def server(corpus_catalog):
    _need_chromium()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "mlcrawl", "serve", "--port", str(port), "--catalog",
                             str(corpus_catalog)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"mlcrawl serve exited: {proc.stderr.read()}")
            time.sleep(0.2)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        tab = browser.new_page(viewport={"width": 1400, "height": 900})
        yield tab
        browser.close()


def test_every_page_opens(server, page):
    for path in ["/runs", "/lineage", "/list/datasets", "/list/models", "/list/notebooks", "/list/files", "/status"]:
        response = page.goto(server + path)
        assert response.status == 200, path
        assert page.locator("nav").count() == 1
    page.screenshot(path=str(SHOTS / "status.png"), full_page=True)


def test_filter_open_a_run_and_count_its_chart_points(server, page, corpus_catalog):
    con = duckdb.connect(str(corpus_catalog), read_only=True)
    run_id, key, points = con.execute("""SELECT run_id, key, count(*) FROM metrics GROUP BY ALL
                                         ORDER BY count(*) DESC, run_id LIMIT 1""").fetchall()[0]
    source = con.execute("SELECT source FROM runs WHERE run_id = ?", [run_id]).fetchall()[0][0]
    expected = con.execute("SELECT count(DISTINCT run_id) FROM runs WHERE source = ?", [source]).fetchall()[0][0]
    con.close()
    page.goto(server + "/runs")
    page.fill("#q", f"source = '{source}'")
    page.click("#filter button")
    page.wait_for_url("**q=*")
    assert page.locator("a.runlink").count() == expected
    page.screenshot(path=str(SHOTS / "runs.png"), full_page=True)
    page.goto(f"{server}/run/{quote(run_id)}")
    line = page.locator(f'figure.metric[data-key="{key}"] polyline.series')
    assert int(line.get_attribute("data-points")) == points
    assert len(line.get_attribute("points").split()) == points
    page.screenshot(path=str(SHOTS / "run.png"), full_page=True)


def test_compare_two_runs_from_the_table(server, page):
    page.goto(server + "/runs?size=25")
    boxes = page.locator("input[name=run]")
    boxes.nth(0).check()
    boxes.nth(1).check()
    page.click("#compare-btn")
    page.wait_for_url("**/compare?*")
    assert page.locator("#differ").count() == 1
    assert page.locator("svg.parallel, p.muted").count() >= 1
    page.screenshot(path=str(SHOTS / "compare.png"), full_page=True)


def test_walk_from_a_model_to_its_dataset_by_clicking(server, page, corpus_catalog):
    con = duckdb.connect(str(corpus_catalog), read_only=True)
    # a model file two hops downstream of a dataset (dataset -> code or run -> model)
    model, middle, dataset = con.execute("""
        SELECT m.dst, m.src, d.src FROM lineage m JOIN lineage d ON d.dst = m.src AND d.root = m.root
        JOIN files fm ON fm.root = m.root AND fm.path = m.dst AND fm.kind = 'model'
        JOIN files fd ON fd.root = d.root AND fd.path = d.src AND fd.kind = 'dataset'
        ORDER BY m.dst, m.src, d.src LIMIT 1""").fetchall()[0]
    con.close()
    page.goto(f"{server}/list/models?q={quote(model)}")
    page.click(f"a:text-is('{model}')")
    page.click("#lineage-link")
    page.locator(f'a.node[data-node="{middle}"]').click()
    page.wait_for_url(f"**node={quote(middle, safe='')}*")
    page.locator(f'a.node[data-node="{dataset}"]').click()
    page.wait_for_url(f"**node={quote(dataset, safe='')}*")
    assert dataset in page.locator("h1").inner_text()
    sizes = page.eval_on_selector_all("#lineage text", "els => els.map(e => parseFloat(getComputedStyle(e).fontSize))")
    assert sizes and min(sizes) >= 12
    page.screenshot(path=str(SHOTS / "lineage.png"), full_page=True)


def test_screenshots_were_taken():
    _need_chromium()
    for name in ("runs", "run", "compare", "lineage"):
        assert (SHOTS / f"{name}.png").stat().st_size > 5000, name
