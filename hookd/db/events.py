"""Events: ingest (each event with its deliveries, idempotently), the endpoint test's
event, and the events the API shows.

Rules (docs/ARCHITECTURE.md, "The path of an event"):
- Ingest is all or nothing for its events, in the caller's transaction: an event whose
  id or idempotency key is already stored (or came earlier in the same call) creates
  nothing and answers as it first did, marked `replayed`.
- Each new event gets one pending delivery, due at once, per enabled endpoint whose
  subscriptions match it (`endpoints.Routes`).
- Events and deliveries are inserted with one executemany each; the writer is the only
  one inserting, so their rowids are consecutive, which is checked. Each event's subject
  hashes go into its row; the subject index's table is filled later (`db.subjects`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import apsw
import msgspec

from hookd.db import deliveries, endpoints
from hookd.db.errors import StorageError
from hookd.db.rows import Row, first, newest_first
from hookd.db.types import Ingested, NewDelivery, NewEvent
from hookd.domain import views
from hookd.domain.envelope import PreparedEvent
from hookd.domain.errors import not_found

EVENT_BY_ID = "SELECT id, type, delivery_count FROM events WHERE id = ?"
EVENT_BY_KEY = """
    SELECT id, type, delivery_count FROM events INDEXED BY events_key
    WHERE idempotency_key = ? AND key_item = ?
"""
INSERT_EVENT = """
    INSERT INTO events (id, type, timestamp, received_at, body, idempotency_key, key_item,
                        delivery_count, subjects)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
EVENT_ID_AT = "SELECT id FROM events WHERE seq = ?"
EVENT_COLUMNS = "seq, id, type, timestamp, received_at, body"
GET_EVENT = f"SELECT {EVENT_COLUMNS} FROM events WHERE id = ?"


def list_events_query(by_type: bool, since: bool) -> str:
    """The listing query with only the filters given: `type = :type` written plainly so
    the index `events_type` serves it (`:type IS NULL OR ...` made SQLite scan every
    event, newest first, looking for a rare type)."""
    where = ["seq < :before"]
    where += ["type = :type"] if by_type else []
    where += ["received_at >= :since"] if since else []
    return (
        f"SELECT {EVENT_COLUMNS} FROM events WHERE {' AND '.join(where)}"
        " ORDER BY seq DESC LIMIT :limit"
    )


def ingest(
    conn: apsw.Connection, routes: endpoints.Routes, events: Sequence[NewEvent], now: float
) -> list[Ingested]:
    """Store events with their deliveries; what each did, in order."""
    router = routes.router(conn)
    results: list[Ingested] = []
    rows: list[tuple[Any, ...]] = []  # the new events, in order
    targets_of: list[Sequence[str]] = []  # and the endpoints each goes to
    by_id: dict[str, views.Accepted] = {}  # new in this call, for repeats within it
    by_key: dict[tuple[str, int], views.Accepted] = {}
    for event, fresh_id, key, item, hashes in events:
        earlier = None
        if key is not None:
            earlier = by_key.get((key, item)) or _accepted(conn, EVENT_BY_KEY, (key, item))
        if earlier is None and event.id is not None:
            earlier = by_id.get(event.id) or _accepted(conn, EVENT_BY_ID, (event.id,))
        if earlier is not None:
            results.append(Ingested(earlier, [], replayed=True))
            continue
        event_id = event.id or fresh_id
        targets = router.endpoints_for(event.event)
        accepted = by_id[event_id] = views.Accepted(event_id, event.event, len(targets))
        if key is not None:
            by_key[key, item] = accepted
        who = b"".join(hashes) or None
        rows.append(
            (event_id, event.event, event.timestamp, now, event.body, key, item, len(targets), who)
        )
        targets_of.append(targets)
        results.append(Ingested(accepted, []))
    if rows:
        _insert_new(conn, rows, targets_of, [r for r in results if not r.replayed], now)
    return results


def _insert_new(
    conn: apsw.Connection,
    rows: list[tuple[Any, ...]],
    targets_of: list[Sequence[str]],
    results: list[Ingested],
    now: float,
) -> None:
    """Insert events and their deliveries with one executemany each.

    In the writer's transaction nobody else inserts, and a rowid is one more than the
    largest before it, so the rows get consecutive rowids ending at the last one.
    """
    conn.executemany(INSERT_EVENT, rows)
    first_seq = conn.last_insert_rowid() - len(rows) + 1
    if first(conn, EVENT_ID_AT, (first_seq,)) != (rows[0][0],):
        raise StorageError("event rowids were not consecutive")
    created = [
        (first_seq + n, endpoint_id, now, now, now)
        for n, targets in enumerate(targets_of)
        for endpoint_id in targets
    ]
    if not created:
        return
    conn.executemany(deliveries.INSERT_DELIVERY, created)
    delivery_id = conn.last_insert_rowid() - len(created) + 1
    for result, targets in zip(results, targets_of, strict=True):
        for endpoint_id in targets:
            result.created.append(NewDelivery(delivery_id, endpoint_id, now))
            delivery_id += 1


def send_test(
    conn: apsw.Connection, endpoint_id: str, event: PreparedEvent, event_id: str, now: float
) -> Ingested:
    """Store `event` with one delivery, to `endpoint_id` alone (which must be enabled)."""
    endpoints.enabled(conn, endpoint_id, now)
    conn.execute(
        INSERT_EVENT,
        (event_id, event.event, event.timestamp, now, event.body, None, -1, 1, None),
    )
    seq = conn.last_insert_rowid()
    conn.execute(deliveries.INSERT_DELIVERY, (seq, endpoint_id, now, now, now))
    created = [NewDelivery(conn.last_insert_rowid(), endpoint_id, now)]
    return Ingested(views.Accepted(event_id, event.event, 1), created)


def get(conn: apsw.Connection, event_id: str) -> views.Event:
    """One event with its deliveries; 404 when unknown."""
    row = first(conn, GET_EVENT, (event_id,))
    if row is None:
        raise not_found(f"event {event_id!r}")
    event = _event(row)
    event.deliveries = deliveries.of_event(conn, row[0])
    return event


def list_page(
    conn: apsw.Connection,
    limit: int,
    before: int | None,
    event_type: str | None,
    since: float | None,
) -> views.Page[views.Event]:
    """Events newest first; `before` is the cursor of the previous page."""
    params = {"type": event_type, "since": since}
    query = list_events_query(event_type is not None, since is not None)
    return newest_first(
        conn, query, {k: v for k, v in params.items() if v is not None}, limit, before, _event
    )


def _accepted(conn: apsw.Connection, query: str, params: Row) -> views.Accepted | None:
    row = first(conn, query, params)
    return views.Accepted(*row) if row else None


_body_data = msgspec.json.Decoder(dict[str, msgspec.Raw])
_NO_DATA = msgspec.Raw(b"null")  # an erased event's tombstone has none


def _event(row: Row) -> views.Event:
    _seq, ident, kind, timestamp, received_at, body = row
    return views.Event(
        id=ident,
        event=kind,
        timestamp=timestamp,
        received_at=views.iso(received_at),
        data=_body_data.decode(body).get("data", _NO_DATA),
    )
