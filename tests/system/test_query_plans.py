"""The console's listings over a large database stay on indexes (bench/ui.py measures
them with 1,000,000 deliveries): the plans SQLite picks for them, on hookd's schema."""

from __future__ import annotations

from pathlib import Path

import apsw

from hookd.db import deliveries, events
from hookd.db.sqlite import SqliteBackend


def plan(conn: apsw.Connection, query: str, params: dict[str, object]) -> str:
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
