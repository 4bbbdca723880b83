"""The event catalog through a real daemon: validation at ingest, GET /v1/event-types, and
`hookd event-types` / `hookd send --example` against it.

The daemons here run with `ingest.validate = "known"` (the check "report" counts) unless a test says
otherwise (the suite's default config turns it off: tests/conftest.py).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from hookd.domain.envelope import decode_event, prepare
from tests.cli_runner import cli
from tests.conftest import Running
from tests.receiver import serve_receiver
from tests.system.test_delivery import subscribe
from tests.system.test_spec_receivers import SPEC_EXAMPLES
from tests.unit.test_catalog import BROKEN

Start = Callable[..., Awaitable[Running]]
KNOWN = '[ingest]\nvalidate = "known"\n'
PEDIDO = (
    '[[event_type]]\nname = "pedido.criado"\ndescription = "Disparado quando um pedido é criado."\n'
    'required = ["pedidoId"]\nexample = { pedidoId = "pedido_1", valor = 10.5 }\n'
)


async def post(hookd: Running, body: Any, path: str = "/v1/events") -> Any:
    return await hookd.client.post(
        path,
        content=json.dumps(body, ensure_ascii=False).encode(),
        headers={"Content-Type": "application/json"},
    )


async def test_every_spec_example_is_accepted_and_each_broken_variant_refused(
    hookd_factory: Start,
) -> None:
    hookd = await hookd_factory(KNOWN)
    for name, data in SPEC_EXAMPLES:
        response = await post(hookd, {"event": name, "data": data})
        assert response.status_code == 202, response.text
    for name, change, path, _ in BROKEN:
        data = {k: v for k, v in {**dict(SPEC_EXAMPLES)[name], **change}.items() if v is not None}
        response = await post(hookd, {"event": name, "data": data})
        assert response.status_code == 422, name
        error = response.json()["error"]
        assert error["code"] == "invalid_event"
        assert error["message"].startswith(path)
    events = (await hookd.client.get("/v1/events", params={"limit": 100})).json()["items"]
    assert len(events) == len(SPEC_EXAMPLES)  # the refused ones left nothing behind


async def test_a_broken_batch_item_is_named_and_the_batch_refused_whole(
    hookd_factory: Start,
) -> None:
    hookd = await hookd_factory(KNOWN)
    items: list[dict[str, Any]] = [
        {"event": name, "data": data} for name, data in SPEC_EXAMPLES[:3]
    ]
    items[2]["data"] = {**items[2]["data"], "excluidoEm": 5}
    response = await post(hookd, items, "/v1/events/batch")
    assert response.status_code == 422
    assert response.json()["error"]["message"] == (
        "item 2: $.data.excluidoEm: Expected `str | null`, got `int`"
    )
    assert (await hookd.client.get("/v1/events")).json()["items"] == []


async def test_validation_leaves_the_delivered_bytes_as_they_were(hookd_factory: Start) -> None:
    hookd = await hookd_factory(KNOWN)
    raw = (
        '{"event":"tarefa.criada","timestamp":"2024-01-01T10:00:00Z","data":{"zeta":1.0,'
        '"2024":"índice","id":"tarefa_1","prioridade":"ALTA","valor":1e21,"n":[1.50,{"b":2,"a":1}],'
        '"texto":"aspas \\" e \\u00e9 e \\ud83d\\ude00"}}'
    ).encode()
    expected = prepare(decode_event(raw).requests[0], "unused").body
    async with serve_receiver() as receiver:
        await subscribe(hookd, receiver.url, ["*"])
        response = await hookd.client.post(
            "/v1/events", content=raw, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 202, response.text
        [delivered] = await receiver.wait_for(1)
    assert delivered.body == expected


async def test_strict_refuses_types_outside_the_catalog_and_takes_the_operators(
    hookd_factory: Start,
) -> None:
    hookd = await hookd_factory('[ingest]\nvalidate = "strict"\n' + PEDIDO)
    unknown = await post(hookd, {"event": "pedido.cancelado", "data": {}})
    assert unknown.status_code == 422
    assert unknown.json()["error"]["code"] == "unknown_event_type"
    assert (
        await post(hookd, {"event": "pedido.criado", "data": {"pedidoId": "p"}})
    ).status_code == 202
    missing = await post(hookd, {"event": "pedido.criado", "data": {"valor": 1}})
    assert missing.json()["error"]["message"] == "$.data.pedidoId is required"
    own = await post(hookd, {"event": "hookd.teste", "data": {}})
    assert own.status_code == 422
    assert "hookd's own events" in own.json()["error"]["message"]


async def test_known_lets_unknown_types_pass_and_off_checks_nothing(hookd_factory: Start) -> None:
    known = await hookd_factory(KNOWN)
    assert (await post(known, {"event": "pedido.cancelado", "data": {"x": 1}})).status_code == 202
    (known.directory / "off").mkdir()
    off = await hookd_factory('[ingest]\nvalidate = "off"\n', directory=known.directory / "off")
    assert (await post(off, {"event": "cliente.criado", "data": {"id": 5}})).status_code == 202


async def test_event_types_lists_the_catalog_with_schemas_and_examples(
    hookd_factory: Start,
) -> None:
    hookd = await hookd_factory(KNOWN + PEDIDO)
    answer = (await hookd.client.get("/v1/event-types")).json()
    assert answer["validate"] == "known"
    names = [kind["name"] for kind in answer["types"]]
    assert names == [
        *(name for name, _ in SPEC_EXAMPLES),
        "hookd.entrega.falhou",
        "hookd.endpoint.desativado",
        "hookd.teste",
        "pedido.criado",
    ]
    first = answer["types"][0]
    assert first["group"] == "clientes"
    assert first["description"] == "Disparado quando um novo cliente é cadastrado."
    assert first["schema"]["$defs"]["ClienteCriado"]["required"] == ["id"]
    assert first["example"]["data"] == dict(SPEC_EXAMPLES)["cliente.criado"]
    one = await hookd.client.get("/v1/event-types/pedido.criado")
    assert one.json() == answer["types"][-1]
    assert one.json()["example"] == {
        "event": "pedido.criado",
        "data": {"pedidoId": "pedido_1", "valor": 10.5},
    }
    missing = await hookd.client.get("/v1/event-types/pedido.nenhum")
    assert missing.status_code == 404


# -- the command line --------------------------------------------------------------------


async def test_cli_event_types_list_and_one(hookd_factory: Start) -> None:
    hookd = await hookd_factory(KNOWN + PEDIDO)
    listed = await cli(hookd.socket, "event-types")
    assert listed.code == 0, listed.err
    header, *rows = listed.lines
    assert header.split() == ["TYPE", "GROUP", "REQUIRED", "DESCRIPTION"]
    assert rows[0].split()[:3] == ["cliente.criado", "clientes", "id"]
    assert rows[8].split()[:3] == ["chamado.respondido", "helpdesk", "chamadoId,"]
    assert rows[-1].split()[:3] == ["pedido.criado", "config", "pedidoId"]
    assert "ingest.validate = 'known'" in listed.err
    as_json = await cli(hookd.socket, "event-types", "--json")
    assert as_json.json() == (await hookd.client.get("/v1/event-types")).json()
    one = await cli(hookd.socket, "event-types", "tarefa.criada")
    assert one.code == 0, one.err
    assert '"PENDENTE"' in one.out
    assert "hookd send tarefa.criada --example" in one.err
    unknown = await cli(hookd.socket, "event-types", "x.y")
    assert unknown.code == 1
    assert "not found" in unknown.err


async def test_cli_send_example_sends_the_spec_payload(hookd_factory: Start) -> None:
    hookd = await hookd_factory(KNOWN + PEDIDO)
    for name in ("chamado.aberto", "pedido.criado"):
        ran = await cli(hookd.socket, "send", name, "--example", "--json")
        assert ran.code == 0, ran.err
        event = (await hookd.client.get(f"/v1/events/{ran.json()['id']}")).json()
        kind = (await hookd.client.get(f"/v1/event-types/{name}")).json()
        assert json.dumps(event["data"]) == json.dumps(kind["example"]["data"])  # order too
    both = await cli(hookd.socket, "send", "cliente.criado", "--example", "--data", "{}")
    assert both.code == 2
    none = await cli(hookd.socket, "send", "hookd.teste", "--example")
    assert none.code == 2
    assert "no example" in none.err


@pytest.mark.parametrize(("overlap", "expected"), [("0s", None), ("2h", 7200.0)])
async def test_cli_rotate_secret_overlap(
    hookd: Running, overlap: str, expected: float | None
) -> None:
    endpoint = await subscribe(hookd, "http://127.0.0.1:9/hook", ["*"])
    ran = await cli(
        hookd.socket, "endpoints", "rotate-secret", endpoint["id"], "--overlap", overlap, "--json"
    )
    assert ran.code == 0, ran.err
    until = ran.json()["previous_secret_until"]
    assert (until is None) == (expected is None)
    bad = await cli(hookd.socket, "endpoints", "rotate-secret", endpoint["id"], "--overlap", "x")
    assert bad.code == 2
