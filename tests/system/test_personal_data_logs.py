"""Logs carry ids, never personal data: a real `hookd serve` at DEBUG ingests
events holding names, e-mail addresses, phone numbers and message texts (some departing
from the catalog, some refused), delivers them (failing, then succeeding), answers access
and erasure requests about a person, and stops; its whole log output holds none of those
values.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import trio

from tests.conftest import socket_client, write_config
from tests.receiver import Answer, Received, serve_receiver

NAME = "Joaquina Reservada"
EMAIL = "joaquina.reservada@example.com"
PHONE = "(21) 97654-3210"
TEXT = "meu cartao termina em 4321 e moro na Rua Escondida"
VALUES = [NAME, EMAIL, PHONE, "21976543210", TEXT, "Escondida", "Reservada", "reservada"]


async def test_the_log_at_debug_holds_no_personal_data(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        '[delivery]\nretry_schedule = ["0s", "200ms", "200ms"]\n'
        '[ingest]\nvalidate = "report"\n[log]\nlevel = "debug"\n',
    )
    log_path = tmp_path / "stderr.log"
    answers = iter([500, 503])

    def answer(_: Received) -> Answer:
        return Answer(next(answers, 200), body=f'{{"echo":"{NAME} {EMAIL}"}}'.encode())

    async with serve_receiver(answer) as receiver:
        log = await trio.to_thread.run_sync(log_path.open, "wb")
        command = [sys.executable, "-m", "hookd", "serve", "--config", str(config)]
        process = await trio.lowlevel.open_process(command, stderr=log)
        log.close()
        try:
            client = socket_client(str(tmp_path / "hookd.sock"))
            with trio.fail_after(20):
                while True:
                    try:
                        if (await client.get("/healthz")).status_code == 200:
                            break
                    except Exception:
                        await trio.sleep(0.05)
            endpoint = {"url": receiver.url, "events": ["*"]}
            assert (await client.post("/v1/endpoints", json=endpoint)).status_code == 201
            events = [
                {"event": "cliente.criado", "data": {
                    "id": "cliente_9", "nome": NAME, "email": EMAIL, "telefone": PHONE,
                    "createdAt": EMAIL,  # not RFC 3339: reported, with the value
                }},
                {"event": "whatsapp.mensagem.recebida", "data": {
                    "conversaId": "c9", "mensagemId": "m9", "remetente": PHONE,
                    "conteudo": TEXT, "tipo": "TEXT",
                }},
                {"event": "tarefa.criada", "data": {
                    "id": "t9", "clienteId": "cliente_9", "titulo": TEXT, "status": NAME,
                }},  # a status outside the enumeration: reported, with the value
                {"event": "pedido.qualquer", "data": {"contato": EMAIL, "obs": TEXT}},
            ]  # fmt: skip
            for event in events:
                response = await client.post("/v1/events", json=event)
                assert response.status_code == 202, response.text
            refused = {"event": "cliente.criado", "data": {"nome": NAME, "email": EMAIL}}
            assert (await client.post("/v1/events", json=refused)).status_code == 422
            assert (await client.post("/v1/events", content=TEXT.encode())).status_code == 415
            found = await client.get("/v1/subjects", params={"email": EMAIL, "phone": PHONE})
            assert len(found.json()["items"]) == 2
            bad = await client.get("/v1/subjects", params={"email": NAME})
            assert bad.status_code == 400
            await receiver.wait_for(len(events) + 2)  # two failed attempts, then delivered
            with trio.fail_after(10):
                while True:
                    if not (await client.get("/v1/status")).json()["deliveries"]["pending"]:
                        break
                    await trio.sleep(0.1)
            erased = await client.post("/v1/subjects/erase", json={"phone": PHONE})
            assert erased.json()["events"] == 2
            await client.aclose()
        finally:
            process.send_signal(signal.SIGTERM)
            with trio.fail_after(20):
                assert await process.wait() == 0

    text = log_path.read_text()
    assert "action=attempt.failed" in text  # DEBUG lines were written
    assert "action=attempt.succeeded" in text
    assert "action=event.nonconforming" in text
    for value in VALUES:
        assert value not in text, value
        assert value.lower() not in text.lower(), value
