"""Alerts: a delivery that ended failed, an endpoint disabled.

Rules:
- Each alert is an internal event (`hookd.entrega.falhou`, `hookd.endpoint.desativado`)
  delivered through hookd itself to the endpoints subscribed to it by name or by
  `hookd.*` (a plain `*` does not take hookd's own events), so an operator can point a
  chat or on-call webhook at them; a warning log line; and a count in
  `hookd_alerts_total`.
- The alert event is written in the same transaction as its cause (an outbox): the
  store calls `alert_events` from the write that records the final failure or disables
  the endpoint, so a crash can lose neither without the other, and an endpoint disabled
  while hookd stops still raises its alert. `alert_events` is therefore pure: it runs
  on the writer thread, with the time of that write.
- What happens once the write is on disk (log lines, counts, scheduling the alerts'
  own deliveries) is `Alerts.stored`, on the trio thread.
- A failed delivery of a hookd event raises no alert: an alert endpoint that is down
  must not feed itself.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import msgspec

from hookd import ids, models
from hookd.core import envelope
from hookd.core.catalog import DisabledEndpoint, FailedDelivery
from hookd.metrics import Metrics
from hookd.store import Ingested, NewDelivery, NewEvent

log = logging.getLogger("hookd.alerts")

DELIVERY_FAILED = "hookd.entrega.falhou"
ENDPOINT_DISABLED = "hookd.endpoint.desativado"


def alert_events(
    failed: Sequence[FailedDelivery], disabled: Sequence[DisabledEndpoint], now: float
) -> list[NewEvent]:
    """The internal events of these alerts, to store in the write that raised them."""
    timestamp = envelope.format_timestamp(now)
    when = models.iso(now)
    events = [
        (DELIVERY_FAILED, {**msgspec.structs.asdict(f), "em": when})
        for f in failed
        if not f.evento.startswith(envelope.RESERVED_PREFIX)
    ]
    events += [(ENDPOINT_DISABLED, {**msgspec.structs.asdict(d), "em": when}) for d in disabled]
    return [
        NewEvent(envelope.internal_event(name, data, timestamp), ids.event_id(now))
        for name, data in events
    ]


class Alerts:
    """Logs and counts alerts once stored; returns the deliveries they created."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def stored(
        self, alerts: Sequence[Ingested], disabled: Sequence[tuple[str, str]]
    ) -> list[NewDelivery]:
        """Alerts committed with their cause; `disabled` the endpoints disabled by it,
        with the reason. Failed deliveries are counted in their endpoint's summary line
        already (`action=attempts.failed`); a disabled endpoint gets a warning line here."""
        failures = sum(1 for alert in alerts if alert.accepted.event == DELIVERY_FAILED)
        if failures:
            self._metrics.alerts.inc(("delivery_failed",), failures)
        if disabled:
            self._metrics.alerts.inc(("endpoint_disabled",), len(disabled))
        for endpoint_id, reason in disabled:
            log.warning("action=alert.endpoint_disabled endpoint=%s reason=%r", endpoint_id, reason)
        return [delivery for alert in alerts for delivery in alert.created]
