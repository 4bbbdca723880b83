"""A small HTTP/1.1 server on h11 and trio, for the API's Unix socket and TCP listener.

Rules:
- One task per connection, keep-alive, one request at a time (no pipelining needed).
- Limits are the server's own: a request head over `max_head_bytes` is a 431, a body
  over `max_body_bytes` a 413 answered before the rest is read (and the connection
  closed), `Expect: 100-continue` is honoured only for bodies within the limit.
- Time limits: a connection with no request in progress is closed after `idle_timeout`;
  once a request starts it must arrive whole within `request_timeout`, else the
  connection is closed. A silent or slow client holds only its own task.
- The handler gets a whole `Request` and returns a `Response`. An `ApiError` it raises
  becomes its JSON error; anything else is a bug: logged, answered with a 500.
- `drain()` makes every connection finish the request it is serving, answer it with
  `Connection: close`, and close; idle connections close at once.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import h11
import msgspec
import trio

from hookd.errors import ApiError

log = logging.getLogger("hookd.http")

_json = msgspec.json.Encoder()


class Request(msgspec.Struct, kw_only=True):
    method: str
    target: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes
    origin: str  # "socket" or "tcp"


class Response(msgspec.Struct, kw_only=True):
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = msgspec.field(default_factory=list)


def json_response(
    status: int, value: Any, headers: list[tuple[str, str]] | None = None
) -> Response:
    """A JSON response with `value` encoded by msgspec."""
    return Response(status=status, body=_json.encode(value), headers=headers or [])


def error_response(error: ApiError) -> Response:
    """The JSON body of an API error."""
    body = {"error": {"code": error.code, "message": error.message}}
    headers = [("Allow", error.allow)] if error.allow else []
    return json_response(error.status, body, headers)


Handler = Callable[[Request], Awaitable[Response]]


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    max_body_bytes: int = 1_048_576
    max_head_bytes: int = 16_384
    request_timeout: float = 10.0
    idle_timeout: float = 60.0
    max_connections: int = 1024


class _Closed(Exception):
    """The peer went away, or a time limit ran out: drop the connection."""


class Server:
    """Serves `handler` on any number of listeners."""

    def __init__(self, handler: Handler, limits: Limits, server_name: str) -> None:
        self._handler = handler
        self._limits = limits
        self._name = server_name.encode()
        self._draining = False
        self._idle: set[trio.CancelScope] = set()
        self._slots = trio.CapacityLimiter(limits.max_connections)
        self._closed = trio.Event()
        self.connections = 0

    def drain(self) -> None:
        """Stop serving new requests; close idle connections now, busy ones after."""
        self._draining = True
        for scope in list(self._idle):
            scope.cancel()
        if not self.connections:
            self._closed.set()

    async def wait_closed(self) -> None:
        """Return once `drain()` was called and every connection has closed."""
        await self._closed.wait()

    async def serve(
        self,
        listener: trio.abc.Listener[Any],
        origin: str,
        connections: trio.Nursery,
    ) -> None:
        """Accept connections on `listener` until cancelled; serve each in `connections`."""
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:  # EMFILE and friends: wait, don't spin
                log.warning("action=accept.failed error=%r", exc)
                await trio.sleep(0.1)
                continue
            connections.start_soon(self._serve_stream, stream, origin)

    async def _serve_stream(self, stream: trio.abc.Stream, origin: str) -> None:
        async with stream:
            try:
                self._slots.acquire_nowait()
            except trio.WouldBlock:
                await stream.send_all(_overload_bytes())
                return
            self.connections += 1
            try:
                await self._serve(stream, origin)
            except (_Closed, trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            finally:
                self.connections -= 1
                self._slots.release()
                if self._draining and not self.connections:
                    self._closed.set()

    async def _serve(self, stream: trio.abc.Stream, origin: str) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self._limits.max_head_bytes)
        while not self._draining:
            try:
                request = await self._read_request(stream, conn, origin)
            except h11.RemoteProtocolError as exc:
                await self._refuse(stream, conn, exc.error_status_hint, "bad_request", str(exc))
                return
            except ApiError as exc:  # head or body too large
                await self._respond(stream, conn, error_response(exc), close=True)
                return
            if request is None:
                return
            try:
                response = await self._handler(request)
            except ApiError as exc:
                response = error_response(exc)
            except Exception:
                log.exception(
                    "action=request.crashed method=%s path=%s", request.method, request.path
                )
                response = json_response(
                    500, {"error": {"code": "internal", "message": "internal error; see the log"}}
                )
            await self._respond(stream, conn, response, close=self._draining)
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()

    async def _read_request(
        self, stream: trio.abc.Stream, conn: h11.Connection, origin: str
    ) -> Request | None:
        limits = self._limits
        if not conn.trailing_data[0]:
            # Nothing buffered: wait for the first byte of a request, at most idle_timeout.
            with trio.CancelScope(deadline=trio.current_time() + limits.idle_timeout) as idle:
                self._idle.add(idle)
                try:
                    data = bytes(await stream.receive_some(65536))
                finally:
                    self._idle.discard(idle)
            if idle.cancelled_caught or not data:
                return None
            conn.receive_data(data)
        deadline = trio.current_time() + limits.request_timeout
        head: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                if head is not None and conn.they_are_waiting_for_100_continue:
                    go_on = h11.InformationalResponse(status_code=100, headers=[])
                    await stream.send_all(conn.send(go_on))
                with trio.move_on_at(deadline):
                    data = bytes(await stream.receive_some(65536))
                    conn.receive_data(data)
                    if not data and head is None:
                        return None
                    continue
                raise _Closed()  # request_timeout ran out mid-request
            if isinstance(event, h11.Request):
                head = event
                if _head_size(event) > limits.max_head_bytes:
                    raise ApiError(431, "headers_too_large", "the request head is too large")
                length = _content_length(event)
                if length is not None and length > limits.max_body_bytes:
                    raise _too_large(limits.max_body_bytes)
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > limits.max_body_bytes:
                    raise _too_large(limits.max_body_bytes)
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                return _request(head, bytes(body), origin)
            elif isinstance(event, h11.ConnectionClosed):
                return None

    async def _respond(
        self, stream: trio.abc.Stream, conn: h11.Connection, response: Response, close: bool
    ) -> None:
        headers = [
            (b"Server", self._name),
            (b"Content-Length", str(len(response.body)).encode()),
        ]
        if response.body:
            headers.append((b"Content-Type", response.content_type.encode()))
        headers += [(n.encode(), v.encode()) for n, v in response.headers]
        if close:
            headers.append((b"Connection", b"close"))
        data = conn.send(h11.Response(status_code=response.status, headers=headers))
        data += conn.send(h11.Data(data=response.body)) if response.body else b""
        data += conn.send(h11.EndOfMessage())
        with trio.move_on_after(self._limits.request_timeout) as scope:
            await stream.send_all(data)
        if scope.cancelled_caught:
            raise _Closed()

    async def _refuse(
        self, stream: trio.abc.Stream, conn: h11.Connection, status: int, code: str, message: str
    ) -> None:
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        with contextlib.suppress(h11.LocalProtocolError):
            await self._respond(stream, conn, error_response(ApiError(status, code, message)), True)


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "body_too_large", f"request body is larger than {limit} bytes")


def _head_size(head: h11.Request) -> int:
    """Bytes of the request head as sent (h11 checks this only while it is incomplete)."""
    return len(head.target) + 16 + sum(len(n) + len(v) + 4 for n, v in head.headers)


def _content_length(head: h11.Request) -> int | None:
    for name, value in head.headers:
        if name == b"content-length":
            return int(value)
    return None


def _request(head: h11.Request, body: bytes, origin: str) -> Request:
    target = head.target.decode("ascii", "replace")
    path, _, query_string = target.partition("?")
    headers: dict[str, str] = {}
    for name, value in head.headers:
        key = name.decode("ascii", "replace")
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return Request(
        method=head.method.decode("ascii", "replace"),
        target=target,
        path=path,
        query=_parse_query(query_string),
        headers=headers,
        body=body,
        origin=origin,
    )


def _parse_query(query: str) -> dict[str, str]:
    return dict(parse_qsl(query, keep_blank_values=True))


def _overload_bytes() -> bytes:
    body = b'{"error":{"code":"overloaded","message":"too many connections"}}'
    return (
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
