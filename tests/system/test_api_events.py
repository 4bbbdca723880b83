"""POST/GET /v1/events against a real daemon: answers, and the rows it leaves on disk.

The database is read with the stdlib `sqlite3` module on a read-only connection, so
these tests check what is durably stored, not what the API says it stored.
"""

from __future__ import annotations

import json
import pickle
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any

import httpx
import pytest
import trio

from tests.conftest import Running

JSON = {"Content-Type": "application/json"}
NDJSON = {"Content-Type": "application/x-ndjson"}
GENERATED_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
# Deliveries to this URL fail at once (connection refused) and stay pending for a retry:
# tests never reach a real host, and never wait on one.
REFUSING_URL = "http://127.0.0.1:9/hook"


# -- helpers shared with the other API test modules -------------------------------------


# The stdlib sqlite3 module runs in a child process: two copies of SQLite in one process
# (apsw's in the daemon under test, and the stdlib's) break each other's POSIX locks and
# can corrupt the database or crash with SIGBUS (sqlite.org/howtocorrupt.html, 2.2.1).
_READER = """
import contextlib, pickle, sqlite3, sys
path, queries = pickle.load(sys.stdin.buffer)
with contextlib.closing(sqlite3.connect(path + "?mode=ro", uri=True, timeout=10)) as conn:
    pickle.dump([conn.execute(q, p).fetchall() for q, p in queries], sys.stdout.buffer)
"""


async def db_queries(
    path: str, *queries: tuple[str, tuple[Any, ...]]
) -> list[list[tuple[Any, ...]]]:
    """The rows of each (query, params) on the SQLite file at `path`, opened read-only."""
    request = pickle.dumps((PurePath(path).as_uri(), list(queries)))
    done = await trio.run_process(
        [sys.executable, "-I", "-S", "-c", _READER],
        stdin=request,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    rows: list[list[tuple[Any, ...]]] = pickle.loads(done.stdout)
    return rows


async def db_rows(path: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of `query` on the SQLite file at `path`, opened read-only."""
    [rows] = await db_queries(path, (query, params))
    return rows


def db_path(running: Running) -> str:
    return running.daemon.config.storage.path


async def count(running: Running, table: str) -> int:
    """How many rows `table` holds in the daemon's database."""
    [(n,)] = await db_rows(db_path(running), f"SELECT count(*) FROM {table}")
    return int(n)


async def counts(running: Running) -> dict[str, int]:
    """Row counts of the tables a request to the API writes to."""
    tables = ("events", "deliveries", "endpoints")
    found = await db_queries(db_path(running), *((f"SELECT count(*) FROM {t}", ()) for t in tables))
    return {table: rows[0][0] for table, rows in zip(tables, found, strict=True)}


async def post_event(
    client: httpx.AsyncClient, body: bytes | dict[str, Any], **headers: str
) -> httpx.Response:
    """POST one event; a dict is sent as compact JSON, bytes as they are."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await client.post("/v1/events", content=content, headers={**JSON, **headers})


async def ingest(client: httpx.AsyncClient, event: str = "cliente.criado", **extra: Any) -> str:
    """Ingest one event that must be accepted; its id."""
    response = await post_event(client, {"event": event, "data": {"n": 1}, **extra})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def create_endpoint(
    client: httpx.AsyncClient, events: list[str], **fields: Any
) -> dict[str, Any]:
    """Create an endpoint through the API; its JSON (with the secret)."""
    spec = {"url": REFUSING_URL, "events": events, **fields}
    response = await client.post("/v1/endpoints", json=spec)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def assert_error(response: httpx.Response, status: int) -> dict[str, Any]:
    """`response` is a JSON API error with `status`; its `error` object."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert isinstance(error["code"], str)
    assert error["code"]
    assert isinstance(error["message"], str)
    assert error["message"]
    return dict(error)


async def deliveries_of(running: Running, event_id: str) -> list[tuple[str, str]]:
    """(endpoint id, status) of every delivery row of the event `event_id`."""
    return await db_rows(
        db_path(running),
        "SELECT d.endpoint_id, d.status FROM deliveries d JOIN events e ON e.seq = d.event_seq"
        " WHERE e.id = ? ORDER BY d.id",
        (event_id,),
    )


async def stored_body(running: Running, event_id: str) -> bytes:
    rows = await db_rows(db_path(running), "SELECT body FROM events WHERE id = ?", (event_id,))
    assert len(rows) == 1, f"event {event_id} is not stored once: {rows}"
    return bytes(rows[0][0])


async def list_all(client: httpx.AsyncClient, limit: int, **filters: str) -> list[str]:
    """Every event id, following `next_cursor` page by page."""
    seen: list[str] = []
    params: dict[str, Any] = {"limit": limit, **filters}
    for _ in range(1000):
        response = await client.get("/v1/events", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= limit
        seen += [item["id"] for item in page["items"]]
        if page["next_cursor"] is None:
            return seen
        params["cursor"] = page["next_cursor"]
    raise AssertionError("pagination never ended")


# -- POST /v1/events ---------------------------------------------------------------------


async def test_event_is_stored_with_the_exact_body_and_one_delivery_per_subscriber(
    hookd: Running,
) -> None:
    clientes = await create_endpoint(hookd.client, ["cliente.*"])
    everything = await create_endpoint(hookd.client, ["*"])
    await create_endpoint(hookd.client, ["tarefa.concluida"])  # not subscribed
    # Keys out of alphabetical order, an escaped non-ASCII character, a nested object.
    sent = (
        b'{"data": {"nome": "Jo\\u00e3o", "id": "cliente_123", "email": "joao@example.com",'
        b' "tags": ["vip", "s\xc3\xa3o paulo"], "endereco": {"z": 1, "a": null}},'
        b' "timestamp": "2024-01-01T10:00:00Z", "event": "cliente.criado"}'
    )
    response = await post_event(hookd.client, sent)

    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer == {"id": answer["id"], "event": "cliente.criado", "deliveries": 2}
    expected = (
        '{"event":"cliente.criado","timestamp":"2024-01-01T10:00:00Z","data":'
        '{"nome":"João","id":"cliente_123","email":"joao@example.com",'
        '"tags":["vip","são paulo"],"endereco":{"z":1,"a":null}}}'
    ).encode()
    assert await stored_body(hookd, answer["id"]) == expected
    assert sorted(await deliveries_of(hookd, answer["id"])) == sorted(
        [(clientes["id"], "pending"), (everything["id"], "pending")]
    )
    [(kind, timestamp)] = await db_rows(
        db_path(hookd), "SELECT type, timestamp FROM events WHERE id = ?", (answer["id"],)
    )
    assert (kind, timestamp) == ("cliente.criado", "2024-01-01T10:00:00Z")


async def test_event_with_no_subscriber_is_stored_without_deliveries(hookd: Running) -> None:
    await create_endpoint(hookd.client, ["tarefa.*"])
    event_id = await ingest(hookd.client, "cliente.criado")
    assert (await stored_body(hookd, event_id)).startswith(b'{"event":"cliente.criado"')
    assert await deliveries_of(hookd, event_id) == []
    assert await count(hookd, "deliveries") == 0


@pytest.mark.parametrize(
    "timestamp",
    [
        "2024-01-01T10:00:00Z",  # the spec's form
        "2024-06-30T23:59:59.123456-03:00",  # fraction and offset: kept as sent
        "2024-02-29T00:00:00+00:00",  # leap day
    ],
)
async def test_given_timestamp_is_kept_unchanged(hookd: Running, timestamp: str) -> None:
    event_id = await ingest(hookd.client, timestamp=timestamp)
    body = json.loads(await stored_body(hookd, event_id))
    assert body["timestamp"] == timestamp
    shown = (await hookd.client.get(f"/v1/events/{event_id}")).json()
    assert shown["timestamp"] == timestamp


async def test_missing_timestamp_is_the_ingest_time_in_utc_whole_seconds(hookd: Running) -> None:
    before = int(time.time())
    event_id = await ingest(hookd.client)
    after = time.time()
    raw = await stored_body(hookd, event_id)
    timestamp = json.loads(raw)["timestamp"]
    assert GENERATED_TIMESTAMP.match(timestamp), timestamp
    moment = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before - 1 <= moment.timestamp() <= after + 1
    assert raw == (
        b'{"event":"cliente.criado","timestamp":"' + timestamp.encode() + b'","data":{"n":1}}'
    )


async def test_repeated_id_answers_as_the_first_time_and_stores_nothing(hookd: Running) -> None:
    await create_endpoint(hookd.client, ["cliente.*"])
    first = await post_event(
        hookd.client, {"event": "cliente.criado", "data": {"v": 1}, "id": "crm-42"}
    )
    assert first.status_code == 202, first.text
    assert first.json() == {"id": "crm-42", "event": "cliente.criado", "deliveries": 1}
    before = await counts(hookd)

    # Same id, other content: still the first answer, and the first body on disk.
    again = await post_event(
        hookd.client, {"event": "cliente.atualizado", "data": {"v": 2}, "id": "crm-42"}
    )
    assert again.status_code == 202, again.text
    assert again.json() == first.json()
    assert await counts(hookd) == before
    assert json.loads(await stored_body(hookd, "crm-42"))["data"] == {"v": 1}


async def test_repeated_idempotency_key_answers_as_the_first_time(hookd: Running) -> None:
    await create_endpoint(hookd.client, ["*"])
    first = await post_event(
        hookd.client, {"event": "chamado.aberto", "data": {"v": 1}}, **{"Idempotency-Key": "k-1"}
    )
    assert first.status_code == 202, first.text
    before = await counts(hookd)
    for _ in range(3):
        again = await post_event(
            hookd.client,
            {"event": "chamado.aberto", "data": {"v": 2}},
            **{"Idempotency-Key": "k-1"},
        )
        assert again.status_code == 202, again.text
        assert again.json() == first.json()
    assert await counts(hookd) == before
    assert await count(hookd, "events") == 1
    other = await post_event(
        hookd.client, {"event": "chamado.aberto", "data": {}}, **{"Idempotency-Key": "k-2"}
    )
    assert other.json()["id"] != first.json()["id"]
    assert await count(hookd, "events") == 2


# -- POST /v1/events/batch -----------------------------------------------------------------


def _batch_items(n: int, event: str = "tarefa.concluida") -> list[dict[str, Any]]:
    return [{"event": event, "data": {"i": i}} for i in range(n)]


async def test_batch_as_json_array(hookd: Running) -> None:
    await create_endpoint(hookd.client, ["tarefa.*"])
    await create_endpoint(hookd.client, ["*"])
    items = [*_batch_items(3), {"event": "email.enviado", "data": {"para": "a@b.c"}}]
    response = await hookd.client.post("/v1/events/batch", json=items)

    assert response.status_code == 202, response.text
    answer = response.json()
    assert set(answer) == {"ids", "deliveries", "items"}
    assert [item["deliveries"] for item in answer["items"]] == [2, 2, 2, 1]
    assert not any(item["replayed"] for item in answer["items"])
    assert len(answer["ids"]) == 4
    assert len(set(answer["ids"])) == 4
    assert answer["deliveries"] == 3 * 2 + 1
    assert await count(hookd, "events") == 4
    assert await count(hookd, "deliveries") == 7
    for index, event_id in enumerate(answer["ids"][:3]):
        assert json.loads(await stored_body(hookd, event_id))["data"] == {"i": index}
        assert len(await deliveries_of(hookd, event_id)) == 2


async def test_batch_repeating_an_id_stores_it_once(hookd: Running) -> None:
    await create_endpoint(hookd.client, ["*"])
    before = await ingest(hookd.client, id="evt_before")
    items = [
        {"event": "cliente.criado", "id": "evt_twice", "data": {"n": 1}},
        {"event": "cliente.criado", "id": "evt_twice", "data": {"n": 2}},
        {"event": "cliente.criado", "id": before, "data": {"n": 3}},
        {"event": "cliente.criado", "data": {"n": 4}},
    ]
    response = await hookd.client.post("/v1/events/batch", json=items)

    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["ids"][:3] == ["evt_twice", "evt_twice", before]
    assert await counts(hookd) == {"events": 3, "deliveries": 3, "endpoints": 1}
    assert json.loads(await stored_body(hookd, "evt_twice"))["data"] == {"n": 1}
    assert len(await deliveries_of(hookd, answer["ids"][3])) == 1


async def test_batch_as_ndjson(hookd: Running) -> None:
    await create_endpoint(hookd.client, ["whatsapp.*"])
    lines = [
        {"event": "whatsapp.mensagem.recebida", "data": {"texto": "olá"}, "id": "wa-1"},
        {"event": "whatsapp.mensagem.recebida", "data": {"texto": "tchau"}, "id": "wa-2"},
        {"event": "cliente.criado", "data": {}},
    ]
    body = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n"
    response = await hookd.client.post("/v1/events/batch", content=body.encode(), headers=NDJSON)

    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["ids"][:2] == ["wa-1", "wa-2"]
    assert len(answer["ids"]) == 3
    assert answer["deliveries"] == 2
    assert await count(hookd, "events") == 3
    stored = await stored_body(hookd, "wa-1")
    timestamp = json.loads(stored)["timestamp"]
    assert GENERATED_TIMESTAMP.match(timestamp), timestamp
    expected = (
        '{"event":"whatsapp.mensagem.recebida","timestamp":"'
        + timestamp
        + '","data":{"texto":"olá"}}'
    )
    assert stored == expected.encode()


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        # a JSON array whose third item has an invalid event name
        (
            json.dumps([*_batch_items(2), {"event": "Bad", "data": {}}, *_batch_items(2)]),
            JSON,
        ),
        # a JSON array whose last item has no data
        (json.dumps([*_batch_items(4), {"event": "cliente.criado"}]), JSON),
        # NDJSON whose second line is not JSON
        ('{"event":"cliente.criado","data":{}}\n{not json\n', NDJSON),
        # NDJSON whose last line has a bad timestamp
        (
            '{"event":"cliente.criado","data":{}}\n'
            '{"event":"cliente.criado","data":{},"timestamp":20240101}\n',
            NDJSON,
        ),
    ],
)
async def test_batch_with_one_bad_item_stores_nothing(
    hookd: Running, content: str, headers: dict[str, str]
) -> None:
    await create_endpoint(hookd.client, ["*"])
    response = await hookd.client.post(
        "/v1/events/batch", content=content.encode(), headers=headers
    )
    assert 400 <= response.status_code < 500, response.text
    assert_error(response, response.status_code)
    assert await count(hookd, "events") == 0
    assert await count(hookd, "deliveries") == 0


async def test_batch_over_1000_items_is_413_and_stores_nothing(hookd: Running) -> None:
    response = await hookd.client.post("/v1/events/batch", json=_batch_items(1001))
    assert_error(response, 413)
    assert await count(hookd, "events") == 0
    exactly = await hookd.client.post("/v1/events/batch", json=_batch_items(1000))
    assert exactly.status_code == 202, exactly.text
    assert await count(hookd, "events") == 1000


# -- GET /v1/events ------------------------------------------------------------------------


async def test_list_pages_through_every_event_once_newest_first(hookd: Running) -> None:
    response = await hookd.client.post("/v1/events/batch", json=_batch_items(23))
    ingested = response.json()["ids"]
    ingested.append(await ingest(hookd.client))

    for limit in (1, 5, 8, 24, 50):
        seen = await list_all(hookd.client, limit)
        assert len(seen) == len(set(seen)), f"duplicates with limit={limit}"
        assert seen == list(reversed(ingested)), f"gap or wrong order with limit={limit}"


async def test_a_page_of_large_events_stops_at_its_byte_budget(hookd: Running) -> None:
    ingested = []
    for n in range(12):  # about 0.9 MB each: 11 MB in all, beyond one page's 8 MiB
        event = {"event": "cliente.criado", "data": {"id": f"c{n}", "pad": "z" * 900_000}}
        ingested.append((await hookd.client.post("/v1/events", json=event)).json()["id"])

    first = await hookd.client.get("/v1/events", params={"limit": 1000})
    page = first.json()

    assert 8 <= len(page["items"]) < 12
    assert len(first.content) < 8 * 1024 * 1024 + 1_000_000  # the budget and one event
    assert page["next_cursor"] is not None
    assert await list_all(hookd.client, 1000) == list(reversed(ingested))


async def test_list_filters_by_type(hookd: Running) -> None:
    tarefas = (await hookd.client.post("/v1/events/batch", json=_batch_items(7))).json()["ids"]
    clientes = (
        await hookd.client.post("/v1/events/batch", json=_batch_items(5, "cliente.criado"))
    ).json()["ids"]

    assert await list_all(hookd.client, 3, type="cliente.criado") == list(reversed(clientes))
    assert await list_all(hookd.client, 2, type="tarefa.concluida") == list(reversed(tarefas))
    assert await list_all(hookd.client, 10, type="chamado.aberto") == []
    page = (await hookd.client.get("/v1/events", params={"type": "cliente.criado"})).json()
    assert {item["event"] for item in page["items"]} == {"cliente.criado"}


async def test_get_event_shows_its_deliveries(hookd: Running) -> None:
    one = await create_endpoint(hookd.client, ["cliente.criado"])
    two = await create_endpoint(hookd.client, ["cliente.*"])
    await create_endpoint(hookd.client, ["tarefa.*"])
    event_id = await ingest(hookd.client, timestamp="2024-01-01T10:00:00Z")

    response = await hookd.client.get(f"/v1/events/{event_id}")
    assert response.status_code == 200, response.text
    event = response.json()
    assert event["id"] == event_id
    assert event["event"] == "cliente.criado"
    assert event["timestamp"] == "2024-01-01T10:00:00Z"
    assert event["data"] == {"n": 1}
    assert sorted(d["endpoint_id"] for d in event["deliveries"]) == sorted([one["id"], two["id"]])
    for delivery in event["deliveries"]:
        assert delivery["event_id"] == event_id
        assert delivery["status"] == "pending"


async def test_get_unknown_event_is_404(hookd: Running) -> None:
    await ingest(hookd.client)
    assert_error(await hookd.client.get("/v1/events/evt_doesnotexist"), 404)
