"""hookd.api.server's server against a real daemon, spoken to byte by byte over its Unix socket.

Every read has a deadline, so a server that stays silent fails the test instead of
hanging it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import trio

from hookd.api.server import Limits, Request, Response, Server, json_response
from hookd.protocol.http1 import NEED_DATA, ResponseReader
from tests.conftest import Running

READ_LIMIT = 3.0  # seconds any awaited answer may take
EVENT = json.dumps({"event": "cliente.criado", "data": {"nome": "João", "n": 7}}).encode()


def request(
    method: str,
    target: str,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    version: str = "HTTP/1.1",
) -> bytes:
    """A raw request; `headers` are sent as given, after `Host`."""
    lines = [f"{method} {target} {version}", "Host: hookd"]
    lines += [f"{name}: {value}" for name, value in headers or []]
    return "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body


def post_event(body: bytes = EVENT, extra: list[tuple[str, str]] | None = None) -> bytes:
    """POST /v1/events framed by Content-Length."""
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    return request("POST", "/v1/events", headers + (extra or []), body)


def get_healthz() -> bytes:
    return request("GET", "/healthz")


def chunked(body: bytes, size: int) -> bytes:
    """`body` in chunks of `size` bytes, with an extension and a trailer thrown in."""
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    framed = b"".join(b"%X;n=%d\r\n%s\r\n" % (len(p), i, p) for i, p in enumerate(pieces))
    return framed + b"0\r\nX-Trailer: ignored\r\n\r\n"


@dataclass
class Reply:
    status: int
    reason: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Connection:
    """A raw client connection that reads responses one at a time (framed by hookd's
    codec, whose readers are checked against h11 in tests/unit/test_http1_codec.py)."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.reader = ResponseReader(max_body_bytes=1 << 24)

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def reply(self, *, to_head: bool = False) -> Reply:
        """The next whole response, interim ones included; `to_head`: it answers a HEAD,
        so it has no body."""
        if to_head:
            self.reader.expect_no_body()
        while (response := self.reader.next_event()) is NEED_DATA:
            with trio.fail_after(READ_LIMIT):
                self.reader.feed(await self.stream.receive_some(65536))
        head = response.head
        assert response.complete, response
        assert head.http_version == "1.1", head
        assert head.reason, head
        names = [name for name, _ in head.headers]
        assert len(set(names)) == len(names), f"repeated header in {head.headers}"
        return Reply(head.status, head.reason, dict(head.headers), response.body)

    async def assert_closed(self) -> None:
        """The server closes the connection without sending anything more."""
        with trio.fail_after(READ_LIMIT):
            while data := await self.stream.receive_some(65536):
                self.reader.feed(data)
        assert self.reader.idle, "sent more after the last response"

    async def assert_open(self) -> None:
        """Nothing more arrives, and the connection is not closed."""
        assert self.reader.idle, "sent more than the responses read"
        with trio.move_on_after(0.1):
            data = await self.stream.receive_some(65536)
            pytest.fail(f"expected silence, got {data!r}")


@asynccontextmanager
async def connect(running: Running) -> AsyncIterator[Connection]:
    stream = await trio.open_unix_socket(running.socket)
    async with stream:
        yield Connection(stream)


def assert_json_error(reply: Reply, status: int) -> dict[str, str]:
    """`reply` is a JSON error with `status`, shaped `{"error": {"code", "message"}}`."""
    assert reply.status == status, reply
    assert reply.headers["content-type"] == "application/json", reply
    assert int(reply.headers["content-length"]) == len(reply.body)
    document = reply.json()
    assert list(document) == ["error"], document
    error = document["error"]
    assert sorted(error) == ["code", "message"], document
    assert isinstance(error["code"], str), document
    assert isinstance(error["message"], str), document
    assert error["code"], document
    assert error["message"], document
    return dict(error)


def assert_accepted(reply: Reply) -> dict[str, Any]:
    """A 202 for one `cliente.criado` event; its body."""
    assert reply.status == 202, reply
    accepted: dict[str, Any] = reply.json()
    assert accepted["event"] == "cliente.criado", accepted
    return accepted


def assert_healthy(reply: Reply) -> None:
    assert reply.status == 200, reply
    assert reply.json()["status"] == "ok"


def assert_kept(reply: Reply) -> None:
    """The response does not announce a close."""
    assert "close" not in reply.headers.get("connection", "").lower(), reply


def assert_closing(reply: Reply) -> None:
    assert reply.headers.get("connection", "").lower() == "close", reply


async def stored_data(running: Running, event_id: str) -> Any:
    response = await running.client.get(f"/v1/events/{event_id}")
    assert response.status_code == 200, response.text
    return response.json()["data"]


# -- keep-alive and pipelining ---------------------------------------------------------


async def test_keep_alive_serves_three_requests_on_one_connection(hookd: Running) -> None:
    async with connect(hookd) as conn:
        await conn.send(get_healthz())
        first = await conn.reply()
        await conn.send(post_event())
        second = await conn.reply()
        await conn.send(get_healthz())
        third = await conn.reply()
        assert_healthy(first)
        assert_accepted(second)
        assert_healthy(third)
        for reply in (first, second, third):
            assert_kept(reply)
        await conn.assert_open()


async def test_pipelined_requests_are_answered_in_order(hookd: Running) -> None:
    async with connect(hookd) as conn:
        await conn.send(post_event() + request("GET", "/nope") + get_healthz())
        assert_accepted(await conn.reply())
        assert_json_error(await conn.reply(), 404)
        assert_healthy(await conn.reply())
        await conn.assert_open()


# -- bodies ----------------------------------------------------------------------------


async def test_chunked_post_is_accepted(hookd: Running) -> None:
    headers = [("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")]
    async with connect(hookd) as conn:
        await conn.send(request("POST", "/v1/events", headers, chunked(EVENT, 7)) + get_healthz())
        accepted = assert_accepted(await conn.reply())
        assert_healthy(await conn.reply())  # the trailer did not leak into the next request
    assert await stored_data(hookd, accepted["id"]) == {"nome": "João", "n": 7}


# (request head without its body, the body to send after the 100)
EXPECTING = [
    # framed by Content-Length
    (
        request(
            "POST",
            "/v1/events",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(EVENT))),
                ("Expect", "100-continue"),
            ],
        ),
        EVENT,
    ),
    # chunked
    (
        request(
            "POST",
            "/v1/events",
            [
                ("Content-Type", "application/json"),
                ("Transfer-Encoding", "chunked"),
                ("Expect", "100-continue"),
            ],
        ),
        chunked(EVENT, 10),
    ),
]


@pytest.mark.parametrize(("head", "body"), EXPECTING, ids=["content-length", "chunked"])
async def test_expect_100_continue(hookd: Running, head: bytes, body: bytes) -> None:
    async with connect(hookd) as conn:
        await conn.send(head)
        interim = await conn.reply()  # before any of the body is sent
        assert (interim.status, interim.reason, interim.headers) == (100, "Continue", {})
        await conn.send(body)
        reply = await conn.reply()
        assert_accepted(reply)
        assert_kept(reply)
        await conn.assert_open()


async def test_expect_with_body_over_limit_gets_413_without_100(
    hookd_factory: Callable[[str], Awaitable[Running]],
) -> None:
    running = await hookd_factory("[server]\nmax_body_bytes = 2048")
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", "4096"),
        ("Expect", "100-continue"),
    ]
    async with connect(running) as conn:
        await conn.send(request("POST", "/v1/events", headers))
        reply = await conn.reply()  # a 100 here would fail as the wrong status
        assert_json_error(reply, 413)
        assert_closing(reply)
        await conn.assert_closed()


# -- HEAD and connection persistence ---------------------------------------------------


async def test_head_healthz_is_405_with_headers_and_no_body(hookd: Running) -> None:
    async with connect(hookd) as conn:
        await conn.send(request("HEAD", "/healthz"))
        reply = await conn.reply(to_head=True)
        assert reply.status == 405
        assert reply.headers["allow"] == "GET"
        assert reply.headers["content-type"] == "application/json"
        assert int(reply.headers["content-length"]) > 0  # the length of the body not sent
        assert_kept(reply)
        # Had a body followed, it would be read here as the next status line.
        await conn.send(get_healthz())
        assert_healthy(await conn.reply())


# (HTTP version, Connection header or None, whether the server closes after answering)
PERSISTENCE = [
    # HTTP/1.1 keeps the connection by default
    ("HTTP/1.1", None, False),
    # HTTP/1.1 with Connection: close
    ("HTTP/1.1", "close", True),
    # ... in any case, among other options
    ("HTTP/1.1", "keep-alive, Close", True),
    # HTTP/1.0 closes by default
    ("HTTP/1.0", None, True),
    # HTTP/1.0 with keep-alive keeps it
    ("HTTP/1.0", "keep-alive", False),
]


@pytest.mark.parametrize(("version", "connection", "closes"), PERSISTENCE)
async def test_connection_persistence(
    hookd: Running, version: str, connection: str | None, closes: bool
) -> None:
    headers = [("Connection", connection)] if connection else []
    async with connect(hookd) as conn:
        await conn.send(request("GET", "/healthz", headers, version=version))
        reply = await conn.reply()
        assert_healthy(reply)
        if closes:
            assert_closing(reply)
            await conn.assert_closed()
        else:
            assert_kept(reply)
            await conn.send(request("GET", "/healthz", headers, version=version))
            assert_healthy(await conn.reply())


async def test_head_split_across_many_small_writes(hookd: Running) -> None:
    data = post_event()
    async with connect(hookd) as conn:
        for i in range(0, len(data), 3):
            await conn.send(data[i : i + 3])
            await trio.sleep(0.001)
        assert_accepted(await conn.reply())
        await conn.assert_open()


# -- refusals --------------------------------------------------------------------------

# (raw bytes, status): framing errors, answered and then the connection closed
PROTOCOL_ERRORS = [
    # malformed request line: two spaces
    (b"GET  /healthz HTTP/1.1\r\nHost: hookd\r\n\r\n", 400),
    # malformed request line: absolute-form target
    (b"GET http://hookd/healthz HTTP/1.1\r\nHost: hookd\r\n\r\n", 400),
    # garbage in place of a request
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
    # an HTTP version not served
    (b"GET /healthz HTTP/2.0\r\nHost: hookd\r\n\r\n", 505),
    # a space before a header's colon
    (b"GET /healthz HTTP/1.1\r\nHost : hookd\r\n\r\n", 400),
    # obs-fold
    (b"GET /healthz HTTP/1.1\r\nHost: hookd\r\nX-A: 1\r\n folded\r\n\r\n", 400),
    # CL + TE smuggling: the request "hidden" after the chunked body must not be answered
    (
        b"POST /v1/events HTTP/1.1\r\nHost: hookd\r\nContent-Type: application/json\r\n"
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        b"GET /healthz HTTP/1.1\r\nHost: hookd\r\n\r\n",
        400,
    ),
    # a transfer coding not supported
    (b"POST /v1/events HTTP/1.1\r\nHost: hookd\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    # a malformed chunk size, with a request behind it that must not be answered
    (
        b"POST /v1/events HTTP/1.1\r\nHost: hookd\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
        b"GET /healthz HTTP/1.1\r\nHost: hookd\r\n\r\n",
        400,
    ),
    # a non-numeric Content-Length
    (b"POST /v1/events HTTP/1.1\r\nHost: hookd\r\nContent-Length: 1x\r\n\r\n1x", 400),
]


@pytest.mark.parametrize(
    ("data", "status"),
    PROTOCOL_ERRORS,
    ids=[f"{i:02d}-{row[1]}" for i, row in enumerate(PROTOCOL_ERRORS)],
)
async def test_protocol_error_is_json_and_closes(hookd: Running, data: bytes, status: int) -> None:
    async with connect(hookd) as conn:
        await conn.send(data)
        reply = await conn.reply()
        assert_json_error(reply, status)
        assert_closing(reply)
        await conn.assert_closed()
    events = await hookd.client.get("/v1/events")
    assert events.json()["items"] == [], "a refused request stored an event"


# (raw request, status): refusals by the API, after which the connection is kept
API_ERRORS = [
    # an unknown path
    (request("GET", "/nope"), 404),
    # a method the path does not serve
    (request("DELETE", "/healthz"), 405),
    # a body that is not JSON
    (post_event(b"not json"), 400),
    # the wrong media type
    (request("POST", "/v1/events", [("Content-Length", str(len(EVENT)))], EVENT), 415),
]


@pytest.mark.parametrize(
    ("data", "status"),
    API_ERRORS,
    ids=[f"{i:02d}-{row[1]}" for i, row in enumerate(API_ERRORS)],
)
async def test_api_error_is_json_and_keeps_the_connection(
    hookd: Running, data: bytes, status: int
) -> None:
    async with connect(hookd) as conn:
        await conn.send(data)
        reply = await conn.reply()
        assert_json_error(reply, status)
        assert_kept(reply)
        await conn.send(get_healthz())
        assert_healthy(await conn.reply())


async def test_an_unexpected_exception_closes_its_connection_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Whatever raises in a connection's task (here: a header no HTTP line can carry) is
    logged and closes that connection; the server goes on serving the others."""

    async def handler(request: Request) -> Response:
        if request.path == "/snowman":
            return Response(status=200, headers=[("X-Name", "☃")])
        return json_response(200, {"ok": True})

    server = Server(handler, Limits(), "test")
    [listener] = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listener.socket.getsockname()[1]
    async with listener, trio.open_nursery() as nursery:
        nursery.start_soon(server.serve, listener, "tcp", nursery)
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            crashing = Connection(stream)
            await crashing.send(request("GET", "/snowman"))
            await crashing.assert_closed()
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            fine = Connection(stream)
            await fine.send(request("GET", "/other"))
            assert (await fine.reply()).json() == {"ok": True}
        nursery.cancel_scope.cancel()
    [record] = [r for r in caplog.records if r.getMessage().startswith("action=connection.crashed")]
    assert record.levelname == "ERROR"
    assert record.exc_info is not None
