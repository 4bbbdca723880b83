"""A small HTTP/1.1 server on trio, for the API's Unix socket and TCP listener.

Rules:
- One task per connection, keep-alive, requests answered in order. Requests are framed
  by `protocol.http1.RequestReader`, hookd's own codec: measured here, h11's general
  state machine cost more than all of hookd's own work per ingested event
  (docs/ARCHITECTURE.md).
- Limits are the server's own, enforced by the reader: a request head over
  `max_head_bytes` is a 431, a body over `max_body_bytes` a 413 answered before the rest
  is read (and the connection closed), `Expect: 100-continue` is honoured only for
  bodies within the limit.
- Time limits: a connection with no request in progress is closed after `idle_timeout`;
  once a request starts it must arrive whole within `request_timeout`, else the
  connection is closed. A silent or slow client holds only its own task. A TCP
  connection waits at most `unauthenticated_timeout` for each request until one of its
  requests is marked `authenticated` by the handler (the right token).
- Connection limits are per origin (`max_connections` for the Unix socket,
  `max_tcp_connections` for TCP): one side's clients never take the other's slots. A
  connection beyond its limit is answered 503 (if it is still there) and closed.
- `accept` failing (out of descriptors: EMFILE, ENFILE) backs off, from
  ACCEPT_BACKOFF up to ACCEPT_BACKOFF_MAX, and is logged once per ACCEPT_LOG_PERIOD
  with how many failures the line stands for, never once per retry.
- The handler gets a whole `Request` and returns a `Response`. An `ApiError` it raises
  becomes its JSON error; anything else is a bug: logged, answered with a 500.
- Nothing a client sends can raise out of a connection's task: an unexpected exception
  anywhere in it is logged with its traceback at ERROR and closes that connection alone.
- `drain()` makes every connection finish the request it is serving, answer it with
  `Connection: close`, and close; idle connections close at once, and so do streams.
- A `Response` with a `stream` (the console's Server-Sent Events) sends its head, then
  whatever the stream sends until it returns, then closes the connection: the body is
  delimited by the close. Each send has `request_timeout`; a stream holds its
  connection's slot like any request, until the client closes its side.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import msgspec
import trio

from hookd.api.errors import ApiError, ErrorBody, ErrorDetail
from hookd.protocol import http1

log = logging.getLogger("hookd.http")

_json = msgspec.json.Encoder()

ACCEPT_BACKOFF = 0.1  # seconds before accepting again after a failure; doubles
ACCEPT_BACKOFF_MAX = 2.0
ACCEPT_LOG_PERIOD = 60.0  # seconds between two lines about failing accepts


class Request(msgspec.Struct, kw_only=True):
    method: str
    target: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes
    origin: str  # "socket" or "tcp"
    authenticated: bool = False  # set by the handler once it checked the token


Send = Callable[[bytes], Awaitable[None]]


class Response(msgspec.Struct, kw_only=True):
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = msgspec.field(default_factory=list)
    # A body sent piece by piece until the function returns (or the server drains).
    stream: Callable[[Send], Awaitable[None]] | None = None


def json_response(
    status: int, value: Any, headers: list[tuple[str, str]] | None = None
) -> Response:
    """A JSON response with `value` encoded by msgspec."""
    return Response(status=status, body=_json.encode(value), headers=headers or [])


def error_response(error: ApiError) -> Response:
    """The JSON body of an API error."""
    body = ErrorBody(ErrorDetail(error.code, error.message))
    headers = [("Allow", error.allow)] if error.allow else []
    return json_response(error.status, body, headers)


Handler = Callable[[Request], Awaitable[Response]]


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    max_body_bytes: int = 1_048_576
    max_head_bytes: int = 16_384
    request_timeout: float = 10.0
    idle_timeout: float = 60.0
    unauthenticated_timeout: float = 5.0
    max_connections: int = 1024
    max_tcp_connections: int = 256


class _Closed(Exception):
    """The peer went away, or a time limit ran out: drop the connection."""


class Server:
    """Serves `handler` on any number of listeners."""

    def __init__(self, handler: Handler, limits: Limits, server_name: str) -> None:
        self._handler = handler
        self._limits = limits
        self._name = server_name
        self._draining = False
        self._idle: set[trio.CancelScope] = set()  # idle connections and streams
        self._slots = {
            "socket": trio.CapacityLimiter(limits.max_connections),
            "tcp": trio.CapacityLimiter(limits.max_tcp_connections),
        }
        self._closed = trio.Event()
        self._accept_failures = 0  # since the last line about them
        self._accept_logged = -math.inf  # when that line was written
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
        backoff = ACCEPT_BACKOFF
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:  # EMFILE and friends: wait, don't spin
                self._accept_failed(exc, origin)
                await trio.sleep(backoff)
                backoff = min(2 * backoff, ACCEPT_BACKOFF_MAX)
                continue
            backoff = ACCEPT_BACKOFF
            connections.start_soon(self._serve_stream, stream, origin)

    def _accept_failed(self, exc: OSError, origin: str) -> None:
        self._accept_failures += 1
        now = trio.current_time()
        if now - self._accept_logged >= ACCEPT_LOG_PERIOD:
            log.warning(
                "action=accept.failed origin=%s error=%r failures=%d next_line_in=%.0fs",
                origin,
                exc.strerror or str(exc),
                self._accept_failures,
                ACCEPT_LOG_PERIOD,
            )
            self._accept_logged, self._accept_failures = now, 0

    async def _serve_stream(self, stream: trio.abc.Stream, origin: str) -> None:
        slots = self._slots[origin]
        async with stream:
            try:
                slots.acquire_nowait()
            except trio.WouldBlock:
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await stream.send_all(_overload_bytes())  # the client may be gone
                return
            self.connections += 1
            try:
                await self._serve(stream, origin)
            except (_Closed, trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            except Exception:
                log.exception("action=connection.crashed origin=%s", origin)
            finally:
                self.connections -= 1
                slots.release()
                if self._draining and not self.connections:
                    self._closed.set()

    async def _serve(self, stream: trio.abc.Stream, origin: str) -> None:
        limits = self._limits
        reader = http1.RequestReader(
            max_head_bytes=limits.max_head_bytes, max_body_bytes=limits.max_body_bytes
        )
        trusted = origin != "tcp"
        while not self._draining:
            idle = limits.idle_timeout if trusted else limits.unauthenticated_timeout
            try:
                message = await self._read_request(stream, reader, idle)
            except http1.ProtocolError as exc:
                code = _PROTOCOL_CODES.get(exc.status, "bad_request")
                error = ApiError(exc.status, code, str(exc))
                await self._respond(stream, error_response(error), close=True)
                return
            if message is None:
                return
            request = _request(message, origin)
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
            trusted = trusted or request.authenticated
            if response.stream is not None:
                await self._stream(stream, response)
                return
            close = self._draining or not message.head.keep_alive
            await self._respond(stream, response, close, send_body=request.method != "HEAD")
            if close:
                return

    async def _read_request(
        self, stream: trio.abc.Stream, reader: http1.RequestReader, idle_timeout: float
    ) -> http1.Request | None:
        """The next whole request; None when the client is gone or idle too long."""
        if reader.idle:
            # Nothing buffered: wait for the first byte of a request, at most idle_timeout.
            with trio.CancelScope(deadline=trio.current_time() + idle_timeout) as idle:
                self._idle.add(idle)
                try:
                    data = await stream.receive_some(65536)
                finally:
                    self._idle.discard(idle)
            if idle.cancelled_caught or not data:
                return None
            reader.feed(data)
        deadline = trio.current_time() + self._limits.request_timeout
        while (message := reader.next_event()) is http1.NEED_DATA:
            if reader.expects_continue:
                await stream.send_all(http1.CONTINUE)
            with trio.CancelScope(deadline=deadline):  # bare scopes: cheaper than move_on_*
                data = await stream.receive_some(65536)
                if not data:
                    raise _Closed()  # the client left mid-request
                reader.feed(data)
                continue
            raise _Closed()  # request_timeout ran out mid-request
        assert message is not http1.CLOSED  # the end of the stream is never fed here
        return message

    async def _stream(self, stream: trio.abc.Stream, response: Response) -> None:
        """Send `response`'s head, then its stream until it ends or the server drains."""
        timeout = self._limits.request_timeout

        async def send(data: bytes) -> None:
            with trio.CancelScope(deadline=trio.current_time() + timeout) as scope:
                await stream.send_all(data)
            if scope.cancelled_caught:
                raise _Closed()

        assert response.stream is not None
        headers = [("Server", self._name), ("Content-Type", response.content_type)]
        headers += [*response.headers, ("Connection", "close")]
        await send(http1.head_bytes(response.status, headers))
        with trio.CancelScope() as streaming:
            self._idle.add(streaming)
            try:
                if not self._draining:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(_until_closed, stream, streaming)
                        await response.stream(send)
                        nursery.cancel_scope.cancel()
            finally:
                self._idle.discard(streaming)

    async def _respond(
        self, stream: trio.abc.Stream, response: Response, close: bool, send_body: bool = True
    ) -> None:
        headers = [("Server", self._name)]
        if response.body:
            headers.append(("Content-Type", response.content_type))
        headers += response.headers
        if close:
            headers.append(("Connection", "close"))
        data = http1.response_bytes(response.status, headers, response.body, send_body=send_body)
        with trio.CancelScope(deadline=trio.current_time() + self._limits.request_timeout) as scope:
            await stream.send_all(data)
        if scope.cancelled_caught:
            raise _Closed()


async def _until_closed(stream: trio.abc.Stream, scope: trio.CancelScope) -> None:
    """Cancel `scope` once the client closes its side (what it sends meanwhile is
    ignored): a stream's slot is freed when its reader leaves, not at its next send."""
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        while await stream.receive_some(4096):
            pass
    scope.cancel()


# The error codes of the refusals that are not plain malformations.
_PROTOCOL_CODES = {413: "body_too_large", 431: "headers_too_large"}


def _request(message: http1.Request, origin: str) -> Request:
    head = message.head
    path, _, query_string = head.target.partition("?")
    return Request(
        method=head.method,
        target=head.target,
        path=path,
        query=dict(parse_qsl(query_string, keep_blank_values=True)) if query_string else {},
        headers=head.headers,
        body=message.body,
        origin=origin,
    )


def _overload_bytes() -> bytes:
    body = b'{"error":{"code":"overloaded","message":"too many connections"}}'
    headers = [("Content-Type", "application/json"), ("Connection", "close")]
    return http1.response_bytes(503, headers, body)
