"""The route table: each route's method, path, handler and description together, and
the router that finds a request's handler.

Rules (docs/ARCHITECTURE.md, "Layers"):
- One table (`ROUTES`) carries the handler and the OpenAPI description (`schemas.Op`) of
  every route: a route cannot be served undescribed, or described and not served.
- A path that a template without parameters matches (`/v1/events/batch`) is that
  template's alone, not `/v1/events/{id}`'s. Unknown paths are 404, a known path with
  another method 405 with `Allow`.
- On the TCP listener, when `server.api_token` is set, every route but `/healthz` needs
  `Authorization: Bearer <token>`; the Unix socket is guarded by its file mode.
- Storage that fails answers 503, saying whether it could not be read or written.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import NamedTuple
from urllib.parse import unquote

from hookd.api.errors import ApiError, from_refusal
from hookd.api.handlers import Api
from hookd.api.schemas import (
    _CURSOR,
    _LIMIT,
    _NAME,
    _SINCE,
    BATCH,
    INGEST,
    SELECTOR_SCHEMAS,
    EndpointCreate,
    EndpointPatch,
    Op,
    Param,
    Replay,
    SecretRotation,
    SubjectSelectors,
)
from hookd.api.server import Request, Response
from hookd.db.errors import ReadError, StorageError
from hookd.domain import views
from hookd.domain.catalog import EventType
from hookd.domain.errors import Refused

log = logging.getLogger("hookd.api")

RouteHandler = Callable[[Api, Request, dict[str, str]], Awaitable[Response]]


class Route(NamedTuple):
    """One route: what answers it, and how the API document describes it."""

    method: str
    path: str
    handler: RouteHandler
    op: Op


ROUTES: list[Route] = [
    Route(
        "POST",
        "/v1/events",
        Api.ingest,
        Op(
            "Ingest one event; 202 once it and its deliveries are on disk",
            202,
            views.Accepted,
            INGEST,
            links=(("GET", "/v1/events/{id}", "/id"),),
        ),
    ),
    Route(
        "GET",
        "/v1/events",
        Api.list_events,
        Op(
            "Events, newest first",
            200,
            views.Page[views.Event],
            query=(
                _LIMIT,
                _CURSOR,
                Param("type", {"anyOf": [_NAME, {"const": ""}]}, "only this event type"),
                _SINCE,
            ),
        ),
    ),
    Route(
        "POST",
        "/v1/events/batch",
        Api.ingest_batch,
        Op(
            "Ingest up to 1000 events, all or nothing",
            202,
            views.BatchAccepted,
            BATCH,
        ),
    ),
    Route(
        "GET",
        "/v1/events/{id}",
        Api.get_event,
        Op("One event with its deliveries", 200, views.Event, errors=(404,)),
    ),
    Route(
        "POST",
        "/v1/endpoints",
        Api.create_endpoint,
        Op(
            "Subscribe a URL to events; the answer shows its secret, this once",
            201,
            views.Endpoint,
            EndpointCreate,
            links=tuple(
                (method, path, "/id")
                for method, path in (
                    ("GET", "/v1/endpoints/{id}"),
                    ("PATCH", "/v1/endpoints/{id}"),
                    ("DELETE", "/v1/endpoints/{id}"),
                    ("POST", "/v1/endpoints/{id}/rotate-secret"),
                    ("POST", "/v1/endpoints/{id}/test"),
                    ("POST", "/v1/endpoints/{id}/replay"),
                    ("GET", "/v1/endpoints/{id}/stats"),
                )
            ),
        ),
    ),
    Route(
        "GET",
        "/v1/endpoints",
        Api.list_endpoints,
        Op("Endpoints in creation order", 200, views.Page[views.Endpoint], query=(_LIMIT, _CURSOR)),
    ),
    Route(
        "GET",
        "/v1/endpoints/{id}",
        Api.get_endpoint,
        Op("One endpoint", 200, views.Endpoint, errors=(404,)),
    ),
    Route(
        "PATCH",
        "/v1/endpoints/{id}",
        Api.update_endpoint,
        Op(
            "Change an endpoint; a `secret` given here replaces the old one at once",
            200,
            views.Endpoint,
            EndpointPatch,
            errors=(404, 409),
        ),
    ),
    Route(
        "DELETE",
        "/v1/endpoints/{id}",
        Api.delete_endpoint,
        Op(
            "Delete an endpoint; its pending deliveries are cancelled", 204, None, errors=(404, 409)
        ),
    ),
    Route(
        "POST",
        "/v1/endpoints/{id}/rotate-secret",
        Api.rotate_secret,
        Op(
            "A new secret (shown in the answer): current at once, or staged until a future "
            "`activate_at` (`next_secret_at`), signing `X-Webhook-Signature-Next` meanwhile. "
            "From then the previous one keeps signing (`X-Webhook-Signature-Previous`, "
            "`webhook-signature`) for `overlap_s` (default `delivery.secret_overlap`)",
            200,
            views.Endpoint,
            SecretRotation,
            body_optional=True,
            errors=(404, 409),
        ),
    ),
    Route(
        "POST",
        "/v1/endpoints/{id}/test",
        Api.send_test,
        Op(
            "Send a hookd.teste event to this endpoint alone",
            202,
            views.Accepted,
            errors=(404, 409),
            links=(("GET", "/v1/events/{id}", "/id"),),
        ),
    ),
    Route(
        "POST",
        "/v1/endpoints/{id}/replay",
        Api.replay_endpoint,
        Op(
            "Queue an endpoint's deliveries with a status again",
            202,
            views.Replayed,
            Replay,
            body_optional=True,
            errors=(404, 409),
        ),
    ),
    Route(
        "GET",
        "/v1/endpoints/{id}/stats",
        Api.endpoint_stats,
        Op("One endpoint's health and statistics", 200, views.EndpointStats, errors=(404,)),
    ),
    Route(
        "GET",
        "/v1/stats",
        Api.stats,
        Op("Every endpoint's health and statistics", 200, views.Stats),
    ),
    Route(
        "GET",
        "/v1/deliveries",
        Api.list_deliveries,
        Op(
            "Deliveries, newest first",
            200,
            views.Page[views.Delivery],
            query=(
                _LIMIT,
                _CURSOR,
                Param("status", {"enum": ["", *views.DELIVERY_STATUSES]}, "only this status"),
                Param("endpoint", {"type": "string"}, "only this endpoint's"),
                Param("event", {"type": "string"}, "only this event's"),
            ),
        ),
    ),
    Route(
        "GET",
        "/v1/deliveries/{id}",
        Api.get_delivery,
        Op("One delivery with every attempt", 200, views.Delivery, errors=(404,)),
    ),
    Route(
        "POST",
        "/v1/deliveries/{id}/retry",
        Api.retry_delivery,
        Op(
            "Attempt now; a finished delivery starts a new round",
            202,
            views.Delivery,
            errors=(404, 409),
        ),
    ),
    Route(
        "GET",
        "/v1/audit",
        Api.list_audit,
        Op(
            "Endpoint changes, newest first: when, who asked, what, which fields (never values)",
            200,
            views.Page[views.AuditEntry],
            query=(
                _LIMIT,
                _CURSOR,
                Param("endpoint", {"type": "string"}, "only this endpoint's"),
                _SINCE,
            ),
        ),
    ),
    Route(
        "GET",
        "/v1/subjects",
        Api.subject_events,
        Op(
            "What hookd holds about a person (LGPD access): the events naming any selector,"
            " newest first, with their deliveries",
            200,
            views.Page[views.SubjectEvent],
            query=(
                Param("cliente_id", SELECTOR_SCHEMAS["cliente_id"], "the client's id"),
                Param("email", SELECTOR_SCHEMAS["email"], "an e-mail address"),
                Param("phone", SELECTOR_SCHEMAS["phone"], "a phone or WhatsApp number"),
                _LIMIT,
                _CURSOR,
            ),
            errors=(409,),
        ),
    ),
    Route(
        "POST",
        "/v1/subjects/erase",
        Api.erase_subject,
        Op(
            "Erase a person (LGPD elimination): the events naming any selector become"
            " tombstones, their pending deliveries end `erased`",
            200,
            views.Erased,
            body=SubjectSelectors,
            errors=(409,),
        ),
    ),
    Route(
        "GET",
        "/v1/status",
        Api.status,
        Op("Version, endpoint counts, deliveries by status", 200, views.Status),
    ),
    Route(
        "POST",
        "/v1/config/reload",
        Api.reload_config,
        Op(
            "Read the config file again and apply what can change live (as SIGHUP does);"
            " 200 once applied, 409 when the file was not (nothing changed)",
            200,
            views.Reloaded,
            errors=(409,),
            store=False,
        ),
    ),
    Route("GET", "/healthz", Api.health, Op("Liveness", 200, views.Health, store=False)),
    Route("GET", "/metrics", Api.metrics_text, Op("Prometheus text format 0.0.4", 200, str)),
    Route(
        "GET",
        "/v1/event-types",
        Api.event_types,
        Op("The event catalog: each type's schema and example", 200, views.EventTypes, store=False),
    ),
    Route(
        "GET",
        "/v1/event-types/{name}",
        Api.event_type,
        Op("One event type", 200, EventType, errors=(404,), store=False),
    ),
    Route("GET", "/v1/openapi.json", Api.openapi, Op("This document", 200, dict, store=False)),
]

OPERATIONS = {(route.method, route.path): route.op for route in ROUTES}


def routes() -> list[tuple[str, str]]:
    """Every (method, path template) the API answers, in the table's order."""
    return [(route.method, route.path) for route in ROUTES]


def _compile(template: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "/?")


_TABLE = [(route.method, _compile(route.path), route.handler) for route in ROUTES]


class Router:
    """Answers requests with the handlers of one `Api`."""

    def __init__(self, api: Api) -> None:
        self._api = api

    async def handle(self, request: Request) -> Response:
        """Answer one request."""
        self._api.authenticate(request)
        handler, params = route(request.method, request.path)
        try:
            return await handler(self._api, request, params)
        except Refused as exc:
            raise from_refusal(exc) from None
        except StorageError as exc:
            log.error(
                "action=storage.failed method=%s path=%s error=%s",
                request.method,
                request.path,
                exc,
            )
            what = "read" if isinstance(exc, ReadError) else "written"
            raise ApiError(
                503, "storage_unavailable", f"the database cannot be {what}; see the log"
            ) from None


def route(method: str, path: str) -> tuple[RouteHandler, dict[str, str]]:
    """The handler of `method` on `path`, and the path's parameters."""
    allowed: list[str] = []
    found: tuple[RouteHandler, dict[str, str]] | None = None
    fewest = None  # the number of parameters of the most literal template matched
    for route_method, pattern, handler in _TABLE:
        match = pattern.fullmatch(path)
        if match is None:
            continue
        params = match.groupdict()
        if fewest is None or len(params) < fewest:
            fewest, allowed, found = len(params), [], None
        if len(params) > fewest:
            continue
        if route_method == method:
            found = handler, {k: unquote(v) for k, v in params.items()}
        allowed.append(route_method)
    if found is not None:
        return found
    if allowed:
        allow = ", ".join(sorted(set(allowed)))
        raise ApiError(
            405, "method_not_allowed", f"{method} is not allowed here; use {allow}", allow
        )
    raise ApiError(404, "not_found", f"no route {path[:200]!r}")
