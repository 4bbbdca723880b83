"""Identifiers: time-ordered event ids and random endpoint ids.

Rules: ids are `prefix_` + 26 characters of lower-case Crockford base32, header-safe and
URL-safe. Event ids start with 48 bits of milliseconds, so they sort by creation time,
followed by 80 random bits from a generator seeded once from the OS (ids must be unique,
not unguessable; secrets come from `random_bytes`, which asks the OS every time).
"""

from __future__ import annotations

import base64
import random
import secrets

_CROCKFORD = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789abcdefghjkmnpqrstvwxyz"
)
_random = random.Random(secrets.randbits(256))


def _base32(value: int) -> str:
    """128 bits as 26 base32 characters, in the same order as the numbers."""
    encoded = base64.b32encode(value.to_bytes(16, "big")).translate(_CROCKFORD)
    return encoded[:26].decode("ascii")


def event_id(now: float) -> str:
    """A new event id, time-ordered at millisecond resolution."""
    millis = int(now * 1000) & ((1 << 48) - 1)
    return "evt_" + _base32((millis << 80) | _random.getrandbits(80))


def endpoint_id() -> str:
    """A new random endpoint id."""
    return "ep_" + _base32(secrets.randbits(128))[:16]


def random_bytes(count: int) -> bytes:
    """`count` bytes from the OS's secure source."""
    return secrets.token_bytes(count)
