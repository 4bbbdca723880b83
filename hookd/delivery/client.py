"""One delivery attempt: a signed POST over a guarded keep-alive connection of its endpoint.

Rules (docs/ARCHITECTURE.md, "The path of an event"; outbound safety):
- `send(job)` returns an `AttemptResult` value whatever happens: nothing a URL or a
  receiver holds can raise out of it. Expected failures are classified by `error_kind`:
  timeout, dns, connect, tls, blocked, protocol, network, and local: hookd itself out
  of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) while resolving or
  connecting, whatever step it hit. Anything else that raises in
  an attempt (a bug, or an input no rule foresaw) is a failed attempt of kind `internal`
  carrying the exception's message, logged with its traceback at ERROR; the delivery
  then follows its retry schedule like any failure.
- `delivery.timeout` bounds the whole attempt, connect to last byte (`trio.fail_after`):
  a receiver that drips bytes cannot hold an attempt longer.
- Settings can change while running (`configure`, at a reload): the next attempts take
  the new timeout; a changed address policy, `require_https` or CA file closes the
  connections once idle, so none made under the old rules is used again.
- Redirects are never followed (a 3xx is a failed attempt). An answer cut off before its
  announced end is a failed attempt too, whatever its status. At most 1 KiB of the
  response body is kept; up to 64 KiB more is read so the connection can be reused,
  beyond that the connection is closed.
- The client is HTTP/1.1 over trio streams, answers framed by `protocol.http1`'s
  `ResponseReader`, one small pool of keep-alive connections per endpoint (at most one
  per worker of that endpoint).
  Measured here, httpx on trio spends most of a delivery in its pool bookkeeping (a
  poll() per pooled connection per request) and peaks near 1,000-1,500 posts/s; h11
  directly reaches several times that, and h11's own event machinery was then the
  largest cost per delivery, so hookd's own codec writes requests and frames answers
  (docs/ARCHITECTURE.md).
- A connection idle for KEEPALIVE_EXPIRY is closed (below the 5 s that Node.js
  receivers keep idle connections); a request that fails on a reused connection
  before any byte of answer came back is sent once more on a new connection, because
  the receiver closed it while idle and never saw the request.
- The address guard: the host is resolved (its ASCII wire form, as bytes: Python's
  own IDNA codec never runs on it), every address is checked against the
  policy, and the connection goes to a vetted IP (no DNS-rebinding gap between check and
  connect). TLS verifies the URL's host name (SNI included) against the system store
  plus `ca_file`. Proxy variables in the environment play no part.
"""

from __future__ import annotations

import errno
import functools
import logging
import socket
import ssl
from collections import deque
from typing import NamedTuple
from urllib.parse import quote, urlsplit

import trio

from hookd import __version__
from hookd.domain.addresses import AddressPolicy
from hookd.domain.attempts import Job
from hookd.domain.endpoints import wire_host
from hookd.domain.retry import AttemptResult
from hookd.domain.signing import sign
from hookd.protocol import http1
from hookd.runtime.clock import Clock

EXCERPT_BYTES = 1024
DRAIN_BYTES = 65536
HEAD_BYTES = 65536
KEEPALIVE_EXPIRY = 4.0
USER_AGENT = f"hookd/{__version__}"

log = logging.getLogger("hookd.delivery")


class Progress:
    """How far one attempt got, for when it is cut short: `sent` once the request's
    first byte may have left (the receiver may then have it)."""

    __slots__ = ("sent",)

    def __init__(self) -> None:
        self.sent = False


class _Target(NamedTuple):
    https: bool
    host: str
    port: int
    host_header: str
    path: bytes


@functools.lru_cache(maxsize=1024)
def _target(url: str) -> _Target:
    parts = urlsplit(url)
    https = parts.scheme == "https"
    path = quote((parts.path or "/") + (f"?{parts.query}" if parts.query else ""), safe=_SAFE)
    host = wire_host(parts.hostname or "")
    shown = f"[{host}]" if ":" in host else host
    port = parts.port
    host_header = shown if port is None else f"{shown}:{port}"
    return _Target(https, host, port or (443 if https else 80), host_header, path.encode())


_SAFE = "/?=&%:@!$'()*+,;-._~"


class _Failure(Exception):
    """An expected failure of an attempt, with its kind."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class _Stale(Exception):
    """A reused connection failed before any answer: the receiver had closed it."""


class _Connection:
    __slots__ = ("answered", "idle_since", "reader", "stream")

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.reader = http1.ResponseReader(
            max_head_bytes=HEAD_BYTES, max_body_bytes=DRAIN_BYTES, keep_body_bytes=EXCERPT_BYTES
        )
        self.idle_since = 0.0
        self.answered = False  # some byte of an answer to the current request came back


class _Pool:
    """The idle keep-alive connections to one endpoint's origin."""

    def __init__(self) -> None:
        self.idle: deque[_Connection] = deque()
        self.closed = False  # forgotten: connections coming back from attempts are closed

    def take(self, now: float) -> _Connection | None:
        while self.idle:
            connection = self.idle.pop()  # the most recently used is the most likely alive
            if now - connection.idle_since < KEEPALIVE_EXPIRY:
                return connection
            _close_now(connection)
        return None

    def put(self, connection: _Connection, now: float) -> None:
        if self.closed:
            _close_now(connection)
            return
        connection.idle_since = now
        self.idle.append(connection)

    def close(self) -> None:
        self.closed = True
        while self.idle:
            _close_now(self.idle.pop())


def _close_now(connection: _Connection) -> None:
    stream = connection.stream
    if isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    if isinstance(stream, trio.SocketStream):
        stream.socket.close()


class Sender:
    """Makes attempts; keeps a pool of connections per endpoint."""

    def __init__(
        self,
        clock: Clock,
        *,
        timeout: float,
        policy: AddressPolicy,
        require_https: bool = False,
        ca_file: str = "",
    ) -> None:
        self._clock = clock
        self._pools: dict[str, _Pool] = {}
        self._network: tuple[object, ...] | None = None
        self.configure(timeout=timeout, policy=policy, require_https=require_https, ca_file=ca_file)

    def configure(
        self, *, timeout: float, policy: AddressPolicy, require_https: bool, ca_file: str
    ) -> None:
        """Take new settings (at start, and at a reload) for the attempts that start from
        now on. When the address policy, `require_https` or `ca_file` changed, or a CA
        file is set (its contents may have changed), the TLS context is made anew and
        every connection is closed once idle: the next attempts connect afresh. A CA file
        that does not load raises (`ssl.SSLError`, `OSError`) before anything changed."""
        network = (policy.allow_private, policy.allowed, require_https, ca_file)
        if network != self._network or ca_file:
            context = ssl.create_default_context()
            if ca_file:
                context.load_verify_locations(cafile=ca_file)
            self._ssl, self._policy, self._require_https = context, policy, require_https
            if self._network is not None:
                self.close()
            self._network = network
        self._timeout = timeout

    async def send(self, job: Job, progress: Progress | None = None) -> AttemptResult:
        """Make one attempt of `job`; the outcome is a value, whatever happens. `progress`
        learns whether the request went out, should the caller cut the attempt short."""
        try:
            return await self._send(job, progress)
        except Exception as exc:
            log.error(
                "action=attempt.crashed delivery=%d endpoint=%s url=%r",
                job.delivery_id,
                job.endpoint_id,
                job.url,
                exc_info=True,
            )
            return AttemptResult(error_kind="internal", error=f"{type(exc).__name__}: {exc}")

    async def _send(self, job: Job, progress: Progress | None) -> AttemptResult:
        try:
            target = _target(job.url)
        except (UnicodeError, ValueError) as exc:
            return AttemptResult(error_kind="dns", error=f"host name not usable: {exc}")
        if self._require_https and not target.https:
            return AttemptResult(
                error_kind="blocked", error="http:// refused: delivery.require_https is set"
            )
        request = self._request(job, target)
        pool = self._pools.get(job.endpoint_id)
        if pool is None:
            pool = self._pools[job.endpoint_id] = _Pool()
        try:
            # A bare CancelScope: trio.fail_after's generator costs ~5 % of an attempt.
            with trio.CancelScope(deadline=trio.current_time() + self._timeout):
                return await self._exchange(pool, target, request, progress)
        except _Failure as exc:
            return AttemptResult(error_kind=exc.kind, error=str(exc))
        return AttemptResult(
            error_kind="timeout", error=f"no complete answer within {self._timeout:g}s"
        )

    def forget(self, endpoint_id: str) -> None:
        """Close an endpoint's idle connections (it was deleted, disabled or changed)."""
        pool = self._pools.pop(endpoint_id, None)
        if pool is not None:
            pool.close()

    def close(self) -> None:
        """Close every idle connection."""
        for endpoint_id in list(self._pools):
            self.forget(endpoint_id)

    def _request(self, job: Job, target: _Target) -> bytes:
        now = self._clock.now()
        timestamp = int(now)
        secret, previous, upcoming = job.secrets.signing(now)
        headers = [
            ("Host", target.host_header),
            ("Content-Type", "application/json"),
            ("User-Agent", USER_AGENT),
            ("Accept-Encoding", "identity"),
            ("X-Webhook-Id", job.event_id),
            ("X-Webhook-Event", job.event_type),
            ("X-Webhook-Timestamp", str(timestamp)),
            ("X-Webhook-Attempt", str(job.attempt)),
            *sign(secret, job.event_id, timestamp, job.body, previous, upcoming),
        ]
        return http1.request_bytes(target.path, headers, job.body)

    async def _exchange(
        self, pool: _Pool, target: _Target, request: bytes, progress: Progress | None
    ) -> AttemptResult:
        connection = pool.take(trio.current_time())
        if connection is not None:
            try:
                return await self._round_trip(pool, connection, request, True, progress)
            except _Stale:
                pass
        connection = await self._connect(target)
        try:
            return await self._round_trip(pool, connection, request, False, progress)
        except _Stale:  # not raised for a new connection; kept for the type checker
            raise _Failure("network", "connection closed before an answer") from None

    async def _round_trip(
        self,
        pool: _Pool,
        connection: _Connection,
        request: bytes,
        reused: bool,
        progress: Progress | None,
    ) -> AttemptResult:
        keep = False
        try:
            if progress is not None:
                progress.sent = True
            result, keep = await self._talk(connection, request, reused)
            return result
        finally:
            if keep:
                pool.put(connection, trio.current_time())
            else:
                _close_now(connection)

    async def _talk(
        self, connection: _Connection, request: bytes, reused: bool
    ) -> tuple[AttemptResult, bool]:
        connection.answered = not connection.reader.idle
        try:
            await connection.stream.send_all(request)
            response = await _receive(connection)
            while 100 <= response.head.status < 200:  # interim answers (103 Early Hints, ...)
                response = await _receive(connection)
        except http1.Incomplete as exc:
            if reused and not connection.answered:
                raise _Stale() from None
            raise _Failure("network", str(exc)) from None
        except http1.ProtocolError as exc:
            raise _Failure("protocol", f"invalid HTTP answer: {exc}") from None
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            if reused and not connection.answered:
                raise _Stale() from None
            raise _Failure("network", _reason(exc, "connection lost")) from None
        head = response.head
        result = AttemptResult(
            status_code=head.status, retry_after=head.retry_after, excerpt=response.body
        )
        return result, response.complete and head.keep_alive and connection.reader.idle

    async def _connect(self, target: _Target) -> _Connection:
        try:
            infos = await trio.socket.getaddrinfo(
                target.host.encode("ascii"), target.port, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            _raise_if_local(exc)
            raise _Failure("dns", f"cannot resolve {target.host}: {_reason(exc)}") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        allowed = [a for a in addresses if self._policy.problem(a) is None]
        if not allowed:
            raise _Failure("blocked", self._policy.problem(addresses[0]) or "no address")
        failure: OSError | None = None
        for address in allowed:
            try:
                stream: trio.abc.Stream = await trio.open_tcp_stream(address, target.port)
                break
            except OSError as exc:
                failure = exc
        else:
            assert failure is not None
            _raise_if_local(failure)
            raise _Failure("connect", f"{target.host}:{target.port}: {_reason(failure)}")
        if target.https:
            stream = await self._start_tls(stream, target.host)
        return _Connection(stream)

    async def _start_tls(
        self, stream: trio.abc.Stream, host: str
    ) -> trio.SSLStream[trio.abc.Stream]:
        tls = trio.SSLStream(stream, self._ssl, server_hostname=host, https_compatible=True)
        try:
            await tls.do_handshake()
        except trio.BrokenResourceError as exc:
            await trio.aclose_forcefully(tls)
            cause = exc.__cause__ or exc
            raise _Failure("tls", f"TLS with {host} failed: {_reason(cause)}") from None
        return tls


async def _receive(connection: _Connection) -> http1.Response:
    """The next answer on the connection (as much of its body as the reader keeps)."""
    reader = connection.reader
    while (response := reader.next_event()) is http1.NEED_DATA:
        data = await connection.stream.receive_some(65536)
        connection.answered = connection.answered or bool(data)
        reader.feed(data)
    return response


_LOCAL_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def _raise_if_local(exc: BaseException) -> None:
    """A `local` failure if `exc` (or what caused it: trio groups each address's
    connect error) is this process running out of descriptors or memory."""
    causes: list[BaseException] = [exc]
    while causes:
        cause = causes.pop()
        if isinstance(cause, OSError) and cause.errno in _LOCAL_ERRNOS:
            raise _Failure("local", f"hookd cannot open a connection: {_reason(cause)}")
        if isinstance(cause, BaseExceptionGroup):
            causes += cause.exceptions
        if cause.__cause__ is not None:
            causes.append(cause.__cause__)


def _reason(exc: BaseException, default: str = "") -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or default or type(exc).__name__
