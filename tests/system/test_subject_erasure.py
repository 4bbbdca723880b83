"""Erasure at scale against a real `hookd serve`: 1,000 events about João among 100,000
others; after `POST /v1/subjects/erase` by his e-mail his e-mail, name and phone are
nowhere in the bytes of the database, `-wal` and `-shm` files; the others' events and
deliveries are untouched; his pending deliveries are never attempted again, also when
hookd is killed (-9) right after the 200 and started anew; the audit entry holds counts
and hashes, no value.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import trio

from tests.daemon_process import DaemonProcess
from tests.receiver import Answer, Receiver, serve_receiver

EMAIL_SENT = "Joao.Sigiloso@Example.com"
NAME = "João Sigiloso"
PHONE_SENT = "(11) 98765-4321"
NEEDLES = [
    EMAIL_SENT.encode(),
    EMAIL_SENT.lower().encode(),
    NAME.encode(),
    NAME.encode("unicode_escape"),  # Jo\xe3o: as an escaped JSON string might hold it
    json.dumps(NAME).encode(),  # "Jo\u00e3o Sigiloso"
    PHONE_SENT.encode(),
    b"11987654321",
]
OTHERS = 99_000
JOAO_EVENTS = 1_000
JOAO_SUBSCRIBED = 100  # of his events, those an endpoint receives (cliente.atualizado)
OTHERS_SUBSCRIBED = 20
BATCH = 1000
RETRY = '"2s"'


def joao_event(n: int) -> dict[str, Any]:
    if n < JOAO_SUBSCRIBED:
        data = {"id": "cliente_123", "nome": NAME, "email": EMAIL_SENT, "telefone": PHONE_SENT}
        return {"event": "cliente.atualizado", "data": data}
    text = f"Olá, sou {NAME}, meu telefone é {PHONE_SENT}"
    return {
        "event": "email.recebido",
        "data": {"contaId": "c1", "mensagemId": f"j{n}", "remetente": EMAIL_SENT, "conteudo": text},
    }


def other_event(n: int) -> dict[str, Any]:
    if n < OTHERS_SUBSCRIBED:
        data = {"id": f"cliente_o{n}", "nome": f"Pessoa {n}", "email": f"pessoa{n}@example.com"}
        return {"event": "cliente.atualizado", "data": data}
    if n % 2:
        return {"event": "tarefa.criada", "data": {"id": f"t{n}", "clienteId": f"cliente_o{n}"}}
    data = {"contaId": "c1", "mensagemId": f"o{n}", "remetente": f"pessoa{n}@example.com"}
    return {"event": "email.recebido", "data": data}


async def build(client: httpx.AsyncClient) -> tuple[set[str], set[str]]:
    """Ingest João's events spread among the others', in batches; both sets of ids."""
    joao: set[str] = set()
    others: set[str] = set()
    per_batch = JOAO_EVENTS * BATCH // (JOAO_EVENTS + OTHERS)  # 10 of his in each batch
    made_joao = made_others = 0
    while made_joao + made_others < JOAO_EVENTS + OTHERS:
        items: list[tuple[bool, dict[str, Any]]] = []
        for _ in range(min(per_batch, JOAO_EVENTS - made_joao)):
            items.append((True, joao_event(made_joao)))
            made_joao += 1
        while len(items) < BATCH and made_others < OTHERS:
            items.append((False, other_event(made_others)))
            made_others += 1
        body = "\n".join(json.dumps(event, ensure_ascii=False) for _, event in items)
        response = await client.post(
            "/v1/events/batch",
            content=body.encode(),
            headers={"content-type": "application/x-ndjson"},
            timeout=60,
        )
        assert response.status_code == 202, response.text
        for (his, _), ident in zip(items, response.json()["ids"], strict=True):
            (joao if his else others).add(ident)
    return joao, others


def arrived_for(receiver: Receiver, ids: set[str], since: int = 0) -> int:
    return sum(1 for r in receiver.received[since:] if r.headers["x-webhook-id"] in ids)


def indexed(database: Path) -> bool:
    """Whether the subject index covers every event stored."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        [(done, last)] = db.execute(
            "SELECT done_seq, (SELECT max(seq) FROM events) FROM subject_index"
        ).fetchall()
    return bool(done >= last)


def files_holding(database: Path, needles: list[bytes]) -> list[tuple[str, bytes]]:
    """(file, needle) for every needle found in the database, -wal or -shm bytes."""
    found = []
    for suffix in ("", "-wal", "-shm"):
        path = Path(f"{database}{suffix}")
        data = path.read_bytes() if path.exists() else b""
        found += [(path.name, needle) for needle in needles if needle in data]
    return found


async def test_erasure_of_one_person_among_100000(tmp_path: Path) -> None:
    schedule = ", ".join(['"0s"'] + [RETRY] * 40)
    extra = f"[delivery]\nretry_schedule = [{schedule}]\n"
    daemon = DaemonProcess(tmp_path, extra)
    async with serve_receiver(lambda _: Answer(503)) as receiver, trio.open_nursery() as nursery:
        client = await daemon.start(nursery)
        endpoint = {"url": receiver.url, "events": ["cliente.atualizado"]}
        assert (await client.post("/v1/endpoints", json=endpoint)).status_code == 201
        joao, others = await build(client)
        assert len(joao) == JOAO_EVENTS
        assert len(others) == OTHERS
        with trio.fail_after(60):  # every subscribed event attempted (503: retried)
            while True:
                if arrived_for(receiver, joao) >= JOAO_SUBSCRIBED:
                    break
                await trio.sleep(0.2)
        assert files_holding(daemon.database, NEEDLES[:1])  # the grep finds what is there
        with trio.fail_after(60):  # the index catches up once the import has ended
            while True:
                if indexed(daemon.database):
                    break
                await trio.sleep(0.2)

        response = await client.post("/v1/subjects/erase", json={"email": EMAIL_SENT.upper()})
        daemon.signal(signal.SIGKILL)  # right after the 200
        answered_at = len(receiver.received)
        assert response.status_code == 200, response.text
        erased = response.json()
        assert erased["attempts_cleared"] >= JOAO_SUBSCRIBED  # each had answered, or more
        assert erased == {
            "events": JOAO_EVENTS,
            "deliveries_erased": JOAO_SUBSCRIBED,
            "attempts_cleared": erased["attempts_cleared"],
            "wal_truncated": True,
        }
        await daemon.wait()
        await client.aclose()

        assert files_holding(daemon.database, NEEDLES) == []
        with sqlite3.connect(daemon.database) as db:
            bodies = dict(db.execute("SELECT id, body FROM events"))
            statuses = dict(
                db.execute(
                    "SELECT e.id, group_concat(d.status) FROM deliveries d"
                    " JOIN events e ON e.seq = d.event_seq GROUP BY e.id"
                )
            )
            [(audit,)] = db.execute("SELECT fields FROM audit WHERE action = 'erase_subject'")
            excerpts = dict(
                db.execute(
                    "SELECT e.id, max(length(a.response_excerpt)) FROM attempts a"
                    " JOIN deliveries d ON d.id = a.delivery_id"
                    " JOIN events e ON e.seq = d.event_seq GROUP BY e.id"
                )
            )
            index_rows = db.execute("SELECT count(*) FROM subjects").fetchone()[0]
        assert all(b'"data":' not in bodies[i] for i in joao)
        assert all(b'"data":' in bodies[i] for i in others)  # the others untouched
        assert {statuses[i] for i in joao if i in statuses} == {"erased"}
        assert {statuses[i] for i in others if i in statuses} == {"pending"}
        assert {excerpts[i] for i in joao if i in excerpts} == {0}
        assert {excerpts[i] for i in others if i in excerpts} == {len(b'{"success":true}')}
        assert index_rows > 0
        fields = json.loads(audit)
        assert fields[:2] == [f"events={JOAO_EVENTS}", f"deliveries_erased={JOAO_SUBSCRIBED}"]
        assert not any(n.lower() in audit.encode().lower() for n in NEEDLES)

        client = await daemon.start(nursery)  # after the kill -9: his stay erased
        restarted_at = len(receiver.received)
        with trio.fail_after(30):  # the others' deliveries are retried again
            while True:
                if arrived_for(receiver, others, restarted_at) >= OTHERS_SUBSCRIBED:
                    break
                await trio.sleep(0.2)
        await trio.sleep(2.5)  # a full retry interval more
        assert arrived_for(receiver, joao, answered_at) == 0
        await client.aclose()
        daemon.signal(signal.SIGTERM)
        assert await daemon.wait() == 0
