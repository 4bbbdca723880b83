"""The OpenAPI 3.1 document of hookd's API, served at `GET /v1/openapi.json`.

Over 400 lines: the schemas the handlers check by hand beyond a Struct's types, and the
description of what receivers get (`webhooks.delivery`), are written out here.

Rules:
- The document is rendered from the route table's descriptions (`api.routes.OPERATIONS`,
  handed in): each route carries its description, so none can go undocumented. This
  module imports the descriptions' types (`api.schemas`), never the handlers.
- Request bodies and answers are the Structs the server decodes and encodes with (the
  request Structs in `api.schemas`, `domain.views`, `api.errors.ErrorBody`, the catalog's
  `data` Structs),
  described by `msgspec.json.schema_components`: the contract is the code.
- What the code checks by hand beyond a Struct's types (event names, ids, RFC 3339
  times, URLs, subscription patterns, integers JavaScript can hold) is added to the
  schemas here, from the same constants where they are constants. schemathesis, run
  against the daemon by the tests, holds both directions: what the document allows is
  accepted, what it forbids is refused.
- The ingest body follows the daemon's catalog and `ingest.validate`: with "report",
  an event of a spec type must carry its entity field (a string or a number), the rest
  of `data` is any JSON object; with "known", an event of a checked type must carry that
  type's `data`, others any object; "strict" allows checked types only; "off" any
  object. An envelope may hold keys beyond the four named; `timestamp` is any string but
  with "known" and "strict", which check it is RFC 3339.
- Every operation lists the error statuses it can answer, each with `ErrorBody`. Bearer
  auth is described when `server.api_token` is set (it applies on TCP; the Unix socket
  needs none). Non-JSON answers are described with their content type.
- What hookd sends to endpoints is described too, as the document's `webhooks.delivery`:
  the body and every header, signatures included (`domain.signing`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

from hookd import __version__
from hookd.api.errors import ErrorBody
from hookd.api.schemas import (
    _NAME,
    BATCH,
    INGEST,
    SELECTOR_SCHEMAS,
    Op,
)
from hookd.domain import catalog as catalog_module
from hookd.domain import endpoints as endpoint_rules
from hookd.domain import envelope, signing
from hookd.domain.catalog import Catalog
from hookd.runtime.metrics import CONTENT_TYPE as METRICS_TYPE

REF = "#/components/schemas/{name}"


_STATUS_TEXT = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    400: "Malformed request: bad JSON, a bad query parameter or header",
    401: "Missing or wrong bearer token (TCP with server.api_token set)",
    404: "No such resource",
    409: "Conflicts with the resource's state (declared in the config, disabled, ...)",
    413: "Body too large (server.max_body_bytes; a batch of more than 1000 events)",
    415: "Content-Type is not one this route takes",
    422: "Well-formed but invalid: the message names the field",
    503: "The database cannot take the write (full disk); see the log",
}


def document(
    operations: Mapping[tuple[str, str], Op], catalog: Catalog, with_token: bool = False
) -> dict[str, Any]:
    """The OpenAPI document of the routes `operations` describes (`api.routes.OPERATIONS`)
    for a daemon with `catalog`, and a token when `with_token`."""
    types: list[Any] = [ErrorBody, envelope.IngestRequest]
    types += [op.answer for op in operations.values() if op.answer not in (None, str, dict)]
    types += [op.body for op in operations.values() if isinstance(op.body, type)]
    checked = list(catalog.checked())
    structs = {
        kind.name: catalog_module.spec_struct(kind.name)
        for kind in checked
        if kind.source == "spec"
    }
    types += list(structs.values())
    _, components = msgspec.json.schema_components(types, ref_template=REF)
    _constrain(components, strict_time=catalog.mode in ("known", "strict"))
    components["JsonValue"] = _JSON_VALUE
    components["JsonPresent"] = _JSON_PRESENT
    for name in [struct.__name__ for struct in structs.values()] + ["Alteracao"]:
        if name in components:
            _open_to_json(components, name)
    components["IngestEvent"] = _ingest_schema(components, catalog, checked, structs)
    paths: dict[str, dict[str, Any]] = {}
    for (method, path), op in operations.items():
        paths.setdefault(path, {})[method.lower()] = _operation(
            method, path, op, catalog, with_token
        )
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "hookd",
            "version": __version__,
            "description": (
                "Outbound webhook daemon: durable ingest, signed deliveries, retries. "
                "Served on a Unix socket (no auth: its file mode guards it) and, with "
                "server.listen, on loopback TCP (bearer token when server.api_token is "
                f"set). Ingest checks events against the catalog: ingest.validate = "
                f"{catalog.mode!r}."
            ),
        },
        "paths": paths,
        "webhooks": {"delivery": _DELIVERY},
        "components": {"schemas": components},
    }
    if with_token:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return doc


def document_bytes(
    operations: Mapping[tuple[str, str], Op], catalog: Catalog, with_token: bool = False
) -> bytes:
    """`document(...)` as JSON, as the route serves it."""
    return msgspec.json.encode(document(operations, catalog, with_token))


def _ref(kind: Any) -> dict[str, Any]:
    schema: dict[str, Any] = msgspec.json.schema_components([kind], ref_template=REF)[0][0]
    return schema


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _operation(
    method: str, path: str, op: Op, catalog: Catalog, with_token: bool
) -> dict[str, Any]:
    out: dict[str, Any] = {"summary": op.summary, "operationId": _operation_id(method, path)}
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _path_names(path)
    ]
    params += [
        {
            "name": p.name,
            "in": "query",
            "required": False,
            "schema": p.schema,
            "description": p.description,
        }
        for p in op.query
    ]
    if op.body in (INGEST, BATCH):
        params.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"},
                "description": "a repeated key answers as the first time and creates nothing",
            }
        )
    if params:
        out["parameters"] = params
    if op.body is not None:
        content = _request(op.body, catalog)
        out["requestBody"] = {"required": not op.body_optional, "content": content}
    answer: dict[str, Any] = {"description": _STATUS_TEXT[op.status]}
    if op.answer is str:
        answer["content"] = {METRICS_TYPE: {"schema": {"type": "string"}}}
    elif op.answer is dict:
        answer["content"] = _json({"type": "object"})
    elif op.answer is not None:
        answer["content"] = _json(_ref(op.answer))
    if op.links:
        answer["links"] = {
            _operation_id(method, target): {
                "operationId": _operation_id(method, target),
                "parameters": {"id": f"$response.body#{pointer}"},
            }
            for method, target, pointer in op.links
        }
    if op.status == 201:
        answer["headers"] = {"Location": {"schema": {"type": "string"}}}
    if op.body == INGEST:
        answer["headers"] = {
            "Idempotent-Replayed": {
                "schema": {"enum": ["true"]},
                "description": "present when the id or key was seen before",
            }
        }
    responses: dict[str, Any] = {str(op.status): answer}
    for status in _errors(path, op, with_token):
        responses[str(status)] = {
            "description": _STATUS_TEXT[status],
            "content": _json(_ref(ErrorBody)),
        }
    out["responses"] = responses
    if with_token and path != "/healthz":
        out["security"] = [{"bearer": []}]
    return out


def _request(body: Any, catalog: Catalog) -> dict[str, Any]:
    one = {"$ref": REF.format(name="IngestEvent")}
    examples = {
        kind.name: {"summary": kind.description, "value": kind.example}
        for kind in catalog.types()
        if kind.example is not None and kind.accepted_at_ingest
    }
    if body == INGEST:
        return {"application/json": {"schema": one, "examples": examples}}
    if body == BATCH:
        batch = {"type": "array", "items": one, "minItems": 1, "maxItems": envelope.MAX_BATCH}
        every = [example["value"] for example in examples.values()]
        return {
            "application/json": {"schema": batch, "examples": {"every type": {"value": every}}},
            "application/x-ndjson": {
                "schema": {"type": "string", "description": "one event object per line"}
            },
        }
    return _json(_ref(body))


def _errors(path: str, op: Op, with_token: bool) -> list[int]:
    statuses = set(op.errors)
    if op.query:
        statuses |= {400, 422}
    if op.body is not None:
        statuses |= {400, 413, 415, 422}
    if with_token and path != "/healthz":
        statuses.add(401)
    if op.store:
        statuses.add(503)
    return sorted(statuses)


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def _operation_id(method: str, path: str) -> str:
    words = [p.strip("{}").replace("-", "_").replace(".", "_") for p in path.split("/") if p]
    return "_".join([method.lower(), *words])


# -- what the code checks by hand ---------------------------------------------------------

# A JSON value JavaScript reads back unchanged. JSON Schema cannot tell an integer
# literal from a float one, and envelope does: an integer beyond 2**53 is refused (a
# receiver in JavaScript would read another number), a float of any size is delivered
# as JavaScript writes it. The description says so; the `integer` branch bounds what
# tools generate as integers, the `number` branch (floats) is unbounded.
_JSON_VALUE: dict[str, Any] = {
    "description": (
        "Any JSON value. Integers must lie within ±(2^53 - 1) (JavaScript's safe "
        "integers); beyond that, send them as strings (422 otherwise). Floats are "
        "delivered as JavaScript's JSON.stringify writes them."
    ),
    "anyOf": [{"type": "null"}, {"$ref": REF.format(name="JsonPresent")}],
}
_JSON_PRESENT: dict[str, Any] = {  # any of the above but null
    "anyOf": [
        {"type": "boolean"},
        {"type": "string"},
        {
            "type": "integer",
            "minimum": -envelope.MAX_SAFE_INTEGER,
            "maximum": envelope.MAX_SAFE_INTEGER,
        },
        {"type": "number"},
        {"type": "array", "items": {"$ref": REF.format(name="JsonValue")}},
        {"type": "object", "additionalProperties": {"$ref": REF.format(name="JsonValue")}},
    ],
}
_JSON_OBJECT = {"type": "object", "additionalProperties": {"$ref": REF.format(name="JsonValue")}}
_ENTITY = {  # the entity field of a spec type, with ingest.validate = "report"
    "anyOf": [
        {"type": "string"},
        {
            "type": "integer",
            "minimum": -envelope.MAX_SAFE_INTEGER,
            "maximum": envelope.MAX_SAFE_INTEGER,
        },
        {"type": "number"},
    ]
}
_RFC3339 = {"type": "string", "format": "date-time"}
_EVENT_ID = {"type": "string", "pattern": f"^{envelope.EVENT_ID.pattern}$"}
# domain.routing.pattern_error: '*', 'prefix.*', or a dotted name (with '.*' after it).
_SUBSCRIPTION = {
    "type": "string",
    "maxLength": 128,
    "pattern": (
        r"^(\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*\.\*"
        r"|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+)$"
    ),
}
# domain.endpoints.url_error: http(s), no user:password, a host resolvable as written (at
# most 253 characters; its rules on labels and IDNA are the code's). An IRI, since an
# internationalised host is accepted (and sent as IDNA).
_URL = {
    "type": "string",
    "format": "iri",
    "maxLength": endpoint_rules.MAX_URL,
    "pattern": rf"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#@]{{1,{endpoint_rules.MAX_HOST}}}([/?#]|$)",
}
# domain.endpoints.secret_error: no control characters, no whitespace (str.isspace) at
# either end; a `whsec_` one must be that prefix and the base64 of its key
# (signing.standard_key).
_SPACES = "".join(f"\\u{ord(c):04x}" for c in map(chr, range(0x20, 0x3001)) if c.isspace())
_B64 = "[A-Za-z0-9+/]"
_WHSEC_KEY = (
    f"^{signing.STANDARD_PREFIX}((?:{_B64}{{4}})+(?:{_B64}{{2,3}})?={{0,2}}"
    f"|{_B64}{{2}}==|{_B64}{{3}}={{1,2}})$"
)
_SECRET = {
    "type": "string",
    "maxLength": endpoint_rules.MAX_SECRET,
    "pattern": f"^[^\\x00-\\x1f{_SPACES}]([^\\x00-\\x1f]*[^\\x00-\\x1f{_SPACES}])?$",
    "anyOf": [{"not": {"pattern": f"^{signing.STANDARD_PREFIX}"}}, {"pattern": _WHSEC_KEY}],
    "description": (
        "Used as given for X-Webhook-Signature. One starting with `whsec_` is a Standard "
        "Webhooks secret, the base64 of its key after the prefix (`=` padding optional), "
        "and also signs the `webhook-*` headers"
    ),
}
_EVENTS = {
    "type": "array",
    "items": _SUBSCRIPTION,
    "minItems": 1,
    "maxItems": 100,
}


def _header(name: str, description: str, required: bool = True) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": required,
        "schema": {"type": "string"},
        "description": description,
    }


_SPEC_FORM = "`sha256=<hex HMAC-SHA256 of the body>`"
_DELIVERY: dict[str, Any] = {
    "post": {
        "summary": "What every subscribed endpoint gets, at every attempt",
        "description": (
            "A receiver verifies the body against its secret with any of the "
            "X-Webhook-Signature headers present: then it accepts every delivery, "
            "holding the old secret or the new, before, during and after a rotation."
        ),
        "parameters": [
            _header("X-Webhook-Signature", f"{_SPEC_FORM}, keyed with the current secret"),
            _header(
                "X-Webhook-Signature-Previous",
                f"{_SPEC_FORM}, keyed with the secret a rotation replaced, during its "
                "overlap (`previous_secret_until`)",
                required=False,
            ),
            _header(
                "X-Webhook-Signature-Next",
                f"{_SPEC_FORM}, keyed with a staged secret until it takes over (`next_secret_at`)",
                required=False,
            ),
            _header("X-Webhook-Id", "the event id, the same at every attempt"),
            _header("X-Webhook-Event", "the event type"),
            _header("X-Webhook-Timestamp", "Unix seconds when this attempt was signed"),
            _header("X-Webhook-Attempt", "1, 2, ..."),
            *(
                _header(
                    name,
                    "Standard Webhooks, with a `whsec_` secret; `webhook-signature` holds "
                    "one `v1,<base64>` per `whsec_` secret signing (current, next, "
                    "previous), separated by spaces",
                    required=False,
                )
                for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
            ),
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["event", "timestamp", "data"],
                        "properties": {
                            "event": {"type": "string"},
                            "timestamp": {"type": "string"},
                            "data": _JSON_OBJECT,
                        },
                    }
                }
            },
        },
        "responses": {
            "2XX": {"description": "Delivered"},
            "default": {"description": "A failed attempt, retried on the schedule"},
        },
    }
}


def _constrain(components: dict[str, Any], strict_time: bool) -> None:
    """Add the checks the handlers make by hand to the request Structs' schemas."""
    components["IngestRequest"]["additionalProperties"] = {"$ref": REF.format(name="JsonValue")}
    request = components["IngestRequest"]["properties"]
    request["event"] = {**_NAME, "not": {"pattern": "^" + re.escape(envelope.RESERVED_PREFIX)}}
    request["data"] = _JSON_OBJECT
    time = _RFC3339 if strict_time else {"type": "string"}
    request["timestamp"] = {"anyOf": [time, {"type": "null"}], "default": None}
    request["id"] = {"anyOf": [_EVENT_ID, {"type": "null"}], "default": None}
    for name in ("EndpointCreate", "EndpointPatch"):
        fields = components[name]["properties"]
        fields["url"] = _URL
        fields["events"] = _EVENTS
        fields["description"] = {"type": "string", "maxLength": endpoint_rules.MAX_DESCRIPTION}
        fields["secret"] = (
            {"anyOf": [_SECRET, {"type": "null"}], "default": None}
            if name == "EndpointCreate"
            else _SECRET
        )
    components["EndpointPatch"]["minProperties"] = 1  # "nothing to change" is a 422
    rotation = components["SecretRotation"]["properties"]
    rotation["secret"] = {"anyOf": [_SECRET, {"type": "null"}], "default": None}
    rotation["activate_at"] = {"anyOf": [_RFC3339, {"type": "null"}], "default": None}
    selectors = components["SubjectSelectors"]  # lgpd: what domain.subjects takes
    selectors["properties"] = dict(SELECTOR_SCHEMAS)
    selectors["minProperties"] = 1  # no selector is a 400
    replay = components["Replay"]["properties"]
    replay["since"] = {"anyOf": [_RFC3339, {"type": "null"}], "default": None}


def _open_to_json(components: dict[str, Any], name: str) -> None:
    """A catalog Struct's schema, its open parts limited to JavaScript-safe JSON."""
    any_json = {"$ref": REF.format(name="JsonValue")}
    components[name]["additionalProperties"] = any_json
    if name == "Alteracao":
        for field in ("anterior", "novo"):
            components[name]["properties"][field] = any_json


def _ingest_schema(
    components: dict[str, Any],
    catalog: Catalog,
    checked: list[catalog_module.EventType],
    structs: dict[str, type[msgspec.Struct]],
) -> dict[str, Any]:
    """One event in a POST /v1/events body, as `ingest.validate` checks it."""
    base = components["IngestRequest"]
    if not checked:
        return {"$ref": REF.format(name="IngestRequest")}
    branches = []
    for kind in checked:
        data: dict[str, Any]
        if kind.name in structs and catalog.mode == "report":  # the entity field only
            assert kind.entity_field is not None
            data = {
                "type": "object",
                "required": [kind.entity_field],
                "properties": {kind.entity_field: _ENTITY},
                "additionalProperties": {"$ref": REF.format(name="JsonValue")},
            }
        elif kind.name in structs:
            data = {"$ref": REF.format(name=structs[kind.name].__name__)}
        else:  # an operator's type: its required fields present, any JSON in them
            present = {"$ref": REF.format(name="JsonPresent")}
            data = {
                **kind.schema,
                "properties": dict.fromkeys(kind.schema.get("properties", {}), present),
                "additionalProperties": {"$ref": REF.format(name="JsonValue")},
            }
        properties = {**base["properties"], "event": {"const": kind.name}, "data": data}
        branches.append({**base, "title": kind.name, "properties": properties})
    if catalog.mode in ("known", "report"):
        names = [kind.name for kind in checked]
        other = {
            **base["properties"]["event"],
            "not": {"anyOf": [base["properties"]["event"]["not"], {"enum": names}]},
        }
        branches.append(
            {**base, "title": "other", "properties": {**base["properties"], "event": other}}
        )
    return {"anyOf": branches}
