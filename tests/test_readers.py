"""Readers are never locked out: read-only queries in a loop while a crawl writes all see data or wait."""

from __future__ import annotations

import subprocess
import threading

from helpers import CLI, make_tree

from mlcrawl.catalog import Catalog


def test_readers_in_a_loop_during_a_crawl_never_fail(tmp_path):
    files = {f"exp{i // 200}/run{i % 10}/{i}_metrics.json": '{"acc": %d}' % i for i in range(3000)}
    root = make_tree(tmp_path / "root", files)
    db = tmp_path / "c.duckdb"
    subprocess.run([*CLI, "crawl", str(root / "exp0"), "--catalog", str(db), "--quiet"], check=True)
    crawl = subprocess.Popen([*CLI, "crawl", str(root), "--catalog", str(db), "--quiet"])
    failures, reads = [], 0
    catalog = Catalog.at(db)

    def read_loop() -> None:
        nonlocal reads
        while crawl.poll() is None:
            try:
                with catalog.connect(read_only=True) as con:
                    con.execute("SELECT count(*) FROM files").fetchall()
                reads += 1
            except Exception as exc:  # noqa: BLE001 - any failure is what this test counts
                failures.append(repr(exc))

    reader = threading.Thread(target=read_loop)
    reader.start()
    assert crawl.wait(timeout=300) in (0, 1)
    reader.join()
    assert reads > 0 and failures == []
