"""Wall-clock time that moves with trio's clock.

Rules: `now()` is Unix seconds, anchored to the real time once, when the clock is made
(inside trio), and advancing with `trio.current_time()` after that. Under trio's
`MockClock` it therefore advances virtually: a test's minutes pass in microseconds and
what is stored in the database stays consistent with what the scheduler waits for.
"""

from __future__ import annotations

import time

import trio


class Clock:
    """Unix time driven by trio's clock."""

    def __init__(self, start: float | None = None) -> None:
        wall = time.time() if start is None else start
        self._offset = wall - trio.current_time()

    def now(self) -> float:
        """The current Unix time."""
        return trio.current_time() + self._offset

    def trio_time(self, unix_seconds: float) -> float:
        """`unix_seconds` on trio's clock, for deadlines."""
        return unix_seconds - self._offset
