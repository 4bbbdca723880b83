"""Retention against a real SQLite file: exactly the finished deliveries older than the
retention go, with their attempts and the events left with none; nothing pending is
touched; batches of any size do the same; the file gives the space back; the purge use
indexes; and the daemon runs it in the background on its clock.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import apsw
import pytest
import trio
import trio.testing

from hookd.db import retention as retention_sql
from hookd.db import schema
from hookd.db.sqlite import SqliteBackend as Store
from hookd.db.types import NewEvent
from hookd.domain.attempts import AttemptRecord
from hookd.domain.envelope import IngestRequest, format_timestamp, prepare
from hookd.domain.retry import AttemptResult
from hookd.runtime import retention
from hookd.runtime.clock import Clock
from hookd.runtime.retention import Retention, Totals
from tests.conftest import Running
from tests.receiver import serve_receiver
from tests.system.test_delivery import subscribe

Start = Callable[..., Awaitable[Running]]
DAY = 86400.0
NOW = 1_700_000_000.0
KEEP = 30 * DAY
FAST = '[server]\nidle_timeout = "2h"\nrequest_timeout = "2h"\n'


@pytest.fixture
async def store(short_dir: Path) -> AsyncIterator[Store]:
    opened = await Store.open(str(short_dir / "hookd.db"), "normal")
    try:
        yield opened
    finally:
        await opened.aclose()


async def endpoint(store: Store, ident: str, events: list[str], at: float) -> None:
    fields = {"id": ident, "url": f"http://127.0.0.1:9/{ident}", "events": events, "secret": "s"}
    await store.create_endpoint(fields, at, origin="socket")


async def event(store: Store, name: str, ident: str, at: float) -> list[int]:
    """Ingest event `ident` of type `name` at time `at`; the ids of its deliveries."""
    prepared = prepare(IngestRequest(name, {"id": ident}, id=ident), format_timestamp(at))
    [ingested] = await store.ingest([NewEvent(prepared, ident)], at)
    return [delivery.id for delivery in ingested.created]


async def attempt(store: Store, delivery_id: int, number: int, at: float, status: str) -> None:
    """Record attempt `number` at `at`, leaving the delivery `status` (pending: retry in 1h)."""
    code = 200 if status == "succeeded" else 500
    [(endpoint_id,)] = await rows(
        store, f"SELECT endpoint_id FROM deliveries WHERE id = {delivery_id}"
    )
    record = AttemptRecord(
        delivery_id=delivery_id,
        endpoint_id=endpoint_id,
        number=number,
        started_at=at,
        duration_ms=3.0,
        finished_at=at,
        result=AttemptResult(status_code=code),
        status=status,
        next_attempt_at=at + 3600 if status == "pending" else None,
        error=None if code == 200 else "HTTP 500",
    )
    assert (await store.record_attempts([record])).moved == [True]


async def until(value: Callable[[], Awaitable[Any]], wanted: Any, every: float = 0.02) -> None:
    """Poll `value()` every `every` seconds until it is `wanted`."""
    while True:
        if await value() == wanted:
            return
        await trio.sleep(every)


async def rows(store: Store, query: str) -> list[tuple[Any, ...]]:
    return await store.engine.read(lambda conn: [tuple(row) for row in conn.execute(query)])


async def build(store: Store) -> None:
    """Endpoints a (cliente.*), b (cliente.criado), c (tarefa.*) and events e1-e8.

    Old means received 40 days before NOW, with a retention of 30 days.
    """
    old = NOW - 40 * DAY
    await endpoint(store, "a", ["cliente.*"], old)
    await endpoint(store, "b", ["cliente.criado"], old)
    await endpoint(store, "c", ["tarefa.*"], old)
    a1, b1 = await event(store, "cliente.criado", "e1", old)
    await attempt(store, a1, 1, old, "succeeded")  # old, finished: goes
    await attempt(store, b1, 1, old, "pending")  # old but pending: stays, and so does e1
    [a2] = await event(store, "cliente.atualizado", "e2", old)
    for number in (1, 2):
        await attempt(store, a2, number, old + number, "pending")
    await attempt(store, a2, 3, NOW - 39 * DAY, "failed")  # failed long ago: goes, e2 too
    assert await event(store, "chamado.aberto", "e3", old) == []  # no delivery: goes
    await event(store, "tarefa.concluida", "e4", old)
    disable = {"enabled": False}
    await store.update_endpoint("c", disable, NOW - 35 * DAY, origin="socket")  # cancels e4's
    [a5] = await event(store, "cliente.removido", "e5", old)
    await attempt(store, a5, 1, NOW - 1 * DAY, "succeeded")  # old event, recent change: stays
    [a6] = await event(store, "cliente.atualizado", "e6", NOW - 10 * DAY)
    await attempt(store, a6, 1, NOW - 10 * DAY, "succeeded")  # young: stays
    assert await event(store, "chamado.aberto", "e7", NOW - 10 * DAY) == []  # young: stays
    [a8] = await event(store, "cliente.atualizado", "e8", NOW - KEEP)
    await attempt(store, a8, 1, NOW - KEEP, "succeeded")  # exactly at the limit: stays


@pytest.mark.parametrize(
    ("batch", "sweep", "writes"),
    [
        (retention.BATCH, retention.SWEEP, range(3, 5)),  # one batch each, one vacuum step
        (1, 1, range(9, 20)),  # a delivery or an event a write: the same outcome
    ],
)
async def test_purges_exactly_what_is_old_and_finished(
    store: Store, monkeypatch: pytest.MonkeyPatch, batch: int, sweep: int, writes: range
) -> None:
    monkeypatch.setattr(retention, "BATCH", batch)
    monkeypatch.setattr(retention, "SWEEP", sweep)
    await build(store)
    purger = Retention(store, Clock(), KEEP)
    commits = store.engine.commits

    totals = await purger.purge(NOW)

    assert (totals.deliveries, totals.attempts, totals.events) == (3, 4, 3)
    assert store.engine.commits - commits in writes
    assert await rows(store, "SELECT id FROM events ORDER BY seq") == [
        ("e1",),
        ("e5",),
        ("e6",),
        ("e7",),
        ("e8",),
    ]
    kept = (
        "SELECT e.id, d.endpoint_id, d.status FROM deliveries d"
        " JOIN events e ON e.seq = d.event_seq"
    )
    assert sorted(await rows(store, kept)) == [
        ("e1", "b", "pending"),
        ("e5", "a", "succeeded"),
        ("e6", "a", "succeeded"),
        ("e8", "a", "succeeded"),
    ]
    orphans = "SELECT count(*) FROM attempts WHERE delivery_id NOT IN (SELECT id FROM deliveries)"
    assert await rows(store, orphans) == [(0,)]
    assert await rows(store, "SELECT count(*) FROM attempts") == [(4,)]

    assert await purger.purge(NOW) == Totals()  # nothing more to do


async def test_a_pending_delivery_is_kept_however_old(store: Store) -> None:
    await endpoint(store, "a", ["*"], 0.0)
    [delivery] = await event(store, "cliente.criado", "e1", 0.0)  # pending since 1970
    assert await Retention(store, Clock(), KEEP).purge(NOW) == Totals()
    assert await rows(store, "SELECT id, status FROM deliveries") == [(delivery, "pending")]


async def test_a_database_made_before_retention_is_upgraded_and_purged(short_dir: Path) -> None:
    path = str(short_dir / "old.db")
    conn = apsw.Connection(path)
    conn.pragma("auto_vacuum", "incremental")
    conn.pragma("journal_mode", "wal")
    with conn:
        conn.execute(schema.MIGRATIONS[0])
        conn.pragma("user_version", 1)
        conn.execute(
            "INSERT INTO events (seq, id, type, timestamp, received_at, body, delivery_count)"
            " VALUES (1, 'e1', 'cliente.criado', '2024-01-01T10:00:00Z', ?, x'7b7d', 1)",
            (NOW - 40 * DAY,),
        )
        conn.execute(
            "INSERT INTO deliveries (event_seq, endpoint_id, status, created_at, updated_at)"
            " VALUES (1, 'a', 'succeeded', ?, ?)",
            (NOW - 40 * DAY, NOW - 40 * DAY),
        )
    conn.close()
    upgraded = await Store.open(path, "normal")
    try:
        totals = await Retention(upgraded, Clock(), KEEP).purge(NOW)
    finally:
        await upgraded.aclose()
    assert (totals.deliveries, totals.events) == (1, 1)


def test_queries_use_indexes(short_dir: Path) -> None:
    conn = apsw.Connection(str(short_dir / "plan.db"))
    for migration in schema.MIGRATIONS:
        conn.execute(migration)
    conn.execute("ANALYZE")

    def plan(query: str) -> str:
        explained = conn.execute("EXPLAIN QUERY PLAN " + query, _null_params(query))
        return " | ".join(row[3] for row in explained)

    due = plan(retention_sql.RETENTION_DUE)
    assert "SEARCH deliveries USING INDEX deliveries_finished (updated_at<?)" in due
    assert "SEARCH events USING INTEGER PRIMARY KEY (rowid=?)" in due
    assert "SCAN deliveries" not in due
    finished = plan(retention_sql.PURGE_FINISHED)
    assert "SEARCH deliveries USING INDEX deliveries_finished (updated_at<?)" in finished
    assert "SCAN deliveries" not in finished
    assert "SEARCH attempts USING COVERING INDEX attempts_delivery (delivery_id=?)" in plan(
        retention_sql.PURGE_ATTEMPTS
    )
    assert "SEARCH deliveries USING INTEGER PRIMARY KEY (rowid=?)" in plan(
        retention_sql.PURGE_DELIVERIES
    )
    emptied = plan(retention_sql.PURGE_EMPTIED_EVENTS)
    assert "SEARCH events USING INTEGER PRIMARY KEY (rowid=?)" in emptied
    assert "SEARCH d USING COVERING INDEX deliveries_event (event_seq=?)" in emptied
    sweep = plan(retention_sql.SWEEP_EVENTS)
    assert "SEARCH events USING INTEGER PRIMARY KEY (rowid>?)" in sweep
    assert "SCAN events" not in sweep
    assert "SEARCH d USING COVERING INDEX deliveries_event (event_seq=?)" in sweep
    conn.close()


def _null_params(query: str) -> dict[str, None] | tuple[None, ...]:
    if ":" in query:
        return {name: None for name in ("cutoff", "limit", "seqs", "after")}
    if "?1" in query:
        return (None,)
    return (None,) * query.count("?")


async def test_the_file_gives_the_space_back(hookd_factory: Start) -> None:
    hookd = await hookd_factory('[storage]\nretention = "1h"')
    store, purger = hookd.daemon.store, hookd.daemon.retention
    assert store is not None
    assert purger is not None
    padding = "x" * 4000
    async with serve_receiver() as receiver:
        await subscribe(hookd, receiver.url, ["cliente.*"])
        delivered = [{"event": "cliente.criado", "data": {"p": padding}}] * 100
        assert (await hookd.client.post("/v1/events/batch", json=delivered)).status_code == 202
        with trio.fail_after(10):
            await receiver.wait_for(100)
            pending = "SELECT 1 FROM deliveries WHERE status = 'pending'"
            await until(lambda: rows(store, pending), [])
    for _ in range(15):  # 3000 events without subscribers
        batch = [{"event": "chamado.aberto", "data": {"p": padding}}] * 200
        assert (await hookd.client.post("/v1/events/batch", json=batch)).status_code == 202
    await store.checkpoint()
    path = trio.Path(hookd.daemon.config.storage.path)
    full_pages, full_bytes = await pages(store), (await path.stat()).st_size

    totals = await purger.purge(purger.clock.now() + 2 * 3600)

    assert (totals.deliveries, totals.attempts, totals.events) == (100, 100, 3100)
    assert await rows(store, retention_sql.FREE_PAGES) == [(0,)]
    assert totals.pages > 0.9 * full_pages
    assert await pages(store) < 0.1 * full_pages
    assert (await path.stat()).st_size < 0.1 * full_bytes


async def pages(store: Store) -> int:
    [(count,)] = await rows(store, "PRAGMA page_count")
    return int(count)


@pytest.fixture
def virtual_clock() -> trio.testing.MockClock:
    # Jump only after a few real milliseconds of idleness (database work runs in threads).
    return trio.testing.MockClock(autojump_threshold=0.02)


async def daemon_with_one_event(hookd_factory: Start, keep: str) -> Running:
    """A daemon keeping things `keep` long, with one event (no deliveries) just in."""
    hookd = await hookd_factory(f'{FAST}[storage]\nretention = "{keep}"', client_timeout=None)
    response = await hookd.client.post("/v1/events", json={"event": "chamado.aberto", "data": {}})
    assert response.status_code == 202
    return hookd


async def event_count(hookd: Running) -> int:
    return len((await hookd.client.get("/v1/events")).json()["items"])


def retention_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "hookd.retention"]


async def test_the_daemon_purges_in_the_background(
    virtual_clock: trio.testing.MockClock, hookd_factory: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hookd.retention")
    hookd = await daemon_with_one_event(hookd_factory, "1h")  # a round every 6 minutes
    await trio.sleep(3000)
    assert await event_count(hookd) == 1  # younger than the retention

    async def lines_logged() -> int:
        return len(retention_lines(caplog))

    with trio.fail_after(3600):  # virtual seconds
        await until(lines_logged, 1, every=60)
    assert await event_count(hookd) == 0
    [line] = retention_lines(caplog)  # one line for the round that purged, none for the others
    assert line.startswith("action=retention.purged deliveries=0 attempts=0 events=1 ")


async def test_a_retention_of_0_keeps_everything(
    virtual_clock: trio.testing.MockClock, hookd_factory: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hookd.retention")
    hookd = await daemon_with_one_event(hookd_factory, "0")
    await trio.sleep(400 * DAY)
    assert await event_count(hookd) == 1
    assert retention_lines(caplog) == []
