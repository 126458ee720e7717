"""A throw-away PostgreSQL 15 server (as the postgres user, on a free 127.0.0.1 port) and lakes.

Outside CI a machine without PostgreSQL or the DuckLake extension packages skips these tests;
with CI=true they fail instead, so CI never reports a lake it did not test.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"lake tests need {reason} in CI")
    pytest.skip(f"needs {reason}")


def _as_postgres(*cmd: str) -> None:
    subprocess.run(["runuser", "-u", "postgres", "--", *cmd], check=True, capture_output=True, timeout=120)


class Postgres:
    """A running server; ``stop``/``start`` simulate an outage."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder, self.port = folder, port

    def start(self) -> None:
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.folder / "data"), "-l", str(self.folder / "log"), "-w",
                     "-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1", "start")

    def stop(self) -> None:
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop")

    def new_database(self) -> str:
        name = "lake_" + uuid.uuid4().hex[:10]
        _as_postgres(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), name)
        return f"ducklake:postgres:dbname={name} host=127.0.0.1 port={self.port} user=postgres"


@pytest.fixture(scope="session")
def postgres():
    """The session's PostgreSQL server."""
    try:
        import duckdb_extension_ducklake  # noqa: F401
        import duckdb_extension_postgres  # noqa: F401
    except ImportError:
        _missing("the lake extra (pip install '.[lake]')")
    if not (PG_BIN / "postgres").exists() or shutil.which("runuser") is None:
        _missing("PostgreSQL 15 (apt-get install postgresql)")
    pwd.getpwnam("postgres")
    folder = Path(tempfile.mkdtemp(prefix="mlcrawl-pg-"))
    shutil.chown(folder, "postgres")
    _as_postgres(str(PG_BIN / "initdb"), "-D", str(folder / "data"), "-A", "trust", "-U", "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = Postgres(folder, port)
    server.start()
    yield server
    try:
        server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=["file", "local-lake", "postgres-lake"])
def backend(request, tmp_path):
    """(catalog name, data path) for each backend."""
    if request.param == "file":
        return str(tmp_path / "cat.duckdb"), None
    if request.param == "local-lake":
        request.getfixturevalue("postgres")  # the same skip/fail rule for the extension packages
        return f"ducklake:{tmp_path / 'meta.ducklake'}", str(tmp_path / "data")
    return request.getfixturevalue("postgres").new_database(), str(tmp_path / "data")


@pytest.fixture
def pg_lake(postgres, tmp_path):
    """A fresh PostgreSQL-backed lake: (catalog name, data path)."""
    return postgres.new_database(), str(tmp_path / "data")
