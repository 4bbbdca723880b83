"""Ids that name one record forever, and idempotency keys that cannot collide.

Against a real SQLite file (the store) and a real daemon (the batch answer): delivery
ids, event sequence numbers and attempt ids only grow across purges and restarts; a
batch's item keys live apart from single-event keys; an existing database is migrated
without renumbering anything.
"""

from __future__ import annotations

import itertools
import math
import tempfile
from pathlib import Path
from typing import Any

import apsw
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hookd.db import schema
from hookd.db.sqlite import SqliteBackend as Store
from hookd.db.types import NewEvent
from hookd.domain.attempts import AttemptRecord
from hookd.domain.envelope import IngestRequest, format_timestamp, prepare
from hookd.domain.retry import AttemptResult
from tests.conftest import Running

NOW = 1_700_000_000.0
KEYS = st.text(alphabet=st.sampled_from("ab#/0123é€ ☃-_"), min_size=1, max_size=12)


def event(name: str, ident: str | None = None) -> Any:
    return prepare(IngestRequest(name, {"id": "x"}, id=ident), format_timestamp(NOW))


async def ids_of(store: Store, table: str, column: str = "id") -> set[int]:
    query = f"SELECT {column} FROM {table}"
    return set(await store.engine.read(lambda conn: [row[0] for row in conn.execute(query)]))


async def finish_all(store: Store, at: float) -> None:
    """One successful attempt for every pending delivery."""
    pending = await store.engine.read(
        lambda conn: list(
            conn.execute(
                "SELECT id, endpoint_id, attempts FROM deliveries WHERE status = 'pending'"
            )
        )
    )
    records = [
        AttemptRecord(
            delivery_id=ident,
            endpoint_id=endpoint_id,
            number=attempts + 1,
            started_at=at,
            duration_ms=1.0,
            finished_at=at,
            result=AttemptResult(status_code=200),
            status="succeeded",
            next_attempt_at=None,
            error=None,
        )
        for ident, endpoint_id, attempts in pending
    ]
    if records:
        await store.record_attempts(records)


async def purge_everything(store: Store) -> None:
    while (await store.purge_finished(math.inf, 1000)).deliveries:
        pass
    after: int | None = 0
    while after is not None:
        _, after = await store.sweep_events(math.inf, after, 1000)


# Each step: ingest n events, finish what is pending, purge all that is finished, or
# close and open the store again.
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("ingest"), st.integers(1, 4)),
        st.tuples(st.sampled_from(["finish", "purge", "reopen"]), st.just(0)),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=STEPS)
def test_no_id_ever_comes_back(steps: list[tuple[str, int]]) -> None:
    async def run(path: str) -> None:
        store = await Store.open(path, "normal")
        fields = {"id": "a", "url": "http://127.0.0.1:9/", "events": ["*"], "secret": "s"}
        await store.create_endpoint(fields, NOW, origin="socket")
        seen: dict[str, set[int]] = {"events": set(), "deliveries": set(), "attempts": set()}
        columns = {"events": "seq", "deliveries": "id", "attempts": "id"}
        names = itertools.count()
        try:
            for step, count in steps:
                if step == "ingest":
                    fresh = [NewEvent(event("a.b"), f"e{next(names)}") for _ in range(count)]
                    await store.ingest(fresh, NOW)
                elif step == "finish":
                    await finish_all(store, NOW)
                elif step == "purge":
                    await purge_everything(store)
                else:
                    await store.aclose()
                    store = await Store.open(path, "normal")
                for table, column in columns.items():
                    now = await ids_of(store, table, column)
                    new = now - seen[table]
                    assert not new or min(new) > max(seen[table], default=0), table
                    seen[table] |= now
        finally:
            await store.aclose()

    with tempfile.TemporaryDirectory() as directory:
        trio.run(run, str(Path(directory) / "hookd.db"))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=KEYS, single_suffix=st.sampled_from(["#0", "#1", "", "#00"]))
def test_batch_and_single_keys_never_meet(key: str, single_suffix: str) -> None:
    async def run(path: str) -> None:
        store = await Store.open(path, "normal")
        try:
            single = await store.ingest([NewEvent(event("a.b"), "s1", key + single_suffix)], NOW)
            batch = [NewEvent(event("a.b"), f"b{i}", key, i) for i in range(2)]
            first = await store.ingest(batch, NOW)
            assert [r.replayed for r in first] == [False, False]
            ids = [r.accepted.id for r in first]
            assert single[0].accepted.id not in ids
            again = await store.ingest(
                [NewEvent(event("a.b"), f"c{i}", key, i) for i in range(3)], NOW
            )
            assert [r.replayed for r in again] == [True, True, False]
            assert [r.accepted.id for r in again[:2]] == ids
            repeat = await store.ingest([NewEvent(event("a.b"), "s2", key + single_suffix)], NOW)
            assert (repeat[0].replayed, repeat[0].accepted.id) == (True, "s1")
        finally:
            await store.aclose()

    with tempfile.TemporaryDirectory() as directory:
        trio.run(run, str(Path(directory) / "hookd.db"))


async def test_the_batch_answer_says_per_item_what_was_new(hookd: Running) -> None:
    client = hookd.client
    await client.post("/v1/endpoints", json={"url": "http://127.0.0.1:9/", "events": ["*"]})
    single = await client.post(
        "/v1/events", json={"event": "a.b", "data": {}}, headers={"Idempotency-Key": "K1#0"}
    )
    assert single.status_code == 202
    items = [
        {"event": "a.b", "data": {"n": 0}},
        {"event": "a.b", "data": {"n": 1}, "id": "dup"},
        {"event": "a.b", "data": {"n": 2}, "id": "dup"},  # a replay of the item before
    ]
    batch = await client.post("/v1/events/batch", json=items, headers={"Idempotency-Key": "K1"})
    answer = batch.json()
    assert answer["ids"][0] != single.json()["id"]  # the single's key K1#0 is not item 0's
    assert [item["replayed"] for item in answer["items"]] == [False, False, True]
    assert answer["items"][2]["id"] == answer["items"][1]["id"] == "dup"
    assert answer["deliveries"] == 2  # only what was created
    again = (
        await client.post("/v1/events/batch", json=items, headers={"Idempotency-Key": "K1"})
    ).json()
    assert again["ids"] == answer["ids"]
    assert [item["replayed"] for item in again["items"]] == [True, True, True]
    assert again["deliveries"] == 0
    events = (await client.get("/v1/events", params={"limit": 100})).json()["items"]
    assert len(events) == 3


def test_an_existing_database_is_migrated_without_renumbering(tmp_path: Path) -> None:
    path = str(tmp_path / "hookd.db")
    conn = apsw.Connection(path)
    for version, script in enumerate(schema.MIGRATIONS[:5], start=1):
        conn.execute(script)
        conn.pragma("user_version", version)
    conn.executemany(
        "INSERT INTO events (seq, id, type, timestamp, received_at, body, idempotency_key, "
        "delivery_count) VALUES (?, ?, 'a.b', 't', 0, x'7b7d', ?, 1)",
        [
            (3, "e3", "plain"),
            (7, "e7", "K#0"),
            (8, "e8", "K#1"),
            (9, "e9", "a#b"),
            (40, "e40", None),
        ],
    )
    conn.executemany(
        "INSERT INTO deliveries (id, event_seq, endpoint_id, status, created_at, updated_at) "
        "VALUES (?, ?, 'ep', 'succeeded', 0, 0)",
        [(5, 3), (17, 7), (90, 40)],
    )
    conn.executemany(
        "INSERT INTO attempts (id, delivery_id, number, started_at, duration_ms) "
        "VALUES (?, ?, 1, 0, 1)",
        [(11, 5), (12, 17), (200, 90)],
    )
    conn.close()

    def delete_newest(conn: apsw.Connection) -> None:  # as a purge of the newest rows would
        conn.execute("DELETE FROM attempts WHERE id = 200")
        conn.execute("DELETE FROM deliveries WHERE id = 90")
        conn.execute("DELETE FROM events WHERE seq = 40")

    async def run() -> None:
        store = await Store.open(path, "normal")
        try:
            keys = await store.engine.read(
                lambda c: list(c.execute("SELECT seq, idempotency_key, key_item FROM events"))
            )
            assert sorted(keys) == [
                (3, "plain", -1),
                (7, "K", 0),
                (8, "K", 1),
                (9, "a#b", -1),
                (40, None, -1),
            ]
            assert await ids_of(store, "deliveries") == {5, 17, 90}
            assert await ids_of(store, "attempts") == {11, 12, 200}
            replay = await store.ingest([NewEvent(event("a.b"), "new", "K", 1)], NOW)
            assert (replay[0].replayed, replay[0].accepted.id) == (True, "e8")
            await store.engine.write(delete_newest)
        finally:
            await store.aclose()
        store = await Store.open(path, "normal")
        try:
            fields = {"id": "ep2", "url": "http://127.0.0.1:9/", "events": ["*"], "secret": "s"}
            await store.create_endpoint(fields, NOW, origin="socket")
            [fresh] = await store.ingest([NewEvent(event("a.b"), "fresh")], NOW)
            assert fresh.created[0].id == 91
            seq = await store.engine.read(
                lambda c: list(c.execute("SELECT seq FROM events WHERE id = 'fresh'"))
            )
            assert seq == [(41,)]
        finally:
            await store.aclose()

    trio.run(run)
