"""The HTTP API: routes -> validation (core) -> store, and JSON answers.

Rules (DESIGN §2):
- Bodies are JSON (`application/json`; the batch route also takes NDJSON). Anything
  else is a 415, an empty or malformed body a 400, a well-formed but invalid one a 422
  naming the field. Unknown routes are 404, wrong methods 405 with `Allow`.
- `POST /v1/events` answers 202 only after the event and its deliveries are committed.
  A repeated event id or `Idempotency-Key` answers as the first time and creates nothing.
- On the TCP listener, when `server.api_token` is set, every route but `/healthz` needs
  `Authorization: Bearer <token>`. The Unix socket is guarded by its file mode.
- Secrets are shown when an endpoint is created or its secret changes, never otherwise.
- `GET /metrics` is Prometheus text; on TCP it needs the token like the rest (a scrape
  config carries it as a bearer token). Ingested events are counted after their commit.
- Every endpoint change is written to the audit log (`GET /v1/audit`) in the same
  transaction, with the request's origin (`socket` or `tcp`).
- Ingest checks each event's `data` against the catalog (`core.catalog`, as
  `ingest.validate` says) after the envelope's own checks; the body stored is the one
  `envelope.prepare` built, whatever the check read. What the check only reports is
  recorded (`conformance`) once the event is stored, and shown per type by
  `GET /v1/event-types/{name}`.
- Idempotency: a single event's `Idempotency-Key` and a batch's (one key per item, by
  position) live in separate spaces (`store.NewEvent`); a batch answers per item whether
  it was new, and counts only the deliveries it created.
- Rotating a secret keeps the previous one signing for `delivery.secret_overlap` (or the
  request's `overlap_s`); with a future `activate_at` the new secret is staged and takes
  over then, the overlap counted from then (`core.endpoints.Secrets`). Setting `secret`
  through PATCH replaces every secret at once. Endpoints are shown as they stand at the
  daemon's time of the request.
- `GET /v1/openapi.json` is `hookd.openapi`'s document for this daemon's routes and
  catalog, built once at start and handed in: every route here is described there.
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import unquote

import msgspec

from hookd import __version__, ids, models
from hookd.alerts import alert_events
from hookd.clock import Clock
from hookd.conformance import LONE_SURROGATE, Conformance
from hookd.core import endpoints as endpoint_rules
from hookd.core import envelope
from hookd.core.catalog import Catalog, EventType, Finding
from hookd.dispatcher import Scheduler
from hookd.errors import ApiError, bad_request, invalid, not_found
from hookd.http import Request, Response, json_response
from hookd.metrics import CONTENT_TYPE as METRICS_TYPE
from hookd.metrics import Metrics
from hookd.store import (
    DISABLED_BY_HAND,
    Ingested,
    NewDelivery,
    NewEvent,
    ReadError,
    StorageError,
    Store,
)

log = logging.getLogger("hookd.api")

RouteHandler = Callable[["Api", Request, dict[str, str]], Awaitable[Response]]

JSON_TYPES = frozenset({"application/json"})
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl"})
MAX_PAGE = 1000
DELIVERY_STATUSES = frozenset(models.DELIVERY_STATUSES)
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


TEST_EVENT = "hookd.teste"


class Api:
    """Routes requests to handlers; one per daemon."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        scheduler: Scheduler,
        api_token: str = "",
        *,
        metrics: Metrics,
        catalog: Catalog,
        openapi: bytes,
        secret_overlap: float,
    ) -> None:
        self.store = store
        self.clock = clock
        self.scheduler = scheduler
        self._token = api_token
        self.metrics = metrics
        self.catalog = catalog
        self.conformance = Conformance(clock, metrics)
        self._openapi = openapi
        self._secret_overlap = secret_overlap

    async def handle(self, request: Request) -> Response:
        """Answer one request."""
        if request.origin == "tcp" and self._token:
            if request.path != "/healthz":
                self._authorize(request)
                request.authenticated = True  # the connection is trusted from now on
        else:
            request.authenticated = True
        handler, params = _route(request.method, request.path)
        try:
            return await handler(self, request, params)
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

    def _authorize(self, request: Request) -> None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), self._token.encode()
        ):
            raise ApiError(401, "unauthorized", "missing or wrong 'Authorization: Bearer' token")

    # -- events -------------------------------------------------------------------------

    async def ingest(self, request: Request, _: dict[str, str]) -> Response:
        _require_body(request, JSON_TYPES)
        now = self.clock.now()
        decoded = envelope.decode_event(request.body)
        [incoming], [extra] = decoded.requests, decoded.extras
        event = envelope.prepare(incoming, envelope.format_timestamp(now), extra=extra)
        findings = self.catalog.check(incoming.event, incoming.data, None, incoming.timestamp)
        key = _idempotency_key(request)
        [result] = await self.store.ingest([NewEvent(event, ids.event_id(now), key)], now)
        self.scheduler.deliveries_created(result.created)
        self._count_ingested([result])
        if (findings or decoded.repaired) and not result.replayed:
            self.conformance.record(event.event, _with_repairs(findings, decoded.repaired))
        return _accepted(result.accepted, replayed=result.replayed)

    async def ingest_batch(self, request: Request, _: dict[str, str]) -> Response:
        media = _require_body(request, JSON_TYPES | NDJSON_TYPES)
        now = self.clock.now()
        received = envelope.format_timestamp(now)
        decoded = envelope.decode_batch(request.body, ndjson=media in NDJSON_TYPES)
        key = _idempotency_key(request)
        check = self.catalog.check
        items = []
        findings = []
        for index, (incoming, extra) in enumerate(
            zip(decoded.requests, decoded.extras, strict=True)
        ):
            event = envelope.prepare(incoming, received, index, extra)
            findings.append(check(incoming.event, incoming.data, index, incoming.timestamp))
            items.append(NewEvent(event, ids.event_id(now), key, index))
        results = await self.store.ingest(items, now)
        self.scheduler.deliveries_created([d for result in results for d in result.created])
        self._count_ingested(results)
        for item, found, result in zip(items, findings, results, strict=True):
            repaired = decoded.repaired and REPLACEMENT in item.event.body
            if (found or repaired) and not result.replayed:
                self.conformance.record(item.event.event, _with_repairs(found, repaired))
        answer = models.BatchAccepted(
            [r.accepted.id for r in results],
            sum(len(r.created) for r in results),
            [models.BatchItem(r.accepted.id, r.replayed, len(r.created)) for r in results],
        )
        return json_response(202, answer)

    def _count_ingested(self, results: list[Ingested]) -> None:
        counter = self.metrics.events_ingested
        for result in results:
            if not result.replayed:
                counter.inc((result.accepted.event,))

    async def list_events(self, request: Request, _: dict[str, str]) -> Response:
        query = request.query
        event_type = query.get("type") or None
        if event_type is not None:
            envelope.check_event_name(event_type, "type")
        page = await self.store.list_events(
            _limit(query), _cursor(query), event_type, _since(query)
        )
        return json_response(200, page)

    async def get_event(self, _: Request, params: dict[str, str]) -> Response:
        return json_response(200, await self.store.get_event(params["id"]))

    # -- endpoints ----------------------------------------------------------------------

    async def create_endpoint(self, request: Request, _: dict[str, str]) -> Response:
        _require_body(request, JSON_TYPES)
        spec = _decode(request.body, EndpointCreate)
        fields = msgspec.structs.asdict(spec)
        if spec.secret is None:
            fields["secret"] = endpoint_rules.new_secret(ids.random_bytes(32))
        _check_endpoint(fields)
        fields["id"] = ids.endpoint_id()
        endpoint = await self.store.create_endpoint(fields, self.clock.now(), origin=request.origin)
        return json_response(201, endpoint, [("Location", f"/v1/endpoints/{endpoint.id}")])

    async def list_endpoints(self, request: Request, _: dict[str, str]) -> Response:
        query = request.query
        page = await self.store.list_endpoints(_limit(query), _cursor(query), self.clock.now())
        return json_response(200, page)

    async def get_endpoint(self, _: Request, params: dict[str, str]) -> Response:
        return json_response(200, await self.store.get_endpoint(params["id"], self.clock.now()))

    async def update_endpoint(self, request: Request, params: dict[str, str]) -> Response:
        _require_body(request, JSON_TYPES)
        patch = _decode(request.body, EndpointPatch)
        changes = {
            name: value
            for name, value in msgspec.structs.asdict(patch).items()
            if value is not msgspec.UNSET
        }
        if not changes:
            raise invalid("nothing to change: give url, events, description, enabled or secret")
        _check_endpoint(changes)
        endpoint, alerts = await self.store.update_endpoint(
            params["id"], changes, self.clock.now(), origin=request.origin, alert=alert_events
        )
        if changes.keys() & {"url", "secret", "enabled"}:
            self.scheduler.endpoint_changed(endpoint.id, receiving=endpoint.enabled)
        if alerts:
            self.scheduler.alerts_stored(alerts, [(endpoint.id, DISABLED_BY_HAND)])
        return json_response(200, endpoint)

    async def delete_endpoint(self, request: Request, params: dict[str, str]) -> Response:
        await self.store.delete_endpoint(params["id"], self.clock.now(), origin=request.origin)
        self.scheduler.endpoint_changed(params["id"], receiving=False)
        return Response(status=204)

    async def rotate_secret(self, request: Request, params: dict[str, str]) -> Response:
        rotation = SecretRotation()
        if request.body.strip():
            _require_body(request, JSON_TYPES)
            rotation = _decode(request.body, SecretRotation)
        secret = rotation.secret
        if secret is None:
            secret = endpoint_rules.new_secret(ids.random_bytes(32))
        _check_endpoint({"secret": secret})
        overlap = self._secret_overlap if rotation.overlap_s is None else rotation.overlap_s
        activate_at = rotation.activate_at
        endpoint = await self.store.rotate_secret(
            params["id"],
            secret,
            overlap,
            self.clock.now(),
            origin=request.origin,
            activate_at=None if activate_at is None else _time(activate_at, "$.activate_at"),
        )
        self.scheduler.endpoint_changed(endpoint.id, receiving=endpoint.enabled)
        return json_response(200, endpoint)

    async def send_test(self, _: Request, params: dict[str, str]) -> Response:
        now = self.clock.now()
        timestamp = envelope.format_timestamp(now)
        data = {"endpointId": params["id"], "mensagem": "Teste de webhook do hookd"}
        event = envelope.internal_event(TEST_EVENT, data, timestamp)
        result = await self.store.send_test_event(params["id"], event, ids.event_id(now), now)
        self.scheduler.deliveries_created(result.created)
        self._count_ingested([result])
        return _accepted(result.accepted, replayed=False)

    async def replay_endpoint(self, request: Request, params: dict[str, str]) -> Response:
        replay = Replay()
        if request.body.strip():
            _require_body(request, JSON_TYPES)
            replay = _decode(request.body, Replay)
        since = _time(replay.since, "$.since") if replay.since is not None else 0.0
        count = await self.store.replay_endpoint(
            params["id"], replay.status, since, self.clock.now()
        )
        self.scheduler.rescan(params["id"])
        return json_response(202, models.Replayed(count))

    # -- deliveries ---------------------------------------------------------------------

    async def list_deliveries(self, request: Request, _: dict[str, str]) -> Response:
        query = request.query
        filters = {name: query[name] for name in ("status", "endpoint", "event") if query.get(name)}
        if filters.get("status", "pending") not in DELIVERY_STATUSES:
            raise bad_request(
                f"status must be one of {', '.join(sorted(DELIVERY_STATUSES))}, "
                f"got {filters['status'][:40]!r}"
            )
        page = await self.store.list_deliveries(_limit(query), _cursor(query), filters)
        return json_response(200, page)

    async def get_delivery(self, _: Request, params: dict[str, str]) -> Response:
        return json_response(200, await self.store.get_delivery(_delivery_id(params)))

    async def retry_delivery(self, _: Request, params: dict[str, str]) -> Response:
        now = self.clock.now()
        delivery = await self.store.retry_delivery(_delivery_id(params), now)
        self.scheduler.deliveries_created([NewDelivery(delivery.id, delivery.endpoint_id, now)])
        return json_response(202, delivery)

    # -- statistics ---------------------------------------------------------------------

    async def stats(self, _: Request, __: dict[str, str]) -> Response:
        now = self.clock.now()
        endpoints = await self.store.endpoint_stats(None, now)
        return json_response(200, models.Stats(models.iso(now), endpoints))

    async def endpoint_stats(self, _: Request, params: dict[str, str]) -> Response:
        [stats] = await self.store.endpoint_stats(params["id"], self.clock.now())
        return json_response(200, stats)

    # -- audit --------------------------------------------------------------------------

    async def list_audit(self, request: Request, _: dict[str, str]) -> Response:
        query = request.query
        filters: dict[str, Any] = {}
        if query.get("endpoint"):
            filters["endpoint"] = query["endpoint"]
        since = _since(query)
        if since is not None:
            filters["since"] = since
        page = await self.store.list_audit(_limit(query), _cursor(query), filters)
        return json_response(200, page)

    # -- health -------------------------------------------------------------------------

    async def health(self, _: Request, __: dict[str, str]) -> Response:
        return json_response(200, models.Health("ok", __version__))

    async def status(self, _: Request, __: dict[str, str]) -> Response:
        return json_response(200, await self.store.status(__version__, self.clock.now()))

    async def metrics_text(self, _: Request, __: dict[str, str]) -> Response:
        backlog = await self.store.backlog()
        self.metrics.set_backlog(backlog.pending, backlog.file_bytes, self.clock.now())
        return Response(status=200, body=self.metrics.render(), content_type=METRICS_TYPE)

    # -- the catalog and the contract ---------------------------------------------------

    async def event_types(self, _: Request, __: dict[str, str]) -> Response:
        kinds = [self._with_findings(kind) for kind in self.catalog.types()]
        return json_response(200, models.EventTypes(self.catalog.mode, kinds))

    async def event_type(self, _: Request, params: dict[str, str]) -> Response:
        kind = self.catalog.get(params["name"])
        if kind is None:
            raise not_found(f"event type {params['name'][:80]!r}")
        return json_response(200, self._with_findings(kind))

    def _with_findings(self, kind: EventType) -> EventType:
        found = self.conformance.of_type(kind.name)
        return msgspec.structs.replace(kind, nonconforming=found) if found else kind

    async def openapi(self, _: Request, __: dict[str, str]) -> Response:
        return Response(status=200, body=self._openapi)


# -- routing ---------------------------------------------------------------------------

_ROUTES: list[tuple[str, str, RouteHandler]] = [
    ("POST", "/v1/events", Api.ingest),
    ("GET", "/v1/events", Api.list_events),
    ("POST", "/v1/events/batch", Api.ingest_batch),
    ("GET", "/v1/events/{id}", Api.get_event),
    ("POST", "/v1/endpoints", Api.create_endpoint),
    ("GET", "/v1/endpoints", Api.list_endpoints),
    ("GET", "/v1/endpoints/{id}", Api.get_endpoint),
    ("PATCH", "/v1/endpoints/{id}", Api.update_endpoint),
    ("DELETE", "/v1/endpoints/{id}", Api.delete_endpoint),
    ("POST", "/v1/endpoints/{id}/rotate-secret", Api.rotate_secret),
    ("POST", "/v1/endpoints/{id}/test", Api.send_test),
    ("POST", "/v1/endpoints/{id}/replay", Api.replay_endpoint),
    ("GET", "/v1/endpoints/{id}/stats", Api.endpoint_stats),
    ("GET", "/v1/stats", Api.stats),
    ("GET", "/v1/deliveries", Api.list_deliveries),
    ("GET", "/v1/deliveries/{id}", Api.get_delivery),
    ("POST", "/v1/deliveries/{id}/retry", Api.retry_delivery),
    ("GET", "/v1/audit", Api.list_audit),
    ("GET", "/v1/status", Api.status),
    ("GET", "/healthz", Api.health),
    ("GET", "/metrics", Api.metrics_text),
    ("GET", "/v1/event-types", Api.event_types),
    ("GET", "/v1/event-types/{name}", Api.event_type),
    ("GET", "/v1/openapi.json", Api.openapi),
]


def routes() -> list[tuple[str, str]]:
    """Every (method, path template) the API answers, in the routing table's order."""
    return [(method, path) for method, path, _ in _ROUTES]


def _compile(template: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "/?")


_TABLE = [(method, _compile(path), handler) for method, path, handler in _ROUTES]


def _route(method: str, path: str) -> tuple[RouteHandler, dict[str, str]]:
    """The handler of `method` on `path`. A path that a template without parameters
    matches (`/v1/events/batch`) is that template's alone, not `/v1/events/{id}`'s.
    """
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


# -- request helpers -------------------------------------------------------------------


def _require_body(request: Request, accepted: frozenset[str]) -> str:
    """The request's media type, when it is one of `accepted` and the body is not empty."""
    content_type = request.headers.get("content-type", "")
    media, _, params = content_type.partition(";")
    media = media.strip().lower()
    charset = re.search(r"charset\s*=\s*\"?([\w-]+)", params, re.IGNORECASE)
    if media not in accepted or (charset and charset.group(1).lower() not in ("utf-8", "utf8")):
        wanted = " or ".join(sorted(accepted))
        raise ApiError(
            415, "unsupported_media_type", f"Content-Type must be {wanted}, got {content_type!r}"
        )
    if not request.body.strip():
        raise bad_request("empty body: expected JSON", "empty_body")
    return media


def _decode(body: bytes, kind: type[Any]) -> Any:
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise invalid(str(exc)) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise bad_request(f"invalid JSON: {exc}", "invalid_json") from None
    except RecursionError:
        raise bad_request("invalid JSON: nested too deeply", "invalid_json") from None


def _check_endpoint(fields: dict[str, Any]) -> None:
    checks = {
        "url": endpoint_rules.url_error,
        "events": endpoint_rules.events_error,
        "secret": endpoint_rules.secret_error,
    }
    for name, check in checks.items():
        if name in fields:
            problem = check(fields[name])
            if problem is not None:
                raise invalid(f"$.{name}: {problem}")
    description = fields.get("description", "")
    if len(description) > endpoint_rules.MAX_DESCRIPTION:
        raise invalid(f"$.description is longer than {endpoint_rules.MAX_DESCRIPTION} characters")


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if _KEY.fullmatch(key) is None:
        raise bad_request("Idempotency-Key must be 1-255 visible ASCII characters")
    return key


REPLACEMENT = "\ufffd".encode()  # what a lone surrogate became, in a stored body


def _with_repairs(findings: Sequence[Finding], repaired: int | bool) -> Sequence[Finding]:
    return [*findings, LONE_SURROGATE] if repaired else findings


def _accepted(accepted: Any, replayed: bool) -> Response:
    headers = [("Idempotent-Replayed", "true")] if replayed else []
    return json_response(202, accepted, headers)


def _limit(query: dict[str, str]) -> int:
    text = query.get("limit", "50")
    if not _is_number(text, 4) or not 1 <= int(text) <= MAX_PAGE:
        raise bad_request(f"limit must be a whole number from 1 to {MAX_PAGE}, got {text[:40]!r}")
    return int(text)


def _cursor(query: dict[str, str]) -> int | None:
    text = query.get("cursor")
    if not text:
        return None
    if not _is_number(text, 18):
        raise bad_request(f"cursor is not one this API gave: {text[:40]!r}")
    return int(text)


def _since(query: dict[str, str]) -> float | None:
    text = query.get("since")
    return _time(text, "since") if text else None


def _time(text: str, name: str) -> float:
    if envelope.is_rfc3339(text):
        try:
            return datetime.fromisoformat(text.upper()).timestamp()
        except ValueError:  # a leap second: valid RFC 3339, not a Python datetime
            pass
    raise bad_request(
        f"{name} must be an RFC 3339 time like 2024-01-01T10:00:00Z, got {text[:40]!r}"
    )


def _delivery_id(params: dict[str, str]) -> int:
    text = params["id"]
    if not _is_number(text, 18):
        raise ApiError(404, "not_found", f"delivery {text[:40]!r} not found")
    return int(text)


def _is_number(text: str, max_digits: int) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= max_digits
