"""`SqliteBackend`: the `Backend` on one SQLite file, through `engine.Engine`.

Rules (docs/ARCHITECTURE.md, "Storage"):
- Thin: each operation hands a query module's function (events, endpoints, deliveries,
  stats, retention, audit) to the engine's writer or readers, and composes them only
  where one write spans table groups (alerts stored with the change that raised them).
- It owns the caches the writes share on the writer thread: the routing cache
  (`endpoints.Routes`, dropped on every endpoint change and every rollback) and the
  statistics pruner's minute.
- Each operation's contract is documented on `backend.Backend`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import apsw

from hookd.db import (
    audit,
    deliveries,
    endpoints,
    events,
    retention,
    schema,
    sealing,
    stats,
    subjects,
)
from hookd.db.engine import Engine
from hookd.db.errors import PartlyErased, StorageError
from hookd.db.events import ingest as ingest_events
from hookd.db.types import (
    AlertBuilder,
    Backlog,
    ConfigSync,
    Erasure,
    Ingested,
    NewEvent,
    Purged,
    Recorded,
    RetentionDue,
)
from hookd.domain import views
from hookd.domain.attempts import AttemptRecord, Job
from hookd.domain.catalog import DisabledEndpoint, FailedDelivery
from hookd.domain.endpoints import Secrets
from hookd.domain.envelope import PreparedEvent
from hookd.domain.stats import PeriodCounts


class SqliteBackend:
    """hookd's SQLite database. Open with `await SqliteBackend.open(...)`, close with
    `await aclose()`."""

    def __init__(self, engine: Engine, sealer: sealing.Sealer) -> None:
        self.engine = engine
        self.secrets_key = sealer.current  # the key id endpoint secrets are sealed under
        self._routes = endpoints.Routes()
        self._pruner = stats.Pruner()
        engine.on_rollback = self._routes.invalidate

    @classmethod
    async def open(
        cls, path: str, durability: str = "full", ring: Sequence[bytes] | None = None
    ) -> SqliteBackend:
        """Open (creating and migrating when needed) the database at `path`; endpoint
        secrets are sealed under the first key of `ring`, or stored in clear without one
        (db.sealing: SealError when a stored one does not open)."""
        sealer = sealing.Sealer(ring)

        def prepare(conn: apsw.Connection) -> None:
            schema.migrate(conn)
            if sealer.seal_stored(conn):  # leave no secret in clear in the WAL either
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

        return cls(await Engine.open(path, durability, prepare, sealer.register), sealer)

    @property
    def on_commit(self) -> Callable[[float], None] | None:
        """Told how long each group commit took, on the writer thread (`GET /metrics`)."""
        return self.engine.on_commit

    @on_commit.setter
    def on_commit(self, observe: Callable[[float], None] | None) -> None:
        self.engine.on_commit = observe

    async def aclose(self) -> None:
        await self.engine.aclose()

    def _alerts(
        self,
        conn: apsw.Connection,
        alert: AlertBuilder | None,
        failed: Sequence[FailedDelivery],
        gone: Sequence[DisabledEndpoint],
        now: float,
    ) -> list[Ingested]:
        """Store the alerts of `failed` deliveries and `gone` endpoints, if any."""
        if alert is None or not (failed or gone):
            return []
        return ingest_events(conn, self._routes, alert(failed, gone, now), now)

    # -- events -------------------------------------------------------------------------

    async def ingest(self, events: Sequence[NewEvent], now: float) -> list[Ingested]:
        return await self.engine.write(lambda conn: ingest_events(conn, self._routes, events, now))

    async def get_event(self, event_id: str) -> views.Event:
        return await self.engine.read(lambda conn: events.get(conn, event_id))

    async def list_events(
        self, limit: int, before: int | None, event_type: str | None, since: float | None
    ) -> views.Page[views.Event]:
        return await self.engine.read(
            lambda conn: events.list_page(conn, limit, before, event_type, since)
        )

    # -- data subjects ------------------------------------------------------------------

    async def subject_events(
        self, hashes: Sequence[bytes], limit: int, before: int | None
    ) -> views.Page[views.SubjectEvent]:
        return await self.engine.read(lambda conn: subjects.list_page(conn, hashes, limit, before))

    async def subject_event_seqs(self, hashes: Sequence[bytes]) -> list[int]:
        return await self.engine.read(lambda conn: subjects.event_seqs(conn, hashes))

    async def subjects_behind(self) -> bool:
        return await self.engine.read(subjects.behind)

    async def index_subjects(self, limit: int) -> int:
        return await self.engine.write(lambda conn: subjects.catch_up(conn, limit))

    async def until_no_writes(self) -> None:
        await self.engine.until_no_writes()

    async def erase_events(self, seqs: Sequence[int], now: float) -> Erasure:
        eraser = subjects.Eraser(seqs, now, self.engine.others_waiting)
        try:
            return Erasure(*await self.engine.in_steps(eraser))
        except StorageError as exc:
            raise PartlyErased(str(exc), eraser.committed) from exc

    async def audit_erasure(self, now: float, origin: str, fields: Sequence[str]) -> None:
        await self.engine.write(lambda conn: subjects.audit(conn, now, origin, fields))

    async def truncate_wal(self) -> bool:
        return await self.engine.truncate_wal()

    # -- endpoints ----------------------------------------------------------------------

    async def create_endpoint(
        self, fields: dict[str, Any], now: float, *, origin: str
    ) -> views.Endpoint:
        return await self.engine.write(
            lambda conn: endpoints.create(conn, self._routes, fields, now, origin)
        )

    async def get_endpoint(self, endpoint_id: str, now: float) -> views.Endpoint:
        return await self.engine.read(lambda conn: endpoints.get(conn, endpoint_id, now))

    async def list_endpoints(
        self, limit: int, after: int | None, now: float
    ) -> views.Page[views.Endpoint]:
        return await self.engine.read(lambda conn: endpoints.list_page(conn, limit, after, now))

    async def update_endpoint(
        self,
        endpoint_id: str,
        changes: dict[str, Any],
        now: float,
        *,
        origin: str,
        alert: AlertBuilder | None = None,
    ) -> tuple[views.Endpoint, list[Ingested]]:
        def op(conn: apsw.Connection) -> tuple[views.Endpoint, list[Ingested]]:
            endpoint, gone = endpoints.update(conn, self._routes, endpoint_id, changes, now, origin)
            return endpoint, self._alerts(conn, alert, [], [gone] if gone else [], now)

        return await self.engine.write(op)

    async def rotate_secret(
        self,
        endpoint_id: str,
        secret: str,
        overlap: float,
        now: float,
        *,
        origin: str,
        activate_at: float | None = None,
    ) -> views.Endpoint:
        return await self.engine.write(
            lambda conn: endpoints.rotate_secret(
                conn, endpoint_id, secret, overlap, now, origin, activate_at
            )
        )

    async def delete_endpoint(self, endpoint_id: str, now: float, *, origin: str) -> None:
        await self.engine.write(
            lambda conn: endpoints.delete(conn, self._routes, endpoint_id, now, origin)
        )

    async def sync_config_endpoints(
        self, declared: Iterable[dict[str, Any]], now: float
    ) -> ConfigSync:
        wanted = list(declared)
        return await self.engine.write(
            lambda conn: endpoints.sync_config(conn, self._routes, wanted, now)
        )

    async def send_test_event(
        self, endpoint_id: str, event: PreparedEvent, event_id: str, now: float
    ) -> Ingested:
        return await self.engine.write(
            lambda conn: events.send_test(conn, endpoint_id, event, event_id, now)
        )

    # -- the scheduler ------------------------------------------------------------------

    async def endpoints_with_pending(self) -> list[str]:
        return await self.engine.read(deliveries.endpoints_with_pending)

    async def due_rows(
        self, endpoint_id: str, after: tuple[float, int], until: float, limit: int
    ) -> tuple[list[tuple[int, float]], float | None]:
        return await self.engine.read(
            lambda conn: deliveries.due_rows(conn, endpoint_id, after, until, limit)
        )

    async def load_jobs(self, delivery_ids: Sequence[int]) -> dict[int, Job]:
        return await self.engine.read(lambda conn: deliveries.load_jobs(conn, delivery_ids))

    async def record_attempts(
        self,
        records: Sequence[AttemptRecord],
        disable_after: float = 0.0,
        alert: AlertBuilder | None = None,
    ) -> Recorded:
        def op(conn: apsw.Connection) -> Recorded:
            moved, gone, failed = deliveries.record(
                conn, self._routes, self._pruner, records, disable_after
            )
            now = max(record.finished_at for record in records)
            stored = self._alerts(conn, alert, failed, gone, now)
            return Recorded(moved, [(e.endpointId, e.motivo) for e in gone], stored)

        return await self.engine.write(op)

    # -- deliveries, statistics, status -------------------------------------------------

    async def list_deliveries(
        self, limit: int, before: int | None, filters: Mapping[str, str | float]
    ) -> views.Page[views.Delivery]:
        return await self.engine.read(
            lambda conn: deliveries.list_page(conn, limit, before, filters)
        )

    async def signing_of(self, delivery_id: int) -> tuple[str, bytes, Secrets] | None:
        return await self.engine.read(lambda conn: deliveries.signing_of(conn, delivery_id))

    async def minute_series(self, now: float) -> list[tuple[int, PeriodCounts]]:
        return await self.engine.read(lambda conn: stats.minute_series(conn, now))

    async def deliveries_by_id(self, delivery_ids: Sequence[int]) -> list[views.Delivery]:
        return await self.engine.read(lambda conn: deliveries.by_id(conn, delivery_ids))

    async def get_delivery(self, delivery_id: int) -> views.Delivery:
        return await self.engine.read(lambda conn: deliveries.get(conn, delivery_id))

    async def retry_delivery(self, delivery_id: int, now: float) -> views.Delivery:
        return await self.engine.write(lambda conn: deliveries.retry(conn, delivery_id, now))

    async def replay_endpoint(self, endpoint_id: str, status: str, since: float, now: float) -> int:
        return await self.engine.write(
            lambda conn: deliveries.replay(conn, endpoint_id, status, since, now)
        )

    async def endpoint_stats(
        self, endpoint_id: str | None, now: float
    ) -> list[views.EndpointStats]:
        return await self.engine.read(lambda conn: stats.endpoint_stats(conn, endpoint_id, now))

    async def status(self, version: str, now: float) -> views.Status:
        return await self.engine.read(lambda conn: stats.status(conn, version, now))

    async def backlog(self) -> Backlog:
        return await self.engine.read(lambda conn: stats.backlog(conn, self.engine.path))

    # -- retention ----------------------------------------------------------------------

    async def retention_due(self, cutoff: float) -> RetentionDue:
        return await self.engine.read(lambda conn: retention.due(conn, cutoff))

    async def purge_finished(self, cutoff: float, limit: int) -> Purged:
        return await self.engine.write(lambda conn: retention.purge_finished(conn, cutoff, limit))

    async def sweep_events(self, cutoff: float, after: int, limit: int) -> tuple[int, int | None]:
        return await self.engine.write(
            lambda conn: retention.sweep_events(conn, cutoff, after, limit)
        )

    async def vacuum(self, pages: int) -> tuple[int, int]:
        if pages < 1:
            raise ValueError("vacuum needs a number of pages of at least 1")
        return await self.engine.write(lambda conn: retention.vacuum(conn, pages))

    async def checkpoint(self) -> None:
        await self.engine.read(retention.checkpoint)

    # -- audit --------------------------------------------------------------------------

    async def list_audit(
        self, limit: int, before: int | None, filters: dict[str, Any]
    ) -> views.Page[views.AuditEntry]:
        return await self.engine.read(lambda conn: audit.list_audit(conn, limit, before, filters))
