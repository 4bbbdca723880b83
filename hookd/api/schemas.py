"""What the API's routes take and answer: request bodies, query parameters, and the
description of each route (`Op`) that the route table (`api.routes`) carries and the
OpenAPI document (`api.openapi`) renders.

Rules (docs/ARCHITECTURE.md, "Layers"): only types and constants here; no handler, so
that the document is built from descriptions without importing the code that serves them.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, NamedTuple

import msgspec

from hookd.domain import endpoints as endpoint_rules
from hookd.domain import envelope, subjects, views

JSON_TYPES = frozenset({"application/json"})
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl"})
MAX_PAGE = 1000
DELIVERY_STATUSES = frozenset(views.DELIVERY_STATUSES)
_KEY = re.compile(r"[\x21-\x7e]{1,255}")


class EndpointCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    url: str
    events: list[str]
    description: str = ""
    enabled: bool = True
    secret: str | None = None


class EndpointPatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    url: str | msgspec.UnsetType = msgspec.UNSET
    events: list[str] | msgspec.UnsetType = msgspec.UNSET
    description: str | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    secret: str | msgspec.UnsetType = msgspec.UNSET


Overlap = Annotated[float, msgspec.Meta(ge=0, le=endpoint_rules.MAX_SECRET_OVERLAP)]


class SecretRotation(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    secret: str | None = None  # default: a generated whsec_ secret
    # Seconds the previous secret keeps signing (default: delivery.secret_overlap).
    overlap_s: Overlap | None = None
    # RFC 3339: stage the new secret to take over then (default, or a time not in the
    # future: at once).
    activate_at: str | None = None


class Replay(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    status: Literal["failed", "succeeded", "cancelled"] = "failed"
    since: str | None = None


class SubjectSelectors(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Who an erasure is about: at least one of these (README, "Personal data")."""

    cliente_id: str | msgspec.UnsetType = msgspec.UNSET
    email: str | msgspec.UnsetType = msgspec.UNSET
    phone: str | msgspec.UnsetType = msgspec.UNSET


SUBJECT_SELECTORS = ("cliente_id", "email", "phone")


# What `domain.subjects` takes as each selector (a 400 otherwise).
SELECTOR_SCHEMAS: dict[str, dict[str, Any]] = {
    "cliente_id": {"type": "string", "minLength": 1, "maxLength": subjects.MAX_VALUE},
    "email": {"type": "string", "maxLength": subjects.MAX_VALUE, "pattern": f"^{subjects.EMAIL}$"},
    "phone": {"type": "string", "maxLength": subjects.MAX_VALUE, "pattern": f"^{subjects.PHONE}$"},
}


class Param(NamedTuple):
    """A query parameter."""

    name: str
    schema: dict[str, Any]
    description: str


class Op(NamedTuple):
    """What one route takes and answers."""

    summary: str
    status: int  # the success status
    answer: Any  # the answer's type; None: no body; str: text
    body: Any = None  # the JSON request body's type, or INGEST / BATCH
    body_optional: bool = False
    query: tuple[Param, ...] = ()
    errors: tuple[int, ...] = ()  # beyond those every such route has (see _errors)
    store: bool = True  # reads or writes the database (can answer 503)
    # Operations the answer leads to: (method, path, JSON pointer of the `id` in it).
    links: tuple[tuple[str, str, str], ...] = ()


INGEST = "ingest"
BATCH = "batch"

_NAME = {
    "type": "string",
    "pattern": f"^{envelope.EVENT_NAME.pattern}$",
    "maxLength": envelope.MAX_EVENT_NAME,
}
_LIMIT = Param(
    "limit",
    {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 50},
    "page size at most: a page also stops at about 8 MiB (one item at least)",
)
_CURSOR = Param(
    "cursor",
    {"type": "string", "pattern": "^[0-9]{0,18}$"},
    "the `next_cursor` of the previous page",
)
_SINCE = Param(
    "since", {"anyOf": [{"type": "string", "format": "date-time"}, {"const": ""}]}, "RFC 3339 time"
)
