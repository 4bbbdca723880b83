"""Which IP addresses hookd may deliver to.

Rules (outbound safety):
- By default only globally routable unicast addresses are allowed: loopback, private
  (RFC 1918, ULA), link-local, CGNAT (100.64/10), multicast, unspecified, reserved and
  documentation ranges are refused, and so are their IPv6 wrappings (IPv4-mapped
  `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4
  `2002::/16`), judged by the IPv4 address inside. The local-use NAT64 prefix
  `64:ff9b:1::/48` is never global.
- `allowed` networks (CIDRs from the config) are allowed anyway, e.g. an ERP on the LAN.
- `allow_private = True` allows everything but unspecified and multicast addresses.
- The check runs on the address actually connected to, after DNS resolution.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")
_6TO4 = ipaddress.ip_network("2002::/16")


def _unwrap(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if address.sixtofour is not None:
            return address.sixtofour
    return address


class AddressPolicy:
    """Decides whether an IP address may be a delivery target."""

    def __init__(self, allow_private: bool, allowed: Sequence[str] = ()) -> None:
        self.allow_private = allow_private
        self.allowed: list[IPNetwork] = [ipaddress.ip_network(n, strict=False) for n in allowed]

    def problem(self, ip: str) -> str | None:
        """Why delivering to `ip` is refused, or None when it is allowed."""
        try:
            address = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            return f"{ip!r} is not an IP address"
        inner = _unwrap(address)
        if any(address in n or inner in n for n in self.allowed):
            return None
        if inner.is_unspecified or inner.is_multicast:
            return f"{ip} is {'unspecified' if inner.is_unspecified else 'multicast'}"
        if self.allow_private or (inner.is_global and address not in _LOCAL_NAT64):
            return None
        if inner.is_loopback:
            kind = "a loopback address"
        elif inner.is_link_local:
            kind = "a link-local address"
        elif inner.is_private:
            kind = "a private address"
        else:
            kind = "not a globally routable address"
        return (
            f"{ip} is {kind}; set delivery.allow_private_networks or list it in "
            "delivery.allowed_networks to deliver there"
        )
