"""The HTTP API's handlers: decode and check a request, call the service, encode.

Over 400 lines: one short handler per route of the API, side by side as the route
table (`api.routes`) lists them.

Rules (docs/ARCHITECTURE.md; the contract is the README's API section):
- Handlers reach storage, the scheduler and the metrics only through `hookd.service`,
  which does each operation's write and then its effects.
- Bodies are JSON (`application/json`; the batch route also takes NDJSON). Anything
  else is a 415, an empty or malformed body a 400, a well-formed but invalid one a 422
  naming the field. Routing, the token and the 503 of failed storage are `api.routes`'.
- `POST /v1/events` answers 202 only after the event and its deliveries are committed.
  A repeated event id or `Idempotency-Key` answers as the first time and creates nothing.
- On the TCP listener, when `server.api_token` is set, every route but `/healthz` needs
  `Authorization: Bearer <token>`. The Unix socket is guarded by its file mode.
- Secrets are shown when an endpoint is created or its secret changes, never otherwise.
- `GET /metrics` is Prometheus text; on TCP it needs the token like the rest (a scrape
  config carries it as a bearer token). Ingested events are counted after their commit.
- Every endpoint change is written to the audit log (`GET /v1/audit`) in the same
  transaction, with the request's origin (`socket` or `tcp`).
- Ingest checks each event's `data` against the catalog (`domain.catalog`, as
  `ingest.validate` says) after the envelope's own checks; the body stored is the one
  `envelope.prepare` built, whatever the check read. What the check only reports is
  recorded (`conformance`) once the event is stored, and shown per type by
  `GET /v1/event-types/{name}`.
- Idempotency: a single event's `Idempotency-Key` and a batch's (one key per item, by
  position) live in separate spaces (`service.Arrival`); a batch answers per item whether
  it was new, and counts only the deliveries it created.
- Rotating a secret keeps the previous one signing for `delivery.secret_overlap` (or the
  request's `overlap_s`); with a future `activate_at` the new secret is staged and takes
  over then, the overlap counted from then (`domain.endpoints.Secrets`). Setting `secret`
  through PATCH replaces every secret at once. Endpoints are shown as they stand at the
  daemon's time of the request.
- `POST /v1/config/reload` answers once the config file was read again and applied (200,
  what changed), or not (409 with the reason: nothing changed); SIGHUP does the same.
- `GET /v1/openapi.json` is `api.openapi`'s document for this daemon's routes and
  catalog, built at start and at each reload and handed in: every route here is
  described there.
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import msgspec

from hookd import __version__
from hookd.api.errors import ApiError
from hookd.api.schemas import (
    _KEY,
    DELIVERY_STATUSES,
    JSON_TYPES,
    MAX_PAGE,
    NDJSON_TYPES,
    SUBJECT_SELECTORS,
    EndpointCreate,
    EndpointPatch,
    Replay,
    SecretRotation,
    SubjectSelectors,
)
from hookd.api.server import Request, Response, json_response
from hookd.domain import endpoints as endpoint_rules
from hookd.domain import envelope, subjects, views
from hookd.domain.catalog import Finding
from hookd.domain.errors import bad_request, invalid
from hookd.runtime import ids
from hookd.runtime.conformance import LONE_SURROGATE
from hookd.runtime.metrics import CONTENT_TYPE as METRICS_TYPE
from hookd.service import Arrival, Service

log = logging.getLogger("hookd.api")

RouteHandler = Callable[["Api", Request, dict[str, str]], Awaitable[Response]]


class Api:
    """Routes requests to handlers; one per daemon."""

    def __init__(
        self,
        service: Service,
        api_token: str = "",
        *,
        openapi: bytes,
        reload: Callable[[], Awaitable[views.Reloaded]],
    ) -> None:
        """`reload` reads the config file again and applies it (the daemon's)."""
        self.service = service
        self._token = api_token
        self._reload = reload
        self.configure(openapi=openapi)

    def configure(self, *, openapi: bytes) -> None:
        """Take the OpenAPI document (at start, and again at a reload: the catalog may have
        changed)."""
        self._openapi = openapi

    def authenticate(self, request: Request) -> None:
        """Refuse (401) a TCP request without the token, when one is set; a request that
        had it marks its connection trusted."""
        if request.origin == "tcp" and self._token:
            if request.path != "/healthz":
                self._authorize(request)
                request.authenticated = True  # the connection is trusted from now on
        else:
            request.authenticated = True

    def _authorize(self, request: Request) -> None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), self._token.encode()
        ):
            raise ApiError(401, "unauthorized", "missing or wrong 'Authorization: Bearer' token")

    # -- events -------------------------------------------------------------------------

    async def ingest(self, request: Request, _: dict[str, str]) -> Response:
        _require_body(request, JSON_TYPES)
        now = self.service.clock.now()
        decoded = envelope.decode_event(request.body)
        [incoming], [extra] = decoded.requests, decoded.extras
        event = envelope.prepare(incoming, envelope.format_timestamp(now), extra=extra)
        found = self.service.catalog.check(incoming.event, incoming.data, None, incoming.timestamp)
        arrival = Arrival(
            event,
            _with_repairs(found, decoded.repaired),
            _idempotency_key(request),
            subjects=self.service.subject_hashes(incoming.event, incoming.data),
        )
        [result] = await self.service.ingest([arrival], now)
        return _accepted(result.accepted, replayed=result.replayed)

    async def ingest_batch(self, request: Request, _: dict[str, str]) -> Response:
        media = _require_body(request, JSON_TYPES | NDJSON_TYPES)
        now = self.service.clock.now()
        received = envelope.format_timestamp(now)
        decoded = envelope.decode_batch(request.body, ndjson=media in NDJSON_TYPES)
        key = _idempotency_key(request)
        check = self.service.catalog.check
        hashes = self.service.subject_hashes
        arrivals = []
        for index, (incoming, extra) in enumerate(
            zip(decoded.requests, decoded.extras, strict=True)
        ):
            event = envelope.prepare(incoming, received, index, extra)
            found = check(incoming.event, incoming.data, index, incoming.timestamp)
            repaired = decoded.repaired and REPLACEMENT in event.body
            who = hashes(incoming.event, incoming.data)
            arrivals.append(Arrival(event, _with_repairs(found, repaired), key, index, who))
        results = await self.service.ingest(arrivals, now)
        answer = views.BatchAccepted(
            [r.accepted.id for r in results],
            sum(len(r.created) for r in results),
            [views.BatchItem(r.accepted.id, r.replayed, len(r.created)) for r in results],
        )
        return json_response(202, answer)

    async def list_events(self, request: Request, _: dict[str, str]) -> Response:
        query = request.query
        event_type = query.get("type") or None
        if event_type is not None:
            envelope.check_event_name(event_type, "type")
        page = await self.service.list_events(
            _limit(query), _cursor(query), event_type, _since(query)
        )
        return json_response(200, page)

    async def get_event(self, _: Request, params: dict[str, str]) -> Response:
        return json_response(200, await self.service.get_event(params["id"]))

    # -- endpoints ----------------------------------------------------------------------

    async def create_endpoint(self, request: Request, _: dict[str, str]) -> Response:
        _require_body(request, JSON_TYPES)
        spec = _decode(request.body, EndpointCreate)
        fields = msgspec.structs.asdict(spec)
        if spec.secret is None:
            fields["secret"] = endpoint_rules.new_secret(ids.random_bytes(32))
        check_endpoint(fields)
        endpoint = await self.service.create_endpoint(fields, request.origin)
        return json_response(201, endpoint, [("Location", f"/v1/endpoints/{endpoint.id}")])

    async def list_endpoints(self, request: Request, _: dict[str, str]) -> Response:
        query = request.query
        page = await self.service.list_endpoints(_limit(query), _cursor(query))
        return json_response(200, page)

    async def get_endpoint(self, _: Request, params: dict[str, str]) -> Response:
        return json_response(200, await self.service.get_endpoint(params["id"]))

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
        check_endpoint(changes)
        endpoint = await self.service.update_endpoint(params["id"], changes, request.origin)
        return json_response(200, endpoint)

    async def delete_endpoint(self, request: Request, params: dict[str, str]) -> Response:
        await self.service.delete_endpoint(params["id"], request.origin)
        return Response(status=204)

    async def rotate_secret(self, request: Request, params: dict[str, str]) -> Response:
        rotation = SecretRotation()
        if request.body.strip():
            _require_body(request, JSON_TYPES)
            rotation = _decode(request.body, SecretRotation)
        secret = rotation.secret
        if secret is None:
            secret = endpoint_rules.new_secret(ids.random_bytes(32))
        check_endpoint({"secret": secret})
        overlap = self.service.secret_overlap if rotation.overlap_s is None else rotation.overlap_s
        activate_at = rotation.activate_at
        endpoint = await self.service.rotate_secret(
            params["id"],
            secret,
            overlap,
            request.origin,
            activate_at=None if activate_at is None else _time(activate_at, "$.activate_at"),
        )
        return json_response(200, endpoint)

    async def send_test(self, _: Request, params: dict[str, str]) -> Response:
        result = await self.service.send_test(params["id"])
        return _accepted(result.accepted, replayed=False)

    async def replay_endpoint(self, request: Request, params: dict[str, str]) -> Response:
        replay = Replay()
        if request.body.strip():
            _require_body(request, JSON_TYPES)
            replay = _decode(request.body, Replay)
        since = _time(replay.since, "$.since") if replay.since is not None else 0.0
        count = await self.service.replay(params["id"], replay.status, since)
        return json_response(202, views.Replayed(count))

    # -- deliveries ---------------------------------------------------------------------

    async def list_deliveries(self, request: Request, _: dict[str, str]) -> Response:
        query = request.query
        filters = {name: query[name] for name in ("status", "endpoint", "event") if query.get(name)}
        if filters.get("status", "pending") not in DELIVERY_STATUSES:
            raise bad_request(
                f"status must be one of {', '.join(sorted(DELIVERY_STATUSES))}, "
                f"got {filters['status'][:40]!r}"
            )
        page = await self.service.list_deliveries(_limit(query), _cursor(query), filters)
        return json_response(200, page)

    async def get_delivery(self, _: Request, params: dict[str, str]) -> Response:
        return json_response(200, await self.service.get_delivery(_delivery_id(params)))

    async def retry_delivery(self, _: Request, params: dict[str, str]) -> Response:
        return json_response(202, await self.service.retry_delivery(_delivery_id(params)))

    # -- statistics ---------------------------------------------------------------------

    async def stats(self, _: Request, __: dict[str, str]) -> Response:
        return json_response(200, await self.service.stats())

    async def endpoint_stats(self, _: Request, params: dict[str, str]) -> Response:
        return json_response(200, await self.service.endpoint_stats(params["id"]))

    # -- audit --------------------------------------------------------------------------

    async def list_audit(self, request: Request, _: dict[str, str]) -> Response:
        query = request.query
        filters: dict[str, Any] = {}
        if query.get("endpoint"):
            filters["endpoint"] = query["endpoint"]
        since = _since(query)
        if since is not None:
            filters["since"] = since
        page = await self.service.list_audit(_limit(query), _cursor(query), filters)
        return json_response(200, page)

    # -- data subjects ------------------------------------------------------------------

    async def subject_events(self, request: Request, _: dict[str, str]) -> Response:
        query = request.query
        chosen = _selectors({k: v for k, v in query.items() if k in SUBJECT_SELECTORS})
        page = await self.service.subject_events(chosen, _limit(query), _cursor(query))
        return json_response(200, page)

    async def erase_subject(self, request: Request, _: dict[str, str]) -> Response:
        _require_body(request, JSON_TYPES)
        body = _decode(request.body, SubjectSelectors)
        given = {k: v for k in SUBJECT_SELECTORS if (v := getattr(body, k)) is not msgspec.UNSET}
        erased = await self.service.erase_subject(_selectors(given), request.origin)
        return json_response(200, erased)

    # -- health -------------------------------------------------------------------------

    async def health(self, _: Request, __: dict[str, str]) -> Response:
        return json_response(200, views.Health("ok", __version__))

    async def status(self, _: Request, __: dict[str, str]) -> Response:
        return json_response(200, await self.service.status())

    async def reload_config(self, _: Request, __: dict[str, str]) -> Response:
        outcome = await self._reload()
        if not outcome.applied:
            raise ApiError(409, "not_reloaded", f"configuration not reloaded: {outcome.error}")
        return json_response(200, outcome)

    async def metrics_text(self, _: Request, __: dict[str, str]) -> Response:
        body = await self.service.metrics_text()
        return Response(status=200, body=body, content_type=METRICS_TYPE)

    # -- the catalog and the contract ---------------------------------------------------

    async def event_types(self, _: Request, __: dict[str, str]) -> Response:
        kinds = self.service.event_types()
        return json_response(200, views.EventTypes(self.service.catalog.mode, kinds))

    async def event_type(self, _: Request, params: dict[str, str]) -> Response:
        return json_response(200, self.service.event_type(params["name"]))

    async def openapi(self, _: Request, __: dict[str, str]) -> Response:
        return Response(status=200, body=self._openapi)


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


def check_endpoint(fields: dict[str, Any]) -> None:
    """Refuse (422, naming the field) an endpoint's url, events, secret or description."""
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


def _selectors(given: dict[str, str]) -> list[subjects.Selector]:
    try:
        return subjects.selectors(given)
    except ValueError as exc:
        raise bad_request(str(exc), "invalid_selector") from None


def _delivery_id(params: dict[str, str]) -> int:
    text = params["id"]
    if not _is_number(text, 18):
        raise ApiError(404, "not_found", f"delivery {text[:40]!r} not found")
    return int(text)


def _is_number(text: str, max_digits: int) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= max_digits
