"""Crawl sessions in the catalog: the crawls row, the set-based stat diff, deletions, unit state.

The walk hands over one Arrow table of stat rows per root; DuckDB compares it with ``files`` in
one join (new, changed, unchanged, deleted), so an unchanged file costs no Python work at all.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime

import duckdb
import pyarrow as pa

from .. import __version__
from .backend import LakeConnection

#: Stat rows of one root's walk, in walk order.
WALK_SCHEMA = pa.schema([
    ("path", pa.string()), ("size", pa.int64()), ("mtime_ns", pa.int64()), ("inode", pa.int64()),
    ("uid", pa.int64()), ("want_md5", pa.bool_()), ("i", pa.int64()),
])


@dataclass(frozen=True)
class StatDiff:
    """What the walk found compared with the catalog.

    ``todo`` holds the new and changed rows (plus the catalog's first_seen); ``gone`` lists
    paths no longer there.
    """

    todo: pa.Table
    gone: list[str]
    unchanged: int
    present_before: int


def start_crawl(con: duckdb.DuckDBPyConnection, job: str, kind: str, roots: list[str], now: datetime,
                status: str = "running") -> int:
    """Insert a crawls row in ``status`` (``running``, or ``watching`` for a watch session) and
    return its id; a row left in that status was killed."""
    if isinstance(con, LakeConnection):
        # Other hosts crawl other roots right now: their rows stay (an expired lease marks a
        # dead one's), and the id is taken in a transaction two allocations cannot share.
        return con.serialized(lambda raw: _insert_crawl(raw, job, kind, roots, now, status))
    # The caller holds the crawl lock, so any other crawl still in this status died.
    con.execute("UPDATE crawls SET status = 'interrupted' WHERE status = ?", [status])
    return _insert_crawl(con, job, kind, roots, now, status)


def _insert_crawl(con: duckdb.DuckDBPyConnection, job: str, kind: str, roots: list[str], now: datetime,
                  status: str) -> int:
    crawl_id = con.execute("SELECT coalesce(max(crawl_id), 0) + 1 FROM crawls").fetchall()[0][0]
    con.execute(
        "INSERT INTO crawls (crawl_id, job, kind, roots, started_at, status, version, pid, host) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [crawl_id, job, kind, roots, now, status, __version__, os.getpid(), socket.gethostname()],
    )
    return crawl_id


def finish_crawl(con: duckdb.DuckDBPyConnection, crawl_id: int, counts: dict) -> None:
    """Store the final status and counts of a crawl."""
    assignments = ", ".join(f"{k} = ?" for k in counts)
    con.execute(f"UPDATE crawls SET {assignments} WHERE crawl_id = ?", [*counts.values(), crawl_id])


def _scope_sql(con: duckdb.DuckDBPyConnection, column: str, scopes: list[str] | None) -> str:
    """A condition keeping ``column`` paths under the scope folders (registers ``scopes``); TRUE for all."""
    if scopes is None:
        return "TRUE"
    con.register("scopes", pa.table({"prefix": pa.array(scopes, pa.string())}))
    return (f"EXISTS (SELECT 1 FROM scopes s WHERE s.prefix = '' OR {column} = s.prefix "
            f"OR starts_with({column}, s.prefix || '/'))")


def diff_stats(con: duckdb.DuckDBPyConnection, root: str, walked: pa.Table, scopes: list[str] | None = None) -> StatDiff:
    """Compare the walk's stat rows with the catalog's files of ``root``, in one join.

    ``scopes`` (folders relative to the root) limits what a missing file can mean: a watch batch
    that walked only some folders says nothing of files elsewhere.
    """
    con.register("walked", walked)
    in_scope = _scope_sql(con, "f.path", scopes)
    try:
        todo = con.sql("""
            SELECT w.path, w.size, w.mtime_ns, w.inode, w.uid, w.want_md5, w.i,
                   f.first_seen, f.path IS NOT NULL AND f.deleted_at IS NULL AS existed
            FROM walked w LEFT JOIN files f ON f.root = ? AND f.path = w.path
            WHERE f.path IS NULL OR f.deleted_at IS NOT NULL OR f.size <> w.size OR f.mtime_ns <> w.mtime_ns
               OR f.inode <> w.inode OR (f.sha256 IS NULL AND f.hash_note IS NULL)
               OR (w.want_md5 AND f.md5 IS NULL AND f.sha256 IS NOT NULL)""", params=[root]).to_arrow_table()
        gone = [r[0] for r in con.execute(f"""
            SELECT f.path FROM files f ANTI JOIN walked w ON f.path = w.path
            WHERE f.root = ? AND f.deleted_at IS NULL AND {in_scope}""", [root]).fetchall()]
        present = con.execute(f"SELECT count(*) FROM files f WHERE root = ? AND deleted_at IS NULL AND {in_scope}",
                              [root]).fetchall()[0][0]
    finally:
        con.unregister("walked")
        if scopes is not None:
            con.unregister("scopes")
    return StatDiff(todo, gone, walked.num_rows - todo.num_rows, present)


def current_hashes(con: duckdb.DuckDBPyConnection, root: str) -> dict[str, str]:
    """path -> sha256 of the present files of ``root``."""
    rows = con.execute("SELECT path, sha256 FROM files WHERE root = ? AND deleted_at IS NULL AND sha256 IS NOT NULL",
                       [root]).fetchall()
    return dict(rows)


def mark_deleted(con: duckdb.DuckDBPyConnection, root: str, paths: list[str], now: datetime) -> None:
    """Set ``deleted_at`` on the files of ``root`` at ``paths`` (their rows and versions stay)."""
    con.register("gone_paths", pa.table({"path": pa.array(paths, pa.string())}))
    try:
        con.execute("UPDATE files SET deleted_at = ? WHERE root = ? AND deleted_at IS NULL "
                    "AND path IN (SELECT path FROM gone_paths)", [now, root])
    finally:
        con.unregister("gone_paths")


def touch_present(con: duckdb.DuckDBPyConnection, root: str, now: datetime) -> None:
    """Everything still present was seen now: files, their current versions, symlinks not met are gone."""
    con.execute("UPDATE files SET last_seen = ? WHERE root = ? AND deleted_at IS NULL AND last_seen < ?",
                [now, root, now])
    con.execute("""UPDATE file_versions v SET last_seen = f.last_seen FROM files f
                   WHERE f.root = ? AND f.deleted_at IS NULL AND v.root = f.root AND v.path = f.path
                     AND v.sha256 = f.sha256 AND v.last_seen < f.last_seen""", [root])
    con.execute("UPDATE symlinks SET deleted_at = ? WHERE root = ? AND deleted_at IS NULL AND last_seen < ?",
                [now, root, now])


def unit_state(con: duckdb.DuckDBPyConnection, root: str, only_ok: bool,
               folders: bool = False) -> dict[tuple[str, str], tuple[str, int]]:
    """(crawler, unit) -> (fingerprint, crawler version) of the live (folder) units of ``root``."""
    sql = "SELECT crawler, unit, fingerprint, crawler_version FROM units WHERE root = ? AND deleted_at IS NULL"
    if folders:
        sql += " AND is_dir"
    if only_ok:
        sql += " AND status = 'ok'"
    return {(c, u): (fp, v) for c, u, fp, v in con.execute(sql, [root]).fetchall()}


def retire_units(con: duckdb.DuckDBPyConnection, root: str, crawlers: set[str], seen_folders: set[tuple[str, str]],
                 gone: list[str], now: datetime, scopes: list[str] | None = None) -> None:
    """Units of ``crawlers`` whose folder was not claimed this time or whose file is gone keep
    their rows, marked ``deleted_at``."""
    seen = pa.table({"crawler": pa.array([c for c, _ in seen_folders], pa.string()),
                     "unit": pa.array([u for _, u in seen_folders], pa.string())})
    con.register("seen_folders", seen)
    con.register("gone_paths", pa.table({"path": pa.array(gone, pa.string())}))
    con.register("running", pa.table({"crawler": pa.array(sorted(crawlers), pa.string())}))
    in_scope = _scope_sql(con, "unit", scopes)
    try:
        con.execute(f"""UPDATE units SET deleted_at = ?
                        WHERE root = ? AND deleted_at IS NULL AND crawler IN (SELECT crawler FROM running)
                          AND ((is_dir AND {in_scope}
                                AND (crawler, unit) NOT IN (SELECT (crawler, unit) FROM seen_folders))
                               OR (NOT is_dir AND unit IN (SELECT path FROM gone_paths)))""", [now, root])
    finally:
        for name in ("seen_folders", "gone_paths", "running", *(("scopes",) if scopes is not None else ())):
            con.unregister(name)


def file_claims(con: duckdb.DuckDBPyConnection, root: str, walked: pa.Table, rules: pa.Table,
                retry_failed: bool) -> list[tuple]:
    """Which crawlers claim which walked files by name, and whether each unit is up to date.

    Rules are lower-case suffixes (matched by equality on the name's last one or two
    extensions), exact names, or regexes (``rootcrawl.file_claim_rules``): equi-joins, so the
    cost grows with the files, not files x rules.  Returns ``(path, i, [(crawler, priority, current,
    declined)])`` (with the walk's row number) for the paths with a unit to read or a claim to decide, and one row with path
    NULL whose single item counts the up-to-date units nobody needs to ask.
    """
    # A regex given as a column is compiled again for every row; as a literal, once per query.
    regex_branches = "".join(
        f"""
                UNION ALL
                SELECT x.path, x.i, x.size, x.mtime_ns, x.inode, {_literal(r['crawler'])}, {int(r['priority'])},
                       {int(r['version'])} FROM x WHERE regexp_full_match(x.name, {_literal(r['value'])})"""
        for r in rules.to_pylist() if r["kind"] == "regex")
    con.register("walked", walked)
    con.register("rules", rules)
    try:
        return con.execute("""
            WITH w AS (
                SELECT path, i, size, mtime_ns, inode, lower(parse_filename(path)) AS name FROM walked),
            x AS (
                SELECT *, regexp_extract(name, '[.][^.]*$') AS ext1, regexp_extract(name, '[.][^.]*[.][^.]*$') AS ext2
                FROM w),
            cand AS (
                SELECT x.path, x.i, x.size, x.mtime_ns, x.inode, r.crawler, r.priority, r.version
                FROM x JOIN rules r ON r.kind = 'suffix1' AND r.value = x.ext1
                UNION ALL
                SELECT x.path, x.i, x.size, x.mtime_ns, x.inode, r.crawler, r.priority, r.version
                FROM x JOIN rules r ON r.kind = 'suffix2' AND r.value = x.ext2
                UNION ALL
                SELECT x.path, x.i, x.size, x.mtime_ns, x.inode, r.crawler, r.priority, r.version
                FROM x JOIN rules r ON r.kind = 'name' AND r.value = x.name
{regex_branches}),
            judged AS (
                SELECT c.path, c.i, c.crawler, c.priority,
                       u.unit IS NOT NULL AND (NOT ? OR u.status <> 'failed') AS current,
                       coalesce(u.status = 'declined', false) AS declined
                FROM cand c LEFT JOIN (SELECT * FROM units WHERE root = ? AND deleted_at IS NULL AND NOT is_dir) u
                  ON u.crawler = c.crawler AND u.unit = c.path AND u.crawler_version = c.version
                 AND u.fingerprint = concat(c.size, ':', c.mtime_ns, ':', c.inode))
            SELECT path, any_value(i), list((crawler, priority, current, declined)) FROM judged
            GROUP BY path HAVING bool_or(NOT current)
            UNION ALL
            SELECT NULL, NULL, [(NULL::VARCHAR, count(*)::BIGINT, true, false)] FROM judged
            WHERE current AND NOT declined"""
            .replace("{regex_branches}", regex_branches), [retry_failed, root]).fetchall()
    finally:
        con.unregister("walked")
        con.unregister("rules")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def close_root(con: duckdb.DuckDBPyConnection, root: str, deleted: list[str],
               retire: tuple[set[str], set[tuple[str, str]]] | None, now: datetime,
               scopes: list[str] | None = None) -> None:
    """End a root's crawl in one transaction: mark ``deleted``, touch what is present, retire units
    (``retire`` = running crawlers and the folder units seen; None when the delete guard refused)."""
    con.execute("BEGIN TRANSACTION")
    try:
        if deleted:
            mark_deleted(con, root, deleted, now)
        touch_present(con, root, now)
        if retire is not None:
            retire_units(con, root, *retire, deleted, now, scopes)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def folder_units(con: duckdb.DuckDBPyConnection, root: str) -> set[str]:
    """The folders of ``root`` that are live folder units of some crawler."""
    return {r[0] for r in con.execute(
        "SELECT DISTINCT unit FROM units WHERE root = ? AND is_dir AND deleted_at IS NULL", [root]).fetchall()}
