"""The `Host` header check of the TCP listener: the API and the console answer only the
names they are reached by, so a web page cannot reach them through DNS rebinding.

Rules (docs/ARCHITECTURE.md, "Layers"):
- Over TCP a request's `Host` must be one of: an IP address with a listener's port
  (its own, 127.0.0.1, [::1], or any other: rebinding needs a name, and a page whose
  origin is an address is that address's own), `localhost` with a listener's port, or
  a name of `server.allowed_hosts` (a reverse proxy's; with a port it must match
  exactly, without one any port goes). Anything else is a 421 naming the host, before
  the token is read.
- The Unix socket is guarded by its file mode: its requests are not checked.
- Names compare without regard to case.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from hookd.api.errors import ApiError
from hookd.api.server import Handler, Request, Response

LOCAL_NAMES = ("localhost", "127.0.0.1", "[::1]")


class Hosts:
    """The Host values one daemon's TCP listeners answer."""

    def __init__(self, addresses: Iterable[tuple[str, int]], allowed: Iterable[str]) -> None:
        exact: set[str] = set()
        ports: set[str] = set()
        for host, port in addresses:
            shown = f"[{host}]" if ":" in host else host
            exact |= {f"{name}:{port}".lower() for name in (shown, *LOCAL_NAMES)}
            ports.add(str(port))
        names: set[str] = set()
        for entry in allowed:
            (exact if _port_of(entry) else names).add(entry.lower())
        self._exact = frozenset(exact)
        self._ports = frozenset(ports)
        self._names = frozenset(names)

    def allows(self, host: str) -> bool:
        """Whether a request with this `Host` header is answered."""
        host = host.strip().lower()
        if host in self._exact:
            return True
        name = host[: -len(port) - 1] if (port := _port_of(host)) else host
        return name in self._names or (port in self._ports and _is_address(name))

    def guard(self, handler: Handler) -> Handler:
        """`handler`, behind the check of TCP requests' Host."""

        async def checked(request: Request) -> Response:
            if request.origin == "tcp":
                host = request.headers.get("host", "")
                if not self.allows(host):
                    raise ApiError(
                        421,
                        "misdirected_request",
                        f"this listener does not answer Host {host[:100]!r}: reach it by its "
                        "own address, localhost, or a name in server.allowed_hosts",
                    )
            return await handler(request)

        return checked


def _is_address(name: str) -> bool:
    """Whether `name` is an IPv4 address or a bracketed IPv6 one."""
    try:
        if name.startswith("[") and name.endswith("]"):
            return ipaddress.ip_address(name[1:-1]).version == 6
        return ipaddress.ip_address(name).version == 4
    except ValueError:
        return False


def _port_of(host: str) -> str:
    """The port of `host:port` (`[v6]:port` too), or ''."""
    name, sep, port = host.rpartition(":")
    if not sep or not port.isdigit() or (name.startswith("[") and not name.endswith("]")):
        return ""
    if ":" in name and not name.startswith("["):
        return ""  # a bare IPv6 address
    return port
