"""The one façade for every operation hookd offers: the API goes through it.

Rules (docs/ARCHITECTURE.md, "Layers" and "The path of an event"):
- Each operation does its write through the storage seam, then its effects, here and
  nowhere else: the scheduler is told of deliveries made due and of endpoints changed
  (an endpoint that stops receiving has its attempts in flight cut short), metrics are
  counted once the write is committed, alerts stored with their cause are logged and
  scheduled, and what ingest only reports (`conformance`) is recorded once stored.
- Handlers decode and check requests (domain rules) and encode answers; they never
  reach storage, the scheduler or the metrics themselves.
- The time of an operation is read once, from the clock, and passed to the write; ids
  come from `runtime.ids`.
- Data subjects (README, "Personal data"): ingest stores each event's subject hashes
  (`domain.subjects`, with the per-install key handed in) with it; an erasure goes in
  batches of ERASE_BATCH events, each a background job of the writer (it gives way to
  the other writes, so ingest goes on beside it), committed and then dropped from the
  scheduler, then is written to the audit log (hashes, never values) and the WAL
  truncated. Without
  a key (`storage.subject_index = false`) nothing is indexed and access and erasure
  answer 409.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import msgspec

from hookd import __version__
from hookd.db.backend import Backend
from hookd.db.errors import PartlyErased
from hookd.db.types import DISABLED_BY_HAND, ConfigSync, Ingested, NewDelivery, NewEvent
from hookd.delivery.alerts import alert_events
from hookd.delivery.client import USER_AGENT
from hookd.delivery.scheduler import Scheduler
from hookd.domain import envelope, subjects, views
from hookd.domain.catalog import Catalog, EventType, Finding
from hookd.domain.errors import conflict, invalid, not_found
from hookd.domain.signing import sign
from hookd.domain.stats import PeriodCounts
from hookd.runtime import ids
from hookd.runtime.clock import Clock
from hookd.runtime.conformance import Conformance
from hookd.runtime.metrics import Metrics

TEST_EVENT = "hookd.teste"
RECEIVING = frozenset({"url", "secret", "enabled"})  # changes that start a lane anew
ERASE_BATCH = 100  # events an erasure hands the writer at once (and then the scheduler)


class Arrival(NamedTuple):
    """One event to ingest: prepared, with what the catalog only reported about it, and
    its idempotency key and position in its batch (-1: a single event), and the subject
    hashes of the people it names (`Service.subject_hashes`)."""

    event: envelope.PreparedEvent
    findings: Sequence[Finding] = ()
    key: str | None = None
    key_item: int = -1
    subjects: tuple[bytes, ...] = ()


class Service:
    """Every operation, with its effects; one per daemon."""

    def __init__(
        self,
        store: Backend,
        clock: Clock,
        scheduler: Scheduler,
        *,
        metrics: Metrics,
        catalog: Catalog,
        secret_overlap: float,
        subject_key: bytes | None = None,
        subjects_stored: Callable[[int], None] = lambda _: None,
    ) -> None:
        self.clock = clock
        self.catalog = catalog
        # How long a rotated secret keeps signing unless a rotation says otherwise
        # (delivery.secret_overlap; a reload may change it, as it may the catalog).
        self.secret_overlap = secret_overlap
        self._store = store
        self._scheduler = scheduler
        self._metrics = metrics
        self._conformance = Conformance(clock, metrics)
        self._subjects = None if subject_key is None else subjects.Hasher(subject_key)
        self._subject_key = subject_key
        # Told how many events naming someone a write stored (the subject indexer's wake).
        self._subjects_stored = subjects_stored

    # -- events -------------------------------------------------------------------------

    async def ingest(self, arrivals: Sequence[Arrival], now: float) -> list[Ingested]:
        """Store events, all or nothing, and send what they created."""
        fresh = [
            NewEvent(a.event, ids.event_id(now), a.key, a.key_item, a.subjects) for a in arrivals
        ]
        results = await self._store.ingest(fresh, now)
        self._created(results)
        stored = zip(arrivals, results, strict=True)
        if naming := sum(1 for a, r in stored if a.subjects and not r.replayed):
            self._subjects_stored(naming)
        for arrival, result in zip(arrivals, results, strict=True):
            if arrival.findings and not result.replayed:
                self._conformance.record(arrival.event.event, arrival.findings)
        return results

    async def list_events(
        self, limit: int, before: int | None, event_type: str | None, since: float | None
    ) -> views.Page[views.Event]:
        """Events newest first."""
        return await self._store.list_events(limit, before, event_type, since)

    async def get_event(self, event_id: str) -> views.Event:
        """One event with its deliveries."""
        return await self._store.get_event(event_id)

    def event_types(self) -> list[EventType]:
        """The catalog, each type with what accepted events departed from it in."""
        return [self._with_findings(kind) for kind in self.catalog.types()]

    def event_type(self, name: str) -> EventType:
        """One type of the catalog (404 when unknown)."""
        kind = self.catalog.get(name)
        if kind is None:
            raise not_found(f"event type {name[:80]!r}")
        return self._with_findings(kind)

    async def send_example(self, name: str) -> Ingested:
        """Ingest the catalog's example of `name` as a new event (the console's "send this
        example"); 404 for an unknown type, 422 for one without an example to send."""
        kind = self.event_type(name)
        if kind.example is None or not kind.accepted_at_ingest:
            raise invalid(f"event type {name[:80]!r} has no example a client may send")
        now = self.clock.now()
        decoded = envelope.decode_event(msgspec.json.encode(kind.example))
        [incoming], [extra] = decoded.requests, decoded.extras
        event = envelope.prepare(incoming, envelope.format_timestamp(now), extra=extra)
        [result] = await self.ingest([Arrival(event)], now)
        return result

    # -- data subjects ------------------------------------------------------------------

    def subject_hashes(self, event_type: str, data: dict[str, Any]) -> tuple[bytes, ...]:
        """The subject index's hashes of the people an event's `data` names."""
        if self._subjects is None:
            return ()
        fields = self.catalog.subject_fields(event_type)
        return self._subjects.event_hashes(fields, data) if fields else ()

    def _selector_hashes(self, chosen: Sequence[subjects.Selector]) -> list[bytes]:
        if self._subject_key is None:
            raise conflict("the subject index is off (storage.subject_index = false)")
        return subjects.selector_hashes(self._subject_key, chosen)

    async def subject_events(
        self, chosen: Sequence[subjects.Selector], limit: int, before: int | None
    ) -> views.Page[views.SubjectEvent]:
        """What hookd holds about a person: the events naming them, with deliveries."""
        return await self._store.subject_events(self._selector_hashes(chosen), limit, before)

    async def erase_subject(self, chosen: Sequence[subjects.Selector], origin: str) -> views.Erased:
        """Erase every event naming a person; their pending deliveries are never sent."""
        hashes = self._selector_hashes(chosen)
        seqs = await self._store.subject_event_seqs(hashes)
        events = erased = excerpts = 0
        for start in range(0, len(seqs), ERASE_BATCH):
            try:
                done = await self._store.erase_events(
                    seqs[start : start + ERASE_BATCH], self.clock.now()
                )
            except PartlyErased as exc:  # what was committed is erased: never sent
                self._scheduler.deliveries_erased(exc.erased)
                raise
            self._scheduler.deliveries_erased(done.erased)
            events, erased = events + done.events, erased + len(done.erased)
            excerpts += done.excerpts
        fields = [
            f"events={events}",
            f"deliveries_erased={erased}",
            f"attempts_cleared={excerpts}",
            *(f"{s.kind}={h.hex()}" for s, h in zip(chosen, hashes, strict=True)),
        ]
        await self._store.audit_erasure(self.clock.now(), origin, fields)
        truncated = await self._store.truncate_wal()
        return views.Erased(
            events=events,
            deliveries_erased=erased,
            attempts_cleared=excerpts,
            wal_truncated=truncated,
        )

    # -- endpoints ----------------------------------------------------------------------

    async def create_endpoint(self, fields: dict[str, Any], origin: str) -> views.Endpoint:
        """A new endpoint with these fields (an id is given here)."""
        fields = {**fields, "id": ids.endpoint_id()}
        return await self._store.create_endpoint(fields, self.clock.now(), origin=origin)

    async def list_endpoints(self, limit: int, after: int | None) -> views.Page[views.Endpoint]:
        """Endpoints in creation order, as they stand now."""
        return await self._store.list_endpoints(limit, after, self.clock.now())

    async def get_endpoint(self, endpoint_id: str) -> views.Endpoint:
        """One endpoint as it stands now."""
        return await self._store.get_endpoint(endpoint_id, self.clock.now())

    async def update_endpoint(
        self, endpoint_id: str, changes: dict[str, Any], origin: str
    ) -> views.Endpoint:
        """Change an endpoint; a disable stores its alert with it."""
        endpoint, alerts = await self._store.update_endpoint(
            endpoint_id, changes, self.clock.now(), origin=origin, alert=alert_events
        )
        if changes.keys() & RECEIVING:
            self._scheduler.endpoint_changed(endpoint.id, receiving=endpoint.enabled)
        if alerts:
            self._scheduler.alerts_stored(alerts, [(endpoint.id, DISABLED_BY_HAND)])
        return endpoint

    async def delete_endpoint(self, endpoint_id: str, origin: str) -> None:
        """Delete an endpoint; its pending deliveries are cancelled."""
        await self._store.delete_endpoint(endpoint_id, self.clock.now(), origin=origin)
        self._scheduler.endpoint_changed(endpoint_id, receiving=False)

    async def rotate_secret(
        self,
        endpoint_id: str,
        secret: str,
        overlap: float,
        origin: str,
        activate_at: float | None = None,
    ) -> views.Endpoint:
        """A new secret, at once or staged for `activate_at`."""
        endpoint = await self._store.rotate_secret(
            endpoint_id, secret, overlap, self.clock.now(), origin=origin, activate_at=activate_at
        )
        self._scheduler.endpoint_changed(endpoint.id, receiving=endpoint.enabled)
        return endpoint

    async def sync_config_endpoints(self, declared: Sequence[dict[str, Any]]) -> ConfigSync:
        """Make the config file's endpoints (`config.declared_endpoints`) the stored ones,
        at start and at each reload; those that now receive differently start anew."""
        synced = await self._store.sync_config_endpoints(declared, self.clock.now())
        enabled = {fields["id"]: fields.get("enabled", True) for fields in declared}
        for endpoint_id, fields in synced.changed.items():
            if RECEIVING.intersection(fields):
                self._scheduler.endpoint_changed(endpoint_id, receiving=enabled[endpoint_id])
        for endpoint_id in synced.removed:
            self._scheduler.endpoint_changed(endpoint_id, receiving=False)
        return synced

    async def send_test(self, endpoint_id: str) -> Ingested:
        """A `hookd.teste` event to this endpoint alone."""
        now = self.clock.now()
        data = {"endpointId": endpoint_id, "mensagem": "Teste de webhook do hookd"}
        event = envelope.internal_event(TEST_EVENT, data, envelope.format_timestamp(now))
        result = await self._store.send_test_event(endpoint_id, event, ids.event_id(now), now)
        self._created([result])
        return result

    async def replay(self, endpoint_id: str, status: str, since: float) -> int:
        """Re-queue an endpoint's deliveries with `status` created since `since` (422 for
        a status that cannot be replayed: pending, or erased)."""
        if status not in views.REPLAYABLE_STATUSES:
            raise invalid(f"status must be one of {', '.join(views.REPLAYABLE_STATUSES)}")
        count = await self._store.replay_endpoint(endpoint_id, status, since, self.clock.now())
        self._scheduler.rescan(endpoint_id)
        return count

    # -- deliveries ---------------------------------------------------------------------

    async def list_deliveries(
        self, limit: int, before: int | None, filters: Mapping[str, str | float]
    ) -> views.Page[views.Delivery]:
        """Deliveries newest first."""
        return await self._store.list_deliveries(limit, before, filters)

    async def delivery_headers(self, delivery: views.Delivery) -> list[tuple[str, str]]:
        """The headers of the delivery's last attempt as hookd sent them (its first, when
        none was made yet), signatures included; never a secret."""
        found = await self._store.signing_of(delivery.id)
        if found is None:
            raise not_found(f"delivery {delivery.id}")
        url, body, secrets = found
        log = delivery.attempt_log or []
        at = self.clock.now()
        if log and log[-1].started_at:
            at = datetime.fromisoformat(log[-1].started_at.replace("Z", "+00:00")).timestamp()
        secret, previous, upcoming = secrets.signing(at)
        return [
            ("Host", urlsplit(url).netloc),
            ("Content-Type", "application/json"),
            ("User-Agent", USER_AGENT),
            ("X-Webhook-Id", delivery.event_id),
            ("X-Webhook-Event", delivery.event),
            ("X-Webhook-Timestamp", str(int(at))),
            ("X-Webhook-Attempt", str(max(delivery.attempts, 1))),
            *sign(secret, delivery.event_id, int(at), body, previous, upcoming),
        ]

    async def deliveries_by_id(self, delivery_ids: Sequence[int]) -> list[views.Delivery]:
        """These deliveries as they stand (the console's live updates)."""
        return await self._store.deliveries_by_id(delivery_ids)

    async def get_delivery(self, delivery_id: int) -> views.Delivery:
        """One delivery with every attempt."""
        return await self._store.get_delivery(delivery_id)

    async def retry_delivery(self, delivery_id: int) -> views.Delivery:
        """Attempt a delivery now; a finished one starts a new round."""
        now = self.clock.now()
        delivery = await self._store.retry_delivery(delivery_id, now)
        self._scheduler.deliveries_created([NewDelivery(delivery.id, delivery.endpoint_id, now)])
        return delivery

    # -- figures ------------------------------------------------------------------------

    async def minute_series(self, now: float) -> list[tuple[int, PeriodCounts]]:
        """Every endpoint's counters summed per minute of the last hour (the console's
        charts)."""
        return await self._store.minute_series(now)

    async def stats(self) -> views.Stats:
        """Every endpoint's health, backlog and windowed statistics."""
        now = self.clock.now()
        return views.Stats(views.iso(now), await self._store.endpoint_stats(None, now))

    async def endpoint_stats(self, endpoint_id: str) -> views.EndpointStats:
        """One endpoint's (404 when unknown)."""
        [stats] = await self._store.endpoint_stats(endpoint_id, self.clock.now())
        return stats

    async def list_audit(
        self, limit: int, before: int | None, filters: dict[str, Any]
    ) -> views.Page[views.AuditEntry]:
        """Endpoint changes newest first."""
        return await self._store.list_audit(limit, before, filters)

    async def status(self) -> views.Status:
        """Counts, the age of the oldest pending delivery, and how secrets are stored."""
        status = await self._store.status(__version__, self.clock.now())
        return msgspec.structs.replace(status, secrets_key=self._store.secrets_key)

    async def metrics_text(self) -> bytes:
        """`GET /metrics`: the backlog read now, every family rendered."""
        backlog = await self._store.backlog()
        self._metrics.set_backlog(backlog.pending, backlog.file_bytes, self.clock.now())
        return self._metrics.render()

    # -- effects ------------------------------------------------------------------------

    def _created(self, results: Sequence[Ingested]) -> None:
        self._scheduler.deliveries_created([d for result in results for d in result.created])
        counter = self._metrics.events_ingested
        for result in results:
            if not result.replayed:
                counter.inc((result.accepted.event,))

    def _with_findings(self, kind: EventType) -> EventType:
        found = self._conformance.of_type(kind.name)
        return msgspec.structs.replace(kind, nonconforming=found) if found else kind
