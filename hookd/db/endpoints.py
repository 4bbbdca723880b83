"""Endpoints: create, read, change, rotate, delete, sync from the config file, and the
routing cache built from their subscriptions.

Rules (docs/ARCHITECTURE.md, "Storage"):
- An endpoint declared in the config file (origin "config") is read-only through the
  API: changing, rotating or deleting it is a 409 that says where to change it.
- Disabling or deleting an endpoint cancels its pending deliveries in the same
  transaction (`cancel_pending`); re-enabling it or pointing it elsewhere starts its run
  of failures again.
- Every change is written to the audit log in its own transaction (`audit.record`).
- Deleting keeps the row (`deleted_at`): deliveries and the audit log still name it.
- `Routes` caches the router of every live endpoint's subscriptions for ingest; anything
  that changes an endpoint invalidates it, and so does a rolled-back transaction.
- A write refuses (404, 409) only before it has written anything.
"""

from __future__ import annotations

from typing import Any

import apsw
import msgspec

from hookd.db import audit
from hookd.db.rows import Row, first, page
from hookd.db.types import DISABLED_BY_HAND, ConfigSync
from hookd.domain import views
from hookd.domain.catalog import DisabledEndpoint
from hookd.domain.endpoints import Secrets
from hookd.domain.errors import conflict, not_found
from hookd.domain.routing import Router, Subscription


def secret_columns(table: str) -> str:
    """The columns `Secrets` is made of, opened (db.sealing), from `table` (a name or an
    alias of endpoints)."""
    return (
        f"open_secret({table}.id, {table}.secret), "
        f"open_secret({table}.id, {table}.previous_secret), {table}.previous_secret_until, "
        f"open_secret({table}.id, {table}.next_secret), {table}.next_secret_at, "
        f"coalesce({table}.next_secret_overlap, 0)"
    )


SECRET_COLUMNS = secret_columns("endpoints")
ENDPOINT_COLUMNS = (
    f"id, url, events, description, enabled, origin, created_at, updated_at, {SECRET_COLUMNS},"
    " rowid"
)
GET_ENDPOINT = f"SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE id = ? AND deleted_at IS NULL"
GET_SECRETS = f"SELECT {SECRET_COLUMNS} FROM endpoints WHERE id = ? AND deleted_at IS NULL"
LIST_ENDPOINTS = f"""
    SELECT {ENDPOINT_COLUMNS} FROM endpoints
    WHERE deleted_at IS NULL AND rowid > ? ORDER BY rowid LIMIT ?
"""
ALL_SUBSCRIPTIONS = """
    SELECT id, events, enabled FROM endpoints WHERE deleted_at IS NULL ORDER BY rowid
"""
INSERT_ENDPOINT = """
    INSERT INTO endpoints (id, url, events, secret, description, enabled, origin,
                           created_at, updated_at)
    VALUES (:id, :url, :events, seal_secret(:id, :secret), :description, :enabled, :origin,
            :now, :now)
"""
UPSERT_CONFIG_ENDPOINT = """
    INSERT INTO endpoints (id, url, events, secret, description, enabled, origin,
                           created_at, updated_at)
    VALUES (:id, :url, :events, seal_secret(:id, :secret), :description, :enabled, 'config',
            :now, :now)
    ON CONFLICT (id) DO UPDATE SET
        url = excluded.url, events = excluded.events,
        -- the same secret keeps its sealed text: nothing changes in the row
        secret = CASE WHEN open_secret(id, secret) IS :secret THEN secret
                      ELSE excluded.secret END,
        description = excluded.description, enabled = excluded.enabled, origin = 'config',
        deleted_at = NULL,
        -- re-enabled or pointed elsewhere: its run of failures starts again
        consecutive_failures = CASE WHEN (enabled = 0 AND excluded.enabled)
            OR url IS NOT excluded.url THEN 0 ELSE consecutive_failures END,
        failing_since = CASE WHEN (enabled = 0 AND excluded.enabled)
            OR url IS NOT excluded.url THEN NULL ELSE failing_since END,
        disabled_reason = CASE WHEN enabled IS NOT excluded.enabled
            OR url IS NOT excluded.url THEN NULL ELSE disabled_reason END,
        updated_at = CASE WHEN url IS excluded.url AND events IS excluded.events
                          AND open_secret(id, secret) IS :secret
                          AND description IS excluded.description
                          AND enabled IS excluded.enabled AND deleted_at IS NULL
                     THEN updated_at ELSE excluded.updated_at END
"""
CONFIG_ENDPOINT_IDS = "SELECT id FROM endpoints WHERE origin = 'config' AND deleted_at IS NULL"
UPDATE_ENDPOINT = """
    UPDATE endpoints SET url = :url, events = :events,
        secret = CASE WHEN open_secret(id, secret) IS :secret THEN secret
                      ELSE seal_secret(id, :secret) END,
        description = :description, enabled = :enabled, updated_at = :now,
        -- re-enabled or pointed elsewhere: its run of failures starts again; a state the
        -- operator sets is no longer hookd's automatic disable
        consecutive_failures = CASE WHEN (enabled = 0 AND :enabled) OR url IS NOT :url
            THEN 0 ELSE consecutive_failures END,
        failing_since = CASE WHEN (enabled = 0 AND :enabled) OR url IS NOT :url
            THEN NULL ELSE failing_since END,
        disabled_reason = CASE WHEN enabled IS NOT :enabled OR url IS NOT :url
            THEN NULL ELSE disabled_reason END,
        -- a secret set here replaces every other at once
        previous_secret = CASE WHEN open_secret(id, secret) IS :secret
                               THEN previous_secret END,
        previous_secret_until = CASE WHEN open_secret(id, secret) IS :secret
                                     THEN previous_secret_until END,
        next_secret = CASE WHEN open_secret(id, secret) IS :secret THEN next_secret END,
        next_secret_at = CASE WHEN open_secret(id, secret) IS :secret THEN next_secret_at END,
        next_secret_overlap = CASE WHEN open_secret(id, secret) IS :secret
                                   THEN next_secret_overlap END
    WHERE id = :id AND deleted_at IS NULL
"""
SET_SECRETS = """
    UPDATE endpoints SET secret = seal_secret(id, :current),
        previous_secret = seal_secret(id, :previous),
        previous_secret_until = :previous_until, next_secret = seal_secret(id, :next),
        next_secret_at = :next_at, next_secret_overlap = :next_overlap,
        updated_at = coalesce(:now, updated_at)
    WHERE id = :id AND deleted_at IS NULL
"""
DELETE_ENDPOINT = "UPDATE endpoints SET deleted_at = ?, enabled = 0 WHERE id = ?"
CANCEL_PENDING_OF_ENDPOINT = """
    UPDATE deliveries SET status = 'cancelled', next_attempt_at = NULL, updated_at = ?
    WHERE endpoint_id = ? AND status = 'pending'
"""


class Routes:
    """The router of every live endpoint's subscriptions, read once and kept until an
    endpoint changes (writer thread only)."""

    def __init__(self) -> None:
        self._router: Router | None = None

    def router(self, conn: apsw.Connection) -> Router:
        """The router, read from the endpoints when it was invalidated."""
        if self._router is None:
            self._router = Router(
                Subscription(ident, tuple(msgspec.json.decode(events)), bool(enabled))
                for ident, events, enabled in conn.execute(ALL_SUBSCRIPTIONS)
            )
        return self._router

    def invalidate(self) -> None:
        """Forget the router: an endpoint changed, or a transaction was rolled back."""
        self._router = None


def create(
    conn: apsw.Connection, routes: Routes, fields: dict[str, Any], now: float, origin: str
) -> views.Endpoint:
    """Store a new API-made endpoint; `fields` has every column but the times."""
    conn.execute(INSERT_ENDPOINT, _endpoint_params(fields, "api", now))
    audit.record(conn, now, origin, fields["id"], None, fields)
    routes.invalidate()
    return get(conn, fields["id"], now, with_secret=True)


def get(
    conn: apsw.Connection, endpoint_id: str, now: float, with_secret: bool = False
) -> views.Endpoint:
    """One endpoint as it stands at `now`; 404 when unknown or deleted."""
    row = first(conn, GET_ENDPOINT, (endpoint_id,))
    if row is None:
        raise not_found(f"endpoint {endpoint_id!r}")
    return _endpoint(row, now, with_secret)


def enabled(conn: apsw.Connection, endpoint_id: str, now: float) -> views.Endpoint:
    """An endpoint that is enabled; 404 when unknown, 409 when disabled."""
    endpoint = get(conn, endpoint_id, now)
    if not endpoint.enabled:
        raise conflict(f"endpoint {endpoint_id!r} is disabled; enable it first")
    return endpoint


def list_page(
    conn: apsw.Connection, limit: int, after: int | None, now: float
) -> views.Page[views.Endpoint]:
    """Endpoints in creation order, as they stand at `now`, after the cursor `after`."""
    rows = conn.execute(LIST_ENDPOINTS, (after or 0, limit))
    return page(rows, limit, lambda row: _endpoint(row, now), lambda row: row[-1])


def update(
    conn: apsw.Connection,
    routes: Routes,
    endpoint_id: str,
    changes: dict[str, Any],
    now: float,
    origin: str,
) -> tuple[views.Endpoint, DisabledEndpoint | None]:
    """Apply `changes` to an API-made endpoint; the endpoint, and what to alert about
    when this change disabled it (its pending deliveries are then cancelled)."""
    current = get(conn, endpoint_id, now, with_secret=True)
    _api_made(current, "change")
    _settled_secrets(conn, endpoint_id, now)  # the row's secret is `current`'s
    before = msgspec.structs.asdict(current)
    merged = {**before, **changes}
    conn.execute(UPDATE_ENDPOINT, _endpoint_params(merged, "api", now))
    routes.invalidate()  # before an alert is routed
    gone = None
    if current.enabled and not merged["enabled"]:
        cancel_pending(conn, endpoint_id, now)
        gone = DisabledEndpoint(endpointId=endpoint_id, url=merged["url"], motivo=DISABLED_BY_HAND)
    audit.record(conn, now, origin, endpoint_id, before, merged)
    return get(conn, endpoint_id, now, with_secret="secret" in changes), gone


def rotate_secret(
    conn: apsw.Connection,
    endpoint_id: str,
    secret: str,
    overlap: float,
    now: float,
    origin: str,
    activate_at: float | None,
) -> views.Endpoint:
    """Give an API-made endpoint a new secret (`Secrets.rotated`); the answer shows it."""
    current = get(conn, endpoint_id, now, with_secret=True)
    _api_made(current, "change")
    rotated = _settled_secrets(conn, endpoint_id, now).rotated(secret, now, overlap, activate_at)
    conn.execute(SET_SECRETS, _secret_params(endpoint_id, rotated, now))
    before = msgspec.structs.asdict(current)
    field = "secret" if rotated.current == secret else "next_secret"
    audit.record(conn, now, origin, endpoint_id, before, {**before, field: secret})
    endpoint = get(conn, endpoint_id, now)
    endpoint.secret = secret
    return endpoint


def delete(
    conn: apsw.Connection, routes: Routes, endpoint_id: str, now: float, origin: str
) -> None:
    """Delete an API-made endpoint and cancel its pending deliveries."""
    _api_made(get(conn, endpoint_id, now), "remove")
    conn.execute(DELETE_ENDPOINT, (now, endpoint_id))
    cancel_pending(conn, endpoint_id, now)
    audit.record(conn, now, origin, endpoint_id, {}, None)
    routes.invalidate()


def sync_config(
    conn: apsw.Connection, routes: Routes, wanted: list[dict[str, Any]], now: float
) -> ConfigSync:
    """Make the config file's endpoints the stored ones with origin "config"; those that
    left the file are deleted (their history stays). What it changed, as the audit log
    has it."""
    synced = ConfigSync([], {}, [])
    for fields in wanted:
        row = first(conn, GET_ENDPOINT, (fields["id"],))
        before = msgspec.structs.asdict(_endpoint(row, now, True)) if row else None
        conn.execute(UPSERT_CONFIG_ENDPOINT, _endpoint_params(fields, "config", now))
        if not fields.get("enabled", True):  # disabled in the file: as through the API
            cancel_pending(conn, fields["id"], now)
        after = {**fields, "origin": "config"}
        change = audit.record(conn, now, "config", fields["id"], before, after)
        if change is not None and before is None:
            synced.added.append(fields["id"])
        elif change is not None:
            synced.changed[fields["id"]] = change.fields
    keep = {fields["id"] for fields in wanted}
    for (ident,) in list(conn.execute(CONFIG_ENDPOINT_IDS)):
        if ident not in keep:
            conn.execute(DELETE_ENDPOINT, (now, ident))
            cancel_pending(conn, ident, now)
            audit.record(conn, now, "config", ident, {}, None)
            synced.removed.append(ident)
    routes.invalidate()
    return synced


def cancel_pending(conn: apsw.Connection, endpoint_id: str, now: float) -> None:
    """Cancel the pending deliveries of an endpoint being disabled or deleted."""
    conn.execute(CANCEL_PENDING_OF_ENDPOINT, (now, endpoint_id))


def _api_made(endpoint: views.Endpoint, verb: str) -> None:
    if endpoint.origin == "config":
        raise conflict(f"endpoint {endpoint.id!r} is declared in the config file; {verb} it there")


def _settled_secrets(conn: apsw.Connection, endpoint_id: str, now: float) -> Secrets:
    """An endpoint's secrets as they stand at `now`, written back when a staged secret
    has taken over since they were stored (nothing is written at that moment itself)."""
    row = first(conn, GET_SECRETS, (endpoint_id,))
    if row is None:
        raise not_found(f"endpoint {endpoint_id!r}")
    stored = Secrets(*row)
    settled = stored.at(now)
    if settled != stored:
        conn.execute(SET_SECRETS, _secret_params(endpoint_id, settled, None))
    return settled


def _secret_params(endpoint_id: str, secrets: Secrets, now: float | None) -> dict[str, Any]:
    """SET_SECRETS's parameters; `now` None leaves `updated_at` as it is."""
    return {**secrets._asdict(), "id": endpoint_id, "now": now}


def _endpoint_params(fields: dict[str, Any], origin: str, now: float) -> dict[str, Any]:
    return {
        "id": fields["id"],
        "url": fields["url"],
        "events": msgspec.json.encode(list(fields["events"])).decode(),
        "secret": fields["secret"],
        "description": fields.get("description", ""),
        "enabled": int(fields.get("enabled", True)),
        "origin": origin,
        "now": now,
    }


def _endpoint(row: Row, now: float, with_secret: bool = False) -> views.Endpoint:
    ident, url, events, description, enabled, origin, created, updated, *stored, _ = row
    secrets = Secrets(*stored).at(now)
    return views.Endpoint(
        id=ident,
        url=url,
        events=msgspec.json.decode(events),
        description=description,
        enabled=bool(enabled),
        origin=origin,
        created_at=views.iso(created),
        updated_at=views.iso(updated),
        previous_secret_until=views.iso(secrets.previous_until),
        next_secret_at=views.iso(secrets.next_at),
        secret=secrets.current if with_secret else msgspec.UNSET,
    )
