"""Export: every table as Parquet, large ones hive-partitioned, readable by any Parquet engine."""

from __future__ import annotations

from pathlib import Path

import duckdb

# Table -> partition column for the tables that grow large.
PARTITIONS = {"files": "kind", "file_versions": "root", "metrics": "crawler", "params": "crawler", "lineage": "relation"}


def export_parquet(con: duckdb.DuckDBPyConnection, directory: Path) -> list[tuple[str, Path]]:
    """Write each base table under ``directory``; returns (table, path written)."""
    directory.mkdir(parents=True, exist_ok=True)
    tables = [r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' AND table_type = 'BASE TABLE' "
        "ORDER BY table_name").fetchall()]
    written = []
    for table in tables:
        column = PARTITIONS.get(table)
        rows = con.execute(f'SELECT count(*) FROM "{table}"').fetchall()[0][0]
        if column and rows:
            target = directory / table
            con.execute(f"""COPY (SELECT * FROM "{table}") TO '{target}'
                            (FORMAT parquet, PARTITION_BY ({column}), OVERWRITE_OR_IGNORE)""")
        else:
            target = directory / f"{table}.parquet"
            con.execute(f"""COPY (SELECT * FROM "{table}") TO '{target}' (FORMAT parquet)""")
        written.append((table, target))
    return written
