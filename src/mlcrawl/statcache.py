"""The stat cache: what the catalog knows about a root's files, streamed in path order.

The catalog's rows are exported once per crawl to a temporary Parquet file and read back in
batches, merged with the walk (which yields paths in the same order).  Neither side is held in
memory, so a crawl's memory does not grow with the tree.  Paths the walk passed over are the
deletion candidates; they are spooled to another Parquet file for the final update.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .catalog import Catalog

_BATCH = 8192


@dataclass(frozen=True, slots=True)
class Cached:
    """The catalog's view of one path."""

    path: str
    size: int
    mtime_ns: int
    inode: int
    sha256: str | None
    md5: str | None
    hash_note: str | None
    first_seen: datetime | None
    deleted: bool

    def same_stat(self, size: int, mtime_ns: int, inode: int) -> bool:
        """True when size, mtime_ns and inode are unchanged."""
        return self.size == size and self.mtime_ns == mtime_ns and self.inode == inode


class StatCache:
    """Merge-join of the walk with the catalog's rows for one root."""

    def __init__(self, catalog: Catalog, root: str, workdir: Path) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="mlcrawl-", dir=workdir))
        self._source = self._dir / "cache.parquet"
        with catalog.connect() as con:
            # ORDER BY path with binary collation matches Python's str ordering.
            con.execute(
                f"""COPY (SELECT path, size, mtime_ns, inode, sha256, md5, hash_note, first_seen,
                                 deleted_at IS NOT NULL AS deleted
                          FROM files WHERE root = ? ORDER BY path)
                    TO '{self._source}' (FORMAT parquet)""",
                [root],
            )
        self.present_before = pq.read_metadata(self._source).num_rows and self._count_present()
        self._rows = self._iterate()
        self._current: Cached | None = next(self._rows, None)
        self._gone_writer: pq.ParquetWriter | None = None
        self._gone_batch: list[str] = []
        self.gone = 0

    def _count_present(self) -> int:
        table = pq.read_table(self._source, columns=["deleted"])
        return int(len(table) - pc.sum(table["deleted"]).as_py())

    def _iterate(self) -> Iterator[Cached]:
        for batch in pq.ParquetFile(self._source).iter_batches(batch_size=_BATCH):
            for row in batch.to_pylist():
                yield Cached(**row)

    def lookup(self, rel: str) -> Cached | None:
        """The cached row for ``rel``; rows before it that the walk skipped become deletion candidates."""
        while self._current is not None and self._current.path < rel:
            self._note_gone(self._current)
            self._current = next(self._rows, None)
        if self._current is not None and self._current.path == rel:
            found, self._current = self._current, next(self._rows, None)
            return found
        return None

    def finish(self) -> None:
        """The walk is over: every remaining row is a deletion candidate."""
        while self._current is not None:
            self._note_gone(self._current)
            self._current = next(self._rows, None)
        self._flush_gone()
        if self._gone_writer is not None:
            self._gone_writer.close()

    def _note_gone(self, row: Cached) -> None:
        if row.deleted:
            return
        self.gone += 1
        self._gone_batch.append(row.path)
        if len(self._gone_batch) >= _BATCH:
            self._flush_gone()

    def _flush_gone(self) -> None:
        if not self._gone_batch:
            return
        table = pa.table({"path": pa.array(self._gone_batch, pa.string())})
        if self._gone_writer is None:
            self._gone_writer = pq.ParquetWriter(self.gone_file, table.schema)
        self._gone_writer.write_table(table)
        self._gone_batch = []

    @property
    def gone_file(self) -> Path:
        """Parquet file listing the paths the walk no longer found."""
        return self._dir / "gone.parquet"

    def close(self) -> None:
        """Remove the temporary files."""
        for name in os.listdir(self._dir):
            os.unlink(self._dir / name)
        os.rmdir(self._dir)
