"""The web console: server-rendered pages under /ui/ on the TCP listener.

Rules (docs/ARCHITECTURE.md, "Layers"; the README's "Web console"):
- Reaches storage, the scheduler and the catalog only through `hookd.service`, as the
  API does; changes go through the same service operations as the API's (audited with
  origin `console`).
- Served on the TCP listener only, behind its Host check (`api.hosts`); on the Unix
  socket /ui/ is the API's 404.
- Signed out, only the sign-in page and the static files answer: a page redirects there
  (303), anything else is a 401. Signing in takes the API token (`ui.security`).
- Every POST needs the session's CSRF token (form field `csrf`) and, when the browser
  sends an `Origin` (not "null"), one of this very Host: a 403 page otherwise, before
  any change.
- HTML comes from Jinja2 templates with autoescaping on: what the CRM and receivers
  sent (names, bodies, excerpts, errors) is always text. No inline script or style:
  the Content-Security-Policy (`security.SECURITY_HEADERS`) forbids them.
- Bad input is a 4xx page naming the field; a domain refusal its API status; failing
  storage a 503 page.
- Words come from `ui.i18n` in the browser's language; forms and query strings are read
  by `ui.forms`.
- Over 400 lines: a handler per page and action, beside the one route table that lists
  them and says which answer signed out.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlencode, urlsplit

import jinja2
import trio
from markupsafe import Markup

from hookd.api.errors import ApiError, from_refusal
from hookd.api.handlers import check_endpoint
from hookd.api.server import Handler, Request, Response
from hookd.db.errors import StorageError
from hookd.domain import endpoints as endpoint_rules
from hookd.domain import views
from hookd.domain.errors import Refused
from hookd.runtime import ids
from hookd.service import Service
from hookd.ui import charts, forms, i18n, live, security

log = logging.getLogger("hookd.ui")

HERE = Path(__file__).parent
ORIGIN = "console"  # who made a change, in the audit log
PAGE = 50  # rows per list page
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
FILTERS = ("status", "endpoint", "type", "since", "until")  # of the deliveries page
ALERT_TYPES = ("hookd.entrega.falhou", "hookd.endpoint.desativado")
_ID = r"(?P<id>[^/]+)"

PageHandler = Callable[["Console", Request, "Context", dict[str, str]], Awaitable[Response]]


class Context(NamedTuple):
    """What every page of one request knows: the words, the session and its CSRF token."""

    language: str
    word: Callable[[str], str]
    session: str  # the session's nonce; '' when signed out
    csrf: str
    secure: bool  # the request came over TLS (through a reverse proxy)


class Console:
    """The console of one daemon."""

    def __init__(self, service: Service, api_token: str) -> None:
        self.service = service
        self.sessions = security.Sessions(api_token)
        self._templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._static = {
            path.name: path.read_bytes()
            for path in (HERE / "static").iterdir()
            if path.suffix in STATIC_TYPES
        }

    def front(self, api: Handler) -> Handler:
        """`api`, with /ui/ on the TCP listener answered by the console."""

        async def handle(request: Request) -> Response:
            if request.origin == "tcp" and (request.path == "/ui" or request.path[:4] == "/ui/"):
                return await self.handle(request)
            return await api(request)

        return handle

    async def handle(self, request: Request) -> Response:
        """Answer one request under /ui/."""
        language = security.language(request.headers.get("accept-language", ""))
        now = self.service.clock.now()
        cookie = security.cookie_value(request.headers.get("cookie", ""))
        session = self.sessions.check(cookie, now) if cookie else None
        context = Context(
            language,
            i18n.words(language),
            session or "",
            self.sessions.csrf(session) if session else "",
            request.headers.get("x-forwarded-proto", "").lower() == "https",
        )
        try:
            handler, params, public = _route(request.method, request.path)
            if session:
                request.authenticated = True  # the connection is trusted from now on
            elif not public:
                if request.method == "GET":
                    return self._redirect("/ui/signin")
                raise ApiError(401, "signed_out", "sign in first: /ui/signin")
            if request.method == "POST" and handler is not Console.sign_in:
                self._check_post(request, context)
            return await handler(self, request, context, params)
        except Refused as exc:
            return self._error(context, from_refusal(exc))
        except ApiError as exc:
            return self._error(context, exc)
        except StorageError as exc:
            log.error("action=storage.failed path=%s error=%s", request.path, exc)
            return self._error(context, ApiError(503, "storage_unavailable", str(exc)))

    # -- signing in ---------------------------------------------------------------------

    async def sign_in_page(self, _: Request, context: Context, __: dict[str, str]) -> Response:
        return self._page(context, "signin.html", wrong=False)

    async def sign_in(self, request: Request, context: Context, _: dict[str, str]) -> Response:
        form = forms.form(request)
        self._check_origin(request)
        if not self.sessions.token_ok(form.get("token", "")):
            return self._page(context, "signin.html", status=401, wrong=True)
        value = self.sessions.new(self.service.clock.now(), ids.random_bytes(16))
        request.authenticated = True
        cookie = security.session_cookie(value, context.secure)
        return self._redirect("/ui/", [("Set-Cookie", cookie)])

    async def sign_out(self, _: Request, context: Context, __: dict[str, str]) -> Response:
        cookie = security.session_cookie("", context.secure, max_age=0)
        return self._redirect("/ui/signin", [("Set-Cookie", cookie)])

    async def static(self, _: Request, __: Context, params: dict[str, str]) -> Response:
        name = params["name"]
        body = self._static.get(name)
        if body is None:
            raise ApiError(404, "not_found", f"no static file {name[:80]!r}")
        headers = [*security.SECURITY_HEADERS[:-1], ("Cache-Control", "max-age=3600")]
        return Response(
            status=200, body=body, content_type=STATIC_TYPES[Path(name).suffix], headers=headers
        )

    # -- overview -----------------------------------------------------------------------

    async def overview(self, _: Request, context: Context, __: dict[str, str]) -> Response:
        now = self.service.clock.now()
        found: dict[str, Any] = {}

        async def read(name: str, reading: Awaitable[Any]) -> None:
            found[name] = await reading

        async with trio.open_nursery() as nursery:  # the reads run on several readers
            nursery.start_soon(read, "stats", self.service.stats())
            nursery.start_soon(read, "series", self.service.minute_series(now))
            for kind in ALERT_TYPES:
                nursery.start_soon(read, kind, self.service.list_events(10, None, kind, None))
        series = charts.series(found["series"], now)
        alerts = [event for kind in ALERT_TYPES for event in found[kind].items]
        alerts.sort(key=lambda event: event.received_at or "", reverse=True)
        word = context.word
        return self._page(
            context,
            "overview.html",
            stats=found["stats"],
            attempts_chart=Markup(charts.bars(series.attempts, word("attempts_per_minute"))),
            latency_chart=Markup(charts.line(series.latency_p95, word("latency_per_minute"))),
            alerts=[(event, forms.pretty(event.data)) for event in alerts[:10]],
        )

    # -- deliveries ---------------------------------------------------------------------

    async def deliveries(self, request: Request, context: Context, _: dict[str, str]) -> Response:
        query = request.query
        filters = forms.delivery_filters(query)
        cursor = forms.number(query.get("cursor", ""), "cursor")
        page = await self.service.list_deliveries(PAGE, cursor, filters)
        shown = {name: query.get(name, "") for name in FILTERS}
        older = None
        if page.next_cursor is not None:
            older = "?" + urlencode(
                {**{k: v for k, v in shown.items() if v}, "cursor": page.next_cursor}
            )
        live_query = urlencode(
            {
                **{k: v for k, v in shown.items() if v and k in ("status", "endpoint", "type")},
                "after": "" if cursor else str(page.items[0].id if page.items else 0),
            }
        )
        return self._page(
            context,
            "deliveries.html",
            page=page,
            filters=shown,
            statuses=views.DELIVERY_STATUSES,
            older=older,
            first_page=cursor is None,
            live_query=live_query,
        )

    async def delivery(self, _: Request, context: Context, params: dict[str, str]) -> Response:
        delivery = await self.service.get_delivery(forms.delivery_id(params))
        event = await self.service.get_event(delivery.event_id)
        headers = await self.service.delivery_headers(delivery)
        data = json.loads(bytes(event.data))
        envelope = {"event": event.event, "timestamp": event.timestamp, "data": data}
        body = forms.json_text(envelope)
        return self._page(
            context, "delivery.html", delivery=delivery, event=event, body=body, headers=headers
        )

    async def retry(self, _: Request, __: Context, params: dict[str, str]) -> Response:
        delivery = await self.service.retry_delivery(forms.delivery_id(params))
        return self._redirect(f"/ui/deliveries/{delivery.id}")

    async def live(self, request: Request, context: Context, _: dict[str, str]) -> Response:
        query = request.query
        watch = live.Watch.from_query(query, forms.delivery_filters(query))
        return live.response(self.service, watch, context.word, security.SECURITY_HEADERS)

    # -- endpoints ----------------------------------------------------------------------

    async def endpoints(self, request: Request, context: Context, _: dict[str, str]) -> Response:
        cursor = forms.number(request.query.get("cursor", ""), "cursor")
        page = await self.service.list_endpoints(PAGE, cursor)
        return self._page(context, "endpoints.html", page=page, created=None)

    async def create_endpoint(
        self, request: Request, context: Context, _: dict[str, str]
    ) -> Response:
        form = forms.form(request)
        fields = {
            "url": form.get("url", "").strip(),
            "events": forms.event_list(form.get("events", "")),
            "description": form.get("description", ""),
            "enabled": True,
            "secret": endpoint_rules.new_secret(ids.random_bytes(32)),
        }
        check_endpoint(fields)
        created = await self.service.create_endpoint(fields, ORIGIN)
        page = await self.service.list_endpoints(PAGE, None)
        return self._page(context, "endpoints.html", status=201, page=page, created=created)

    async def endpoint(self, _: Request, context: Context, params: dict[str, str]) -> Response:
        return await self._endpoint_page(context, params["id"])

    async def endpoint_action(
        self, request: Request, context: Context, params: dict[str, str]
    ) -> Response:
        form = forms.form(request)
        endpoint_id, action = params["id"], params["action"]
        note = context.word("saved")
        changes: dict[str, Any]
        if action == "update":
            changes = {
                "events": forms.event_list(form.get("events", "")),
                "description": form.get("description", ""),
            }
            check_endpoint(changes)
            await self.service.update_endpoint(endpoint_id, changes, ORIGIN)
        elif action in ("enable", "disable"):
            changes = {"enabled": action == "enable"}
            await self.service.update_endpoint(endpoint_id, changes, ORIGIN)
        elif action == "rotate":
            overlap = forms.duration(form.get("overlap", ""), self.service.secret_overlap)
            secret = endpoint_rules.new_secret(ids.random_bytes(32))
            rotated = await self.service.rotate_secret(endpoint_id, secret, overlap, ORIGIN)
            return await self._endpoint_page(context, endpoint_id, secret=rotated.secret)
        elif action == "test":
            result = await self.service.send_test(endpoint_id)
            note = f"{context.word('test_sent')}: {result.accepted.id}"
        elif action == "replay":
            status = form.get("status", "failed")
            if status not in views.REPLAYABLE_STATUSES:
                choices = ", ".join(views.REPLAYABLE_STATUSES)
                raise ApiError(400, "bad_request", f"status must be one of {choices}")
            since = forms.form_time(form.get("since", ""), "since") or 0.0
            count = await self.service.replay(endpoint_id, status, since)
            note = f"{count} {context.word('replayed')}"
        else:
            raise ApiError(404, "not_found", f"no endpoint action {action[:40]!r}")
        return await self._endpoint_page(context, endpoint_id, note=note)

    async def _endpoint_page(
        self, context: Context, endpoint_id: str, *, note: str = "", secret: Any = None
    ) -> Response:
        endpoint = await self.service.get_endpoint(endpoint_id)
        stats = await self.service.endpoint_stats(endpoint_id)
        return self._page(
            context,
            "endpoint.html",
            endpoint=endpoint,
            stats=stats,
            note=note,
            secret=secret if isinstance(secret, str) else None,
            statuses=views.REPLAYABLE_STATUSES,
        )

    # -- events, catalog, audit ---------------------------------------------------------

    async def events(self, request: Request, context: Context, _: dict[str, str]) -> Response:
        query = request.query
        kind = query.get("type", "").strip() or None
        cursor = forms.number(query.get("cursor", ""), "cursor")
        page = await self.service.list_events(
            PAGE, cursor, kind, forms.form_time(query.get("since", ""), "since")
        )
        older = None
        if page.next_cursor is not None:
            kept = {k: query[k] for k in ("type", "since") if query.get(k)}
            older = "?" + urlencode({**kept, "cursor": page.next_cursor})
        return self._page(
            context,
            "events.html",
            page=page,
            kind=kind or "",
            since=query.get("since", ""),
            older=older,
            data={event.id: forms.pretty(event.data) for event in page.items},
        )

    async def event(self, _: Request, context: Context, params: dict[str, str]) -> Response:
        event = await self.service.get_event(params["id"])
        return self._page(context, "event.html", event=event, data=forms.pretty(event.data))

    async def catalog(self, _: Request, context: Context, __: dict[str, str]) -> Response:
        return self._catalog_page(context)

    async def send_example(self, _: Request, context: Context, params: dict[str, str]) -> Response:
        result = await self.service.send_example(params["name"])
        return self._catalog_page(context, 202, result.accepted)

    def _catalog_page(
        self, context: Context, status: int = 200, sent: views.Accepted | None = None
    ) -> Response:
        kinds = self.service.event_types()
        return self._page(
            context,
            "catalog.html",
            status=status,
            kinds=kinds,
            examples={kind.name: forms.json_text(kind.example) for kind in kinds},
            schemas={kind.name: forms.json_text(kind.schema) for kind in kinds},
            sent=sent,
        )

    async def audit(self, request: Request, context: Context, _: dict[str, str]) -> Response:
        query = request.query
        cursor = forms.number(query.get("cursor", ""), "cursor")
        filters = {"endpoint": query["endpoint"]} if query.get("endpoint") else {}
        page = await self.service.list_audit(PAGE, cursor, filters)
        older = None
        if page.next_cursor is not None:
            older = "?" + urlencode({**filters, "cursor": page.next_cursor})
        return self._page(
            context, "audit.html", page=page, endpoint=query.get("endpoint", ""), older=older
        )

    # -- answers ------------------------------------------------------------------------

    def _check_post(self, request: Request, context: Context) -> None:
        """Refuse (403) a POST without the session's CSRF token or from another origin."""
        self._check_origin(request)
        form = forms.form(request)
        if not self.sessions.csrf_ok(context.session, form.get("csrf", "")):
            raise ApiError(
                403, "csrf", "the form's CSRF token is missing or wrong: reload the page"
            )

    def _check_origin(self, request: Request) -> None:
        # "null" is what Chromium sends under Referrer-Policy no-referrer: the CSRF token
        # is the check then.
        origin = request.headers.get("origin", "null")
        if origin != "null" and urlsplit(origin).netloc.lower() != (
            request.headers.get("host", "").lower()
        ):
            raise ApiError(403, "cross_origin", f"a form posted from {origin[:100]!r} is refused")

    def _page(self, context: Context, name: str, status: int = 200, **values: Any) -> Response:
        template = self._templates.get_template(name)
        html = template.render(
            t=context.word,
            language=context.language,
            csrf=context.csrf,
            signed_in=bool(context.session),
            page_name=name.removesuffix(".html"),
            **values,
        )
        return Response(
            status=status,
            body=html.encode(),
            content_type="text/html; charset=utf-8",
            headers=list(security.SECURITY_HEADERS),
        )

    def _error(self, context: Context, error: ApiError) -> Response:
        response = self._page(
            context, "error.html", status=error.status, code=error.code, message=error.message
        )
        if error.allow:
            response.headers.append(("Allow", error.allow))
        return response

    def _redirect(self, location: str, headers: list[tuple[str, str]] | None = None) -> Response:
        return Response(
            status=303,
            headers=[*security.SECURITY_HEADERS, ("Location", location), *(headers or [])],
        )


# -- the route table ---------------------------------------------------------------------


class UiRoute(NamedTuple):
    method: str
    pattern: re.Pattern[str]
    handler: PageHandler
    public: bool  # answered signed out


def _r(method: str, path: str, handler: PageHandler, public: bool = False) -> UiRoute:
    return UiRoute(method, re.compile(path), handler, public)


UI_ROUTES = [
    _r("GET", "/ui/signin", Console.sign_in_page, public=True),
    _r("POST", "/ui/signin", Console.sign_in, public=True),
    _r("GET", r"/ui/static/(?P<name>[\w.-]+)", Console.static, public=True),
    _r("POST", "/ui/signout", Console.sign_out),
    _r("GET", "/ui/?", Console.overview),
    _r("GET", "/ui/deliveries", Console.deliveries),
    _r("GET", f"/ui/deliveries/{_ID}", Console.delivery),
    _r("POST", f"/ui/deliveries/{_ID}/retry", Console.retry),
    _r("GET", "/ui/live", Console.live),
    _r("GET", "/ui/endpoints", Console.endpoints),
    _r("POST", "/ui/endpoints", Console.create_endpoint),
    _r("GET", f"/ui/endpoints/{_ID}", Console.endpoint),
    _r("POST", f"/ui/endpoints/{_ID}/(?P<action>[a-z]+)", Console.endpoint_action),
    _r("GET", "/ui/events", Console.events),
    _r("GET", f"/ui/events/{_ID}", Console.event),
    _r("GET", "/ui/catalog", Console.catalog),
    _r("POST", r"/ui/catalog/(?P<name>[^/]+)/send", Console.send_example),
    _r("GET", "/ui/audit", Console.audit),
]


def _route(method: str, path: str) -> tuple[PageHandler, dict[str, str], bool]:
    allowed = []
    for route in UI_ROUTES:
        match = route.pattern.fullmatch(path)
        if match is None:
            continue
        if route.method == method:
            return route.handler, match.groupdict(), route.public
        allowed.append(route.method)
    if allowed:
        allow = ", ".join(sorted(set(allowed)))
        raise ApiError(
            405, "method_not_allowed", f"{method} is not allowed here; use {allow}", allow
        )
    raise ApiError(404, "not_found", f"no console page {path[:200]!r}")
