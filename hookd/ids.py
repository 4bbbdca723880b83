"""Identifiers: time-ordered event ids and random endpoint ids.

Rules: ids are `prefix_` + Crockford base32, header-safe and URL-safe. Event ids start
with 48 bits of milliseconds so they sort by creation time; 80 random bits follow.
"""

from __future__ import annotations

import secrets

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def _base32(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def event_id(now: float) -> str:
    """A new event id, time-ordered at millisecond resolution."""
    millis = int(now * 1000) & ((1 << 48) - 1)
    return "evt_" + _base32(millis, 10) + _base32(secrets.randbits(80), 16)


def endpoint_id() -> str:
    """A new random endpoint id."""
    return "ep_" + _base32(secrets.randbits(80), 16)


def random_bytes(count: int) -> bytes:
    """`count` bytes from the OS's secure source."""
    return secrets.token_bytes(count)
