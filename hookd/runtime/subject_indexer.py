"""The subject indexer: fills the subject index's table behind ingest, with the time the
writer has to spare (db.subjects.catch_up).

Rules (docs/ARCHITECTURE.md, "Storage"; README, "Personal data"):
- Ingest stores each event's subject hashes in its row and nothing more; a lookup reads
  the events the table does not cover yet one by one. The indexer keeps that tail short
  without slowing ingest: it writes only while no other write waits, CHUNK events at a
  time (a few milliseconds of the writer), and after each write sleeps long enough that
  it spends at most SHARE of its time on them. Under a load that keeps the writer busy
  it waits; the tail is indexed once the load eases.
- Caught up, it looks again every IDLE seconds. A storage failure is a warning, and the
  work is tried again IDLE seconds later.
"""

from __future__ import annotations

import logging

import trio

from hookd.db.backend import Backend
from hookd.db.errors import StorageError

log = logging.getLogger("hookd.subjects")

CHUNK = 500  # events indexed per write
SHARE = 0.25  # of its time, at most, spent in its writes
PAUSE = 0.005  # seconds between two looks at whether the writer is free
IDLE = 1.0  # seconds between two looks once caught up


class SubjectIndexer:
    """Indexes what ingest stored; `run` is the daemon's background task."""

    def __init__(self, store: Backend) -> None:
        self.store = store

    async def run(self) -> None:
        """Catch up, then again every IDLE seconds, until cancelled."""
        while True:
            try:
                await self.catch_up()
            except StorageError as exc:
                log.warning("action=subjects.index_failed error=%s", exc)
            await trio.sleep(IDLE)

    async def catch_up(self) -> int:
        """Index every event stored so far, a chunk at a time while the writer is free;
        how many events that covered."""
        total = 0
        while True:
            if self.store.writes_pending():  # the writer is someone else's just now
                await trio.sleep(PAUSE)
                continue
            began = trio.current_time()
            covered = await self.store.index_subjects(CHUNK)
            total += covered
            if covered < CHUNK:
                return total
            took = trio.current_time() - began
            await trio.sleep(max(PAUSE, took * (1 - SHARE) / SHARE))
