"""The subject indexer: fills the subject index's table behind ingest, with the time the
writer has to spare (db.subjects.catch_up).

Rules (docs/ARCHITECTURE.md, "Storage"; README, "Personal data"):
- Ingest stores each event's subject hashes in its row and nothing more; a lookup reads
  the events the table does not cover yet one by one. The indexer keeps that tail short
  without slowing ingest: it writes only once no other write waits or runs, CHUNK events
  at a time (a few milliseconds of the writer), and after each write sleeps long enough
  that it spends at most SHARE of its time on them. Under a load that keeps the writer
  busy it waits; the tail is indexed once the load eases.
- It works when there is work: once at start (what a previous run left), then each time
  the service says events were stored (`wake`). An idle daemon gets no write from it.
  A storage failure is a warning, and the work is tried again RETRY seconds later.
"""

from __future__ import annotations

import logging

import trio

from hookd.db.backend import Backend
from hookd.db.errors import StorageError

log = logging.getLogger("hookd.subjects")

CHUNK = 500  # events indexed per write
SHARE = 0.25  # of its time, at most, spent in its writes
PAUSE = 0.005  # seconds between two writes, at least
RETRY = 1.0  # seconds before trying again after a storage failure


class SubjectIndexer:
    """Indexes what ingest stored; `run` is the daemon's background task."""

    def __init__(self, store: Backend) -> None:
        self.store = store
        self._work = trio.Event()
        self._work.set()  # what a previous run left

    def wake(self) -> None:
        """Events were stored: index them when the writer is free."""
        self._work.set()

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

    async def catch_up(self) -> int:
        """Index every event stored so far, a chunk at a time while the writer is free;
        how many events that covered (a read first: nothing to do writes nothing)."""
        total = 0
        if not await self.store.subjects_behind():
            return total
        while True:
            await self.store.until_no_writes()
            began = trio.current_time()
            covered = await self.store.index_subjects(CHUNK)
            total += covered
            if covered < CHUNK:
                return total
            took = trio.current_time() - began
            await trio.sleep(max(PAUSE, took * (1 - SHARE) / SHARE))
