"""The console's listings and an erasure over a large database stay on indexes (bench/ui.py
and bench/subjects.py measure them with 1,000,000 deliveries): the plans SQLite picks for
them, on hookd's schema."""

from __future__ import annotations

from pathlib import Path

import apsw

from hookd.db import deliveries, events, subjects
from hookd.db.sqlite import SqliteBackend


def plan(conn: apsw.Connection, query: str, params: dict[str, object] | tuple[object, ...]) -> str:
    return " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + query, params))


async def test_listing_plans(short_dir: Path) -> None:
    path = str(short_dir / "hookd.db")
    store = await SqliteBackend.open(path, "normal")
    await store.aclose()
    conn = apsw.Connection(path)
    by_type = {"before": 1, "type": "x", "since": 0.0, "limit": 50}
    # Events of one type: through events_type, never a walk of every event.
    assert "INDEX events_type" in plan(conn, events.list_events_query(True, False), by_type)
    assert "INDEX events_type" in plan(conn, events.list_events_query(True, True), by_type)
    # Deliveries of a rare type: from that type's events; of a common one: newest first,
    # each delivery's event looked up by its key, no sort.
    rare = plan(conn, deliveries.list_deliveries_query(["type"], events_first=True), by_type)
    assert rare.startswith("SEARCH e USING INDEX events_type")
    common = plan(conn, deliveries.list_deliveries_query(["type"]), by_type)
    assert common.startswith("SEARCH d USING INTEGER PRIMARY KEY")
    assert "TEMP B-TREE" not in common
    conn.close()


async def test_erasure_plans(short_dir: Path) -> None:
    """An erasure finds the events' deliveries by their event, never by walking every
    pending delivery (`status = 'pending'` would pick deliveries_status)."""
    path = str(short_dir / "hookd.db")
    store = await SqliteBackend.open(path, "normal")
    await store.aclose()
    conn = apsw.Connection(path)
    erase = plan(conn, subjects.ERASE_PENDING, ("[1, 2]", 1.0))
    assert erase.startswith("SEARCH deliveries USING INDEX deliveries_event"), erase
    assert "deliveries_event" in plan(conn, subjects.DROP_EXCERPTS, ("[1]",))
    assert "deliveries_event" in plan(conn, subjects.DELIVERIES_OF, ("[1]",))
    conn.close()
