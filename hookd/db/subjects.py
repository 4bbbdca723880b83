"""The subject index: which events name a person (keyed hashes, `domain.subjects`), what
hookd holds about them, and their erasure.

Rules (docs/ARCHITECTURE.md, "Storage"; README, "Personal data"):
- `subjects` holds (event seq, hash) pairs, never a value in clear; they are written in
  the transaction that stores the event (`events.ingest`) and deleted with it
  (retention, erasure).
- Several selectors select the events that match any of them.
- Erasure, per batch of events: each body becomes a tombstone (the envelope's `event`
  and `timestamp`, no `data`), each pending delivery ends `erased` (never attempted
  again: the scheduler only sends pending ones), the response excerpts of their
  attempts are dropped and their subject rows deleted. Statistics are not touched.
  The writer connection runs with `secure_delete` (db.engine), so what is replaced is
  overwritten with zeros, not left in free space.
- The audit log records an erasure: its counts and the selectors' hashes, never values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import apsw
import msgspec

from hookd.db.rows import Row, newest_first
from hookd.domain import views


def _hash_params(hashes: Sequence[bytes]) -> tuple[str, dict[str, Any]]:
    """`hash IN (...)` with a named parameter per hash."""
    names = [f":h{n}" for n in range(len(hashes))]
    params = {name[1:]: h for name, h in zip(names, hashes, strict=True)}
    return f"hash IN ({', '.join(names)})", params


INSERT_SUBJECT = "INSERT OR IGNORE INTO subjects (event_seq, hash) VALUES (?, ?)"
DELETE_SUBJECTS_OF = "DELETE FROM subjects WHERE event_seq IN (SELECT value FROM json_each(?))"
# The subject rows of events that retention deleted among the given seqs.
DELETE_SUBJECTS_GONE = """
    DELETE FROM subjects WHERE event_seq IN (SELECT value FROM json_each(?))
      AND NOT EXISTS (SELECT 1 FROM events e WHERE e.seq = subjects.event_seq)
"""
TOMBSTONE = """
    UPDATE events SET body = CAST(json_object('event', type, 'timestamp', timestamp) AS BLOB)
    WHERE seq IN (SELECT value FROM json_each(?))
"""
ERASE_PENDING = """
    UPDATE deliveries SET status = 'erased', next_attempt_at = NULL, updated_at = ?2
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


def index(conn: apsw.Connection, rows: Sequence[tuple[int, bytes]]) -> None:
    """Store (event seq, hash) pairs, in the transaction storing their events."""
    if rows:
        conn.executemany(INSERT_SUBJECT, rows)


def forget_deleted(conn: apsw.Connection, seqs: str) -> None:
    """Delete the subject rows of the events among `seqs` (a JSON array) now gone."""
    conn.execute(DELETE_SUBJECTS_GONE, (seqs,))


def event_seqs(conn: apsw.Connection, hashes: Sequence[bytes]) -> list[int]:
    """The seqs of the events any of `hashes` names, in arrival order."""
    where, params = _hash_params(hashes)
    query = f"SELECT DISTINCT event_seq FROM subjects WHERE {where} ORDER BY event_seq"
    return [row[0] for row in conn.execute(query, params)]


def list_page(
    conn: apsw.Connection, hashes: Sequence[bytes], limit: int, before: int | None
) -> views.Page[views.SubjectEvent]:
    """The events any of `hashes` names, newest first, each with its deliveries."""
    where, params = _hash_params(hashes)
    query = f"""
        SELECT seq, id, type, timestamp, received_at, body FROM events
        WHERE seq IN (SELECT event_seq FROM subjects WHERE {where})
          AND seq < :before ORDER BY seq DESC LIMIT :limit
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


def erase(
    conn: apsw.Connection, seqs: Sequence[int], now: float
) -> tuple[int, list[tuple[int, str]], int]:
    """Erase the events at `seqs`: how many events were, the (id, endpoint) of the
    pending deliveries that ended `erased`, and how many excerpts were dropped."""
    seq_list = msgspec.json.encode(list(seqs))
    conn.execute(TOMBSTONE, (seq_list,))
    events = conn.changes()
    erased = [(row[0], row[1]) for row in conn.execute(ERASE_PENDING, (seq_list, now))]
    conn.execute(DROP_EXCERPTS, (seq_list,))
    excerpts = conn.changes()
    conn.execute(DELETE_SUBJECTS_OF, (seq_list,))
    return events, erased, excerpts


def audit(conn: apsw.Connection, now: float, origin: str, fields: Sequence[str]) -> None:
    """Record an erasure in the audit log (counts and selector hashes only)."""
    conn.execute(INSERT_AUDIT, (now, origin, msgspec.json.encode(list(fields)).decode()))
