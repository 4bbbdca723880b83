"""Deliveries and their attempts: what the scheduler reads, recording attempts, and the
deliveries the API lists, shows, retries and replays.

Rules (docs/ARCHITECTURE.md, "Storage" and "The path of an event"):
- A delivery is due when `status = 'pending'` and `next_attempt_at <= now`; the
  scheduler's queries go through the partial index `deliveries_due` alone.
- Recording attempts is one write for a batch: each attempt is logged, its delivery
  moved on only while still pending (a cancelled one keeps its status, but counts the
  attempt's number), then counted into its endpoint's statistics and health
  (`stats.account`), which may disable the endpoint. An attempt of a delivery erased
  while it was out keeps no response excerpt.
- Retrying or replaying needs the endpoint enabled: a 409 otherwise, before any write. An
  `erased` delivery (its data subject erased) is never retried: a 409.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import apsw
import msgspec

from hookd.db import endpoints, stats
from hookd.db.rows import Row, first, newest_first
from hookd.domain import views
from hookd.domain.attempts import INTERRUPTED, AttemptRecord, Job
from hookd.domain.catalog import DisabledEndpoint, FailedDelivery
from hookd.domain.endpoints import Secrets
from hookd.domain.errors import conflict, not_found

INSERT_DELIVERY = """
    INSERT INTO deliveries (event_seq, endpoint_id, status, next_attempt_at,
                            created_at, updated_at)
    VALUES (?, ?, 'pending', ?, ?, ?)
"""
DELIVERY_COLUMNS = """
    d.id, e.id, e.type, d.endpoint_id, d.status, d.attempts, d.next_attempt_at,
    d.created_at, d.updated_at, d.last_status_code, d.last_error
"""
DELIVERIES_OF_EVENT = f"""
    SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN events e ON e.seq = d.event_seq
    WHERE d.event_seq = ? ORDER BY d.id
"""

# -- the scheduler ----------------------------------------------------------------------

ENDPOINTS_WITH_PENDING = "SELECT DISTINCT endpoint_id FROM deliveries WHERE status = 'pending'"
DUE_OF_ENDPOINT = """
    SELECT id, next_attempt_at FROM deliveries INDEXED BY deliveries_due
    WHERE status = 'pending' AND endpoint_id = :endpoint
      AND (next_attempt_at, id) > (:after_time, :after_id) AND next_attempt_at <= :until
    ORDER BY next_attempt_at, id LIMIT :limit
"""
NEXT_DUE_OF_ENDPOINT = """
    SELECT min(next_attempt_at) FROM deliveries INDEXED BY deliveries_due
    WHERE status = 'pending' AND endpoint_id = ? AND next_attempt_at > ?
"""
LOAD_JOBS = f"""
    SELECT d.id, d.endpoint_id, p.url, e.id, e.type, e.body, d.attempts, d.round_start,
        {endpoints.secret_columns("p")}
    FROM deliveries d
    JOIN events e ON e.seq = d.event_seq
    JOIN endpoints p ON p.id = d.endpoint_id
    WHERE d.id IN (SELECT value FROM json_each(?))
      AND d.status = 'pending' AND p.enabled = 1 AND p.deleted_at IS NULL
"""
# The answer's excerpt is not kept for a delivery erased while its attempt was out.
INSERT_ATTEMPT = """
    INSERT INTO attempts (delivery_id, number, started_at, duration_ms, status_code,
                          error_kind, error, response_excerpt)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, CASE WHEN EXISTS (
        SELECT 1 FROM deliveries WHERE id = ?1 AND status = 'erased') THEN x'' ELSE ?8 END)
"""
# An interrupted attempt (`:skip` 1) counts its number but not a step of the schedule:
# the next attempt's number within its round stays the one this attempt had.
FINISH_ATTEMPT = """
    UPDATE deliveries SET attempts = max(attempts, :number), round_start = round_start + :skip,
        status = :status, next_attempt_at = :next, updated_at = :now,
        last_status_code = :code, last_error = :error
    WHERE id = :id AND status = 'pending'
    RETURNING id
"""
# An attempt whose delivery left `pending` meanwhile (cancelled): its number still counts,
# so `attempts` and `X-Webhook-Attempt` never fall behind what was sent.
COUNT_ATTEMPT = """
    UPDATE deliveries SET attempts = max(attempts, ?) WHERE id = ? AND status <> 'pending'
"""

# -- deliveries through the API ----------------------------------------------------------

DELIVERY_FROM = "FROM deliveries d JOIN events e ON e.seq = d.event_seq"
GET_DELIVERY = f"SELECT {DELIVERY_COLUMNS} {DELIVERY_FROM} WHERE d.id = ?"
DELIVERY_FILTERS = {
    "status": "d.status = :status",
    "endpoint": "d.endpoint_id = :endpoint",
    "event": "d.event_seq = (SELECT seq FROM events WHERE id = :event)",
    "type": "e.type = :type",
    "since": "d.created_at >= :since",
    "until": "d.created_at < :until",
}
DELIVERIES_BY_ID = f"""
    SELECT {DELIVERY_COLUMNS} {DELIVERY_FROM}
    WHERE d.id IN (SELECT value FROM json_each(?)) ORDER BY d.id DESC
"""
ATTEMPTS_OF_DELIVERY = """
    SELECT number, started_at, duration_ms, status_code, error_kind, error, response_excerpt
    FROM attempts WHERE delivery_id = ? ORDER BY id
"""
DELIVERY_ENDPOINT_STATE = """
    SELECT d.endpoint_id, p.enabled, p.deleted_at, d.status FROM deliveries d
    JOIN endpoints p ON p.id = d.endpoint_id WHERE d.id = ?
"""
RETRY_DELIVERY = """
    UPDATE deliveries SET
        round_start = CASE WHEN status = 'pending' THEN round_start ELSE attempts END,
        status = 'pending', next_attempt_at = :now, updated_at = :now
    WHERE id = :id
"""
REPLAY_ENDPOINT = """
    UPDATE deliveries SET round_start = attempts, status = 'pending',
        next_attempt_at = :now, updated_at = :now
    WHERE endpoint_id = :endpoint AND status = :status AND created_at >= :since
"""


# With an event type, which table to walk first: the deliveries newest first, looking up
# each one's event (fast when the type is common, a scan of everything when it is rare),
# or the events of that type through `events_type`, then sorting their deliveries (fast
# when the type is rare). A type with at least 1 event in RARE_TYPE is walked the first way.
RARE_TYPE = 100
TYPE_COUNT = "SELECT count(*) FROM events WHERE type = ?"
EVENT_COUNT = "SELECT coalesce(max(seq), 0) FROM events"


def list_deliveries_query(filters: list[str], events_first: bool = False) -> str:
    """The listing query for the given filter names (keys of DELIVERY_FILTERS); the join
    order is forced (CROSS JOIN) when a type filter makes it matter."""
    where = " AND ".join(["d.id < :before", *(DELIVERY_FILTERS[name] for name in filters)])
    source = DELIVERY_FROM
    if "type" in filters:
        source = (
            "FROM events e CROSS JOIN deliveries d ON d.event_seq = e.seq"
            if events_first
            else "FROM deliveries d CROSS JOIN events e ON e.seq = d.event_seq"
        )
    return f"SELECT {DELIVERY_COLUMNS} {source} WHERE {where} ORDER BY d.id DESC LIMIT :limit"


def of_event(conn: apsw.Connection, seq: int) -> list[views.Delivery]:
    """The deliveries of the event stored at `seq`."""
    return [_delivery(row) for row in conn.execute(DELIVERIES_OF_EVENT, (seq,))]


# -- the scheduler ------------------------------------------------------------------------


def endpoints_with_pending(conn: apsw.Connection) -> list[str]:
    """Ids of the endpoints that have pending deliveries."""
    return [row[0] for row in conn.execute(ENDPOINTS_WITH_PENDING)]


def due_rows(
    conn: apsw.Connection, endpoint_id: str, after: tuple[float, int], until: float, limit: int
) -> tuple[list[tuple[int, float]], float | None]:
    """Up to `limit` (id, due) pairs of an endpoint's pending deliveries after `after` and
    due by `until`, and when fewer, the due time of the first one after `until`."""
    params = {
        "endpoint": endpoint_id,
        "after_time": after[0],
        "after_id": after[1],
        "until": until,
        "limit": limit,
    }
    rows = [(r[0], r[1]) for r in conn.execute(DUE_OF_ENDPOINT, params)]
    later = None
    if len(rows) < limit:
        later = first(conn, NEXT_DUE_OF_ENDPOINT, (endpoint_id, until))
    return rows, later[0] if later else None


def load_jobs(conn: apsw.Connection, delivery_ids: Sequence[int]) -> dict[int, Job]:
    """What the attempts of these deliveries need; those no longer due are left out."""
    jobs = {}
    for row in conn.execute(LOAD_JOBS, (msgspec.json.encode(list(delivery_ids)),)):
        ident, endpoint, url, event_id, kind, body, attempts, start, *secrets = row
        jobs[ident] = Job(
            delivery_id=ident,
            endpoint_id=endpoint,
            url=url,
            secrets=Secrets(*secrets),
            event_id=event_id,
            event_type=kind,
            body=body,
            attempt=attempts + 1,
            round_attempt=attempts - start + 1,
        )
    return jobs


def record(
    conn: apsw.Connection,
    routes: endpoints.Routes,
    pruner: stats.Pruner,
    records: Sequence[AttemptRecord],
    disable_after: float,
) -> tuple[list[bool], list[DisabledEndpoint], list[FailedDelivery]]:
    """Log attempts, move their deliveries on, and count them into endpoint health.

    Returns per record whether its delivery moved on, the endpoints this disabled, and
    the deliveries that ended failed (what to alert about).
    """
    conn.executemany(INSERT_ATTEMPT, [_attempt_row(r) for r in records])
    params = [_finish_params(r) for r in records]
    moved = {row[0] for row in conn.executemany(FINISH_ATTEMPT, params)}
    flags = [r.delivery_id in moved for r in records]
    if len(moved) < len(records):
        left = [(r.number, r.delivery_id) for r in records if r.delivery_id not in moved]
        conn.executemany(COUNT_ATTEMPT, left)
    disabled = stats.account(conn, routes, pruner, records, flags, disable_after)
    failed = [
        _failure(record)
        for record, moved_on in zip(records, flags, strict=True)
        if moved_on and record.status == "failed"
    ]
    return flags, disabled, failed


# -- deliveries through the API -----------------------------------------------------------


def list_page(
    conn: apsw.Connection, limit: int, before: int | None, filters: Mapping[str, str | float]
) -> views.Page[views.Delivery]:
    """Deliveries newest first, filtered by status, endpoint, event id, event type and/or
    creation time (`since` included, `until` not)."""
    events_first = False
    if "type" in filters:
        [(matching,)] = conn.execute(TYPE_COUNT, (filters["type"],))
        [(events,)] = conn.execute(EVENT_COUNT)
        events_first = matching * RARE_TYPE < events
    query = list_deliveries_query(sorted(filters), events_first)
    return newest_first(conn, query, dict(filters), limit, before, _delivery)


SIGNING_OF_DELIVERY = f"""
    SELECT p.url, e.body, {endpoints.secret_columns("p")}
    FROM deliveries d JOIN events e ON e.seq = d.event_seq
    JOIN endpoints p ON p.id = d.endpoint_id WHERE d.id = ?
"""


def signing_of(conn: apsw.Connection, delivery_id: int) -> tuple[str, bytes, Secrets] | None:
    """What a delivery is signed with: its endpoint's URL, the body and the secrets."""
    row = first(conn, SIGNING_OF_DELIVERY, (delivery_id,))
    if row is None:
        return None
    url, body, *secrets = row
    return url, body, Secrets(*secrets)


def by_id(conn: apsw.Connection, delivery_ids: Sequence[int]) -> list[views.Delivery]:
    """These deliveries (without their attempts), newest first; unknown ids left out."""
    rows = conn.execute(DELIVERIES_BY_ID, (msgspec.json.encode(list(delivery_ids)),))
    return [_delivery(row) for row in rows]


def get(conn: apsw.Connection, delivery_id: int) -> views.Delivery:
    """One delivery with every attempt; 404 when unknown."""
    row = first(conn, GET_DELIVERY, (delivery_id,))
    if row is None:
        raise not_found(f"delivery {delivery_id}")
    delivery = _delivery(row)
    delivery.attempt_log = [
        views.Attempt(
            number=number,
            started_at=views.iso(started),
            duration_ms=round(duration, 1),
            status_code=code,
            error_kind=kind,
            error=error,
            response_excerpt=bytes(excerpt).decode("utf-8", "replace"),
        )
        for number, started, duration, code, kind, error, excerpt in conn.execute(
            ATTEMPTS_OF_DELIVERY, (delivery_id,)
        )
    ]
    return delivery


def retry(conn: apsw.Connection, delivery_id: int, now: float) -> views.Delivery:
    """Make a delivery due now; a finished one starts a new round of attempts."""
    state = first(conn, DELIVERY_ENDPOINT_STATE, (delivery_id,))
    if state is None:
        raise not_found(f"delivery {delivery_id}")
    endpoint_id, enabled, deleted_at, status = state
    if status == "erased":
        raise conflict(f"delivery {delivery_id}'s event was erased; it cannot be retried")
    if deleted_at is not None or not enabled:
        raise conflict(
            f"endpoint {endpoint_id!r} is {'deleted' if deleted_at else 'disabled'}; "
            "its deliveries cannot be retried"
        )
    conn.execute(RETRY_DELIVERY, {"id": delivery_id, "now": now})
    return get(conn, delivery_id)


def replay(conn: apsw.Connection, endpoint_id: str, status: str, since: float, now: float) -> int:
    """Re-queue an endpoint's deliveries with `status` created since `since`; how many."""
    endpoints.enabled(conn, endpoint_id, now)
    conn.execute(
        REPLAY_ENDPOINT, {"endpoint": endpoint_id, "status": status, "since": since, "now": now}
    )
    return conn.changes()


def _delivery(row: Row) -> views.Delivery:
    ident, event_id, kind, endpoint_id, status, attempts, due, created, updated, code, err = row
    return views.Delivery(
        id=ident,
        event_id=event_id,
        event=kind,
        endpoint_id=endpoint_id,
        status=status,
        attempts=attempts,
        next_attempt_at=views.iso(due),
        created_at=views.iso(created),
        updated_at=views.iso(updated),
        last_status_code=code,
        last_error=err,
    )


def _attempt_row(record: AttemptRecord) -> tuple[Any, ...]:
    result = record.result
    return (
        record.delivery_id,
        record.number,
        record.started_at,
        record.duration_ms,
        result.status_code,
        result.error_kind,
        result.error,
        result.excerpt,
    )


def _failure(record: AttemptRecord) -> FailedDelivery:
    return FailedDelivery(
        entregaId=record.delivery_id,
        eventoId=record.event_id,
        evento=record.event_type,
        endpointId=record.endpoint_id,
        tentativas=record.number,
        ultimoStatus=record.result.status_code,
        ultimoErro=record.error,
    )


def _finish_params(record: AttemptRecord) -> dict[str, Any]:
    return {
        "id": record.delivery_id,
        "number": record.number,
        "skip": int(record.result.error_kind == INTERRUPTED),
        "status": record.status,
        "next": record.next_attempt_at,
        "now": record.finished_at,
        "code": record.result.status_code,
        "error": record.error,
    }
