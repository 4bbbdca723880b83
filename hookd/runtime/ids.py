"""Identifiers: time-ordered event ids and random endpoint ids.

Rules: ids are `prefix_` + lower-case hex, header-safe and URL-safe. Event ids are 128
bits: 48 bits of milliseconds first, so they sort by creation time, then 80 random bits
from a generator seeded once from the OS (ids must be unique, not unguessable; secrets
come from `random_bytes`, which asks the OS every time).
"""

from __future__ import annotations

import random
import secrets

_random = random.Random(secrets.randbits(256))


def event_id(now: float) -> str:
    """A new event id, time-ordered at millisecond resolution."""
    millis = int(now * 1000) & ((1 << 48) - 1)
    return f"evt_{(millis << 80) | _random.getrandbits(80):032x}"


def endpoint_id() -> str:
    """A new random endpoint id."""
    return f"ep_{secrets.randbits(64):016x}"


def random_bytes(count: int) -> bytes:
    """`count` bytes from the OS's secure source."""
    return secrets.token_bytes(count)
