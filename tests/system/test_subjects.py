"""Data subjects against a real daemon (README, "Personal data"): the index stores keyed
hashes at ingest, `GET /v1/subjects` lists exactly the events naming a person, and
`POST /v1/subjects/erase` turns them into tombstones, ends their pending deliveries
`erased` (never attempted again) and writes an audit entry without a clear value.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from hookd.db import subjects
from hookd.db.errors import PartlyErased, StorageError
from hookd.db.sqlite import SqliteBackend
from hookd.db.types import NewEvent
from hookd.domain.envelope import IngestRequest, format_timestamp, prepare
from hookd.runtime.subject_indexer import BULK_TAIL, SubjectIndexer
from tests.cli_runner import cli
from tests.conftest import Running
from tests.receiver import Answer, serve_receiver
from tests.system.test_api_events import assert_error, create_endpoint, db_path, db_rows

Factory = Callable[..., Awaitable[Running]]

JOAO = {"id": "cliente_123", "nome": "João Sigiloso", "email": " Joao.Sigiloso@Example.com "}
MARIA = {"id": "cliente_456", "nome": "Maria Outra", "email": "maria@example.com"}


async def ingest(running: Running, event: str, data: dict[str, Any]) -> str:
    response = await running.client.post("/v1/events", json={"event": event, "data": data})
    assert response.status_code == 202, response.text
    ident: str = response.json()["id"]
    return ident


async def subject(running: Running, **selectors: str) -> list[dict[str, Any]]:
    response = await running.client.get("/v1/subjects", params=selectors)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def about_joao_and_maria(running: Running) -> tuple[list[str], list[str]]:
    """Events about João (by id, e-mail or phone, in several spellings) and Maria."""
    joao = [
        await ingest(running, "cliente.criado", {**JOAO, "telefone": "(11) 99999-9999"}),
        await ingest(running, "tarefa.criada", {"id": "t1", "clienteId": "cliente_123"}),
        await ingest(running, "whatsapp.mensagem.recebida", {
            "conversaId": "c1", "mensagemId": "m1", "remetente": "5511999999999",
            "conteudo": "oi, aqui é o João",
        }),
        await ingest(running, "email.recebido", {
            "contaId": "a1", "mensagemId": "e1", "remetente": "joao.sigiloso@example.com",
        }),
    ]  # fmt: skip
    maria = [
        await ingest(running, "cliente.criado", {**MARIA, "telefone": "+55 21 98888-7777"}),
        await ingest(running, "chamado.aberto", {"id": "ch1", "clienteId": "cliente_456"}),
    ]
    return joao, maria


async def test_access_lists_exactly_the_matching_events(hookd: Running) -> None:
    joao, maria = await about_joao_and_maria(hookd)

    by_email = await subject(hookd, email="JOAO.SIGILOSO@example.com")
    assert [e["id"] for e in by_email] == [joao[3], joao[0]]  # newest first
    by_phone = await subject(hookd, phone="(11) 99999-9999")
    assert [e["id"] for e in by_phone] == [joao[2], joao[0]]
    assert [e["id"] for e in await subject(hookd, phone="+55 11 99999 9999")] == [
        joao[2],
        joao[0],
    ]
    by_client = await subject(hookd, cliente_id="cliente_123")
    assert [e["id"] for e in by_client] == [joao[1], joao[0]]
    everything = await subject(
        hookd, cliente_id="cliente_123", email="joao.sigiloso@example.com", phone="11999999999"
    )
    assert [e["id"] for e in everything] == joao[::-1]
    assert everything[0]["event"] == "email.recebido"
    assert everything[0]["erased"] is False
    assert [e["id"] for e in await subject(hookd, phone="21988887777")] == [maria[0]]
    assert await subject(hookd, email="nobody@example.com") == []
    assert await subject(hookd, cliente_id="cliente_999") == []


async def test_access_lists_deliveries_and_pages(hookd: Running) -> None:
    endpoint = await create_endpoint(hookd.client, ["cliente.*"])
    joao, _ = await about_joao_and_maria(hookd)
    [first] = await subject(hookd, cliente_id="cliente_123", limit="1")
    assert first["id"] == joao[1]
    assert first["deliveries"] == []  # tarefa.* goes nowhere
    response = await hookd.client.get("/v1/subjects", params={"cliente_id": "cliente_123"})
    [_, created] = response.json()["items"]
    [delivery] = created["deliveries"]
    assert delivery["endpoint_id"] == endpoint["id"]
    assert delivery["status"] in ("pending", "failed")
    page = await hookd.client.get(
        "/v1/subjects", params={"cliente_id": "cliente_123", "limit": "1"}
    )
    cursor = page.json()["next_cursor"]
    rest = await subject(hookd, cliente_id="cliente_123", cursor=cursor)
    assert [e["id"] for e in rest] == [joao[0]]


async def test_malformed_selectors_are_a_400_naming_them(hookd: Running) -> None:
    cases = [
        ({}, "at least one of cliente_id, email, phone"),
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@b@c"}, "email"),
        ({"phone": "123"}, "phone"),
        ({"phone": "1" * 16}, "phone"),
        ({"cliente_id": ""}, "cliente_id"),
        ({"email": "joao@example.com", "phone": "abc"}, "phone"),
    ]
    for params, named in cases:
        response = await hookd.client.get("/v1/subjects", params=params)
        error = assert_error(response, 400)
        assert named in error["message"], (params, error)
        erase = await hookd.client.post("/v1/subjects/erase", json=params)
        assert named in assert_error(erase, 400)["message"]
    assert_error(await hookd.client.post("/v1/subjects/erase", json={"nome": "João"}), 422)
    json_type = {"content-type": "application/json"}
    broken = await hookd.client.post("/v1/subjects/erase", content=b"{", headers=json_type)
    assert_error(broken, 400)


async def test_the_index_holds_no_value_in_clear(hookd: Running) -> None:
    await about_joao_and_maria(hookd)
    query = "SELECT event_seq, hash FROM subjects"
    with trio.fail_after(10):  # the indexer fills the table behind ingest
        while True:
            rows = await db_rows(db_path(hookd), query)
            if len(rows) >= 10:
                break
            await trio.sleep(0.05)
    assert len(rows) == 10  # João: 3 + 1 + 1 + 1, Maria: 3 + 1
    for _, digest in rows:
        assert len(digest) == 16
        for value in (b"cliente_123", b"joao", b"99999", b"maria", b"cliente_456"):
            assert value not in digest
    key = f"{db_path(hookd)}.subject-key"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert os.stat(key).st_size == 32


async def test_without_the_index_access_is_a_409(hookd_factory: Factory) -> None:
    running = await hookd_factory("[storage]\nsubject_index = false\n")
    await about_joao_and_maria(running)
    assert await db_rows(db_path(running), "SELECT count(*) FROM subjects") == [(0,)]
    response = await running.client.get("/v1/subjects", params={"cliente_id": "cliente_123"})
    assert "subject_index" in assert_error(response, 409)["message"]


async def test_erasure_tombstones_erases_pending_and_audits(hookd_factory: Factory) -> None:
    async with serve_receiver(lambda _: Answer(503)) as receiver:
        schedule = ", ".join(['"0s"'] + ['"1s"'] * 30)
        running = await hookd_factory(f"[delivery]\nretry_schedule = [{schedule}]\n")
        await create_endpoint(running.client, ["cliente.*", "email.*"], url=receiver.url)
        joao, maria = await about_joao_and_maria(running)
        await receiver.wait_for(4)  # each event of João's and Maria's types once (503)

        response = await running.client.post(
            "/v1/subjects/erase", json={"email": "joao.sigiloso@example.com"}
        )
        assert response.status_code == 200, response.text
        assert response.json() == {
            "events": 2,
            "deliveries_erased": 2,
            "attempts_cleared": response.json()["attempts_cleared"],
            "wal_truncated": True,
        }
        erased_ids = {joao[0], joao[3]}
        sent_before = len(receiver.received)
        await trio.sleep(3)  # Maria's delivery is retried every second, João's never
        after = receiver.received[sent_before:]
        assert after, "Maria's delivery goes on being retried"
        assert not [r for r in after if r.headers["x-webhook-id"] in erased_ids]

        erased = await running.client.get(f"/v1/events/{joao[0]}")
        assert erased.json()["data"] is None
        assert [d["status"] for d in erased.json()["deliveries"]] == ["erased"]
        kept = await running.client.get(f"/v1/events/{maria[0]}")
        assert kept.json()["data"]["nome"] == "Maria Outra"
        assert [d["status"] for d in kept.json()["deliveries"]] == ["pending"]
        [(body,)] = await db_rows(
            db_path(running), f"SELECT body FROM events WHERE id = '{joao[0]}'"
        )
        assert (
            body
            == b'{"event":"cliente.criado","timestamp":"'
            + (erased.json()["timestamp"].encode())
            + b'"}'
        )
        # Still listed (ids and types), as erased, until found by its other selectors:
        # the erased events' index rows are gone.
        assert await subject(running, email="joao.sigiloso@example.com") == []
        left = await subject(running, cliente_id="cliente_123")
        assert [e["id"] for e in left] == [joao[1]]
        retry = await running.client.post(
            f"/v1/deliveries/{erased.json()['deliveries'][0]['id']}/retry"
        )
        assert "erased" in assert_error(retry, 409)["message"]

        audit = (await running.client.get("/v1/audit")).json()["items"][0]
        assert audit["action"] == "erase_subject"
        assert audit["origin"] == "socket"
        assert audit["fields"][:2] == ["events=2", "deliveries_erased=2"]
        [selector] = [f for f in audit["fields"] if f.startswith("email=")]
        assert len(selector) == len("email=") + 32
        assert "joao" not in str(audit).lower()

        status = (await running.client.get("/v1/status")).json()
        assert status["deliveries"]["erased"] == 2
        stats = (await running.client.get("/v1/stats")).json()["endpoints"][0]
        assert stats["windows"]["last_hour"]["attempts"] >= 4  # João's attempts still count


async def erase_joao(running: Running) -> None:
    response = await running.client.post(
        "/v1/subjects/erase", json={"email": "joao.sigiloso@example.com"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["deliveries_erased"] == 1


JOAO_EMAIL = {"contaId": "a1", "mensagemId": "e1", "remetente": "joao.sigiloso@example.com"}
EVERY_SECOND = "[delivery]\nretry_schedule = [" + ", ".join(['"0s"'] + ['"1s"'] * 30) + "]\n"


async def test_an_attempt_recorded_just_before_the_erasure_is_not_retried(
    hookd_factory: Factory,
) -> None:
    """The race of two awaits: the attempt's record (pending, retry in 1 s) commits
    before the erasure, but the recorder resumes after the erasure was handed to the
    scheduler. The retry it would track goes out with the kept body unless the
    scheduler remembers what was erased while out."""
    async with serve_receiver(lambda _: Answer(503)) as receiver:
        running = await hookd_factory(EVERY_SECOND)
        store = running.daemon.store
        assert store is not None
        record_attempts = store.record_attempts
        committed, release = trio.Event(), trio.Event()

        async def held_after_commit(*args: Any) -> Any:
            recorded = await record_attempts(*args)
            committed.set()
            await release.wait()
            return recorded

        store.record_attempts = held_after_commit  # type: ignore[method-assign,assignment]
        await create_endpoint(running.client, ["email.*"], url=receiver.url)
        await ingest(running, "email.recebido", JOAO_EMAIL)
        await committed.wait()
        await erase_joao(running)
        release.set()
        await trio.sleep(2.5)  # two retries' time
        assert len(receiver.received) == 1


async def test_an_erasure_cuts_short_the_attempt_out(hookd_factory: Factory) -> None:
    async with serve_receiver(lambda _: Answer(503, delay=30)) as receiver:
        running = await hookd_factory(EVERY_SECOND)
        await create_endpoint(running.client, ["email.*"], url=receiver.url)
        event_id = await ingest(running, "email.recebido", JOAO_EMAIL)
        await receiver.wait_for(1)
        await erase_joao(running)
        [delivery] = (await running.client.get(f"/v1/events/{event_id}")).json()["deliveries"]
        assert delivery["status"] == "erased"
        with trio.fail_after(5):  # recorded at once, not when the receiver answers
            while True:
                shown = (await running.client.get(f"/v1/deliveries/{delivery['id']}")).json()
                if shown["attempt_log"]:
                    break
                await trio.sleep(0.05)
        [attempt] = shown["attempt_log"]
        assert attempt["error_kind"] == "interrupted"
        assert attempt["error"] == (
            "interrupted: its event was erased after the request went out; the receiver may have it"
        )
        await trio.sleep(1.5)
        assert len(receiver.received) == 1


async def test_a_job_waiting_for_a_slot_when_erased_is_dropped(
    hookd_factory: Factory,
) -> None:
    """With one slot, held by a slow attempt elsewhere, João's job waits in its worker;
    erased meanwhile, it never goes out."""
    async with (
        serve_receiver(lambda _: Answer(200, delay=2)) as slow,
        serve_receiver() as receiver,
    ):
        running = await hookd_factory(EVERY_SECOND + "concurrency = 1\n")
        await create_endpoint(running.client, ["chamado.*"], url=slow.url)
        await create_endpoint(running.client, ["email.*"], url=receiver.url)
        await ingest(running, "chamado.aberto", {"id": "ch1", "clienteId": "cliente_456"})
        await slow.wait_for(1)
        await ingest(running, "email.recebido", JOAO_EMAIL)
        await trio.sleep(0.3)  # its worker has taken the job and waits for the slot
        await erase_joao(running)
        await trio.sleep(2.5)
        assert len(slow.received) == 1
        assert receiver.received == []


async def test_cli_shows_and_erases_after_confirmation(hookd: Running) -> None:
    joao, maria = await about_joao_and_maria(hookd)
    shown = await cli(hookd.socket, "subject", "show", "--email", "JOAO.sigiloso@example.com")
    assert shown.code == 0, shown.err
    assert joao[0] in shown.out
    assert joao[3] in shown.out
    assert maria[0] not in shown.out
    listed = await cli(hookd.socket, "subject", "show", "--phone", "11 99999-9999", "--json")
    assert [e["id"] for e in listed.json()["items"]] == [joao[2], joao[0]]
    nobody = await cli(hookd.socket, "subject", "show", "--cliente-id", "cliente_999")
    assert (nobody.code, nobody.out) == (0, "")
    assert "no event" in nobody.err
    assert (await cli(hookd.socket, "subject", "show")).code == 2
    bad = await cli(hookd.socket, "subject", "show", "--phone", "12")
    assert bad.code == 1
    assert "phone" in bad.err

    declined = await cli(
        hookd.socket, "subject", "erase", "--cliente-id", "cliente_123", stdin=b"no\n"
    )
    assert declined.code == 2
    assert "not erased" in declined.err
    assert len(await subject(hookd, cliente_id="cliente_123")) == 2  # nothing erased
    confirmed = await cli(
        hookd.socket, "subject", "erase", "--cliente-id", "cliente_123", stdin=b"yes\n"
    )
    assert confirmed.code == 0, confirmed.err
    assert "erased 2 events" in confirmed.out
    assert "cliente_123" not in confirmed.out + confirmed.err
    forced = await cli(
        hookd.socket, "subject", "erase", "--phone", "21988887777", "--yes", "--json"
    )
    assert forced.json()["events"] == 1
    assert (await hookd.client.get(f"/v1/events/{maria[0]}")).json()["data"] is None


async def test_retention_and_erasure_take_the_index_rows_with_their_events(
    short_dir: Path,
) -> None:
    store = await SqliteBackend.open(str(short_dir / "hookd.db"), "normal")
    try:
        await unreachable_endpoint(store, "b.*")
        hashes = [bytes([n]) * 16 for n in range(4)]
        made = []
        for n, (name, who) in enumerate(
            [("a.x", hashes[:2]), ("b.x", hashes[1:3]), ("a.y", hashes[3:]), ("a.z", [])]
        ):
            event = prepare(IngestRequest(name, {"n": n}), format_timestamp(100.0 * n))
            made += await store.ingest([NewEvent(event, f"e{n}", subjects=tuple(who))], 100.0 * n)
        assert await store.index_subjects(100) == 4
        assert await store.subject_event_seqs([hashes[1]]) == [1, 2]
        assert await store.subject_event_seqs([hashes[0], hashes[3]]) == [1, 3]
        rows = "SELECT event_seq, hash FROM subjects ORDER BY 1, 2"
        assert len(await db_rows(store.engine.path, rows)) == 5

        await store.sweep_events(150.0, 0, 100)  # a.x goes; b.x has a delivery; a.y is new
        assert await db_rows(store.engine.path, rows) == [
            (2, hashes[1]),
            (2, hashes[2]),
            (3, hashes[3]),
        ]
        erased = await store.erase_events([2], 300.0)
        assert (erased.events, [d for d, _ in erased.erased]) == (1, [made[1].created[0].id])
        assert await db_rows(store.engine.path, rows) == [(3, hashes[3])]
        assert await store.subject_event_seqs([hashes[1], hashes[2]]) == []
    finally:
        await store.aclose()


async def test_lookups_see_events_whether_indexed_yet_or_not(short_dir: Path) -> None:
    """Ingest stores the hashes in each event's row; the table is filled behind it, a
    chunk at a time. A lookup finds the same events before, during and after."""
    store = await SqliteBackend.open(str(short_dir / "hookd.db"), "normal")
    try:
        joao, maria = bytes(16), bytes([1]) * 16
        # An event naming Maria whose hashes hold João's bytes off the 16-byte grid.
        offset = bytes([7]) * 8 + joao[:8], joao[8:] + bytes([7]) * 8
        naming = [(joao,), (maria,), (maria, joao), offset, (), (joao, maria)]
        for n, who in enumerate(naming):
            event = prepare(IngestRequest("a.x", {"n": n}), format_timestamp(1.0))
            await store.ingest([NewEvent(event, f"e{n}", subjects=who)], 1.0)
        wanted = {joao: [1, 3, 6], maria: [2, 3, 6]}
        rows = "SELECT count(*) FROM subjects"
        for step, covered in ((0, 0), (2, 2), (3, 3), (100, 1), (100, 0)):
            if step:
                assert await store.index_subjects(step) == covered
            for digest, seqs in wanted.items():
                assert await store.subject_event_seqs([digest]) == seqs, (step, digest)
            page = await store.subject_events([joao], 2, None)
            assert [e.id for e in page.items] == ["e5", "e2"]
            assert page.next_cursor is not None
            older = await store.subject_events([joao], 2, int(page.next_cursor))
            assert [e.id for e in older.items] == ["e0"]
        assert await db_rows(store.engine.path, rows) == [(8,)]  # 1+1+2+2+0+2: every hash
        with trio.fail_after(1):
            await store.until_no_writes()
    finally:
        await store.aclose()


@pytest.fixture
def virtual_clock() -> trio.testing.MockClock:
    # Jumps only after a few real milliseconds of idleness: not during the writer's work.
    return trio.testing.MockClock(autojump_threshold=0.02)


async def test_the_indexer_waits_for_a_bulk_import_to_end(
    short_dir: Path, virtual_clock: trio.testing.MockClock
) -> None:
    """Stored faster than BULK_RATE, events are left to the lookups' row-by-row read
    until the import ends or BULK_TAIL of them wait; then the table is filled."""
    store = await SqliteBackend.open(str(short_dir / "hookd.db"), "normal")
    try:
        for n in range(3):
            event = prepare(IngestRequest("a.x", {"n": n}), format_timestamp(1.0))
            await store.ingest([NewEvent(event, f"e{n}", subjects=(bytes(16),))], 1.0)
        indexer = SubjectIndexer(store)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(indexer.run)
            await wait_until(lambda: indexed_rows(store), 3)  # at start

            async def bulk(per_tick: int, done: trio.Event) -> None:
                while not done.is_set():
                    indexer.wake(per_tick)
                    await trio.sleep(0.1)

            importing = trio.Event()
            nursery.start_soon(bulk, 1000, importing)  # 10,000 a second: an import
            await trio.sleep(1.0)
            await store.ingest([new_event(n) for n in range(3, 9)], 2.0)
            indexer.wake(6)
            await trio.sleep(2.0)
            assert await indexed_rows(store) == 3
            importing.set()
            ended = trio.current_time()
            await wait_until(lambda: indexed_rows(store), 9)
            assert trio.current_time() - ended <= 1.5  # once the rate has fallen

            importing = trio.Event()
            nursery.start_soon(bulk, 10_000, importing)  # 100,000 a second
            await trio.sleep(1.0)
            await store.ingest([new_event(n) for n in range(9, 12)], 3.0)
            indexer.wake(3)
            await trio.sleep(0.5)
            assert await indexed_rows(store) == 9  # 150,000 waiting
            await wait_until(lambda: indexed_rows(store), 12)
            assert indexer.import_wait() > 0  # indexed under the import: the tail's bound
            importing.set()
            nursery.cancel_scope.cancel()
        assert BULK_TAIL == 250_000
    finally:
        await store.aclose()


async def unreachable_endpoint(store: SqliteBackend, events: str) -> None:
    """Endpoint `ep` for `events`, at a port nothing listens on."""
    spec = {"id": "ep", "url": "http://127.0.0.1:9/", "events": [events], "secret": "s"}
    await store.create_endpoint(spec, 0.0, origin="socket")


def new_event(n: int) -> NewEvent:
    event = prepare(IngestRequest("a.x", {"n": n}), format_timestamp(2.0))
    return NewEvent(event, f"e{n}", subjects=(bytes(16),))


async def wait_until(read: Callable[[], Awaitable[Any]], wanted: Any) -> None:
    """Poll `read` until it gives `wanted`: up to 600 times, 50 ms apart on the test's
    clock (no deadline: a virtual clock would jump to it while a read runs)."""
    for _ in range(600):
        if await read() == wanted:
            return
        await trio.sleep(0.05)
    raise AssertionError(f"still {await read()!r}, not {wanted!r}")


async def indexed_rows(store: SqliteBackend) -> int:
    """The rows of the subject index's table."""
    [(rows,)] = await store.engine.read(
        lambda c: c.execute("SELECT count(*) FROM subjects").fetchall()
    )
    assert isinstance(rows, int)
    return rows


async def test_a_failed_erasure_step_reports_what_the_steps_before_it_erased(
    short_dir: Path,
) -> None:
    """A step that fails rolls back alone; the deliveries the committed steps ended
    `erased` are handed back (PartlyErased), for the scheduler to drop them."""
    store = await SqliteBackend.open(str(short_dir / "hookd.db"), "normal")
    try:
        await unreachable_endpoint(store, "a.*")
        made = [(await store.ingest([new_event(n)], 2.0))[0] for n in range(12)]
        deliveries = [m.created[0].id for m in made]
        # A real failure of SQLite's on the third slice: a value too big (SQLITE_TOOBIG).
        await store.engine.write(
            lambda c: c.execute(
                "CREATE TEMP TRIGGER boom BEFORE UPDATE OF body ON events WHEN old.seq = 11"
                " BEGIN SELECT zeroblob(2000000000); END"
            )
        )
        eraser = subjects.Eraser(list(range(1, 13)), 5.0, lambda: True)  # a slice a step
        with pytest.raises(StorageError, match="too big"):
            await store.engine.in_steps(eraser)
        assert sorted(d for d, _ in eraser.committed) == deliveries[:10]
        statuses = "SELECT status, count(*) FROM deliveries GROUP BY 1 ORDER BY 1"
        assert await db_rows(store.engine.path, statuses) == [("erased", 10), ("pending", 2)]

        with pytest.raises(PartlyErased) as failed:  # through the backend: one step here
            await store.erase_events([11, 12], 6.0)
        assert failed.value.erased == []
    finally:
        await store.aclose()
