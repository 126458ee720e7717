"""OpenLineage over HTTP: events posted to a local endpoint, kept while it is down, sent once, 4xx recorded."""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlcrawl.catalog import Catalog
from mlcrawl.cli import main
from mlcrawl.lineage import rebuild_lineage
from mlcrawl.openlineage_http import Transport, lineage_url, publish
from tests.hostile.test_secrets_everywhere import GH, HF, SECRETS, URL_PASSWORD, plant
from tests.test_openlineage import assert_valid_event


class Endpoint:
    """A local lineage endpoint: answers with the queued statuses (then 201), records every body."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.paths: list[str] = []
        self.headers: list[dict] = []
        self.statuses: list[int] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = endpoint.statuses.pop(0) if endpoint.statuses else 201
                if status < 300:
                    endpoint.bodies.append(json.loads(body))
                    endpoint.paths.append(self.path)
                    endpoint.headers.append(dict(self.headers))
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Endpoint:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_url() -> str:
    """A URL where nothing listens (a port just released)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = server.server_address[1]
    server.server_close()
    return f"http://127.0.0.1:{port}"


def quick(url: str) -> Transport:
    return Transport(url, timeout=2.0, retries=2, backoff=0.0)


@pytest.fixture(scope="module")
def corpus_catalog(corpus: Path, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("olh") / "c.duckdb"
    assert CliRunner().invoke(main, ["crawl", str(corpus), "--catalog", str(path), "-q"]).exit_code == 0
    with Catalog.at(path).connect() as con:
        rebuild_lineage(con, str(corpus))
    return path


@pytest.fixture()
def store(corpus_catalog: Path, tmp_path: Path) -> Catalog:
    copy = tmp_path / "c.duckdb"
    shutil.copy(corpus_catalog, copy)
    return Catalog.at(copy)


def runs(store: Catalog) -> set[str]:
    with store.connect(read_only=True) as con:
        return {r[0] for r in con.execute("SELECT run_id FROM runs").fetchall()}


def test_events_arrive_valid_with_their_facets(store: Catalog) -> None:
    with Endpoint() as endpoint:
        report = publish(store, endpoint.url, transport=quick(endpoint.url))
    assert report.error is None and report.pending == 0
    assert report.sent == len(endpoint.bodies) == len(runs(store))
    assert set(endpoint.paths) == {"/api/v1/lineage"}
    assert {b["run"]["facets"]["mlcrawl"]["runId"] for b in endpoint.bodies} == runs(store)
    assert len({b["run"]["runId"] for b in endpoint.bodies}) == len(endpoint.bodies)
    for body in endpoint.bodies:
        assert_valid_event(body)
    assert {b["eventType"] for b in endpoint.bodies} >= {"COMPLETE", "FAIL"}
    by_uuid = {b["run"]["runId"]: b for b in endpoint.bodies}
    parents = [b["run"]["facets"]["parent"] for b in endpoint.bodies if "parent" in b["run"]["facets"]]
    assert parents and all(p["run"]["runId"] in by_uuid for p in parents)
    schemas = [d["facets"]["schema"] for b in endpoint.bodies for d in b["inputs"] + b["outputs"]
               if "schema" in d.get("facets", {})]
    assert schemas and all(s["fields"] for s in schemas)
    assert any("sourceCodeLocation" in b["job"]["facets"] for b in endpoint.bodies)
    assert "Authorization" not in endpoint.headers[0]


def test_a_second_publish_sends_nothing_again(store: Catalog) -> None:
    with Endpoint() as endpoint:
        first = publish(store, endpoint.url, transport=quick(endpoint.url))
        second = publish(store, endpoint.url + "/api/v1/lineage", transport=quick(endpoint.url))
    assert first.sent > 0 and second.queued == second.sent == 0
    assert len(endpoint.bodies) == first.sent


def test_endpoint_down_then_up_resends_once(store: Catalog) -> None:
    down = free_url()
    report = publish(store, down, transport=quick(down))
    assert report.sent == 0 and report.error and report.pending == len(runs(store))
    again = publish(store, down, transport=quick(down))
    assert again.queued == 0 and again.pending == report.pending  # kept, not queued twice
    host, port = down.removeprefix("http://").split(":")
    with Endpoint() as endpoint:
        endpoint.server.server_close()
        endpoint.server = ThreadingHTTPServer((host, int(port)), endpoint.server.RequestHandlerClass)
        endpoint.thread = threading.Thread(target=endpoint.server.serve_forever, daemon=True)
        endpoint.thread.start()
        up = publish(store, down, transport=quick(down))
        later = publish(store, down, transport=quick(down))
    assert up.sent == report.pending and up.pending == 0 and later.sent == 0
    ids = [b["run"]["runId"] for b in endpoint.bodies]
    assert len(ids) == len(set(ids)) == len(runs(store))


def test_server_errors_are_retried(store: Catalog) -> None:
    with Endpoint() as endpoint:
        endpoint.statuses = [500, 503]
        report = publish(store, endpoint.url, transport=quick(endpoint.url))
    assert report.error is None and report.sent == len(runs(store)) == len(endpoint.bodies)


def test_a_rejected_event_is_recorded_and_not_retried(store: Catalog) -> None:
    with Endpoint() as endpoint:
        endpoint.statuses = [400]
        report = publish(store, endpoint.url, transport=quick(endpoint.url))
        again = publish(store, endpoint.url, transport=quick(endpoint.url))
    assert report.rejected == 1 and report.sent == len(runs(store)) - 1 and report.pending == 0
    assert again.sent == again.rejected == 0
    with store.connect(read_only=True) as con:
        rows = con.execute("SELECT status, attempts, last_error FROM openlineage_outbox "
                           "WHERE status = 'rejected'").fetchall()
    assert rows == [("rejected", 1, "HTTP 400 Bad Request")]


def test_queue_is_bounded_oldest_dropped(store: Catalog) -> None:
    down = free_url()
    report = publish(store, down, transport=quick(down), queue_limit=3)
    assert report.pending == 3 and report.dropped == len(runs(store)) - 3


def test_api_key_header_from_the_environment(store: Catalog, monkeypatch) -> None:
    monkeypatch.setenv("MLCRAWL_OPENLINEAGE_API_KEY", "k-123")
    with Endpoint() as endpoint:
        publish(store, endpoint.url)
    assert endpoint.headers and all(h["Authorization"] == "Bearer k-123" for h in endpoint.headers)


def test_lineage_url_accepts_base_or_full() -> None:
    assert lineage_url("http://m:5000") == lineage_url("http://m:5000/api/v1/lineage") == "http://m:5000/api/v1/lineage"
    with pytest.raises(ValueError):
        lineage_url("marquez:5000")


def test_crawl_option_posts_and_down_endpoint_keeps_exit_code(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    plant(root)
    db = tmp_path / "c.duckdb"
    down = free_url()
    runner = CliRunner()
    failed = runner.invoke(main, ["crawl", str(root), "--catalog", str(db), "-q", "--openlineage", down])
    plain = runner.invoke(main, ["crawl", str(root), "--catalog", str(tmp_path / "d.duckdb"), "-q"])
    assert failed.exit_code == plain.exit_code, failed.output
    warnings = [line for line in failed.output.splitlines() if "openlineage" in line]
    assert len(warnings) == 1 and "unreachable" in warnings[0] and "kept" in warnings[0]
    with Endpoint() as endpoint:
        result = runner.invoke(main, ["export-openlineage", "--url", endpoint.url, "--catalog", str(db)])
    assert result.exit_code == 0, result.output
    assert endpoint.bodies and "run events ->" in result.output
    posted = json.dumps(endpoint.bodies)
    # the planted documents were read (their harmless neighbours arrived) ...
    assert "github.com/org/repo" in posted and "ValueError: bad credentials" in posted
    # ... and no planted secret did
    assert not [s for s in (*SECRETS, GH, HF, URL_PASSWORD) if s in posted]
    for body in endpoint.bodies:
        assert_valid_event(body)


def test_config_key_sends_after_crawl(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    plant(root)
    with Endpoint() as endpoint:
        config = tmp_path / "mlcrawl.toml"
        config.write_text(f'catalog = "c.duckdb"\nopenlineage_url = "{endpoint.url}"\n')
        result = CliRunner().invoke(main, ["crawl", str(root), "--config", str(config), "-q"])
    assert "openlineage" not in result.output, result.output
    assert endpoint.bodies


def test_watch_batches_send_new_events_only(tmp_path: Path) -> None:
    from mlcrawl.cli import options as opt
    from mlcrawl.cli.export import send_openlineage
    from mlcrawl.config import Config, Job
    from mlcrawl.watch import Watcher

    root = tmp_path / "tree"
    plant(root)
    store = Catalog.at(tmp_path / "c.duckdb")
    job = Job(name="w", roots=(str(root),))
    crawlers, options = opt.choose_crawlers(Config(), job)
    warnings: list[str] = []
    with Endpoint() as endpoint:
        for _ in range(2):  # two sessions over the same files: the second has nothing new to send
            watcher = Watcher(store, job, crawlers, options, force_poll=True, mounts=[],
                              after_batch=lambda: send_openlineage(store, endpoint.url, warnings.append))
            watcher.stop()  # catch up, then end the session
            assert watcher.run().batches == 1
    assert not warnings
    assert endpoint.bodies and len({b["run"]["runId"] for b in endpoint.bodies}) == len(endpoint.bodies)
    assert len(endpoint.bodies) == len(runs(store))


def test_credentials_in_the_url_become_basic_auth_and_are_not_stored(store: Catalog) -> None:
    import base64

    with Endpoint() as endpoint:
        url = endpoint.url.replace("http://", "http://ol:s3cret-pw@")
        report = publish(store, url, transport=quick(url))
    assert report.sent and "s3cret-pw" not in report.url
    assert endpoint.headers[0]["Authorization"] == "Basic " + base64.b64encode(b"ol:s3cret-pw").decode()
    with store.connect(read_only=True) as con:
        urls = {r[0] for r in con.execute("SELECT DISTINCT url FROM openlineage_outbox").fetchall()}
    assert urls == {endpoint.url + "/api/v1/lineage"}


def test_a_changed_run_is_sent_again_once_and_replaces_its_pending_event(store: Catalog) -> None:
    down = free_url()
    first = publish(store, down, transport=quick(down))
    with store.connect() as con:
        run_id, = con.execute("SELECT run_id FROM runs WHERE status = 'FINISHED' ORDER BY run_id LIMIT 1").fetchone()
        con.execute("UPDATE runs SET name = 'renamed' WHERE run_id = ?", [run_id])
    changed = publish(store, down, transport=quick(down))
    assert changed.queued == 1 and changed.pending == first.pending  # the older pending one was replaced
    with Endpoint() as endpoint:
        sent = publish(store, endpoint.url, transport=quick(endpoint.url))
        assert sent.sent == len(runs(store))
        with store.connect() as con:
            con.execute("UPDATE runs SET status = 'FAILED' WHERE run_id = ?", [run_id])
        again = publish(store, endpoint.url, transport=quick(endpoint.url))
    assert again.sent == 1
    last = endpoint.bodies[-1]
    assert last["run"]["facets"]["mlcrawl"]["runId"] == run_id and last["eventType"] == "FAIL"
    assert "errorMessage" in last["run"]["facets"]


def test_export_url_exits_1_while_events_stay_pending(store: Catalog) -> None:
    down = free_url()
    result = CliRunner().invoke(main, ["export-openlineage", "--url", down, "--catalog", str(store.path)])
    assert result.exit_code == 1 and "unreachable" in result.output
    assert f"{len(runs(store))} pending" in result.output
