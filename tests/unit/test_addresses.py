"""hookd.domain.addresses: which IP addresses a delivery may connect to."""

from __future__ import annotations

import pytest

from hookd.domain.addresses import AddressPolicy

STRICT = AddressPolicy(False)


@pytest.mark.parametrize(
    ("ip", "allowed"),
    [
        ("127.0.0.1", False),  # IPv4 loopback
        ("127.255.255.254", False),  # anywhere in 127/8
        ("::1", False),  # IPv6 loopback
        ("10.1.2.3", False),  # RFC 1918 10/8
        ("172.16.0.1", False),  # RFC 1918 172.16/12
        ("172.31.255.254", False),  # top of 172.16/12
        ("192.168.1.1", False),  # RFC 1918 192.168/16
        ("100.64.0.1", False),  # CGNAT 100.64/10, bottom
        ("100.127.255.254", False),  # CGNAT 100.64/10, top
        ("169.254.169.254", False),  # link-local: the cloud metadata service
        ("fe80::1", False),  # IPv6 link-local
        ("fe80::1%eth0", False),  # IPv6 link-local with a zone index
        ("fd00::1", False),  # IPv6 unique local (ULA, fc00::/7)
        ("224.0.0.1", False),  # IPv4 multicast
        ("ff02::1", False),  # IPv6 multicast
        ("0.0.0.0", False),  # IPv4 unspecified (reaches the local host)
        ("::", False),  # IPv6 unspecified
        ("192.0.2.1", False),  # documentation TEST-NET-1
        ("2001:db8::1", False),  # IPv6 documentation
        ("255.255.255.255", False),  # limited broadcast
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("::ffff:10.0.0.1", False),  # IPv4-mapped RFC 1918
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("64:ff9b::a00:1", False),  # NAT64 of 10.0.0.1
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("2002:a9fe:a9fe::", False),  # 6to4 of 169.254.169.254
        ("8.8.8.8", True),  # public IPv4
        ("1.1.1.1", True),  # public IPv4
        ("2606:4700::1111", True),  # public IPv6
        ("::ffff:8.8.8.8", True),  # IPv4-mapped public address: judged by the inside
        ("64:ff9b::808:808", True),  # NAT64 of a public address
        ("2002:808:808::", True),  # 6to4 of a public address
    ],
)
def test_default_policy(ip: str, allowed: bool) -> None:
    assert (STRICT.problem(ip) is None) is allowed


@pytest.mark.parametrize(
    ("networks", "ip", "allowed"),
    [
        (["10.0.0.0/8"], "10.1.2.3", True),  # a listed LAN
        (["10.0.0.0/8"], "::ffff:10.1.2.3", True),  # its IPv4-mapped form too
        (["10.0.0.0/8"], "192.168.1.1", False),  # other private ranges stay refused
        (["10.0.0.0/8"], "127.0.0.1", False),  # loopback is not in the list
        (["127.0.0.0/8"], "127.0.0.1", True),  # loopback listed explicitly
        (["192.168.1.7"], "192.168.1.7", True),  # a single host, no prefix length
        (["192.168.1.7"], "192.168.1.8", False),  # its neighbour is not listed
        (["10.1.2.3/8"], "10.200.0.1", True),  # host bits set: not strict
        (["fd00::/8"], "fd00::1", True),  # an IPv6 ULA network
        (["fd00::/8"], "fe80::1", False),  # link-local is not in it
        (["::1/128"], "127.0.0.1", False),  # IPv6 loopback does not allow IPv4 loopback
    ],
)
def test_allowed_networks_override(networks: list[str], ip: str, allowed: bool) -> None:
    assert (AddressPolicy(False, networks).problem(ip) is None) is allowed


@pytest.mark.parametrize(
    ("ip", "allowed"),
    [
        ("10.0.0.1", True),  # RFC 1918
        ("127.0.0.1", True),  # loopback
        ("169.254.169.254", True),  # link-local
        ("100.64.0.1", True),  # CGNAT
        ("8.8.8.8", True),  # public
        ("224.0.0.1", False),  # multicast stays refused
        ("ff02::1", False),  # IPv6 multicast stays refused
        ("0.0.0.0", False),  # unspecified stays refused
        ("::", False),  # IPv6 unspecified stays refused
        ("::ffff:0.0.0.0", False),  # unspecified, IPv4-mapped
        ("::ffff:224.0.0.1", False),  # multicast, IPv4-mapped
    ],
)
def test_allow_private(ip: str, allowed: bool) -> None:
    assert (AddressPolicy(True).problem(ip) is None) is allowed


@pytest.mark.parametrize(
    "text",
    [
        "garbage",  # not an address at all
        "",  # empty
        "localhost",  # a host name, never resolved here
        "127.1",  # shorthand IPv4 that inet_aton would accept
        "256.0.0.1",  # octet out of range
        "10.0.0.0/8",  # a network, not an address
    ],
)
@pytest.mark.parametrize("allow_private", [False, True])
def test_not_an_address_is_refused(text: str, allow_private: bool) -> None:
    problem = AddressPolicy(allow_private).problem(text)
    assert problem is not None
    assert "not an IP address" in problem


def test_refusal_names_the_address_and_the_way_out() -> None:
    problem = STRICT.problem("10.0.0.1")
    assert problem is not None
    assert "10.0.0.1" in problem
    assert "allowed_networks" in problem


WAY_OUT = (
    "; set delivery.allow_private_networks or list it in delivery.allowed_networks to deliver there"
)


@pytest.mark.parametrize(
    ("ip", "problem"),
    [
        # the attempt's error says what kind of address it was, and the config keys to change
        ("127.0.0.1", "127.0.0.1 is a loopback address" + WAY_OUT),
        ("::1", "::1 is a loopback address" + WAY_OUT),  # not the IPv4-compatible 0.0.0.1
        ("fe80::1%eth0", "fe80::1%eth0 is a link-local address" + WAY_OUT),
        ("fe80::1%eth0%1", "fe80::1%eth0%1 is a link-local address" + WAY_OUT),  # zone dropped
        ("10.0.0.1", "10.0.0.1 is a private address" + WAY_OUT),
        ("::2", "::2 is a private address" + WAY_OUT),  # IPv4-compatible 0.0.0.2
        ("100.64.0.1", "100.64.0.1 is not a globally routable address" + WAY_OUT),
        # no way out for these: even allow_private_networks refuses them
        ("0.0.0.0", "0.0.0.0 is unspecified"),
        ("::", ":: is unspecified"),
        ("224.0.0.1", "224.0.0.1 is multicast"),
        ("ff02::1", "ff02::1 is multicast"),
        ("example.com", "'example.com' is not an IP address"),
    ],
)
def test_refusal_says_why(ip: str, problem: str) -> None:
    assert STRICT.problem(ip) == problem
