"""Per-unit limits: a crawler that loops forever or grows without bound fails its unit, not the crawl.

The time limit is a real-time interval timer (SIGALRM), which interrupts Python code between
bytecodes; it applies on the main thread (elsewhere, e.g. in a test's worker thread, the unit
runs unlimited).  Long C calls finish before the interruption lands, which is why every read
also has a size limit.
"""

from __future__ import annotations

import _thread
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class UnitTimeout(Exception):
    """A unit ran past its time limit."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise UnitTimeout inside the block once ``seconds`` have passed (0 = no limit)."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise UnitTimeout(f"unit took longer than the per-unit limit of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class UnitMemoryExceeded(MemoryError):
    """A unit grew the process by more than its memory budget."""


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int | None:
    """The process's resident set size (Linux ``/proc/self/statm``), or None where unknown."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


class MemoryGuard:
    """The per-unit memory budget: one sampling thread per crawl, armed around each unit.

    Growth of the resident set beyond the budget during a unit interrupts the main thread with
    ``UnitMemoryExceeded`` (between bytecodes, like the time limit).  A single C call that
    allocates gigabytes at once cannot be interrupted: the read limits bound those, and the
    budget catches the slow growth of a parser building a huge structure.
    """

    def __init__(self, budget: int | None, interval: float = 0.05) -> None:
        self.budget, self.interval = budget, interval
        self._baseline: int | None = None
        # Which unit the sampler found over budget: a late interrupt never fails the next unit.
        self._unit = 0
        self._tripped = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> MemoryGuard:
        if self.budget and resident_bytes() is not None:
            self._thread = threading.Thread(target=self._sample, name="mlcrawl-memory-guard", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @contextmanager
    def unit(self) -> Iterator[None]:
        """Raise UnitMemoryExceeded inside the block once it grew the process past the budget."""
        if self._thread is None or threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGUSR1, self._expire)
        self._unit += 1
        self._baseline = resident_bytes()
        try:
            yield
        finally:
            self._baseline = None
            signal.signal(signal.SIGUSR1, previous)

    def _expire(self, signum, frame):
        if self._tripped != self._unit or self._baseline is None:
            return
        raise UnitMemoryExceeded(f"unit grew the process by more than its memory budget of {self.budget / 2**20:,.0f} MiB")

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            unit, baseline = self._unit, self._baseline
            if baseline is None or self._tripped == unit:
                continue
            current = resident_bytes()
            if current is not None and current - baseline > self.budget:
                self._tripped = unit
                _thread.interrupt_main(signal.SIGUSR1)
