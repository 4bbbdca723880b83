"""The audit log of endpoint changes: writing an entry, listing them.

Rules (docs/ARCHITECTURE.md, "Storage"):
- An entry names the fields that changed, never their values (`domain.audit.describe`):
  the log may be shown to anyone who may read the endpoints, secrets included.
- Entries are written inside the transaction of the change they describe, by the module
  that makes it; nothing else writes the `audit` table.
"""

from __future__ import annotations

from typing import Any

import apsw
import msgspec

from hookd.db.rows import Row, newest_first
from hookd.domain import audit, views

INSERT_AUDIT = """
    INSERT INTO audit (at, origin, action, endpoint_id, fields) VALUES (?, ?, ?, ?, ?)
"""
AUDIT_FILTERS = {
    "endpoint": "endpoint_id = :endpoint",
    "since": "at >= :since",
}


def list_audit_query(filters: list[str]) -> str:
    """The audit listing, newest first, for the given filter names (keys of AUDIT_FILTERS)."""
    where = " AND ".join(["id < :before", *(AUDIT_FILTERS[name] for name in filters)])
    return (
        "SELECT id, at, origin, action, endpoint_id, fields FROM audit"
        f" WHERE {where} ORDER BY id DESC LIMIT :limit"
    )


def record(
    conn: apsw.Connection,
    now: float,
    origin: str,
    endpoint_id: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> audit.Change | None:
    """Record the change from `before` to `after` (None: no endpoint) in the audit log;
    the change recorded (None: nothing changed)."""
    change = audit.describe(before, after)
    if change is not None:
        fields = msgspec.json.encode(change.fields).decode()
        conn.execute(INSERT_AUDIT, (now, origin, change.action, endpoint_id, fields))
    return change


def list_audit(
    conn: apsw.Connection, limit: int, before: int | None, filters: dict[str, Any]
) -> views.Page[views.AuditEntry]:
    """Endpoint changes newest first, filtered by `endpoint` and/or `since` (a time)."""
    return newest_first(conn, list_audit_query(sorted(filters)), filters, limit, before, _entry)


def _entry(row: Row) -> views.AuditEntry:
    ident, at, origin, action, endpoint_id, fields = row
    return views.AuditEntry(
        id=ident,
        at=views.iso(at),
        origin=origin,
        action=action,
        endpoint_id=endpoint_id,
        fields=msgspec.json.decode(fields),
    )
