"""What ingest accepted although it departs from the event catalog.

Rules:
- With `ingest.validate = "report"` (the default) an event is refused only for what
  hookd cannot relay without (`domain.catalog`); every other departure is a `Finding`
  recorded here: counted in `hookd_events_nonconforming_total{event,field}`, logged at
  INFO at most once a minute per type and field, and kept (count, last time, last
  problem) for `GET /v1/event-types/{name}`.
- The log line names the type and the field, never the problem: a problem may quote the
  value sent (`Invalid enum value '...'`), and logs carry no event data.
- Memory and metric series stay bounded: at most MAX_SERIES (type, field) pairs are
  told apart; the rest count under the type `(other)`.
- Counts start at zero with the process, like every counter of `GET /metrics`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from hookd.domain import views
from hookd.domain.catalog import Finding, Nonconformity
from hookd.runtime.clock import Clock
from hookd.runtime.metrics import Metrics

log = logging.getLogger("hookd.ingest")

MAX_SERIES = 1000
LOG_EVERY = 60.0  # seconds between two log lines about the same type and field
OTHER = "(other)"
LONE_SURROGATE = Finding("(string)", "a lone UTF-16 surrogate escape, replaced by U+FFFD")


class _Seen:
    __slots__ = ("count", "last_at", "logged_at", "problem")

    def __init__(self) -> None:
        self.count = 0
        self.last_at = 0.0
        self.logged_at = -LOG_EVERY
        self.problem = ""


class Conformance:
    """Counts, logs and keeps the findings of accepted events."""

    def __init__(self, clock: Clock, metrics: Metrics) -> None:
        self._clock = clock
        self._counter = metrics.events_nonconforming
        self._seen: dict[tuple[str, str], _Seen] = {}

    def record(self, event: str, findings: Sequence[Finding]) -> None:
        """Count the `findings` of one accepted event of type `event`."""
        now = self._clock.now()
        for finding in findings:
            key = (event, finding.field)
            seen = self._seen.get(key)
            if seen is None:
                if len(self._seen) >= MAX_SERIES:
                    key = (OTHER, OTHER)
                seen = self._seen.get(key) or self._seen.setdefault(key, _Seen())
            seen.count += 1
            seen.last_at = now
            seen.problem = finding.problem
            self._counter.inc(key)
            if now - seen.logged_at >= LOG_EVERY:
                seen.logged_at = now
                log.info(
                    "action=event.nonconforming event=%s field=%s count=%d",
                    key[0],
                    key[1],
                    seen.count,
                )

    def of_type(self, event: str) -> list[Nonconformity]:
        """What accepted events of type `event` departed in, most frequent first."""
        found = [
            Nonconformity(
                field=field,
                count=seen.count,
                last_seen_at=views.iso(seen.last_at) or "",
                last_problem=seen.problem,
            )
            for (kind, field), seen in self._seen.items()
            if kind == event
        ]
        return sorted(found, key=lambda n: -n.count)
