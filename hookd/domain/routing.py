"""Which endpoints get an event: subscription patterns matched against event types.

Rules:
- A pattern is an event name (`cliente.criado`), a prefix with `.*` matching any depth
  below it (`cliente.*` matches `cliente.criado`, `whatsapp.*` matches
  `whatsapp.mensagem.recebida`, but `cliente.*` does not match `cliente` itself), or `*`
  for every event of the CRM. hookd's own events (`hookd.` names: alerts) go only to
  endpoints that name them or `hookd.*`.
- Only enabled endpoints receive. The router answers in endpoint order and caches the
  answer per event type; build a new router when endpoints change.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import msgspec

MAX_PATTERNS = 100
_PATTERN = re.compile(r"\*|[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*(?:\.\*)?")


def pattern_error(pattern: object) -> str | None:
    """Why `pattern` is not a valid subscription pattern, or None when it is."""
    if not isinstance(pattern, str):
        return f"a pattern must be a string, got {type(pattern).__name__}"
    if len(pattern) > 128 or _PATTERN.fullmatch(pattern) is None:
        return (
            f"{pattern[:80]!r} is not a pattern: use an event name like 'cliente.criado', "
            "a prefix like 'cliente.*', or '*'"
        )
    if "." not in pattern and pattern != "*":
        return f"{pattern!r} is not a pattern: event names are dotted, e.g. '{pattern}.*'"
    return None


def matches(pattern: str, event_type: str) -> bool:
    """True when `pattern` subscribes to `event_type`."""
    if pattern == "*":
        return not event_type.startswith("hookd.")
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


class Subscription(msgspec.Struct, frozen=True):
    """What the router needs of an endpoint."""

    endpoint_id: str
    patterns: tuple[str, ...]
    enabled: bool = True


class Router:
    """Resolves an event type to the ids of the enabled endpoints subscribed to it."""

    def __init__(self, subscriptions: Iterable[Subscription]) -> None:
        self._subscriptions = [s for s in subscriptions if s.enabled]
        self._cache: dict[str, Sequence[str]] = {}

    def endpoints_for(self, event_type: str) -> Sequence[str]:
        """Endpoint ids subscribed to `event_type`, in a stable order."""
        found = self._cache.get(event_type)
        if found is None:
            found = tuple(
                s.endpoint_id
                for s in self._subscriptions
                if any(matches(p, event_type) for p in s.patterns)
            )
            if len(self._cache) < 10_000:
                self._cache[event_type] = found
        return found
