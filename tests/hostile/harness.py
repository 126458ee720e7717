"""Running ``mlcrawl crawl`` as a real process under a time and a memory limit, and reading it back."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb

#: Per-crawl wall-clock limit: a hang is a test failure, not a stuck CI job.
TIME_LIMIT_S = 60
#: Address-space limit of the crawl process: a read without bound ends in MemoryError, not swap.
MEMORY_LIMIT = 1536 << 20

#: Columns that differ between two crawls of an unchanged tree by design.
VOLATILE = frozenset({"crawl_id", "at", "last_seen", "first_seen", "crawled_at", "started_at", "finished_at",
                      "pid", "host", "version", "src_key", "dst_key"})


@dataclass(frozen=True)
class Crawl:
    """One finished crawl process."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def summary(self) -> dict:
        """The ``--json`` summary line."""
        return json.loads(self.stdout.strip().splitlines()[-1])


def _limits(memory: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def crawl(root: Path, db: Path, *args: str, timeout: float = TIME_LIMIT_S, memory: int = MEMORY_LIMIT,
          env: dict | None = None) -> Crawl:
    """``mlcrawl crawl ROOT --json`` in a child process; raises TimeoutExpired on a hang."""
    environ = dict(os.environ, HOME=str(db.parent), MLCRAWL_NO_PLUGINS="1", **(env or {}))
    proc = subprocess.run(
        [sys.executable, "-m", "mlcrawl", "crawl", os.fspath(root), "--catalog", os.fspath(db), "--json", *args],
        capture_output=True, timeout=timeout, preexec_fn=lambda: _limits(memory), env=environ)
    return Crawl(proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace"))


def assert_clean(result: Crawl) -> dict:
    """Exit 0 (ok) or 1 (partial), no traceback, a summary: the crawl held."""
    assert "Traceback" not in result.stderr + result.stdout, result.stderr[-4000:]
    assert result.returncode in (0, 1), (result.returncode, result.stderr[-4000:])
    return result.summary


def tables(db: Path) -> list[str]:
    """Every table and view of the catalog."""
    with duckdb.connect(os.fspath(db), read_only=True) as con:
        return [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY 1").fetchall()]


def dump_text(db: Path) -> str:
    """Every value of every table as one text (for looking for a leaked marker)."""
    out = []
    with duckdb.connect(os.fspath(db), read_only=True) as con:
        for name in tables(db):
            for row in con.execute(f'SELECT * FROM "{name}"').fetchall():
                out.append(repr(row))
    return "\n".join(out)


def snapshot(db: Path, names: tuple[str, ...] | None = None) -> dict[str, list[tuple]]:
    """Rows of the catalog's base tables without the columns that change from crawl to crawl."""
    snap = {}
    with duckdb.connect(os.fspath(db), read_only=True) as con:
        base = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                          "WHERE table_schema = 'main' AND table_type = 'BASE TABLE'").fetchall()]
        for name in names or base:
            if name in ("crawls", "schema_version"):
                continue
            cols = [r[0] for r in con.execute(f"DESCRIBE \"{name}\"").fetchall() if r[0] not in VOLATILE]
            if name == "errors":
                # Problems are history: each crawl that meets a problem adds its row.
                continue
            quoted = ", ".join(f'"{c}"' for c in cols)
            snap[name] = sorted(map(repr, con.execute(f'SELECT {quoted} FROM "{name}"').fetchall()))
    return snap


def problems(db: Path) -> set[str]:
    """Paths that have an errors row (any severity) or a symlinks row."""
    with duckdb.connect(os.fspath(db), read_only=True) as con:
        errs = {r[0] for r in con.execute("SELECT path FROM errors").fetchall()}
        links = {r[0] for r in con.execute("SELECT path FROM symlinks").fetchall()}
    return errs | links


def query(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    """Rows of one read-only query."""
    with duckdb.connect(os.fspath(db), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()
