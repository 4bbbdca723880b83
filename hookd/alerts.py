"""Alerts: a delivery that ended failed, an endpoint disabled.

Rules:
- Each alert is a warning log line, a count in `hookd_alerts_total`, and an internal
  event delivered through hookd itself (`hookd.entrega.falhou`,
  `hookd.endpoint.desativado`) to the endpoints subscribed to it by name or by
  `hookd.*` (a plain `*` does not take hookd's own events), so an operator can point a
  chat or on-call webhook at them.
- A failed delivery of a hookd event raises no alert: an alert endpoint that is down
  must not feed itself.
- Raising an alert never fails the caller: a database that refuses the event is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import msgspec

from hookd import ids, models
from hookd.clock import Clock
from hookd.core import envelope
from hookd.core.catalog import DisabledEndpoint, FailedDelivery
from hookd.metrics import Metrics
from hookd.store import NewDelivery, StorageError, Store

log = logging.getLogger("hookd.alerts")

DELIVERY_FAILED = "hookd.entrega.falhou"
ENDPOINT_DISABLED = "hookd.endpoint.desativado"


class Alerts:
    """Raises alerts; returns the deliveries they create, for the scheduler."""

    def __init__(self, store: Store, clock: Clock, metrics: Metrics) -> None:
        self._store = store
        self._clock = clock
        self._metrics = metrics

    async def raise_all(
        self, failed: Sequence[FailedDelivery], disabled: Sequence[DisabledEndpoint]
    ) -> list[NewDelivery]:
        """Store one internal event per alert, all in one write.

        Failed deliveries are counted in their endpoint's summary line already
        (`action=attempts.failed`); a disabled endpoint gets a warning line here.
        """
        now = self._clock.now()
        timestamp = envelope.format_timestamp(now)
        events = [
            (DELIVERY_FAILED, {**msgspec.structs.asdict(f), "em": models.iso(now)})
            for f in failed
            if not f.evento.startswith(envelope.RESERVED_PREFIX)
        ]
        failures = len(events)
        if failures:
            self._metrics.alerts.inc(("delivery_failed",), failures)
        if disabled:
            self._metrics.alerts.inc(("endpoint_disabled",), len(disabled))
        for endpoint in disabled:
            log.warning(
                "action=alert.endpoint_disabled endpoint=%s reason=%r",
                endpoint.endpointId,
                endpoint.motivo,
            )
            events.append(
                (ENDPOINT_DISABLED, {**msgspec.structs.asdict(endpoint), "em": models.iso(now)})
            )
        if not events:
            return []
        items = [
            (envelope.internal_event(name, data, timestamp), ids.event_id(now), None)
            for name, data in events
        ]
        try:
            results = await self._store.ingest(items, now)
        except StorageError as exc:
            log.error("action=alert.not_stored alerts=%d error=%s", len(items), exc)
            return []
        return [delivery for result in results for delivery in result.created]
