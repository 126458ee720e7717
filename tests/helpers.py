"""Helpers for core tests: build trees, run crawls in-process and as real processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from mlcrawl.catalog import Catalog
from mlcrawl.config import Job
from mlcrawl.registry import discover, select
from mlcrawl.runner import CrawlSummary, Runner

CLI = [sys.executable, "-m", "mlcrawl"]


def make_tree(root: Path, files: dict[str, bytes | str]) -> Path:
    """Create ``files`` (relative path -> content) under ``root``."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


def crawl(root: Path, db: Path, crawlers: list | None = None, allow_mass_delete: bool = False,
          retry_failed: bool = False, **job) -> CrawlSummary:
    """One in-process crawl of ``root`` into ``db``."""
    chosen = crawlers if crawlers is not None else select(discover())
    return Runner(Catalog.at(db), Job(roots=(str(root),), **job), chosen, allow_mass_delete=allow_mass_delete,
                  retry_failed=retry_failed).run()


def rows(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    """Rows of a read-only query."""
    with Catalog.at(db).connect(read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def run_cli(*args: str, user: str | None = None, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the mlcrawl CLI in a real process, optionally as an unprivileged user."""
    preexec = None
    if user is not None:
        import pwd

        entry = pwd.getpwnam(user)

        def preexec() -> None:
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)

    env = dict(os.environ, HOME="/tmp")
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, preexec_fn=preexec,
                          cwd=cwd, env=env)


def duckdb_cli() -> str | None:
    """The duckdb CLI binary installed by the test extra (duckdb-cli), if present."""
    beside = Path(sys.executable).parent / "duckdb"
    return str(beside) if beside.exists() else shutil.which("duckdb")
