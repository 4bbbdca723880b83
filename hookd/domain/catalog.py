"""The event catalog: the spec's fifteen event types, hookd's own, and the operator's.

Over 400 lines: about 400 of them are the spec's fifteen types and their examples, as
data.

Rules (issue 8, the spec's "Eventos Disponíveis"):
- Each type has a name, a group, a one-line description (the spec's "Disparado
  quando ..."), the JSON Schema of its `data` and an example payload, the spec's own.
- The spec's types are msgspec Structs with the field names and types its payloads
  show. The fields that identify what the event is about (`id`, `chamadoId` and
  `respostaId`, `conversaId` and `mensagemId`, `contaId` and `mensagemId`) are required
  non-empty strings; every other field is optional (absent or null); fields the catalog
  does not name are allowed and delivered as sent.
- Enumerations list the values the spec shows, plus the states its own event names
  imply (`tarefa.concluida` -> `CONCLUIDA`, `chamado.resolvido` -> `RESOLVIDO`); the
  spec shows examples, not closed lists, so by default a value outside them is reported,
  not refused. Times (`createdAt`, `recebidoEm`, ...) are RFC 3339 strings, as every one
  the spec shows, checked as the envelope's `timestamp` is (`envelope.is_rfc3339`).
- Each spec type names its entity field (`ENTITY_FIELDS`): the id of what the event is
  about, which routing, ordering and erasure rely on.
- Checking never changes `data`: it converts the dict decoded at ingest into the type's
  Struct and drops the result, so the body delivered is built from the same dict, byte
  for byte. A refusal is a 422 naming the field path (`$.data.prioridade`), prefixed
  with `item N: ` inside a batch.
- `ingest.validate`: "report" (the default) refuses only an event of a spec type whose
  entity field is missing, null or neither a string nor a number; every other departure
  from the catalog (a field's type or format, a value outside an enumeration, a
  timestamp that is not RFC 3339) is returned as `Finding`s for the caller to count and
  report. "known" refuses every departure in the catalog's types and lets other types
  through; "strict" also refuses types outside the catalog; "off" checks nothing here.
- Operators add types in the config (`[[event_type]]`): a name, a description, and
  optionally fields that must be present and not null, and an example `data`. Declaring
  a field required is the operator's opt-in to refusal: it is refused in every mode
  but "off". They name the fields that identify a person in `subject_fields`.
- Each type names the fields of its `data` that identify a person (`SUBJECT_FIELDS`,
  `domain.subjects`): the subject index, access and erasure rely on them.
- hookd's own types (group "hookd") are listed so integrators can discover them; they
  stay refused at ingest (`envelope.RESERVED_PREFIX`), so they are never checked here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Any, Literal, NamedTuple

import msgspec

from hookd.domain.envelope import EVENT_NAME, MAX_EVENT_NAME, RESERVED_PREFIX, is_rfc3339
from hookd.domain.errors import Refused, invalid
from hookd.domain.subjects import SubjectField, fields, parse_field

ValidateMode = Literal["report", "known", "strict", "off"]

Id = Annotated[str, msgspec.Meta(min_length=1, description="identifies what the event is about")]
Time = Annotated[str | None, msgspec.Meta(extra_json_schema={"format": "date-time"})]
Text = str | None

TarefaStatus = Literal["PENDENTE", "EM_ANDAMENTO", "CONCLUIDA", "CANCELADA"]
ChamadoStatus = Literal["ABERTO", "EM_ANDAMENTO", "RESOLVIDO", "FECHADO"]
Prioridade = Literal["BAIXA", "MEDIA", "ALTA", "URGENTE"]


class _Data(msgspec.Struct, kw_only=True, gc=False):
    """The `data` of an event type: unknown fields are allowed."""


class Alteracao(_Data):
    """One changed field: its value before and after (any JSON value)."""

    anterior: Any = None
    novo: Any = None


Alteracoes = dict[str, Alteracao]


class ClienteCriado(_Data):
    id: Id
    nome: Text = None
    email: Text = None
    telefone: Text = None
    createdAt: Time = None


class ClienteAtualizado(_Data):
    id: Id
    nome: Text = None
    email: Text = None
    telefone: Text = None
    updatedAt: Time = None
    alteracoes: Alteracoes | None = None


class ClienteExcluido(_Data):
    id: Id
    nome: Text = None
    excluidoEm: Time = None


class TarefaCriada(_Data):
    id: Id
    titulo: Text = None
    descricao: Text = None
    status: TarefaStatus | None = None
    prioridade: Prioridade | None = None
    dataVencimento: Time = None
    clienteId: Text = None
    createdAt: Time = None


class TarefaAtualizada(_Data):
    id: Id
    titulo: Text = None
    status: TarefaStatus | None = None
    prioridade: Prioridade | None = None
    updatedAt: Time = None
    alteracoes: Alteracoes | None = None


class TarefaConcluida(_Data):
    id: Id
    titulo: Text = None
    dataConclusao: Time = None
    tempoTotal: Text = None  # "2h 30m"


class ChamadoAberto(_Data):
    id: Id
    titulo: Text = None
    descricao: Text = None
    status: ChamadoStatus | None = None
    prioridade: Prioridade | None = None
    departamentoId: Text = None
    clienteId: Text = None
    createdAt: Time = None


class ChamadoAtualizado(_Data):
    id: Id
    status: ChamadoStatus | None = None
    updatedAt: Time = None
    alteracoes: Alteracoes | None = None


class ChamadoRespondido(_Data):
    chamadoId: Id
    respostaId: Id
    mensagem: Text = None
    usuarioId: Text = None
    respondidoEm: Time = None


class ChamadoResolvido(_Data):
    id: Id
    dataResolucao: Time = None
    tempoResolucao: Text = None  # "4h 15m"
    usuarioResolucao: Text = None


class WhatsappMensagemRecebida(_Data):
    conversaId: Id
    mensagemId: Id
    remetente: Text = None
    conteudo: Text = None
    tipo: Text = None  # "TEXT"; WhatsApp's message types are many, so not closed here
    recebidoEm: Time = None


class WhatsappMensagemEnviada(_Data):
    conversaId: Id
    mensagemId: Id
    destinatario: Text = None
    conteudo: Text = None
    tipo: Text = None
    enviadoEm: Time = None


class WhatsappConversaCriada(_Data):
    id: Id
    telefone: Text = None
    nome: Text = None
    isGroup: bool | None = None
    criadaEm: Time = None


class EmailRecebido(_Data):
    contaId: Id
    mensagemId: Id
    assunto: Text = None
    remetente: Text = None
    conteudo: Text = None
    recebidoEm: Time = None


class EmailEnviado(_Data):
    contaId: Id
    mensagemId: Id
    assunto: Text = None
    destinatario: Text = None
    enviadoEm: Time = None


# hookd's own events (hookd.alerts, the endpoint test): listed, never accepted at ingest.


class FailedDelivery(_Data):
    """A delivery that ended failed (hookd.alerts); the event adds `em`, when."""

    entregaId: int  # the wire names are camelCase, like the spec's
    eventoId: str
    evento: str
    endpointId: str
    tentativas: int
    ultimoStatus: int | None
    ultimoErro: str | None


class DisabledEndpoint(_Data):
    """An endpoint disabled (hookd.alerts); the event adds `em`, when."""

    endpointId: str  # the wire names are camelCase, like the spec's
    url: str
    motivo: str


class HookdEntregaFalhou(FailedDelivery):
    em: str


class HookdEndpointDesativado(DisabledEndpoint):
    em: str


class HookdTeste(_Data):
    endpointId: str
    mensagem: str


class Nonconformity(msgspec.Struct, frozen=True, kw_only=True):
    """A field of one type that accepted events departed from the catalog in."""

    field: str  # "$.data.prioridade", "$.timestamp"
    count: int  # events since hookd started
    last_seen_at: str
    last_problem: str


class EventType(msgspec.Struct, frozen=True, kw_only=True):
    """One catalog entry as `GET /v1/event-types` shows it."""

    name: str
    group: str  # clientes, tarefas, helpdesk, whatsapp, email; hookd; config
    description: str
    source: Literal["spec", "hookd", "config"]
    accepted_at_ingest: bool  # False for hookd's own types
    entity_field: str | None  # the field of `data` that names what the event is about
    schema: dict[str, Any]  # JSON Schema of `data`
    example: dict[str, Any] | None  # a request for POST /v1/events: event, timestamp?, data
    subject_fields: list[str] = msgspec.field(default_factory=list)  # "kind:path", indexed
    nonconforming: list[Nonconformity] = msgspec.field(default_factory=list)


class Finding(NamedTuple):
    """One way an accepted event departs from the catalog."""

    field: str  # "$.data.prioridade", "$.timestamp"
    problem: str


_T = "2024-01-01T10:00:00Z"
_CHANGE = {"anterior": "(11) 88888-8888", "novo": "(11) 99999-9999"}

# (name, group, description, Struct, example data), in the spec's order.
_SPEC: list[tuple[str, str, str, type[_Data], dict[str, Any]]] = [
    (
        "cliente.criado",
        "clientes",
        "Disparado quando um novo cliente é cadastrado.",
        ClienteCriado,
        {
            "id": "cliente_123",
            "nome": "João Silva",
            "email": "joao@example.com",
            "telefone": "(11) 99999-9999",
            "createdAt": _T,
        },
    ),
    (
        "cliente.atualizado",
        "clientes",
        "Disparado quando os dados de um cliente são atualizados.",
        ClienteAtualizado,
        {
            "id": "cliente_123",
            "nome": "João Silva",
            "email": "joao@example.com",
            "telefone": "(11) 99999-9999",
            "updatedAt": _T,
            "alteracoes": {"telefone": _CHANGE},
        },
    ),
    (
        "cliente.excluido",
        "clientes",
        "Disparado quando um cliente é excluído.",
        ClienteExcluido,
        {"id": "cliente_123", "nome": "João Silva", "excluidoEm": _T},
    ),
    (
        "tarefa.criada",
        "tarefas",
        "Disparado quando uma nova tarefa é criada.",
        TarefaCriada,
        {
            "id": "tarefa_123",
            "titulo": "Configurar sistema",
            "descricao": "Configurar o sistema CRM",
            "status": "PENDENTE",
            "prioridade": "ALTA",
            "dataVencimento": "2024-01-05T10:00:00Z",
            "clienteId": "cliente_123",
            "createdAt": _T,
        },
    ),
    (
        "tarefa.atualizada",
        "tarefas",
        "Disparado quando uma tarefa é atualizada.",
        TarefaAtualizada,
        {
            "id": "tarefa_123",
            "titulo": "Configurar sistema",
            "status": "EM_ANDAMENTO",
            "prioridade": "ALTA",
            "updatedAt": _T,
            "alteracoes": {"status": {"anterior": "PENDENTE", "novo": "EM_ANDAMENTO"}},
        },
    ),
    (
        "tarefa.concluida",
        "tarefas",
        "Disparado quando uma tarefa é marcada como concluída.",
        TarefaConcluida,
        {
            "id": "tarefa_123",
            "titulo": "Configurar sistema",
            "dataConclusao": _T,
            "tempoTotal": "2h 30m",
        },
    ),
    (
        "chamado.aberto",
        "helpdesk",
        "Disparado quando um novo chamado é aberto.",
        ChamadoAberto,
        {
            "id": "chamado_123",
            "titulo": "Problema no sistema",
            "descricao": "O sistema não está funcionando",
            "status": "ABERTO",
            "prioridade": "URGENTE",
            "departamentoId": "dept_123",
            "clienteId": "cliente_123",
            "createdAt": _T,
        },
    ),
    (
        "chamado.atualizado",
        "helpdesk",
        "Disparado quando um chamado é atualizado.",
        ChamadoAtualizado,
        {
            "id": "chamado_123",
            "status": "EM_ANDAMENTO",
            "updatedAt": _T,
            "alteracoes": {"status": {"anterior": "ABERTO", "novo": "EM_ANDAMENTO"}},
        },
    ),
    (
        "chamado.respondido",
        "helpdesk",
        "Disparado quando uma resposta é adicionada a um chamado.",
        ChamadoRespondido,
        {
            "chamadoId": "chamado_123",
            "respostaId": "resposta_123",
            "mensagem": "Estamos verificando o problema",
            "usuarioId": "usuario_123",
            "respondidoEm": _T,
        },
    ),
    (
        "chamado.resolvido",
        "helpdesk",
        "Disparado quando um chamado é marcado como resolvido.",
        ChamadoResolvido,
        {
            "id": "chamado_123",
            "dataResolucao": _T,
            "tempoResolucao": "4h 15m",
            "usuarioResolucao": "usuario_123",
        },
    ),
    (
        "whatsapp.mensagem.recebida",
        "whatsapp",
        "Disparado quando uma mensagem é recebida via WhatsApp.",
        WhatsappMensagemRecebida,
        {
            "conversaId": "conversa_123",
            "mensagemId": "msg_123",
            "remetente": "5511999999999",
            "conteudo": "Olá, preciso de ajuda",
            "tipo": "TEXT",
            "recebidoEm": _T,
        },
    ),
    (
        "whatsapp.mensagem.enviada",
        "whatsapp",
        "Disparado quando uma mensagem é enviada via WhatsApp.",
        WhatsappMensagemEnviada,
        {
            "conversaId": "conversa_123",
            "mensagemId": "msg_123",
            "destinatario": "5511999999999",
            "conteudo": "Olá, como posso ajudar?",
            "tipo": "TEXT",
            "enviadoEm": _T,
        },
    ),
    (
        "whatsapp.conversa.criada",
        "whatsapp",
        "Disparado quando uma nova conversa é criada.",
        WhatsappConversaCriada,
        {
            "id": "conversa_123",
            "telefone": "5511999999999",
            "nome": "João Silva",
            "isGroup": False,
            "criadaEm": _T,
        },
    ),
    (
        "email.recebido",
        "email",
        "Disparado quando um novo email é recebido.",
        EmailRecebido,
        {
            "contaId": "conta_123",
            "mensagemId": "email_123",
            "assunto": "Dúvida sobre o sistema",
            "remetente": "joao@example.com",
            "conteudo": "Gostaria de saber mais sobre o sistema",
            "recebidoEm": _T,
        },
    ),
    (
        "email.enviado",
        "email",
        "Disparado quando um email é enviado.",
        EmailEnviado,
        {
            "contaId": "conta_123",
            "mensagemId": "email_123",
            "assunto": "Resposta sobre o sistema",
            "destinatario": "joao@example.com",
            "enviadoEm": _T,
        },
    ),
]

_HOOKD: list[tuple[str, str, type[_Data]]] = [
    (
        "hookd.entrega.falhou",
        "Disparado pelo hookd quando uma entrega esgota as tentativas (alerta).",
        HookdEntregaFalhou,
    ),
    (
        "hookd.endpoint.desativado",
        "Disparado pelo hookd quando um endpoint é desativado (alerta).",
        HookdEndpointDesativado,
    ),
    (
        "hookd.teste",
        "Enviado pelo hookd a um endpoint só, por POST /v1/endpoints/{id}/test.",
        HookdTeste,
    ),
]


_SPEC_STRUCTS: dict[str, type[msgspec.Struct]] = {name: kind for name, _, _, kind, _ in _SPEC}

# The entity of each spec type: the client, task or ticket itself; the ticket a reply
# belongs to; the WhatsApp conversation a message belongs to; the e-mail message.
ENTITY_FIELDS: dict[str, str] = {
    "cliente.criado": "id",
    "cliente.atualizado": "id",
    "cliente.excluido": "id",
    "tarefa.criada": "id",
    "tarefa.atualizada": "id",
    "tarefa.concluida": "id",
    "chamado.aberto": "id",
    "chamado.atualizado": "id",
    "chamado.respondido": "chamadoId",
    "chamado.resolvido": "id",
    "whatsapp.mensagem.recebida": "conversaId",
    "whatsapp.mensagem.enviada": "conversaId",
    "whatsapp.conversa.criada": "id",
    "email.recebido": "mensagemId",
    "email.enviado": "mensagemId",
}


# The fields of each spec type that name a person (`domain.subjects`): the client's id
# (`id` on cliente.*, `clienteId` elsewhere, when an event carries it), e-mail addresses,
# and phone and WhatsApp numbers, old and new values of a change included.
_CLIENT = "cliente_id:clienteId"
SUBJECT_FIELDS: dict[str, tuple[SubjectField, ...]] = {
    "cliente.criado": fields("cliente_id:id", "email:email", "phone:telefone"),
    "cliente.atualizado": fields(
        "cliente_id:id",
        "email:email",
        "phone:telefone",
        "email:alteracoes.email.anterior",
        "email:alteracoes.email.novo",
        "phone:alteracoes.telefone.anterior",
        "phone:alteracoes.telefone.novo",
    ),
    "cliente.excluido": fields("cliente_id:id"),
    "tarefa.criada": fields(_CLIENT),
    "tarefa.atualizada": fields(_CLIENT),
    "tarefa.concluida": fields(_CLIENT),
    "chamado.aberto": fields(_CLIENT),
    "chamado.atualizado": fields(_CLIENT),
    "chamado.respondido": fields(_CLIENT),
    "chamado.resolvido": fields(_CLIENT),
    "whatsapp.mensagem.recebida": fields(_CLIENT, "phone:remetente"),
    "whatsapp.mensagem.enviada": fields(_CLIENT, "phone:destinatario"),
    "whatsapp.conversa.criada": fields(_CLIENT, "phone:telefone"),
    "email.recebido": fields(_CLIENT, "email:remetente"),
    "email.enviado": fields(_CLIENT, "email:destinatario"),
}


def spec_struct(name: str) -> type[msgspec.Struct]:
    """The Struct of a spec type's `data` (KeyError for other names)."""
    return _SPEC_STRUCTS[name]


class CustomType(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """An operator's own event type, from `[[event_type]]` in the config."""

    name: str
    description: str = ""
    required: list[str] = msgspec.field(default_factory=list)
    example: dict[str, Any] | None = None
    subject_fields: list[str] = msgspec.field(default_factory=list)  # "kind:path"


def custom_error(custom: CustomType) -> str | None:
    """Why `custom` cannot join the catalog (a name taken, a bad field), or None."""
    if len(custom.name) > MAX_EVENT_NAME or EVENT_NAME.fullmatch(custom.name) is None:
        return f"name must be a dotted lowercase name like 'pedido.criado', got {custom.name!r}"
    if custom.name.startswith(RESERVED_PREFIX):
        return f"names starting with {RESERVED_PREFIX!r} are hookd's own events"
    if custom.name in _SPEC_STRUCTS:
        return f"{custom.name!r} is already in the spec's catalog"
    for index, field in enumerate(custom.required):
        if not field:
            return f"required[{index}] must name a field of data"
    if len(set(custom.required)) != len(custom.required):
        return "required names a field twice"
    for index, text in enumerate(custom.subject_fields):
        try:
            parse_field(text)
        except ValueError as exc:
            return f"subject_fields[{index}]: {exc}"
    if custom.example is not None:
        missing = [f for f in custom.required if custom.example.get(f) is None]
        if missing:
            return f"example lacks required field {missing[0]!r}"
    return None


Check = Callable[[dict[str, Any], str], None]  # raises a 422
Report = Callable[[dict[str, Any], str], Sequence[Finding]]  # raises only on the entity
_NOTHING: tuple[Finding, ...] = ()

_MISSING = re.compile(r"Object missing required field `([^`]*)`(?: - at `\$([^`]*)`)?")
_AT = re.compile(r"(.*) - at `\$([^`]*)`")


class Catalog:
    """The event types hookd knows, and the check of an event's `data` at ingest."""

    def __init__(self, custom: Sequence[CustomType] = (), mode: ValidateMode = "report") -> None:
        self.mode = mode
        self._types: dict[str, EventType] = {}
        self._checks: dict[str, Check] = {}
        self._reports: dict[str, Report] = {}
        self._subjects: dict[str, tuple[SubjectField, ...]] = dict(SUBJECT_FIELDS)
        example: dict[str, Any] | None
        for name, group, description, kind, data in _SPEC:
            example = {"event": name, "timestamp": _T, "data": data}
            entity = ENTITY_FIELDS[name]
            self._add(name, group, description, "spec", _schema(kind), example, entity)
            self._checks[name] = _struct_check(kind)
            self._reports[name] = _struct_report(kind, entity, self._checks[name])
            subject = [str(field) for field in SUBJECT_FIELDS[name]]
            self._types[name] = msgspec.structs.replace(self._types[name], subject_fields=subject)
        for name, description, kind in _HOOKD:
            self._add(name, "hookd", description, "hookd", _schema(kind), None)
        for own in custom:
            example = None if own.example is None else {"event": own.name, "data": own.example}
            self._add(own.name, "config", own.description, "config", _required_schema(own), example)
            self._checks[own.name] = check = _required_check(tuple(own.required))
            self._reports[own.name] = _refusing(check)
            self._subjects[own.name] = fields(*own.subject_fields)
            self._types[own.name] = msgspec.structs.replace(
                self._types[own.name], subject_fields=list(own.subject_fields)
            )

    def _add(
        self,
        name: str,
        group: str,
        description: str,
        source: Literal["spec", "hookd", "config"],
        schema: dict[str, Any],
        example: dict[str, Any] | None,
        entity: str | None = None,
    ) -> None:
        self._types[name] = EventType(
            name=name,
            group=group,
            description=description,
            source=source,
            accepted_at_ingest=source != "hookd",
            entity_field=entity,
            schema=schema,
            example=example,
        )

    def types(self) -> list[EventType]:
        """Every type: the spec's in its order, hookd's own, then the operator's."""
        return list(self._types.values())

    def get(self, name: str) -> EventType | None:
        """The entry of `name`, or None."""
        return self._types.get(name)

    def subject_fields(self, name: str) -> tuple[SubjectField, ...]:
        """The fields of `name`'s data that name a person (none for unknown types)."""
        return self._subjects.get(name, ())

    def checked(self) -> Iterable[EventType]:
        """The types whose `data` is checked at ingest (none when `mode` is "off")."""
        if self.mode == "off":
            return []
        return [self._types[name] for name in self._checks]

    def check(
        self,
        event: str,
        data: dict[str, Any],
        item: int | None = None,
        timestamp: str | None = None,
    ) -> Sequence[Finding]:
        """Check an event against the catalog as `mode` says: refuse (422) what the mode
        refuses, and return what it only reports. `item` is the event's position in a
        batch; `timestamp` the envelope's, when it brought one.
        """
        if self.mode == "off":
            return _NOTHING
        where = "" if item is None else f"item {item}: "
        if self.mode == "report":
            findings = self._reports[event](data, where) if event in self._reports else _NOTHING
            if timestamp is not None and not is_rfc3339(timestamp):
                return [*findings, Finding("$.timestamp", _not_rfc3339(timestamp))]
            return findings
        if timestamp is not None and not is_rfc3339(timestamp):
            raise invalid(f"{where}$.timestamp {_not_rfc3339(timestamp)}", "invalid_event")
        check = self._checks.get(event)
        if check is not None:
            check(data, where)
        elif self.mode == "strict" and not event.startswith(RESERVED_PREFIX):
            raise invalid(
                f"{where}$.event: {event[:80]!r} is not in the event catalog "
                "(ingest.validate is 'strict'; see GET /v1/event-types)",
                "unknown_event_type",
            )
        return _NOTHING


def _not_rfc3339(value: str) -> str:
    return f"must be RFC 3339, like '2024-01-01T10:00:00Z', got {value[:80]!r}"


def _schema(kind: type[msgspec.Struct]) -> dict[str, Any]:
    """A standalone JSON Schema of `kind` (its `$defs` inline in the document)."""
    schema: dict[str, Any] = msgspec.json.schema(kind, ref_template="#/$defs/{name}")
    return schema


def _required_schema(custom: CustomType) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object"}
    if custom.required:
        schema["required"] = list(custom.required)
        present = {"type": ["boolean", "number", "string", "array", "object"]}  # not null
        schema["properties"] = dict.fromkeys(custom.required, present)
    return schema


def _struct_check(kind: type[msgspec.Struct]) -> Check:
    enums = _enum_fields(kind)
    times = [field.encode_name for field in msgspec.structs.fields(kind) if field.type == Time]

    def check(data: dict[str, Any], where: str) -> None:
        try:
            msgspec.convert(data, kind)
        except msgspec.ValidationError as exc:
            raise invalid(_message(str(exc), where, enums), "invalid_event") from None
        for name in times:
            value = data.get(name)
            if value is not None and not is_rfc3339(value):
                raise invalid(f"{where}$.data.{name} {_not_rfc3339(value)}", "invalid_event")

    return check


def _struct_report(kind: type[msgspec.Struct], entity: str, check: Check) -> Report:
    """The report-mode check of a spec type: the entity field or a 422, then, only when
    the full `check` would refuse, one finding per field that departs from the type."""
    enums = _enum_fields(kind)
    fields = [
        (field.encode_name, field.type, field.required) for field in msgspec.structs.fields(kind)
    ]

    def report(data: dict[str, Any], where: str) -> Sequence[Finding]:
        value = data.get(entity)
        if (
            value is None
            or isinstance(value, bool)
            or not isinstance(value, str | int | msgspec.Raw)
        ):
            raise invalid(
                f"{where}$.data.{entity} is required: the id of what the event is about, "
                "a string or a number",
                "invalid_event",
            )
        try:
            check(data, where)
        except Refused:
            return [finding for field in fields if (finding := _field_finding(data, field, enums))]
        return _NOTHING

    return report


def _field_finding(
    data: dict[str, Any], field: tuple[str, Any, bool], enums: dict[str, tuple[str, ...]]
) -> Finding | None:
    name, kind, required = field
    path = f"$.data.{name}"
    if name not in data:
        return Finding(path, "is required") if required else None
    value = data[name]
    try:
        msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        problem = str(exc).replace("got `raw`", "got `float`")  # floats are msgspec.Raw
        if f".{name}" in enums and problem.startswith("Invalid enum value"):
            problem += f"; the spec shows {', '.join(enums[f'.{name}'])}"
        return Finding(path, problem)
    if kind == Time and value is not None and not is_rfc3339(value):
        return Finding(path, _not_rfc3339(value))
    return None


def _refusing(check: Check) -> Report:
    def report(data: dict[str, Any], where: str) -> Sequence[Finding]:
        check(data, where)
        return _NOTHING

    return report


def _required_check(required: tuple[str, ...]) -> Check:
    def check(data: dict[str, Any], where: str) -> None:
        for name in required:
            if data.get(name) is None:
                raise invalid(f"{where}$.data.{name} is required", "invalid_event")

    return check


def _enum_fields(kind: type[msgspec.Struct]) -> dict[str, tuple[str, ...]]:
    """The allowed values of each enumerated field of `kind`, by JSON path."""
    info = msgspec.inspect.type_info(kind)
    assert isinstance(info, msgspec.inspect.StructType)
    enums = {}
    for field in info.fields:
        kinds = (
            field.type.types if isinstance(field.type, msgspec.inspect.UnionType) else (field.type,)
        )
        for one in kinds:
            if isinstance(one, msgspec.inspect.LiteralType):
                enums[f".{field.encode_name}"] = tuple(str(v) for v in one.values)
    return enums


def _message(text: str, where: str, enums: dict[str, tuple[str, ...]]) -> str:
    """msgspec's message about `data` as a 422 message naming `$.data...`."""
    missing = _MISSING.fullmatch(text)
    if missing is not None:
        field, parent = missing.groups()
        return f"{where}$.data{parent or ''}.{field} is required"
    at = _AT.fullmatch(text)
    if at is None:
        return f"{where}$.data: {text}"
    problem, path = at.groups()
    if path in enums:
        problem += f"; expected one of {', '.join(enums[path])}"
    # Floats reach this check as msgspec.Raw (envelope.js_number): name them as JSON does.
    problem = problem.replace("got `raw`", "got `float`")
    return f"{where}$.data{path}: {problem}"
