"""The subject indexer: fills the subject index's table behind ingest, with the time the
writer has to spare (db.subjects.catch_up).

Rules (docs/ARCHITECTURE.md, "Storage"; README, "Personal data"):
- Ingest stores each event's subject hashes in its row and nothing more; a lookup reads
  the events the table does not cover yet one by one. The indexer keeps that tail short
  without slowing ingest: it writes only once no other write waits or runs, CHUNK events
  at a time (a few milliseconds of the writer), and after each write sleeps long enough
  that it spends at most SHARE of its time on them. Under a load that keeps the writer
  busy it waits; the tail is indexed once the load eases.
- A bulk import (events stored faster than BULK_RATE a second, over the last second:
  batches; single events do not come that fast) has the CPU to itself: the indexer waits
  until it ends, or until BULK_TAIL events wait to be indexed, which bounds what a lookup
  reads row by row. The rate is counted on trio's clock, from what the service reports.
- It works when there is work: once at start (what a previous run left), then each time
  the service says events were stored (`wake`), at most once every GATHER seconds, so a
  steady trickle of events is indexed in one write per GATHER, not one per event. An
  idle daemon gets no write from it.
  A storage failure is a warning, and the work is tried again RETRY seconds later.
"""

from __future__ import annotations

import logging
from collections import deque

import trio

from hookd.db.backend import Backend
from hookd.db.errors import StorageError

log = logging.getLogger("hookd.subjects")

CHUNK = 500  # events indexed per write
SHARE = 0.25  # of its time, at most, spent in its writes
PAUSE = 0.005  # seconds between two writes, at least
RETRY = 1.0  # seconds before trying again after a storage failure
BULK_RATE = 5_000  # events stored a second above which indexing waits (a bulk import)
BULK_TAIL = 250_000  # events left to index at which it stops waiting
RATE_WINDOW = 1.0  # seconds over which the rate is counted
GATHER = 0.5  # seconds at least from one catch-up to the next


class SubjectIndexer:
    """Indexes what ingest stored; `run` is the daemon's background task."""

    def __init__(self, store: Backend) -> None:
        self.store = store
        self._work = trio.Event()
        self._work.set()  # what a previous run left
        self._stored: deque[tuple[float, int]] = deque()  # (when, events) in the window
        self._in_window = 0  # the events `_stored` counts
        # Events stored since the indexer last caught up (an estimate: what a previous
        # run left is not counted; it is indexed at start, or once an import has ended).
        self.tail = 0

    def wake(self, events: int) -> None:
        """`events` naming someone were stored: index them when the writer is free."""
        now = trio.current_time()
        self._forget_before(now - RATE_WINDOW)
        self._stored.append((now, events))
        self._in_window += events
        self.tail += events
        self._work.set()

    def _forget_before(self, since: float) -> None:
        while self._stored and self._stored[0][0] < since:
            self._in_window -= self._stored.popleft()[1]

    def import_wait(self) -> float:
        """Seconds until the events stored over the last RATE_WINDOW fall to BULK_RATE,
        if no more come (0: no bulk import runs)."""
        now = trio.current_time()
        self._forget_before(now - RATE_WINDOW)
        left, wait = self._in_window, 0.0
        for when, events in self._stored:
            if left <= BULK_RATE * RATE_WINDOW:
                break
            left -= events
            wait = when + RATE_WINDOW - now
        return wait

    async def run(self) -> None:
        """Catch up whenever woken, until cancelled."""
        while True:
            await self._work.wait()
            self._work = trio.Event()
            try:
                await self.catch_up()
            except StorageError as exc:
                log.warning("action=subjects.index_failed error=%s retry_in=%gs", exc, RETRY)
                await trio.sleep(RETRY)
                self._work.set()
            else:
                await trio.sleep(GATHER)  # what is stored meanwhile goes in one write

    async def catch_up(self) -> int:
        """Index every event stored so far, a chunk at a time while the writer is free
        and no bulk import runs; how many events that covered (a read first: nothing to
        do writes nothing)."""
        total = 0
        if not await self.store.subjects_behind():
            self.tail = 0
            return total
        while True:
            wait = self.import_wait()
            while wait and self.tail < BULK_TAIL:  # looked at again as the tail grows
                await trio.sleep(min(wait, RATE_WINDOW / 4))
                wait = self.import_wait()
            await self.store.until_no_writes()
            began = trio.current_time()
            covered = await self.store.index_subjects(CHUNK)
            total += covered
            self.tail = max(0, self.tail - covered)
            if covered < CHUNK:
                self.tail = 0
                return total
            took = trio.current_time() - began
            await trio.sleep(max(PAUSE, took * (1 - SHARE) / SHARE))
