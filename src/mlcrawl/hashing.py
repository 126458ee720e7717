"""Content hashing: streamed SHA-256 (and DVC's MD5 in the same read) with a thread pool.

Small files are hashed inline: one pool future per small file costs more than the hash.
Large files go to a pool, where hashlib releases the GIL so both cores are busy.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from .fileaccess import open_binary

CHUNK = 1 << 20
INLINE_LIMIT = 1 << 20
# Contents up to this size are kept for the crawler that claimed the file, so it is read once.
KEEP_LIMIT = 64 << 20


@dataclass(frozen=True, slots=True)
class Digest:
    """The outcome of hashing one file; ``error`` is set when it could not be read."""

    sha256: str | None
    md5: str | None
    size_read: int
    changed: bool = False
    data: bytes | None = None
    error: OSError | None = None


def hash_file(path: str, size: int, mtime_ns: int, want_md5: bool = False, keep: bool = False) -> Digest:
    """Hash ``path``; report ``changed`` when it was modified while being read.

    ``keep`` returns the bytes too (for files up to KEEP_LIMIT) so a crawler need not re-read.
    Reads use ``f.read(n)``: a reused bytearray buffer slows ``readinto`` on some glibc builds.
    """
    sha = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False) if want_md5 else None
    total = 0
    kept: list[bytes] | None = [] if keep and size <= KEEP_LIMIT else None
    try:
        with open_binary(path) as f:  # O_NOFOLLOW|O_NONBLOCK: a FIFO swapped in never blocks
            while chunk := f.read(CHUNK if size > INLINE_LIMIT else max(size + 1, 1)):
                sha.update(chunk)
                if md5 is not None:
                    md5.update(chunk)
                if kept is not None:
                    kept.append(chunk)
                total += len(chunk)
            after = os.fstat(f.fileno())
    except OSError as exc:
        return Digest(None, None, total, error=exc)
    changed = total != size or after.st_size != size or after.st_mtime_ns != mtime_ns
    data = b"".join(kept) if kept is not None and not changed else None
    return Digest(sha.hexdigest(), md5.hexdigest() if md5 else None, total, changed, data)


def _hash_many(items: list[tuple[str, int, int, bool, bool]]) -> list[Digest]:
    return [hash_file(*item) for item in items]


class HashPool:
    """A thread pool hashing batches of files; use as a context manager."""

    def __init__(self, threads: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="mlcrawl-hash")

    def map_batch(self, items: list[tuple[str, int, int, bool, bool]]) -> list[Digest]:
        """Hash many files, in order: large files one future each, the small ones in one future.

        Small files cost Python (open, read, fstat) more than hashing, so threads hashing them at
        once only contend for the GIL: one thread does them in 2/3 of the time two take, while
        the others hash the large files, whose hashing releases the GIL.
        """
        futures: list[Future[list[Digest]]] = []
        small: list[tuple] = []
        order: list[tuple[int, int]] = []  # (future index, position within its chunk)
        for item in items:
            if item[1] > INLINE_LIMIT:
                order.append((len(futures), 0))
                futures.append(self._executor.submit(_hash_many, [item]))
                continue
            small.append(item)
            order.append((-1, len(small) - 1))
        small_future = self._executor.submit(_hash_many, small) if small else None
        results = [f.result() for f in futures]
        small_results = small_future.result() if small_future is not None else []
        return [results[i][0] if i >= 0 else small_results[j] for i, j in order]

    def __enter__(self) -> HashPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
