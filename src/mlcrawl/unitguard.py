"""The per-unit time limit: a crawler that loops forever fails its unit, not the crawl.

The limit is a real-time interval timer (SIGALRM), which interrupts Python code between
bytecodes; it applies on the main thread (elsewhere, e.g. in a test's worker thread, the unit
runs unlimited).  Long C calls finish before the interruption lands, which is why every read
also has a size limit.
"""

from __future__ import annotations

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
