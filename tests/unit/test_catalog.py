"""hookd.domain.catalog: the spec's event types, and the check of `data` at ingest.

Every spec example must pass, and one broken variant per type must be refused with a
422 naming the field's path. The examples are compared with the spec's own payloads
(`tests.system.test_spec_receivers.SPEC_EXAMPLES`, itself checked against the spec's text).
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import msgspec
import pytest

from hookd.domain import catalog
from hookd.domain.catalog import Catalog, CustomType
from hookd.domain.envelope import decode_batch, decode_event
from hookd.domain.errors import Invalid
from tests.system.test_spec_receivers import SPEC_EXAMPLES, spec_text


def known() -> Catalog:
    """A catalog that refuses every departure in its types. Built in each test, not at
    import: its checks are closures made then, and `make mutate` must see them run."""
    return Catalog(mode="known")


def refusal(
    cat: Catalog,
    event: str,
    data: dict[str, Any],
    item: int | None = None,
    code: str = "invalid_event",
    timestamp: str | None = None,
) -> str:
    with pytest.raises(Invalid) as info:
        cat.check(event, data, item, timestamp)
    assert info.value.code == code  # the code is for programs
    return info.value.message


def example(name: str) -> dict[str, Any]:
    kind = Catalog().get(name)
    assert kind is not None
    assert kind.example is not None
    return copy.deepcopy(kind.example["data"])


def test_the_spec_types_in_the_spec_order_with_its_examples() -> None:
    spec = [kind for kind in Catalog().types() if kind.source == "spec"]
    assert [kind.name for kind in spec] == [name for name, _ in SPEC_EXAMPLES]
    pairs = [(kind.name, kind.example["data"]) for kind in spec if kind.example]
    # Compared as JSON text, so the key order counts too.
    assert json.dumps(pairs) == json.dumps(SPEC_EXAMPLES)
    for kind in spec:
        assert kind.example is not None
        assert kind.example["timestamp"] == "2024-01-01T10:00:00Z"


def test_descriptions_are_the_spec_sentences() -> None:
    text = spec_text()
    found = dict(re.findall(r"^#### ([\w.]+)\n(Disparado quando .*)$", text, re.MULTILINE))
    assert {kind.name: kind.description for kind in Catalog().types() if kind.source == "spec"} == (
        found
    )


@pytest.mark.parametrize(("name", "data"), SPEC_EXAMPLES)
def test_every_spec_example_passes(name: str, data: dict[str, Any]) -> None:
    Catalog().check(name, data)


# One broken variant per type: (type, change to its example, path and words in the 422).
BROKEN: list[tuple[str, dict[str, Any], str, str]] = [
    ("cliente.criado", {"id": None}, "$.data.id", "required"),  # a missing id (as null)
    (
        "cliente.atualizado",
        {"alteracoes": {"telefone": "novo"}},
        "$.data.alteracoes[...]",
        "object",
    ),
    ("cliente.excluido", {"excluidoEm": "ontem"}, "$.data.excluidoEm", "RFC 3339"),
    (
        "tarefa.criada",
        {"prioridade": "CRITICA"},
        "$.data.prioridade",
        "ALTA, BAIXA, MEDIA, URGENTE",
    ),
    ("tarefa.atualizada", {"status": "FEITA"}, "$.data.status", "EM_ANDAMENTO"),
    ("tarefa.concluida", {"tempoTotal": 150}, "$.data.tempoTotal", "got `int`"),
    ("chamado.aberto", {"status": "PENDENTE"}, "$.data.status", "ABERTO"),
    ("chamado.atualizado", {"id": 123}, "$.data.id", "Expected `str`, got `int`"),
    ("chamado.respondido", {"respostaId": ""}, "$.data.respostaId", "length >= 1"),
    (
        "chamado.resolvido",
        {"usuarioResolucao": ["usuario_123"]},
        "$.data.usuarioResolucao",
        "array",
    ),
    ("whatsapp.mensagem.recebida", {"mensagemId": None}, "$.data.mensagemId", "required"),
    ("whatsapp.mensagem.enviada", {"conteudo": {"texto": "Olá"}}, "$.data.conteudo", "object"),
    ("whatsapp.conversa.criada", {"isGroup": "false"}, "$.data.isGroup", "got `str`"),
    ("email.recebido", {"contaId": 7}, "$.data.contaId", "got `int`"),
    ("email.enviado", {"enviadoEm": 1704103200}, "$.data.enviadoEm", "got `int`"),
]


def test_every_spec_type_has_a_broken_variant() -> None:
    assert [name for name, *_ in BROKEN] == [name for name, _ in SPEC_EXAMPLES]


@pytest.mark.parametrize(("name", "change", "path", "words"), BROKEN)
def test_a_broken_variant_is_refused_naming_its_field(
    name: str, change: dict[str, Any], path: str, words: str
) -> None:
    data = {**example(name), **change}
    message = refusal(known(), name, {k: v for k, v in data.items() if v is not None})
    assert message.startswith(f"{path}")
    assert words in message


def test_missing_id_is_named() -> None:
    data = example("chamado.respondido")
    del data["chamadoId"]
    assert refusal(known(), "chamado.respondido", data) == "$.data.chamadoId is required"


def test_optional_fields_may_be_absent_or_null_and_unknown_fields_pass() -> None:
    Catalog().check("tarefa.criada", {"id": "t1"})
    Catalog().check("tarefa.criada", {"id": "t1", "prioridade": None, "dataVencimento": None})
    Catalog().check("tarefa.criada", {"id": "t1", "origem": "api", "tags": [1, 2.5, None]})


def test_a_batch_item_is_named() -> None:
    data = {**example("tarefa.criada"), "prioridade": "X"}
    message = refusal(known(), "tarefa.criada", data, item=3)
    assert message.startswith("item 3: $.data.prioridade: ")


def test_nested_paths_are_named() -> None:
    data = {**example("tarefa.atualizada"), "alteracoes": {"status": {"novo": 1}, "x": []}}
    assert refusal(known(), "tarefa.atualizada", data).startswith("$.data.alteracoes[...]: ")


def test_a_float_where_a_string_belongs_is_called_a_float() -> None:
    # At ingest, floats arrive as msgspec.Raw (envelope.js_number): the message says float.
    request = decode_event(b'{"event":"cliente.criado","data":{"id":"c","nome":1.5}}').requests[0]
    message = refusal(known(), request.event, request.data)
    assert message == "$.data.nome: Expected `str | null`, got `float`"


def test_times_must_be_rfc3339() -> None:
    for good in ("2024-01-01T10:00:00Z", "2024-06-30T23:59:59.123-03:00"):
        Catalog().check("cliente.criado", {"id": "c", "createdAt": good})
    for bad in ("", "2024-01-01", "2024-01-01 10:00:00", "2024-02-30T10:00:00Z"):
        message = refusal(known(), "cliente.criado", {"id": "c", "createdAt": bad})
        assert message.startswith("$.data.createdAt must be RFC 3339")


def test_checking_leaves_data_as_it_was() -> None:
    raw = (
        b'[{"event":"tarefa.criada","data":{"zeta":1.0,"id":"t","2024":true,"status":"PENDENTE"}}]'
    )
    [request] = decode_batch(raw, ndjson=False).requests
    before = msgspec.json.encode(request.data)
    Catalog().check(request.event, request.data, 0)
    assert msgspec.json.encode(request.data) == before


# -- modes -------------------------------------------------------------------------------


def test_known_lets_unknown_types_through_strict_refuses_them_off_checks_nothing() -> None:
    Catalog(mode="known").check("pedido.criado", {"anything": 1})
    message = refusal(Catalog(mode="strict"), "pedido.criado", {}, 2, "unknown_event_type")
    assert message.startswith("item 2: $.event: 'pedido.criado' is not in the event catalog")
    Catalog(mode="off").check("pedido.criado", {})
    Catalog(mode="off").check("cliente.criado", {"id": 5})
    assert list(Catalog(mode="off").checked()) == []


def test_hookd_types_are_listed_not_accepted_and_not_checked() -> None:
    cat = Catalog(mode="strict")
    hookd_types = [kind for kind in cat.types() if kind.group == "hookd"]
    assert [kind.name for kind in hookd_types] == [
        "hookd.entrega.falhou",
        "hookd.endpoint.desativado",
        "hookd.teste",
    ]
    assert not any(kind.accepted_at_ingest for kind in hookd_types)
    assert all(kind not in hookd_types for kind in cat.checked())
    cat.check("hookd.teste", {})  # envelope.prepare refuses these names before this check


def test_alert_data_matches_the_hookd_schemas() -> None:
    failed = catalog.FailedDelivery(
        entregaId=1,
        eventoId="evt_1",
        evento="cliente.criado",
        endpointId="ep_1",
        tentativas=5,
        ultimoStatus=500,
        ultimoErro="HTTP 500",
    )
    data = {**msgspec.structs.asdict(failed), "em": "2024-01-01T10:00:00.000Z"}  # as alerts
    schema = Catalog().get("hookd.entrega.falhou")
    assert schema is not None
    [definition] = schema.schema["$defs"].values()
    assert sorted(definition["properties"]) == sorted(data)
    msgspec.convert(data, catalog.HookdEntregaFalhou)


# -- the operator's types ----------------------------------------------------------------


def test_custom_types_check_their_required_fields() -> None:
    own = CustomType(
        name="pedido.criado",
        description="Disparado quando um pedido é criado.",
        required=["pedidoId", "valor"],
        example={"pedidoId": "p1", "valor": 10},
    )
    cat = Catalog([own], mode="strict")
    cat.check("pedido.criado", {"pedidoId": "p1", "valor": 0, "extra": True})
    assert refusal(cat, "pedido.criado", {"pedidoId": "p1"}) == "$.data.valor is required"
    assert refusal(cat, "pedido.criado", {"pedidoId": None, "valor": 1}) == (
        "$.data.pedidoId is required"
    )
    kind = cat.get("pedido.criado")
    assert kind is not None
    assert (kind.group, kind.source, kind.accepted_at_ingest) == ("config", "config", True)
    assert kind.schema["required"] == ["pedidoId", "valor"]
    assert kind.example == {"event": "pedido.criado", "data": {"pedidoId": "p1", "valor": 10}}
    assert cat.types()[-1] == kind


@pytest.mark.parametrize(
    ("custom", "problem"),
    [
        (CustomType(name="Pedido"), "dotted lowercase"),
        (CustomType(name="hookd.meu"), "hookd's own"),
        (CustomType(name="cliente.criado"), "already in the spec's catalog"),
        (CustomType(name="a.b", required=[""]), "required[0]"),
        (CustomType(name="a.b", required=["x", "x"]), "twice"),
        (CustomType(name="a.b", required=["x"], example={"y": 1}), "example lacks"),
    ],
)
def test_bad_custom_types_are_named(custom: CustomType, problem: str) -> None:
    found = catalog.custom_error(custom)
    assert found is not None
    assert problem in found


# -- "report", the default: refuse only a missing entity, report the rest ----------------


def test_report_is_the_default_and_refuses_only_a_missing_entity() -> None:
    report = Catalog()
    assert report.mode == "report"
    for name, data in SPEC_EXAMPLES:
        assert report.check(name, data) == ()
        entity = catalog.ENTITY_FIELDS[name]
        bad: object
        for bad in (None, False, [], {}):
            message = refusal(report, name, {**data, entity: bad}, item=1)
            assert message.startswith(f"item 1: $.data.{entity} is required"), message
        assert report.check(name, {**data, entity: 7}) == [
            catalog.Finding(f"$.data.{entity}", "Expected `str`, got `int`")
        ]


@pytest.mark.parametrize(
    ("name", "change", "field", "problem"),
    [
        # row: a value the spec does not show is reported with the ones it does
        ("tarefa.criada", {"status": "AGUARDANDO"}, "$.data.status", "EM_ANDAMENTO, PENDENTE"),
        ("tarefa.criada", {"dataVencimento": "2024-01-05"}, "$.data.dataVencimento", "RFC 3339"),
        ("cliente.atualizado", {"alteracoes": []}, "$.data.alteracoes", "got `array`"),
        ("whatsapp.conversa.criada", {"isGroup": 0}, "$.data.isGroup", "got `int`"),
        ("chamado.respondido", {"respostaId": None}, "$.data.respostaId", "got `null`"),
        ("email.enviado", {"assunto": 1.5}, "$.data.assunto", "got `float`"),
    ],
)
def test_report_names_each_departing_field(
    name: str, change: dict[str, Any], field: str, problem: str
) -> None:
    request = {"event": name, "data": {**example(name), **change}}
    decoded = decode_event(json.dumps(request).encode()).requests[0]
    [finding] = Catalog().check(name, decoded.data)
    assert finding.field == field
    assert problem in finding.problem


def test_report_lists_every_departing_field_and_the_timestamp() -> None:
    data = {**example("tarefa.criada"), "status": "X", "prioridade": "Y", "clienteId": 1}
    found = Catalog().check("tarefa.criada", data, timestamp="ontem")
    assert [f.field for f in found] == [
        "$.data.status",
        "$.data.prioridade",
        "$.data.clienteId",
        "$.timestamp",
    ]


def test_report_checks_the_timestamp_of_any_type_and_refuses_operators_required() -> None:
    own = CustomType(name="pedido.criado", required=["pedidoId"])
    report = Catalog([own])
    assert report.check("x.y", {}, timestamp="2024-01-01T10:00:00Z") == ()
    assert report.check("x.y", {}, timestamp="") == [
        catalog.Finding("$.timestamp", "must be RFC 3339, like '2024-01-01T10:00:00Z', got ''")
    ]
    assert refusal(report, "pedido.criado", {}) == "$.data.pedidoId is required"
    with pytest.raises(Invalid):
        known().check("x.y", {}, timestamp="2024-01-01")


# -- word for word: what the 422s and the findings say, and what GET /v1/event-types shows


def test_every_entry_of_the_listing_is_complete() -> None:
    cat = Catalog([CustomType(name="pedido.criado", description="Um pedido.")])
    for name, group, description, kind, data in catalog._SPEC:
        entry = cat.get(name)
        assert entry is not None
        assert (entry.group, entry.description, entry.source) == (group, description, "spec")
        assert entry.entity_field == catalog.ENTITY_FIELDS[name]
        assert entry.example == {"event": name, "timestamp": "2024-01-01T10:00:00Z", "data": data}
        assert entry.schema == msgspec.json.schema(kind, ref_template="#/$defs/{name}")
    for name, description, kind in catalog._HOOKD:
        entry = cat.get(name)
        assert entry is not None
        assert (entry.description, entry.entity_field) == (description, None)
        assert entry.schema == msgspec.json.schema(kind, ref_template="#/$defs/{name}")
    own = cat.get("pedido.criado")
    assert own is not None
    assert (own.description, own.example, own.entity_field) == ("Um pedido.", None, None)
    assert own.schema == {"type": "object"}


def test_every_schema_reference_resolves_inside_its_document() -> None:
    def refs(node: object) -> list[str]:
        if isinstance(node, dict):
            return [v for k, v in node.items() if k == "$ref"] + [
                r for v in node.values() for r in refs(v)
            ]
        return [r for v in node for r in refs(v)] if isinstance(node, list) else []

    schema = Catalog().get("cliente.atualizado")
    assert schema is not None
    found = refs(schema.schema)
    assert "#/$defs/Alteracao" in found
    for ref in found:
        assert ref.removeprefix("#/$defs/") in schema.schema["$defs"]


def test_a_custom_types_schema_requires_its_fields_not_null() -> None:
    own = CustomType(name="pedido.criado", required=["pedidoId", "valor"])
    entry = Catalog([own]).get("pedido.criado")
    assert entry is not None
    present = {"type": ["boolean", "number", "string", "array", "object"]}
    assert entry.schema == {
        "type": "object",
        "required": ["pedidoId", "valor"],
        "properties": {"pedidoId": present, "valor": present},
    }


@pytest.mark.parametrize(
    ("custom", "problem"),
    [
        (
            CustomType(name="Pedido"),
            "name must be a dotted lowercase name like 'pedido.criado', got 'Pedido'",
        ),
        (
            CustomType(name="a." + "b" * 127),
            f"name must be a dotted lowercase name like 'pedido.criado', got {'a.' + 'b' * 127!r}",
        ),
        (CustomType(name="hookd.meu"), "names starting with 'hookd.' are hookd's own events"),
        (CustomType(name="cliente.criado"), "'cliente.criado' is already in the spec's catalog"),
        (CustomType(name="a.b", required=["x", ""]), "required[1] must name a field of data"),
        (CustomType(name="a.b", required=["x", "x"]), "required names a field twice"),
        (
            CustomType(name="a.b", required=["x", "y"], example={"x": 1, "y": None}),
            "example lacks required field 'y'",
        ),
        (CustomType(name="a." + "b" * 126), None),  # 128 characters
        (CustomType(name="a.b", required=["x"], example={"x": 0}), None),
    ],
)
def test_custom_error_says_what_is_wrong(custom: CustomType, problem: str | None) -> None:
    assert catalog.custom_error(custom) == problem


def test_strict_names_the_unknown_type_and_the_setting() -> None:
    message = refusal(Catalog(mode="strict"), "p" * 100 + ".x", {}, 0, "unknown_event_type")
    assert message == (
        f"item 0: $.event: {'p' * 80!r} is not in the event catalog "
        "(ingest.validate is 'strict'; see GET /v1/event-types)"
    )


def test_known_refuses_a_timestamp_that_is_not_rfc3339_word_for_word() -> None:
    message = refusal(known(), "x.y", {}, 4, timestamp="2" * 100)
    assert message == (
        f"item 4: $.timestamp must be RFC 3339, like '2024-01-01T10:00:00Z', got {'2' * 80!r}"
    )
    message = refusal(known(), "cliente.criado", {"id": "c", "createdAt": "ontem"}, 1)
    assert message == (
        "item 1: $.data.createdAt must be RFC 3339, like '2024-01-01T10:00:00Z', got 'ontem'"
    )


def test_known_names_the_values_an_enumeration_expects() -> None:
    data = {**example("tarefa.criada"), "prioridade": "X"}
    assert refusal(known(), "tarefa.criada", data) == (
        "$.data.prioridade: Invalid enum value 'X'; expected one of ALTA, BAIXA, MEDIA, URGENTE"
    )
    assert refusal(known(), "tarefa.criada", {"id": 5}) == ("$.data.id: Expected `str`, got `int`")


def test_report_refuses_a_missing_entity_word_for_word() -> None:
    message = refusal(Catalog(), "cliente.criado", {"nome": "x"}, 2)
    assert message == (
        "item 2: $.data.id is required: the id of what the event is about, a string or a number"
    )


@pytest.mark.parametrize(
    ("name", "data", "findings"),
    [
        (  # another required field missing is reported, an optional one is not
            "chamado.respondido",
            {"chamadoId": "c1", "mensagem": 5},
            [
                ("$.data.respostaId", "is required"),
                ("$.data.mensagem", "Expected `str | null`, got `int`"),
            ],
        ),
        (
            "tarefa.criada",
            {"id": "t", "status": "AGUARDANDO"},
            [
                (
                    "$.data.status",
                    "Invalid enum value 'AGUARDANDO'; the spec shows "
                    "CANCELADA, CONCLUIDA, EM_ANDAMENTO, PENDENTE",
                )
            ],
        ),
        (  # not a value of the enumeration but of the wrong type: no list of values
            "tarefa.criada",
            {"id": "t", "status": 5},
            [("$.data.status", "Expected `str | null`, got `int`")],
        ),
    ],
)
def test_report_findings_word_for_word(
    name: str, data: dict[str, Any], findings: list[tuple[str, str]]
) -> None:
    assert Catalog().check(name, data) == [catalog.Finding(*f) for f in findings]


def test_report_calls_a_float_a_float() -> None:
    request = decode_event(
        b'{"event":"email.enviado","data":{"mensagemId":"m","contaId":"c","assunto":1.5}}'
    ).requests[0]
    assert Catalog().check(request.event, request.data) == [
        catalog.Finding("$.data.assunto", "Expected `str | null`, got `float`")
    ]
