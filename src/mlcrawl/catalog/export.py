"""Export: every table and view as Parquet, large tables hive-partitioned, readable by any Parquet engine.

An export is written into a temporary folder beside the target and swapped in, so a second
export into the same folder leaves nothing of the first behind, and a failed one leaves the
earlier export whole.  ``_schema.json`` and ``README.md`` in the folder say what each file is.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from .. import __version__
from ..errors import ConfigError
from .schema import SCHEMA_VERSION, TABLE_DOCS

# Table -> partition column for the tables that grow large.
PARTITIONS = {"files": "kind", "file_versions": "root", "metrics": "crawler", "params": "crawler", "lineage": "relation"}
MANIFEST = "_schema.json"


def export_targets(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """(name, 'table' or 'view') of everything an export writes, in name order."""
    return [(name, "view" if kind == "VIEW" else "table") for name, kind in con.execute(
        "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'main' "
        "ORDER BY table_name").fetchall()]


def export_parquet(con: duckdb.DuckDBPyConnection, directory: Path,
                   progress: Callable[[str, int], None] | None = None) -> list[tuple[str, Path]]:
    """Write each table and view into ``directory`` (replacing an earlier export); returns (name, path)."""
    directory = directory.expanduser().absolute()
    _check_target(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        manifest = {}
        for name, kind in export_targets(con):
            manifest[name] = _write(con, name, kind, staging)
            if progress:
                progress("tables", 1)
        _write_manifest(staging, manifest)
        _swap(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [(name, directory / entry["path"]) for name, entry in manifest.items()]


def _check_target(directory: Path) -> None:
    # Never replace a folder that is not an earlier export: it may hold the user's own files.
    if directory.exists() and (not directory.is_dir() or (any(directory.iterdir())
                                                         and not (directory / MANIFEST).is_file())):
        raise ConfigError(f"{directory} exists and is not an mlcrawl export; give a new or empty folder")


def _write(con: duckdb.DuckDBPyConnection, name: str, kind: str, staging: Path) -> dict:
    column = PARTITIONS.get(name) if kind == "table" else None
    rows = con.execute(f'SELECT count(*) FROM "{name}"').fetchall()[0][0]
    columns = [{"name": c, "type": t} for c, t in con.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'main' "
        "AND table_name = ? ORDER BY ordinal_position", [name]).fetchall()]
    if column and rows:
        target = staging / name
        con.execute(f"""COPY (SELECT * FROM "{name}") TO '{target}' (FORMAT parquet, PARTITION_BY ({column}))""")
        path = f"{name}/"
    else:
        path = f"{name}.parquet"
        con.execute(f"""COPY (SELECT * FROM "{name}") TO '{staging / path}' (FORMAT parquet)""")
    return {"kind": kind, "path": path, "partitioned_by": column if column and rows else None, "rows": rows,
            "meaning": TABLE_DOCS.get(name, "view of the catalog (see mlcrawl schema)"), "columns": columns}


def _write_manifest(staging: Path, manifest: dict) -> None:
    info = {"mlcrawl_version": __version__, "schema_version": SCHEMA_VERSION,
            "exported_at": datetime.now(timezone.utc).isoformat(), "tables": manifest}
    (staging / MANIFEST).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    lines = ["# mlcrawl catalog export", "",
             f"Written by mlcrawl {__version__} at {info['exported_at']}. One Parquet file per table or view;",
             "a folder is a hive-partitioned dataset (`column=value/` sub-folders), e.g.",
             "`duckdb -c \"select * from read_parquet('files/**/*.parquet', hive_partitioning = true)\"`,",
             "`polars.scan_parquet('files/**/*.parquet', hive_partitioning=True)` or",
             "`pyarrow.dataset.dataset('files', partitioning='hive')`. Columns and types: `_schema.json`.", "",
             "| file | kind | rows | partitioned by | meaning |", "| --- | --- | --- | --- | --- |"]
    for name, entry in manifest.items():
        lines.append(f"| `{entry['path']}` | {entry['kind']} | {entry['rows']} | {entry['partitioned_by'] or ''} "
                     f"| {entry['meaning']} |")
    (staging / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _swap(staging: Path, directory: Path) -> None:
    if not directory.exists():
        staging.rename(directory)
        return
    old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
    directory.rename(old)
    staging.rename(directory)
    shutil.rmtree(old, ignore_errors=True)
