"""What a CRM written from the spec plausibly sends, through a real daemon and receiver.

Under the default `ingest.validate = "report"` the spec's 15 examples and every variant
below are accepted (202), delivered byte for byte, and each departure from the catalog is
counted per type and field (`GET /v1/event-types/{name}`, `/metrics`). Under "strict"
each departing variant is refused with a 422 naming its field.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from tests.conftest import Running
from tests.receiver import serve_receiver
from tests.system.test_delivery import subscribe
from tests.system.test_spec_receivers import SPEC_EXAMPLES

Start = Callable[..., Awaitable[Running]]
EXAMPLES = dict(SPEC_EXAMPLES)
T = "2024-01-01T10:00:00Z"
REPORT = '[ingest]\nvalidate = "report"\n'
LONE = "\ud83d"  # stands for the escape `\ud83d` in the raw body (see `raw_body`)


class Variant(NamedTuple):
    why: str
    event: str
    change: dict[str, Any]  # merged into the spec's example data
    field: str | None  # the field counted under "report" and refused under "strict"
    envelope: dict[str, Any] | None = None  # keys beside event and data (timestamp, extras)
    strict: str | None = "same"  # under "strict" when it differs from `field`


VARIANTS = [
    # enumerations the spec only illustrates
    Variant("task waiting", "tarefa.criada", {"status": "AGUARDANDO"}, "$.data.status"),
    Variant("task late", "tarefa.criada", {"status": "ATRASADA"}, "$.data.status"),
    Variant("lower case", "tarefa.atualizada", {"status": "em_andamento"}, "$.data.status"),
    Variant("ticket reopened", "chamado.aberto", {"status": "REABERTO"}, "$.data.status"),
    Variant(
        "ticket waits", "chamado.atualizado", {"status": "AGUARDANDO_CLIENTE"}, "$.data.status"
    ),
    Variant("ticket cancelled", "chamado.atualizado", {"status": "CANCELADO"}, "$.data.status"),
    Variant("normal priority", "tarefa.criada", {"prioridade": "NORMAL"}, "$.data.prioridade"),
    Variant("critical priority", "chamado.aberto", {"prioridade": "CRITICA"}, "$.data.prioridade"),
    Variant("accented", "tarefa.criada", {"prioridade": "MÉDIA"}, "$.data.prioridade"),
    Variant("lower priority", "tarefa.atualizada", {"prioridade": "alta"}, "$.data.prioridade"),
    Variant("other message kind", "whatsapp.mensagem.recebida", {"tipo": "IMAGE"}, None),
    # times
    Variant(
        "date only", "tarefa.criada", {"dataVencimento": "2024-01-05"}, "$.data.dataVencimento"
    ),
    Variant("empty time", "cliente.criado", {"createdAt": ""}, "$.data.createdAt"),
    Variant(
        "no offset", "cliente.atualizado", {"updatedAt": "2024-01-01T10:00:00"}, "$.data.updatedAt"
    ),
    Variant("epoch ms", "cliente.excluido", {"excluidoEm": 1704103200000}, "$.data.excluidoEm"),
    Variant(
        "space",
        "whatsapp.mensagem.recebida",
        {"recebidoEm": "2024-01-01 10:00:00"},
        "$.data.recebidoEm",
    ),
    Variant("millis", "cliente.criado", {"createdAt": "2024-01-01T10:00:00.000Z"}, None),
    Variant("offset", "email.recebido", {"recebidoEm": "2024-01-01T07:00:00-03:00"}, None),
    # types
    Variant("numeric client", "tarefa.criada", {"clienteId": 123}, "$.data.clienteId"),
    Variant("numeric dept", "chamado.aberto", {"departamentoId": 7}, "$.data.departamentoId"),
    Variant("isGroup 0", "whatsapp.conversa.criada", {"isGroup": 0}, "$.data.isGroup"),
    Variant("isGroup text", "whatsapp.conversa.criada", {"isGroup": "false"}, "$.data.isGroup"),
    Variant(
        "changes as a list",
        "cliente.atualizado",
        {"alteracoes": [{"campo": "telefone", "anterior": "1", "novo": "2"}]},
        "$.data.alteracoes",
    ),
    Variant(
        "change no object",
        "tarefa.atualizada",
        {"alteracoes": {"status": "X"}},
        "$.data.alteracoes",
    ),
    Variant("numeric total", "tarefa.concluida", {"tempoTotal": 150}, "$.data.tempoTotal"),
    Variant("numeric subject", "email.enviado", {"assunto": 42}, "$.data.assunto"),
    # entity and other ids
    Variant("numeric id", "cliente.criado", {"id": 123}, "$.data.id"),
    Variant("numeric ticket", "chamado.respondido", {"chamadoId": 55}, "$.data.chamadoId"),
    Variant("empty id", "tarefa.criada", {"id": ""}, "$.data.id"),
    Variant("numeric account", "email.recebido", {"contaId": 9}, "$.data.contaId"),
    Variant(
        "null message id", "whatsapp.mensagem.enviada", {"mensagemId": None}, "$.data.mensagemId"
    ),
    Variant("no reply id", "chamado.respondido", {"respostaId": None}, "$.data.respostaId"),
    # nulls, empty strings, unicode, nested extras
    Variant("null name", "cliente.criado", {"nome": None, "email": None}, None),
    Variant("empty strings", "cliente.criado", {"nome": "", "email": "", "telefone": ""}, None),
    Variant("unicode", "cliente.criado", {"nome": "José 😀 Ñandú ü 中文 \u2028"}, None),
    Variant(
        "controls", "chamado.respondido", {"mensagem": "linha 1\nlinha\t2 \u0000 \u001f"}, None
    ),
    Variant("nested extras", "chamado.resolvido", {"sla": {"meta": {"horas": [4, 8]}}}, None),
    Variant("extra fields", "tarefa.criada", {"origem": "api", "tags": ["a", None, True]}, None),
    Variant("half an emoji", "whatsapp.mensagem.recebida", {"conteudo": "oi " + LONE}, "(string)"),
    # the envelope
    Variant("version key", "cliente.criado", {}, None, {"version": "1"}),
    Variant("extras", "tarefa.concluida", {}, None, {"source": "crm", "tenant": {"id": 5}}),
    Variant("date timestamp", "cliente.excluido", {}, "$.timestamp", {"timestamp": "2024-01-01"}),
    Variant("empty timestamp", "email.enviado", {}, "$.timestamp", {"timestamp": ""}),
    Variant(
        "fraction", "email.enviado", {}, None, {"timestamp": "2024-01-01T10:00:00.123456+03:00"}
    ),
    Variant("own type", "pedido.criado", {"pedidoId": 7}, None, None, "$.event"),
]


def request_of(variant: Variant) -> dict[str, Any]:
    data = {**EXAMPLES.get(variant.event, {}), **variant.change}
    return {"event": variant.event, "data": data, **(variant.envelope or {})}


def raw_body(request: dict[str, Any]) -> bytes:
    """The request as a CRM's JSON.stringify writes it (a lone surrogate as its escape)."""
    return json.dumps(request, ensure_ascii=False).replace(LONE, "\\ud83d").encode()


def expected_body(request: dict[str, Any], received: str) -> bytes:
    """What the receiver must get: the spec's three keys first, extras after, compact."""
    extras = {k: v for k, v in request.items() if k not in ("event", "timestamp", "data")}
    body = {
        "event": request["event"],
        "timestamp": request.get("timestamp", received),
        "data": request["data"],
        **extras,
    }
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return text.replace(LONE, "\ufffd").encode()


async def post(hookd: Running, raw: bytes, path: str = "/v1/events") -> Any:
    headers = {"Content-Type": "application/json"}
    return await hookd.client.post(path, content=raw, headers=headers)


def test_the_table_is_as_wide_as_the_issue_asks() -> None:
    assert len(VARIANTS) >= 40
    assert len({v.why for v in VARIANTS}) == len(VARIANTS)


async def test_every_example_and_variant_is_accepted_delivered_and_counted(
    hookd_factory: Start,
) -> None:
    hookd = await hookd_factory(REPORT)
    requests = [{"event": name, "data": data} for name, data in SPEC_EXAMPLES]
    requests += [request_of(variant) for variant in VARIANTS]
    async with serve_receiver() as receiver:
        await subscribe(hookd, receiver.url, ["*"])
        expected = {}
        for request in requests:
            response = await post(hookd, raw_body(request))
            assert response.status_code == 202, (request, response.text)
            event = (await hookd.client.get(f"/v1/events/{response.json()['id']}")).json()
            expected[event["id"]] = expected_body(request, event["timestamp"])
        delivered = await receiver.wait_for(len(requests))
    for one in delivered:
        assert one.body == expected[one.headers["x-webhook-id"]]
    counted = Counter((v.event, v.field) for v in VARIANTS if v.field)
    for name in {v.event for v in VARIANTS}:
        kind = (await hookd.client.get(f"/v1/event-types/{name}")).json()
        shown = {(name, n["field"]): n["count"] for n in kind.get("nonconforming", [])}
        assert shown == {key: n for key, n in counted.items() if key[0] == name}, name
    metrics = (await hookd.client.get("/metrics")).text
    for (name, field), count in counted.items():
        line = f'hookd_events_nonconforming_total{{event="{name}",field="{field}"}} {count}'
        assert line in metrics


async def test_a_batch_of_every_variant_is_accepted_whole(hookd_factory: Start) -> None:
    hookd = await hookd_factory(REPORT)
    items = [request_of(variant) for variant in VARIANTS]
    raw = b"[" + b",".join(raw_body(item) for item in items) + b"]"
    response = await post(hookd, raw, "/v1/events/batch")
    assert response.status_code == 202, response.text
    assert len(response.json()["ids"]) == len(VARIANTS)
    kind = (await hookd.client.get("/v1/event-types/whatsapp.mensagem.recebida")).json()
    assert {n["field"] for n in kind["nonconforming"]} == {"$.data.recebidoEm", "(string)"}


async def test_strict_refuses_each_departure_naming_its_field(hookd_factory: Start) -> None:
    hookd = await hookd_factory('[ingest]\nvalidate = "strict"\n')
    for variant in VARIANTS:
        refused = variant.field if variant.strict == "same" else variant.strict
        if refused == "(string)":  # a repaired surrogate is counted, never refused
            refused = None
        response = await post(hookd, raw_body(request_of(variant)))
        if refused is None:
            assert response.status_code == 202, (variant.why, response.text)
        else:
            assert response.status_code == 422, variant.why
            assert refused in response.json()["error"]["message"], variant.why


async def test_an_event_without_its_entity_id_is_refused_by_default(hookd_factory: Start) -> None:
    hookd = await hookd_factory(REPORT)
    for name, entity in [("cliente.criado", "id"), ("whatsapp.mensagem.recebida", "conversaId")]:
        for bad in (None, True, {"x": 1}, [1]):
            data = {**EXAMPLES[name], entity: bad}
            response = await post(hookd, raw_body({"event": name, "data": data}))
            assert response.status_code == 422, (name, bad)
            assert response.json()["error"]["message"].startswith(f"$.data.{entity} is required")
    kinds = (await hookd.client.get("/v1/event-types")).json()["types"]
    assert {k["name"]: k["entity_field"] for k in kinds if k["source"] == "spec"}[
        "email.enviado"
    ] == ("mensagemId")
