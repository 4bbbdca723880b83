"""A real HTTP receiver on 127.0.0.1 for delivery tests, running in the test's trio run.

`answer` decides each response from the request: a status, optional headers, body and
a delay before answering (the delay runs on trio's clock, so a MockClock skips it).
Every request is recorded with its headers, exact body bytes and trio time of arrival.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import h11
import trio


@dataclass
class Received:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    at: float  # trio.current_time() when the whole request had arrived


@dataclass
class Answer:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b'{"success":true}'
    delay: float = 0.0


Policy = Callable[[Received], Answer]


@dataclass
class Receiver:
    port: int
    received: list[Received] = field(default_factory=list)
    arrived: trio.Event = field(default_factory=trio.Event)
    in_flight: int = 0
    most_in_flight: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhook"

    async def wait_for(self, count: int) -> list[Received]:
        """Wait until `count` requests have arrived."""
        while len(self.received) < count:
            self.arrived = trio.Event()
            await self.arrived.wait()
        return self.received


@asynccontextmanager
async def serve_receiver(answer: Policy | None = None) -> AsyncIterator[Receiver]:
    """Run a receiver until the block ends."""
    policy = answer or (lambda _: Answer())
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    receiver = Receiver(port)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, lambda s: _serve(s, receiver, policy), listeners)
        yield receiver
        nursery.cancel_scope.cancel()


async def _serve(stream: trio.SocketStream, receiver: Receiver, policy: Policy) -> None:
    # A sender that dies mid-request (kill -9) leaves a truncated request: drop that
    # connection only; the request was never answered, so it will be sent again.
    with contextlib.suppress(h11.RemoteProtocolError):
        await _exchange(stream, receiver, policy)


async def read_request(
    conn: h11.Connection, stream: trio.abc.Stream
) -> tuple[h11.Request, bytes] | None:
    """The next whole request on `stream` as h11 reads it (h11, not hookd's codec: the
    reference that what hookd sends is checked against), or None when the client closed
    the connection."""
    head: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            try:
                data = await stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return None
            conn.receive_data(bytes(data))
        elif isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            return head, bytes(body)
        else:
            return None


async def _exchange(stream: trio.SocketStream, receiver: Receiver, policy: Policy) -> None:
    conn = h11.Connection(h11.SERVER)
    async with stream:
        while (read := await read_request(conn, stream)) is not None:
            head, body = read
            request = Received(
                head.method.decode(),
                head.target.decode(),
                {k.decode().lower(): v.decode("latin-1") for k, v in head.headers},
                body,
                trio.current_time(),
            )
            receiver.received.append(request)
            receiver.arrived.set()
            receiver.in_flight += 1
            receiver.most_in_flight = max(receiver.most_in_flight, receiver.in_flight)
            try:
                reply = policy(request)
                await trio.sleep(reply.delay)
            finally:
                receiver.in_flight -= 1
            headers = [("Content-Length", str(len(reply.body))), *reply.headers]
            try:
                await stream.send_all(
                    conn.send(h11.Response(status_code=reply.status, headers=headers))
                    + conn.send(h11.Data(data=reply.body))
                    + conn.send(h11.EndOfMessage())
                )
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            if conn.our_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()
