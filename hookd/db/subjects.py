"""The subject index: which events name a person (keyed hashes, `domain.subjects`), what
hookd holds about them, and their erasure.

Rules (docs/ARCHITECTURE.md, "Storage"; README, "Personal data"):
- An event's hashes (never a value in clear) are stored with it, in its row
  (`events.subjects`, 16 bytes each), by the transaction that stores it. The `subjects`
  table, which finds them by hash, is filled behind ingest (`catch_up`, run by
  runtime.subject_indexer when the writer has nothing else to do): keyed (part, hash,
  event seq) with part = seq >> 10, up to `subject_index.done_seq`. Its rows go with
  their event (retention, erasure), found from the event's row.
- A lookup reads `done_seq` first, then the events after it (their rows, compared in
  Python), then the table: whatever the indexer commits meanwhile, no event is missed.
  Several selectors select the events that match any of them.
- Erasure, per batch of events, in steps of an engine background job (`Eraser`: SLICE
  events at a time, a step ending between two slices when other writes wait, the next
  step going on from there): each body becomes a tombstone (the envelope's `event`
  and `timestamp`, no `data`), each pending delivery ends `erased` (never attempted
  again: the scheduler only sends pending ones), the response excerpts of their
  attempts are dropped and their subject rows deleted. Statistics are not touched.
  The writer connection runs with `secure_delete` (db.engine), so what is replaced is
  overwritten with zeros, not left in free space.
- The audit log records an erasure: its counts and the selectors' hashes, never values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import apsw
import msgspec

from hookd.db.rows import Row, first, newest_first
from hookd.domain import views
from hookd.domain.subjects import HASH_BYTES


def _matching(hashes: Sequence[bytes]) -> tuple[str, dict[str, Any]]:
    """A query of the seqs of the events any of `hashes` names, with its parameters.

    The table is keyed (part, hash, seq), part = seq >> 10: the query looks each hash up
    in every part the table spans, one search per part and hash."""
    names = [f":h{n}" for n in range(len(hashes))]
    params = {name[1:]: h for name, h in zip(names, hashes, strict=True)}
    query = f"""
        WITH RECURSIVE parts(n) AS (
            SELECT (SELECT min(part) FROM subjects)
            UNION ALL
            SELECT n + 1 FROM parts WHERE n < (SELECT max(part) FROM subjects)
        )
        SELECT s.event_seq FROM parts CROSS JOIN subjects s
        WHERE s.part = parts.n AND s.hash IN ({", ".join(names)})
    """
    return query, params


PART_BITS = 10  # the index is searched by hash within each run of 1024 seqs
SLICE = 5  # events an erasure writes between two looks at the writes waiting
# The index rows of the events stored from :first to :last, from their `subjects` column
# (:nth lists 0 .. the most hashes one of them has - 1): one statement for a whole ingest.
INDEX_EVENTS = """
    INSERT INTO subjects (part, hash, event_seq)
    SELECT e.seq >> 10, substr(e.subjects, 16 * n.value + 1, 16), e.seq
    FROM events e CROSS JOIN json_each(:nth) n
    WHERE e.seq BETWEEN :first AND :last AND 16 * n.value < length(e.subjects)
    ORDER BY 1, 2, 3
"""
DELETE_SUBJECT = "DELETE FROM subjects WHERE part = ? AND hash = ? AND event_seq = ?"
DONE_SEQ = "SELECT done_seq FROM subject_index"
BEHIND = "SELECT 1 FROM events WHERE seq > (SELECT done_seq FROM subject_index) LIMIT 1"
SET_DONE_SEQ = "UPDATE subject_index SET done_seq = ?"
NEXT_EVENTS = "SELECT seq FROM events WHERE seq > ? ORDER BY seq LIMIT 1 OFFSET ?"
REST_OF_EVENTS = "SELECT max(seq), count(*) FROM events WHERE seq > ?"
MOST_HASHES = "SELECT max(length(subjects)) FROM events WHERE seq > ? AND seq <= ?"
NOT_INDEXED = "SELECT seq, subjects FROM events WHERE seq > ? AND subjects IS NOT NULL"
SUBJECTS_OF = "SELECT seq, subjects FROM events WHERE seq IN (SELECT value FROM json_each(?))"
TOMBSTONE = """
    UPDATE events SET
        body = CAST(json_object('event', type, 'timestamp', timestamp) AS BLOB),
        subjects = NULL
    WHERE seq IN (SELECT value FROM json_each(?))
"""
# By the event's deliveries (INDEXED BY: without statistics SQLite would walk every
# pending delivery through deliveries_status, 240 ms a batch with 1,000,000 pending).
ERASE_PENDING = """
    UPDATE deliveries INDEXED BY deliveries_event
    SET status = 'erased', next_attempt_at = NULL, updated_at = ?2
    WHERE event_seq IN (SELECT value FROM json_each(?1)) AND status = 'pending'
    RETURNING id, endpoint_id
"""
DROP_EXCERPTS = """
    UPDATE attempts SET response_excerpt = x''
    WHERE delivery_id IN (SELECT id FROM deliveries
                          WHERE event_seq IN (SELECT value FROM json_each(?)))
      AND response_excerpt <> x''
"""
DELIVERIES_OF = """
    SELECT event_seq, id, endpoint_id, status FROM deliveries
    WHERE event_seq IN (SELECT value FROM json_each(?)) ORDER BY id
"""
INSERT_AUDIT = """
    INSERT INTO audit (at, origin, action, endpoint_id, fields)
    VALUES (?, ?, 'erase_subject', '', ?)
"""


def behind(conn: apsw.Connection) -> bool:
    """Whether events were stored after `done_seq` (the indexer has work)."""
    return first(conn, BEHIND, ()) is not None


def catch_up(conn: apsw.Connection, limit: int) -> int:
    """Index the hashes of up to `limit` events stored after `done_seq` (their `subjects`
    column) and move `done_seq` past them; how many events that covered."""
    [(done,)] = conn.execute(DONE_SEQ)
    nth = first(conn, NEXT_EVENTS, (done, limit - 1))
    upper, covered = (nth[0], limit) if nth else first(conn, REST_OF_EVENTS, (done,)) or (0, 0)
    if not covered:
        return 0
    [(most,)] = conn.execute(MOST_HASHES, (done, upper))
    if most:
        params = {
            "nth": msgspec.json.encode(list(range(most // HASH_BYTES))),
            "first": done + 1,
            "last": upper,
        }
        conn.execute(INDEX_EVENTS, params)
    conn.execute(SET_DONE_SEQ, (upper,))
    return int(covered)


def forget(conn: apsw.Connection, events: Sequence[tuple[int, bytes | None]]) -> None:
    """Delete the index rows of these events, given as (seq, their `subjects` column)."""
    rows = [
        (seq >> PART_BITS, hashes[at : at + HASH_BYTES], seq)
        for seq, hashes in events
        if hashes
        for at in range(0, len(hashes), HASH_BYTES)
    ]
    if rows:
        conn.executemany(DELETE_SUBJECT, rows)


def event_seqs(conn: apsw.Connection, hashes: Sequence[bytes]) -> list[int]:
    """The seqs of the events any of `hashes` names, in arrival order."""
    [(done,)] = conn.execute(DONE_SEQ)
    found = {
        seq
        for seq, stored in conn.execute(NOT_INDEXED, (done,))
        if any(_holds(stored, h) for h in hashes)
    }
    matching, params = _matching(hashes)
    found.update(row[0] for row in conn.execute(matching, params))
    return sorted(found)


def _holds(stored: bytes, digest: bytes) -> bool:
    """Whether the hashes of an event's row (16 bytes each) include `digest`."""
    at = stored.find(digest)
    while at >= 0:
        if at % HASH_BYTES == 0:
            return True
        at = stored.find(digest, at + 1)
    return False


def list_page(
    conn: apsw.Connection, hashes: Sequence[bytes], limit: int, before: int | None
) -> views.Page[views.SubjectEvent]:
    """The events any of `hashes` names, newest first, each with its deliveries."""
    params = {"seqs": msgspec.json.encode(event_seqs(conn, hashes))}
    query = """
        SELECT seq, id, type, timestamp, received_at, body FROM events
        WHERE seq IN (SELECT value FROM json_each(:seqs)) AND seq < :before
        ORDER BY seq DESC LIMIT :limit
    """
    seqs: list[int] = []

    def item(row: Row) -> views.SubjectEvent:
        seq, ident, kind, timestamp, received_at, body = row
        seqs.append(seq)
        return views.SubjectEvent(
            id=ident,
            event=kind,
            timestamp=timestamp,
            received_at=views.iso(received_at),
            erased=b'"data":' not in body,
            deliveries=[],
        )

    page = newest_first(conn, query, params, limit, before, item)
    by_seq = dict(zip(seqs, page.items, strict=True))
    for seq, ident, endpoint_id, status in conn.execute(
        DELIVERIES_OF, (msgspec.json.encode(seqs),)
    ):
        by_seq[seq].deliveries.append(views.SubjectDelivery(ident, endpoint_id, status))
    return page


class Eraser:
    """An erasure of the events at `seqs`, run in steps (an engine background job): each
    call erases SLICE events at a time until done, or until `stop()` says other writes
    wait; it returns None while some are left, then (events erased, the (id, endpoint)
    of the pending deliveries that ended `erased`, excerpts dropped). Should a step
    fail, `committed` lists the deliveries the steps before it ended `erased`."""

    def __init__(self, seqs: Sequence[int], now: float, stop: Callable[[], bool]) -> None:
        self._seqs, self._now, self._stop = seqs, now, stop
        self._covered = self._events = self._excerpts = 0
        self._erased: list[tuple[int, str]] = []
        self._before_step = 0  # of `_erased`: those of the steps committed

    @property
    def committed(self) -> list[tuple[int, str]]:
        """The deliveries ended `erased` by the steps committed (all but the last one
        called: the engine calls the next step only once the previous one committed)."""
        return self._erased[: self._before_step]

    def __call__(self, conn: apsw.Connection) -> tuple[int, list[tuple[int, str]], int] | None:
        self._before_step = len(self._erased)
        seqs, start = self._seqs, self._covered
        while self._covered < len(seqs) and not (self._covered > start and self._stop()):
            self._slice(conn, seqs[self._covered : self._covered + SLICE])
            self._covered += SLICE
        if self._covered < len(seqs):
            return None
        return self._events, self._erased, self._excerpts

    def _slice(self, conn: apsw.Connection, seqs: Sequence[int]) -> None:
        seq_list = msgspec.json.encode(list(seqs))
        indexed = [(row[0], row[1]) for row in conn.execute(SUBJECTS_OF, (seq_list,))]
        conn.execute(TOMBSTONE, (seq_list,))
        self._events += conn.changes()
        self._erased += [
            (row[0], row[1]) for row in conn.execute(ERASE_PENDING, (seq_list, self._now))
        ]
        conn.execute(DROP_EXCERPTS, (seq_list,))
        self._excerpts += conn.changes()
        forget(conn, indexed)


def audit(conn: apsw.Connection, now: float, origin: str, fields: Sequence[str]) -> None:
    """Record an erasure in the audit log (counts and selector hashes only)."""
    conn.execute(INSERT_AUDIT, (now, origin, msgspec.json.encode(list(fields)).decode()))
