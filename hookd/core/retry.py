"""What happens after an attempt: delivered, retry later, or give up.

Rules (the spec's "Retentativas", DESIGN §1):
- The schedule is a list of delays, one per attempt: `schedule[0]` is the wait before
  attempt 1 (0: at once), `schedule[n]` the wait after attempt n failed before attempt
  n + 1. The default `[0, 60, 300, 900, 3600]` gives five attempts; after the last one
  fails the delivery is failed.
- A 2xx is delivered. Everything else (3xx, 4xx, 5xx, timeouts, network errors, refused
  addresses) is a failed attempt.
- On 429 and 503, `Retry-After` (seconds or an HTTP date) can push the next attempt
  later, up to twice the scheduled delay, never earlier. An unreadable value (whatever
  the receiver sent) is ignored.
- Attempts count within a round; `hookd retry` starts a new round at attempt 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from email.utils import parsedate_to_datetime

import msgspec

DEFAULT_SCHEDULE: tuple[float, ...] = (0.0, 60.0, 300.0, 900.0, 3600.0)
RETRY_AFTER_STATUSES = frozenset({429, 503})


class AttemptResult(msgspec.Struct, frozen=True, kw_only=True):
    """What one POST came to, as a value: a status code, or an error kind and message."""

    status_code: int | None = None
    error_kind: str | None = None  # timeout, connect, dns, tls, blocked, protocol, ...
    error: str | None = None
    retry_after: str | None = None
    excerpt: bytes = b""

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class Delivered(msgspec.Struct, frozen=True):
    """The receiver took it: the delivery is succeeded."""


class Retry(msgspec.Struct, frozen=True):
    """Try again `after` seconds from now."""

    after: float


class GiveUp(msgspec.Struct, frozen=True):
    """No attempts left: the delivery is failed."""

    reason: str


Decision = Delivered | Retry | GiveUp


def parse_retry_after(value: str, now: float) -> float | None:
    """Seconds from `now` that a Retry-After value asks for, or None when unreadable."""
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):  # whatever a receiver sends
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def decide(result: AttemptResult, attempt: int, schedule: Sequence[float], now: float) -> Decision:
    """The decision after attempt number `attempt` (1-based, within its round)."""
    if result.ok:
        return Delivered()
    if attempt >= len(schedule):
        return GiveUp(f"{attempt} attempts failed; last: {describe(result)}")
    delay = schedule[attempt]
    if result.status_code in RETRY_AFTER_STATUSES and result.retry_after:
        asked = parse_retry_after(result.retry_after, now)
        if asked is not None:
            delay = max(delay, min(asked, 2 * delay))
    return Retry(delay)


def describe(result: AttemptResult) -> str:
    """A short human account of an attempt, e.g. 'HTTP 500' or 'timeout: ...'."""
    if result.status_code is not None:
        return f"HTTP {result.status_code}"
    return f"{result.error_kind}: {result.error}"
