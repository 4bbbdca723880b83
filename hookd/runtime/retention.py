"""Retention: what is older than `storage.retention` and finished is deleted, and the
database file gives the space back.

Rules:
- Only finished deliveries (succeeded, failed, cancelled) whose last change is older than
  the retention are deleted, with their attempts. An event is deleted once it has no
  delivery left and arrived before the retention. A pending delivery, and so its event,
  is never touched. Events are swept in arrival order, up to the first one still within
  the retention.
- The work is cut into small write transactions (BATCH deliveries, SWEEP events,
  VACUUM_PAGES pages; measured here, 100 deliveries with their attempts and events took
  1.3-2 ms, fsync included, and 32 pages of vacuum 0.3 ms). After each, the purge
  sleeps at least PAUSE, and long enough that it spends at most SHARE of its time on
  its writes (waiting for them included): ingest writes wait behind one small batch at
  most, and a busy writer or CPU slows the purge down.
- After deleting, `PRAGMA incremental_vacuum` (the database is made with
  `auto_vacuum = incremental`) gives the free pages back in steps, and a passive WAL
  checkpoint lets SQLite truncate the file to what is left.
- Time is an input: a round deletes what is older than `now - retention`, with `now` from
  the daemon's Clock (or given by the caller). A round runs at start-up, then every
  tenth of the retention, at most every INTERVAL. A retention of 0 keeps everything.
- A round first looks, with a read, whether it has anything to do: one with nothing to
  delete and no free page writes nothing. One info line per round that deleted
  something; a storage failure is a warning, and the round is tried again at the next
  interval.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

import trio

from hookd.db.backend import Backend
from hookd.db.errors import StorageError
from hookd.runtime.clock import Clock

log = logging.getLogger("hookd.retention")
T = TypeVar("T")

BATCH = 100  # deliveries deleted per write, with their attempts and events
SWEEP = 1000  # events looked at per write by the sweep
VACUUM_PAGES = 32  # free pages given back per write (256 KiB at 8 KiB pages)
PAUSE = 0.005  # seconds the writer is left to others between two writes, at least
SHARE = 0.25  # of the time, at most, that a purge spends waiting for or in its writes
INTERVAL = 3600.0  # seconds between rounds, at most


@dataclass(slots=True)
class Totals:
    """What a round deleted, and the free pages it gave back."""

    deliveries: int = 0
    attempts: int = 0
    events: int = 0
    pages: int = 0

    @property
    def rows(self) -> int:
        return self.deliveries + self.attempts + self.events


class Retention:
    """Deletes old finished records from `store`; `run` is the daemon's background task."""

    def __init__(self, store: Backend, clock: Clock, keep: float) -> None:
        self.store = store
        self.clock = clock
        self.keep = keep
        self.interval = min(INTERVAL, max(1.0, keep / 10))

    async def run(self) -> None:
        """A round now and then every `interval`, until cancelled (nothing if keep is 0)."""
        if not self.keep:
            return
        while True:
            try:
                await self.purge(self.clock.now())
            except StorageError as exc:
                log.warning("action=retention.failed error=%s", exc)
            await trio.sleep(self.interval)

    async def purge(self, now: float) -> Totals:
        """One round: delete what finished before `now - keep`, give the space back."""
        began = trio.current_time()
        cutoff = now - self.keep
        totals = Totals()
        due = await self.store.retention_due(cutoff)
        more = due.deliveries
        while more:
            purged = await self._paced(self.store.purge_finished(cutoff, BATCH))
            totals.deliveries += purged.deliveries
            totals.attempts += purged.attempts
            totals.events += purged.events
            more = purged.deliveries == BATCH
        after: int | None = 0 if due.events else None
        while after is not None:
            deleted, after = await self._paced(self.store.sweep_events(cutoff, after, SWEEP))
            totals.events += deleted
        if due.free_pages or totals.rows:
            totals.pages = await self._give_back()
        if totals.rows:
            log.info(
                "action=retention.purged deliveries=%d attempts=%d events=%d pages_freed=%d "
                "seconds=%.1f",
                totals.deliveries,
                totals.attempts,
                totals.events,
                totals.pages,
                trio.current_time() - began,
            )
        return totals

    async def _give_back(self) -> int:
        """Vacuum until no page is free; how many were given back."""
        total = 0
        while True:
            freed, left = await self._paced(self.store.vacuum(VACUUM_PAGES))
            total += freed
            if not freed or not left:
                break
        if total:
            await self.store.checkpoint()
        return total

    async def _paced(self, write: Awaitable[T]) -> T:
        """Await `write`, then leave the writer (and the CPU) to others: SHARE at most."""
        began = trio.current_time()
        result = await write
        took = trio.current_time() - began
        await trio.sleep(max(PAUSE, took * (1 - SHARE) / SHARE))
        return result
