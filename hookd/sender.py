"""One delivery attempt: a signed POST over a guarded, per-endpoint connection pool.

Rules (DESIGN §1, outbound safety):
- `send(job)` returns an `AttemptResult` value whatever happens on the network; only
  bugs raise. Expected failures are classified by `error_kind`: timeout, dns, connect,
  tls, blocked, protocol, network.
- `delivery.timeout` bounds the whole attempt, connect to last byte (`trio.fail_after`):
  a receiver that drips bytes cannot hold an attempt longer.
- Redirects are never followed (a 3xx is a failed attempt). At most 1 KiB of the
  response body is kept; up to 64 KiB more is read so the connection can be reused,
  beyond that the connection is dropped.
- Each endpoint has its own httpcore pool (keep-alive, at most
  `per_endpoint_concurrency` connections, idle connections expire). httpcore is httpx's
  own transport layer; it is used directly because it takes a network backend, which is
  where the address guard sits: the host is resolved once, every resolved address is
  checked against the policy, and the connection goes to a vetted IP (no DNS-rebinding
  gap). TLS still verifies the URL's host name, with the system store plus `ca_file`.
- Proxy variables in the environment are ignored.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import msgspec
import trio

from hookd import __version__
from hookd.clock import Clock
from hookd.core.addresses import AddressPolicy
from hookd.core.retry import AttemptResult
from hookd.core.signing import sign

EXCERPT_BYTES = 1024
DRAIN_BYTES = 65536
KEEPALIVE_EXPIRY = 30.0
USER_AGENT = f"hookd/{__version__}"


class Job(msgspec.Struct, frozen=True, kw_only=True):
    """Everything one attempt needs, loaded from the database."""

    delivery_id: int
    endpoint_id: str
    url: str
    secret: str
    event_id: str
    event_type: str
    body: bytes
    attempt: int  # the number of this attempt, counting every round (X-Webhook-Attempt)
    round_attempt: int  # the number of this attempt within its round (for the schedule)


class BlockedAddress(Exception):
    """The target resolved only to addresses the policy refuses."""


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """A network backend that connects only to addresses the policy allows."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._inner = httpcore.TrioBackend()
        self._policy = policy

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise _DnsError(f"cannot resolve {host}: {exc.strerror or exc}") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        allowed = [a for a in addresses if self._policy.problem(a) is None]
        if not allowed:
            raise BlockedAddress(self._policy.problem(addresses[0]) or "no address")
        failure: Exception | None = None
        for address in allowed:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedAddress("Unix sockets are not delivery targets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _DnsError(Exception):
    """The target's host name does not resolve."""


class Sender:
    """Makes attempts; keeps one connection pool per endpoint."""

    def __init__(
        self,
        clock: Clock,
        *,
        timeout: float,
        per_endpoint: int,
        policy: AddressPolicy,
        require_https: bool = False,
        ca_file: str = "",
    ) -> None:
        self._clock = clock
        self._timeout = timeout
        self._per_endpoint = per_endpoint
        self._require_https = require_https
        self._backend = _GuardedBackend(policy)
        self._ssl = ssl.create_default_context()
        if ca_file:
            self._ssl.load_verify_locations(cafile=ca_file)
        self._pools: dict[str, httpcore.AsyncConnectionPool] = {}

    async def send(self, job: Job) -> AttemptResult:
        """Make one attempt of `job`; the outcome is a value."""
        parts = urlsplit(job.url)
        if self._require_https and parts.scheme != "https":
            return AttemptResult(
                error_kind="blocked", error="http:// refused: delivery.require_https is set"
            )
        headers = self._headers(job, parts.netloc)
        try:
            with trio.fail_after(self._timeout):
                return await self._post(self._pool(job.endpoint_id), job, headers)
        except trio.TooSlowError:
            return AttemptResult(
                error_kind="timeout", error=f"no complete answer within {self._timeout:g}s"
            )
        except BlockedAddress as exc:
            return AttemptResult(error_kind="blocked", error=str(exc))
        except _DnsError as exc:
            return AttemptResult(error_kind="dns", error=str(exc))
        except httpcore.TimeoutException as exc:
            return AttemptResult(error_kind="timeout", error=str(exc) or type(exc).__name__)
        except httpcore.ConnectError as exc:
            text = str(exc) or "connection failed"
            kind = "tls" if "SSL" in text or "CERTIFICATE" in text.upper() else "connect"
            return AttemptResult(error_kind=kind, error=text)
        except httpcore.ProtocolError as exc:
            return AttemptResult(error_kind="protocol", error=str(exc) or type(exc).__name__)
        except (httpcore.NetworkError, ssl.SSLError, OSError) as exc:
            return AttemptResult(error_kind="network", error=str(exc) or type(exc).__name__)

    async def _post(
        self, pool: httpcore.AsyncConnectionPool, job: Job, headers: list[tuple[str, str]]
    ) -> AttemptResult:
        async with pool.stream("POST", job.url, headers=headers, content=job.body) as response:
            kept = bytearray()
            read = 0
            async for chunk in response.aiter_stream():
                if len(kept) < EXCERPT_BYTES:
                    kept += chunk[: EXCERPT_BYTES - len(kept)]
                read += len(chunk)
                if read > DRAIN_BYTES:
                    break
            retry_after = None
            for name, value in response.headers:
                if name.lower() == b"retry-after":
                    retry_after = value.decode("latin-1")
            return AttemptResult(
                status_code=response.status, retry_after=retry_after, excerpt=bytes(kept)
            )

    def _headers(self, job: Job, host: str) -> list[tuple[str, str]]:
        timestamp = int(self._clock.now())
        return [
            ("Host", host),
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(job.body))),
            ("User-Agent", USER_AGENT),
            ("Accept-Encoding", "identity"),
            ("X-Webhook-Id", job.event_id),
            ("X-Webhook-Event", job.event_type),
            ("X-Webhook-Timestamp", str(timestamp)),
            ("X-Webhook-Attempt", str(job.attempt)),
            *sign(job.secret, job.event_id, timestamp, job.body),
        ]

    def _pool(self, endpoint_id: str) -> httpcore.AsyncConnectionPool:
        pool = self._pools.get(endpoint_id)
        if pool is None:
            pool = self._pools[endpoint_id] = httpcore.AsyncConnectionPool(
                ssl_context=self._ssl,
                max_connections=self._per_endpoint,
                max_keepalive_connections=self._per_endpoint,
                keepalive_expiry=KEEPALIVE_EXPIRY,
                network_backend=self._backend,
            )
        return pool

    async def forget(self, endpoint_id: str) -> None:
        """Close an endpoint's connections (it was deleted, disabled or changed)."""
        pool = self._pools.pop(endpoint_id, None)
        if pool is not None:
            await pool.aclose()

    async def aclose(self) -> None:
        """Close every connection."""
        for endpoint_id in list(self._pools):
            await self.forget(endpoint_id)
