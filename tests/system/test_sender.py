"""hookd.delivery.client: one attempt over real sockets on 127.0.0.1 (no mocks).

The servers here are written on trio + h11 in this file so that each test can shape the
answer byte by byte and count the TCP connections the sender opens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
import ssl
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h11
import msgspec
import pytest
import trio
import trustme
from standardwebhooks.webhooks import Webhook

from hookd import __version__
from hookd.delivery.client import Sender
from hookd.domain.addresses import AddressPolicy
from hookd.domain.attempts import Job
from hookd.domain.endpoints import Secrets
from hookd.domain.retry import AttemptResult
from hookd.protocol.http1 import CLOSED, NEED_DATA, RequestReader
from hookd.runtime.clock import Clock
from tests.receiver import read_request

SECRET = "sua_chave_secreta"
WHSEC = "whsec_" + base64.b64encode(bytes(range(32))).decode()
BODY = '{"event":"cliente.criado","data":{"nome":"João"}}'.encode()
TIMEOUT = 5.0


# --- the sender side ---------------------------------------------------------------


def make_job(url: str, *, secret: str = SECRET, body: bytes = BODY, attempt: int = 1) -> Job:
    return Job(
        delivery_id=1,
        endpoint_id="ep_1",
        url=url,
        secrets=Secrets(secret),
        event_id="evt_01HZX",
        event_type="cliente.criado",
        body=body,
        attempt=attempt,
        round_attempt=1,
    )


@contextmanager
def make_sender(
    *, timeout: float = TIMEOUT, policy: AddressPolicy | None = None, **options: Any
) -> Iterator[Sender]:
    """A Sender on a fresh Clock; its pooled connections are closed at the end."""
    sender = Sender(
        Clock(),
        timeout=timeout,
        policy=policy or AddressPolicy(True),
        **options,
    )
    try:
        yield sender
    finally:
        sender.close()


async def send_once(url: str, **options: Any) -> AttemptResult:
    with make_sender(**options) as sender:
        return await sender.send(make_job(url))


def assert_failed(result: AttemptResult, kind: str) -> None:
    assert result.status_code is None, result
    assert not result.ok
    assert result.error_kind == kind, result
    assert result.error


# --- the receiving side --------------------------------------------------------------


@dataclass
class Seen:
    """A request as the server read it."""

    target: str
    headers: dict[str, str]
    body: bytes
    client_port: int


@dataclass
class Server:
    port: int
    connections: int = 0  # TCP connections accepted
    requests: list[Seen] = field(default_factory=list)

    def url(self, path: str = "/hook", *, scheme: str = "http", host: str = "127.0.0.1") -> str:
        return f"{scheme}://{host}:{self.port}{path}"


class Peer:
    """One accepted connection, server side."""

    def __init__(self, stream: trio.abc.Stream, server: Server, client_port: int) -> None:
        self.stream = stream
        self.server = server
        self.client_port = client_port
        self.h11 = h11.Connection(h11.SERVER)

    async def request(self) -> Seen | None:
        """The next whole request, or None when the client closed the connection."""
        read = await read_request(self.h11, self.stream)
        if read is None:
            return None
        head, body = read
        seen = Seen(
            head.target.decode(),
            {k.decode(): v.decode("latin-1") for k, v in head.headers},
            body,
            self.client_port,
        )
        self.server.requests.append(seen)
        return seen

    async def respond_head(self, status: int, headers: list[tuple[str, str]]) -> None:
        await self.stream.send_all(self.h11.send(h11.Response(status_code=status, headers=headers)))

    async def respond(
        self, status: int = 200, headers: Sequence[tuple[str, str]] = (), body: bytes = b"ok"
    ) -> None:
        await self.respond_head(status, [("Content-Length", str(len(body))), *headers])
        await self.stream.send_all(
            self.h11.send(h11.Data(data=body)) + self.h11.send(h11.EndOfMessage())
        )

    def next_cycle(self) -> bool:
        """Ready for the next request on this connection, or False when it must close."""
        if self.h11.our_state is not h11.DONE or self.h11.their_state is not h11.DONE:
            return False
        self.h11.start_next_cycle()
        return True


Handler = Callable[[Peer], Awaitable[None]]


@asynccontextmanager
async def serve(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    """Run `handler` for every connection to a port on 127.0.0.1 until the block ends."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    server = Server(listeners[0].socket.getsockname()[1])

    async def connection(stream: trio.SocketStream) -> None:
        server.connections += 1
        port = stream.socket.getpeername()[1]
        wrapped: trio.abc.Stream = stream
        if tls is not None:
            wrapped = trio.SSLStream(stream, tls, server_side=True, https_compatible=True)
        try:
            await handler(Peer(wrapped, server, port))
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            pass  # the sender closed or gave up: part of several tests
        finally:
            await trio.aclose_forcefully(wrapped)

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, connection, listeners)
            yield server
            nursery.cancel_scope.cancel()
    finally:
        for listener in listeners:
            await listener.aclose()


def answering(
    status: int = 200,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"ok",
    *,
    close_after_each: bool = False,
) -> Handler:
    """Answer every request alike; `close_after_each` closes the socket after an answer
    without having said `Connection: close` (a receiver dropping idle keep-alives)."""

    async def handler(peer: Peer) -> None:
        while await peer.request() is not None:
            await peer.respond(status, headers, body)
            if close_after_each or not peer.next_cycle():
                return

    return handler


async def time_it(work: Awaitable[AttemptResult]) -> tuple[AttemptResult, float]:
    start = trio.current_time()
    result = await work
    return result, trio.current_time() - start


# --- answers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "ok"),
    [
        (200, True),  # the usual success
        (202, True),  # accepted for later processing
        (299, True),  # top of 2xx
        (400, False),  # refused by the receiver
        (500, False),  # receiver failure
    ],
)
async def test_status_decides_ok_and_excerpt_is_first_kib(status: int, ok: bool) -> None:
    answer = bytes(i % 251 for i in range(5000))
    async with serve(answering(status, body=answer)) as server:
        result = await send_once(server.url())
    assert result.ok is ok
    assert result.status_code == status
    assert result.error_kind is None
    assert result.excerpt == answer[:1024]


async def test_retry_after_is_kept() -> None:
    async with serve(answering(503, [("Retry-After", "120")])) as server:
        result = await send_once(server.url())
    assert result.status_code == 503
    assert result.retry_after == "120"


async def test_short_answer_is_kept_whole() -> None:
    async with serve(answering(200, body=b'{"success":true}')) as server:
        result = await send_once(server.url())
    assert result.excerpt == b'{"success":true}'


@pytest.mark.parametrize(
    ("size", "reused"),
    [
        (60_000, True),  # under 64 KiB: drained, the connection is reused
        (200_000, False),  # over 64 KiB: read up to the limit, then the connection closed
    ],
)
async def test_large_answer_is_drained_up_to_64_kib(size: int, reused: bool) -> None:
    answer = bytes(i % 251 for i in range(size))

    async def handler(peer: Peer) -> None:
        while await peer.request() is not None:
            await peer.respond_head(200, [("Content-Length", str(size))])
            if size < 65536:
                await peer.stream.send_all(peer.h11.send(h11.Data(data=answer)))
                peer.h11.send(h11.EndOfMessage())
                peer.next_cycle()
            else:
                # Only the first 100 KB ever come: a sender that read the whole answer
                # would wait for the rest until its timeout.
                await peer.stream.send_all(peer.h11.send(h11.Data(data=answer[:100_000])))
                await trio.sleep_forever()

    async with serve(handler) as server:
        with make_sender(timeout=2.0) as sender:
            first, elapsed = await time_it(sender.send(make_job(server.url())))
            second = await sender.send(make_job(server.url()))
    assert first.ok, first
    assert first.excerpt == answer[:1024]
    assert elapsed < 1.0
    assert second.ok, second
    assert server.connections == (1 if reused else 2)


# --- what the receiver sees ----------------------------------------------------------


async def test_request_headers_and_body_as_received() -> None:
    async with serve(answering()) as server:
        before = time.time()
        with make_sender() as sender:
            result = await sender.send(make_job(server.url("/hooks/in?src=hookd"), attempt=3))
        after = time.time()
    assert result.ok, result
    [seen] = server.requests
    headers = seen.headers
    assert seen.target == "/hooks/in?src=hookd"
    assert seen.body == BODY
    digest = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert headers["x-webhook-signature"] == f"sha256={digest}"
    assert headers["x-webhook-id"] == "evt_01HZX"
    assert headers["x-webhook-event"] == "cliente.criado"
    assert int(before) - 1 <= int(headers["x-webhook-timestamp"]) <= after + 1
    assert headers["x-webhook-attempt"] == "3"  # counted across rounds, not round_attempt
    assert headers["host"] == f"127.0.0.1:{server.port}"
    assert headers["content-length"] == str(len(BODY))
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == f"hookd/{__version__}"
    assert not any(name.startswith("webhook-") for name in headers)


async def test_standard_webhooks_headers_with_whsec_secret() -> None:
    async with serve(answering()) as server:
        with make_sender() as sender:
            result = await sender.send(make_job(server.url(), secret=WHSEC))
    assert result.ok, result
    [seen] = server.requests
    headers = seen.headers
    assert headers["webhook-id"] == "evt_01HZX"
    assert headers["webhook-timestamp"] == headers["x-webhook-timestamp"]
    digest = hmac.new(WHSEC.encode(), BODY, hashlib.sha256).hexdigest()
    assert headers["x-webhook-signature"] == f"sha256={digest}"
    # The reference library accepts it (it also checks the timestamp against now).
    assert Webhook(WHSEC).verify(seen.body, headers) == {
        "event": "cliente.criado",
        "data": {"nome": "João"},
    }


# --- connections ---------------------------------------------------------------------


async def send_many(url: str, count: int, **options: Any) -> list[AttemptResult]:
    with make_sender(**options) as sender:
        return [await sender.send(make_job(url)) for _ in range(count)]


async def test_sequential_sends_share_one_connection() -> None:
    async with serve(answering()) as server:
        results = await send_many(server.url(), 20)
    assert all(r.ok for r in results), results
    assert len(server.requests) == 20
    assert server.connections == 1
    assert len({seen.client_port for seen in server.requests}) == 1


@pytest.mark.parametrize(
    "handler",
    [
        # closes the socket right after each answer, without `Connection: close`: the
        # next send finds a dead pooled connection and must resend on a new one
        answering(close_after_each=True),
        # says `Connection: close`: the sender must not pool the connection
        answering(headers=[("Connection", "close")]),
    ],
    ids=["silent-close", "connection-close"],
)
async def test_receiver_closing_connections_is_fine(handler: Handler) -> None:
    async with serve(handler) as server:
        results = await send_many(server.url(), 10)
    assert [r.status_code for r in results] == [200] * 10, results
    assert len(server.requests) == 10  # each request arrived exactly once
    assert server.connections == 10


async def test_silent_close_after_an_idle_pause() -> None:
    # The stale connection is found by a send that comes after the close has landed.
    async with serve(answering(close_after_each=True)) as server:
        with make_sender() as sender:
            first = await sender.send(make_job(server.url()))
            await trio.sleep(0.05)
            second = await sender.send(make_job(server.url()))
    assert first.ok, first
    assert second.ok, second
    assert len(server.requests) == 2


async def test_redirect_is_not_followed() -> None:
    async with serve(answering(302, [("Location", "/elsewhere")])) as server:
        result = await send_once(server.url())
    assert result.status_code == 302
    assert not result.ok
    assert [seen.target for seen in server.requests] == ["/hook"]


# --- failures ------------------------------------------------------------------------


async def test_dripping_answer_times_out() -> None:
    async def drip(peer: Peer) -> None:
        await peer.request()
        await peer.stream.send_all(b"HTTP/1.1 200 OK\r\n")
        while True:
            await trio.sleep(0.2)
            await peer.stream.send_all(b"X")  # a header line that never ends

    async with serve(drip) as server:
        result, elapsed = await time_it(send_once(server.url(), timeout=0.5))
    assert_failed(result, "timeout")
    assert 0.5 <= elapsed < 1.0


async def test_connection_refused() -> None:
    # A bound socket that does not listen: the port is ours and refuses connections.
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        result = await send_once(f"http://127.0.0.1:{port}/hook")
    assert_failed(result, "connect")


async def test_unresolvable_host() -> None:
    assert_failed(await send_once("http://nonexistent.invalid/"), "dns")


@pytest.mark.parametrize(
    "url",
    [
        "https://api..example.com/hook",  # empty label: Python's IDNA codec raised UnicodeError
        f"http://{'a' * 64}.example.com/",  # a label over 63 characters
        "http://.../",
        "http://a..b/",
    ],
)
async def test_a_host_that_cannot_be_resolved_is_a_dns_failure_not_a_crash(url: str) -> None:
    # The API refuses these URLs now; an endpoint stored by an older hookd may hold one.
    assert_failed(await send_once(url), "dns")


async def test_anything_unexpected_is_an_internal_failure_logged_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # No header can carry a snowman (latin-1): building the request raises, as a bug would.
    job = msgspec.structs.replace(make_job("http://127.0.0.1:9/hook"), event_type="evento.☃")
    with make_sender() as sender:
        result = await sender.send(job)
    assert_failed(result, "internal")
    assert result.error is not None
    assert result.error.startswith("UnicodeEncodeError: ")
    [record] = [r for r in caplog.records if r.getMessage().startswith("action=attempt.crashed")]
    assert record.levelname == "ERROR"
    assert record.exc_info is not None


@pytest.mark.parametrize(
    "lengths", [b"Content-Length: 2\r\nContent-Length: 3", b"Content-Length: 2, 3"]
)
async def test_two_different_content_lengths_are_a_failed_attempt(lengths: bytes) -> None:
    async def conflicting(peer: Peer) -> None:
        await peer.request()
        await peer.stream.send_all(b"HTTP/1.1 200 OK\r\n" + lengths + b"\r\n\r\nok!")
        await trio.sleep_forever()

    async with serve(conflicting) as server:
        result = await send_once(server.url())
    assert_failed(result, "protocol")
    assert "Content-Length" in (result.error or "")


async def test_repeats_of_one_content_length_are_that_length() -> None:
    async def repeated(peer: Peer) -> None:
        # h11 refuses to send such an answer: the answers are written by hand here, so
        # the requests are read by hookd's codec, not by the peer's h11 connection.
        reader = RequestReader()
        while True:
            while (request := reader.next_event()) is NEED_DATA:
                reader.feed(await peer.stream.receive_some(65536))
            if request is CLOSED:
                return
            await peer.stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok")

    async with serve(repeated) as server:
        with make_sender() as sender:
            first = await sender.send(make_job(server.url()))
            second = await sender.send(make_job(server.url()))  # on the same connection
    assert (first.status_code, first.excerpt, second.status_code) == (200, b"ok", 200)
    assert server.connections == 1


async def test_excerpt_ends_where_the_body_does() -> None:
    """Bytes after the announced length are not the body: not in the excerpt, and the
    connection they came on is not used again."""

    async def overlong(peer: Peer) -> None:
        await peer.request()
        await peer.stream.send_all(b"HTTP/1.1 500 Oops\r\nContent-Length: 2\r\n\r\nokEXTRA")
        await trio.sleep_forever()

    async with serve(overlong) as server:
        with make_sender() as sender:
            first = await sender.send(make_job(server.url()))
            await sender.send(make_job(server.url()))
    assert (first.status_code, first.excerpt) == (500, b"ok")
    assert server.connections == 2


async def test_garbage_answer_is_a_protocol_error() -> None:
    async def garbage(peer: Peer) -> None:
        await peer.request()
        await peer.stream.send_all(b"HELLO\r\n\r\n")
        await trio.sleep_forever()

    async with serve(garbage) as server:
        result = await send_once(server.url())
    assert_failed(result, "protocol")


def hang_up(peer: Peer, how: str) -> None:
    """End the connection when the handler returns: a FIN, or a reset (RST)."""
    if how == "reset":
        assert isinstance(peer.stream, trio.SocketStream)
        peer.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@pytest.mark.parametrize("how", ["close", "reset"])
async def test_no_answer_on_a_new_connection_is_a_network_error(how: str) -> None:
    async def handler(peer: Peer) -> None:
        await peer.request()  # read it all, answer nothing
        hang_up(peer, how)

    async with serve(handler) as server:
        result = await send_once(server.url())
    assert_failed(result, "network")
    assert len(server.requests) == 1  # a new connection is not retried


@pytest.mark.parametrize("how", ["close", "reset"])
@pytest.mark.parametrize(
    "partial",
    [
        b"HTTP/1.1 200 OK\r\nContent-Len",  # part of the head
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",  # the whole head, no body
        b"HTTP/1.1 100 Continue\r\n\r\n",  # an interim answer only
    ],
)
async def test_partial_answer_on_a_reused_connection_is_not_resent(
    how: str, partial: bytes
) -> None:
    # Some of the answer came back: the request was seen, so it is not sent again.
    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.respond()
        peer.next_cycle()
        await peer.request()
        await peer.stream.send_all(partial)
        await trio.sleep(0.05)  # let the partial answer be read before the end
        hang_up(peer, how)

    async with serve(handler) as server:
        results = await send_many(server.url(), 2)
    assert results[0].ok
    assert results[1].error_kind in {"network", "protocol"}, results[1]
    assert len(server.requests) == 2


# --- the address guard ---------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_guard_refuses_loopback(host: str) -> None:
    async with serve(answering()) as server:
        result = await send_once(server.url(host=host), policy=AddressPolicy(False))
    assert_failed(result, "blocked")
    assert "loopback" in (result.error or "")
    assert server.connections == 0


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_guard_allows_listed_network(host: str) -> None:
    policy = AddressPolicy(False, ["127.0.0.0/8"])
    async with serve(answering()) as server:
        result = await send_once(server.url(host=host), policy=policy)
    assert result.ok, result
    assert len(server.requests) == 1


async def test_require_https_refuses_http() -> None:
    async with serve(answering()) as server:
        result = await send_once(server.url(), require_https=True)
    assert_failed(result, "blocked")
    assert server.connections == 0


# --- TLS -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def server_tls(ca: trustme.CA, name: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(name).configure_cert(context)
    return context


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
async def test_tls_with_ca_file(ca: trustme.CA, ca_file: str, host: str) -> None:
    async with serve(answering(), tls=server_tls(ca, host)) as server:
        result = await send_once(server.url(scheme="https", host=host), ca_file=ca_file)
    assert result.ok, result
    [seen] = server.requests
    assert seen.body == BODY
    assert seen.headers["host"] == f"{host}:{server.port}"


async def test_tls_unknown_ca(ca: trustme.CA) -> None:
    async with serve(answering(), tls=server_tls(ca, "localhost")) as server:
        result = await send_once(server.url(scheme="https", host="localhost"))
    assert_failed(result, "tls")
    assert server.requests == []


async def test_tls_checks_host_name(ca: trustme.CA, ca_file: str) -> None:
    async with serve(answering(), tls=server_tls(ca, "example.org")) as server:
        result = await send_once(server.url(scheme="https", host="localhost"), ca_file=ca_file)
    assert_failed(result, "tls")
    assert server.requests == []


async def test_tls_keep_alive(ca: trustme.CA, ca_file: str) -> None:
    async with serve(answering(), tls=server_tls(ca, "localhost")) as server:
        url = server.url(scheme="https", host="localhost")
        results = await send_many(url, 10, ca_file=ca_file)
    assert all(r.ok for r in results), results
    assert server.connections == 1
    assert len(server.requests) == 10


async def test_tls_silent_close_is_retried(ca: trustme.CA, ca_file: str) -> None:
    tls = server_tls(ca, "localhost")
    async with serve(answering(close_after_each=True), tls=tls) as server:
        url = server.url(scheme="https", host="localhost")
        results = await send_many(url, 5, ca_file=ca_file)
    assert [r.status_code for r in results] == [200] * 5, results
    assert len(server.requests) == 5
