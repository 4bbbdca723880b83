"""Retention's writes: purging finished deliveries with their attempts and emptied
events, sweeping events, and giving free pages back (the policy: `runtime.retention`).

Rules (docs/ARCHITECTURE.md, "Storage"):
- Only finished deliveries are purged, through the partial index `deliveries_finished`,
  oldest last change first; a pending delivery, and so its event, is never touched.
- Events are swept in `seq` order (arrival order), up to the first one received since
  the cutoff; an event goes only once it has no delivery left, and its subject index
  rows with it.
- Each call is one small write; a query returns one row, not one per record (each row
  costs the writer thread a GIL hand-off), with ids as JSON arrays.
"""

from __future__ import annotations

import apsw

from hookd.db import subjects
from hookd.db.rows import first
from hookd.db.types import Purged, RetentionDue

# Whether a round has deliveries to purge, and events to sweep (the first one is old).
RETENTION_DUE = """
    SELECT
        EXISTS (SELECT 1 FROM deliveries INDEXED BY deliveries_finished
                WHERE status <> 'pending' AND updated_at < ?1),
        EXISTS (SELECT 1 FROM events
                WHERE seq = (SELECT min(seq) FROM events) AND received_at < ?1)
"""

# One row (not one per delivery: each row costs the writer thread a GIL hand-off): how
# many, their ids, and their events' seqs, as JSON arrays.
PURGE_FINISHED = """
    SELECT count(*), json_group_array(id), json_group_array(DISTINCT event_seq) FROM (
        SELECT id, event_seq FROM deliveries INDEXED BY deliveries_finished
        WHERE status <> 'pending' AND updated_at < :cutoff
        ORDER BY updated_at LIMIT :limit
    )
"""
PURGE_ATTEMPTS = "DELETE FROM attempts WHERE delivery_id IN (SELECT value FROM json_each(?))"
PURGE_DELIVERIES = "DELETE FROM deliveries WHERE id IN (SELECT value FROM json_each(?))"
# Events among the given ones that are old and have no delivery left.
PURGE_EMPTIED_EVENTS = """
    DELETE FROM events WHERE seq IN (SELECT value FROM json_each(:seqs))
      AND received_at < :cutoff
      AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_seq = events.seq)
    RETURNING seq, subjects
"""
# Of the next :limit events in arrival order, those before the first one received since
# :cutoff: how many, the last seq, and the seqs of those without deliveries (one row).
SWEEP_EVENTS = """
    WITH next AS (
        SELECT seq, received_at FROM events WHERE seq > :after ORDER BY seq LIMIT :limit
    ), old AS (
        SELECT seq FROM next
        WHERE seq < coalesce((SELECT min(seq) FROM next WHERE received_at >= :cutoff), 1 << 62)
    )
    SELECT count(*), max(seq), json_group_array(seq) FILTER (
        WHERE NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_seq = old.seq)
    ) FROM old
"""
DELETE_EVENTS = """
    DELETE FROM events WHERE seq IN (SELECT value FROM json_each(?)) RETURNING seq, subjects
"""
FREE_PAGES = "PRAGMA freelist_count"
CHECKPOINT = "PRAGMA wal_checkpoint(PASSIVE)"


def incremental_vacuum(pages: int) -> str:
    """Give at most `pages` free pages back to the file system (one row per page)."""
    return f"PRAGMA incremental_vacuum({int(pages)})"


def due(conn: apsw.Connection, cutoff: float) -> RetentionDue:
    """What a retention round with `cutoff` has to do, found without writing."""
    deliveries, events = first(conn, RETENTION_DUE, (cutoff,)) or (0, 0)
    free: int = conn.pragma("freelist_count")
    return RetentionDue(deliveries=bool(deliveries), events=bool(events), free_pages=free)


def purge_finished(conn: apsw.Connection, cutoff: float, limit: int) -> Purged:
    """Delete up to `limit` deliveries finished before `cutoff` (oldest first), their
    attempts, and those of their events received before `cutoff` left with none."""
    params = {"cutoff": cutoff, "limit": limit}
    count, ids, seqs = first(conn, PURGE_FINISHED, params) or (0, "[]", "[]")
    if not count:
        return Purged()
    conn.execute(PURGE_ATTEMPTS, (ids,))
    attempts = conn.changes()
    conn.execute(PURGE_DELIVERIES, (ids,))
    gone = list(conn.execute(PURGE_EMPTIED_EVENTS, {"seqs": seqs, "cutoff": cutoff}))
    subjects.forget(conn, gone)
    return Purged(deliveries=count, attempts=attempts, events=len(gone))


def sweep_events(
    conn: apsw.Connection, cutoff: float, after: int, limit: int
) -> tuple[int, int | None]:
    """Delete the events without deliveries among the next `limit` after seq `after`,
    stopping at the first one received since `cutoff`; how many were deleted and the
    seq to go on after, or None at the end."""
    params = {"after": after, "limit": limit, "cutoff": cutoff}
    seen, last, doomed = first(conn, SWEEP_EVENTS, params) or (0, None, "[]")
    deleted = 0
    if doomed != "[]":
        gone = list(conn.execute(DELETE_EVENTS, (doomed,)))
        subjects.forget(conn, gone)
        deleted = len(gone)
    return deleted, (last if seen == limit else None)


def vacuum(conn: apsw.Connection, pages: int) -> tuple[int, int]:
    """Give up to `pages` free pages back; how many were, and how many stay free."""
    freed = sum(1 for _ in conn.execute(incremental_vacuum(pages)))  # a row a page
    free: int = conn.pragma("freelist_count")
    return freed, free


def checkpoint(conn: apsw.Connection) -> None:
    """Copy the WAL into the database file without waiting for anyone."""
    for _ in conn.execute(CHECKPOINT):
        pass
