"""The storage seam: every operation the rest of hookd asks of its database.

Rules (docs/ARCHITECTURE.md, "Storage"):
- The service, the scheduler, the API and retention see storage only through `Backend`;
  `sqlite.SqliteBackend` is the one implementation today, and a second one (PostgreSQL)
  would sit beside it without touching them.
- Every operation is async and runs off the trio thread. A write returns once it is
  durable (committed, fsynced per `storage.durability`); writes may be committed
  together with others, but each succeeds or fails on its own.
- Callers pass the time in (`now`, `cutoff`): a backend never reads the clock.
- A write refuses (`NotFound`, `Conflict`) only before it has changed anything.
  A backend that cannot write raises `StorageError`; one that cannot read, `ReadError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

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
from hookd.domain.endpoints import Secrets
from hookd.domain.envelope import PreparedEvent
from hookd.domain.stats import PeriodCounts


class Backend(Protocol):
    """hookd's database, as the rest of hookd uses it."""

    # The key id endpoint secrets are sealed under (db.sealing); None: stored in clear.
    secrets_key: str | None

    async def aclose(self) -> None:
        """Finish the writes under way and close the database."""

    # -- events -------------------------------------------------------------------------

    async def ingest(self, events: Sequence[NewEvent], now: float) -> list[Ingested]:
        """Store events with their deliveries, all or nothing.

        An event whose id or idempotency key is already stored (or came earlier in
        `events`) creates nothing and answers as it first did, marked `replayed`.
        """

    async def get_event(self, event_id: str) -> views.Event:
        """One event with its deliveries; 404 when unknown."""

    async def list_events(
        self, limit: int, before: int | None, event_type: str | None, since: float | None
    ) -> views.Page[views.Event]:
        """Events newest first; `before` is the cursor of the previous page."""

    # -- data subjects ------------------------------------------------------------------

    async def subject_events(
        self, hashes: Sequence[bytes], limit: int, before: int | None
    ) -> views.Page[views.SubjectEvent]:
        """The events the subject index lists under any of `hashes`, newest first, with
        their deliveries; `before` is the cursor of the previous page."""

    async def subject_event_seqs(self, hashes: Sequence[bytes]) -> list[int]:
        """The seqs of the events listed under any of `hashes`, in arrival order."""

    async def subjects_behind(self) -> bool:
        """Whether events were stored that the subject index does not cover yet."""

    async def index_subjects(self, limit: int) -> int:
        """Index the subject hashes of up to `limit` events not indexed yet (stored with
        each event, looked up by hash once indexed); how many events that covered."""

    async def until_no_writes(self) -> None:
        """Return once no write is waiting or running: background work goes then."""

    async def erase_events(self, seqs: Sequence[int], now: float) -> Erasure:
        """Make the bodies of the events at `seqs` tombstones, end their pending
        deliveries `erased`, drop their attempts' response excerpts and their subject
        index rows; content replaced is overwritten, not left in free space. It runs
        beside the other writes, giving way to them, so they wait little. Not made
        durable on its own: `truncate_wal`, which ends an erasure, makes it so."""

    async def audit_erasure(self, now: float, origin: str, fields: Sequence[str]) -> None:
        """Record an erasure in the audit log (counts and selector hashes, no value)."""

    async def truncate_wal(self) -> bool:
        """Leave no copy of replaced content in a write-ahead log (SQLite: checkpoint and
        truncate the WAL); whether that succeeded."""

    # -- endpoints ----------------------------------------------------------------------

    async def create_endpoint(
        self, fields: dict[str, Any], now: float, *, origin: str
    ) -> views.Endpoint:
        """Store a new API-made endpoint; `fields` has every column but the times.

        `origin` (socket, tcp) is who asked, for the audit log.
        """

    async def get_endpoint(self, endpoint_id: str, now: float) -> views.Endpoint:
        """One endpoint (without its secret) as it stands at `now`; 404 when unknown or
        deleted."""

    async def list_endpoints(
        self, limit: int, after: int | None, now: float
    ) -> views.Page[views.Endpoint]:
        """Endpoints in creation order, as they stand at `now`; `after` is the cursor of
        the previous page."""

    async def update_endpoint(
        self,
        endpoint_id: str,
        changes: dict[str, Any],
        now: float,
        *,
        origin: str,
        alert: AlertBuilder | None = None,
    ) -> tuple[views.Endpoint, list[Ingested]]:
        """Apply `changes` to an API-made endpoint, asked from `origin` (audit log); the
        endpoint, and the `alert` stored when this change disabled it.

        An endpoint that is disabled has its pending deliveries cancelled.
        """

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
        """Give an API-made endpoint a new secret, at once or staged to take over at
        `activate_at` (`Secrets.rotated`); the one it replaces keeps signing beside it
        for `overlap` seconds from then (none when 0). `origin` is who asked (audit
        log). The answer shows the new secret.
        """

    async def delete_endpoint(self, endpoint_id: str, now: float, *, origin: str) -> None:
        """Delete an API-made endpoint and cancel its pending deliveries; `origin` is who
        asked (audit log)."""

    async def sync_config_endpoints(
        self, declared: Iterable[dict[str, Any]], now: float
    ) -> ConfigSync:
        """Make the config file's endpoints the stored ones with origin "config".

        Endpoints that left the file are deleted (their history stays). What this changes
        is in the audit log with origin "config", and in what it returns.
        """

    async def send_test_event(
        self, endpoint_id: str, event: PreparedEvent, event_id: str, now: float
    ) -> Ingested:
        """Store `event` with one delivery, to `endpoint_id` alone (the endpoint test)."""

    # -- the scheduler ------------------------------------------------------------------

    async def endpoints_with_pending(self) -> list[str]:
        """Ids of the endpoints that have pending deliveries."""

    async def due_rows(
        self, endpoint_id: str, after: tuple[float, int], until: float, limit: int
    ) -> tuple[list[tuple[int, float]], float | None]:
        """An endpoint's pending deliveries after `after` and due by `until`.

        Returns up to `limit` (id, due) pairs in due order and, when there are fewer, the
        due time of the first pending delivery after `until` (None if there is none).
        """

    async def load_jobs(self, delivery_ids: Sequence[int]) -> dict[int, Job]:
        """What the attempts of these deliveries need; those no longer due are left out."""

    async def record_attempts(
        self,
        records: Sequence[AttemptRecord],
        disable_after: float = 0.0,
        alert: AlertBuilder | None = None,
    ) -> Recorded:
        """Log attempts, move their deliveries on, and count them into endpoint health.

        An endpoint that answered 410 Gone, or (with `disable_after`) has had nothing
        but failures for that long, is disabled in the same transaction, and so are the
        `alert` events of that and of the deliveries that ended failed stored.
        """

    # -- deliveries, statistics, status -------------------------------------------------

    async def list_deliveries(
        self, limit: int, before: int | None, filters: Mapping[str, str | float]
    ) -> views.Page[views.Delivery]:
        """Deliveries newest first, filtered by status, endpoint, event id, event type
        and/or creation time (`since`, `until`: Unix seconds)."""

    async def signing_of(self, delivery_id: int) -> tuple[str, bytes, Secrets] | None:
        """A delivery's endpoint URL, body and endpoint secrets (None when unknown): the
        console shows the signature headers, never the secrets."""

    async def minute_series(self, now: float) -> list[tuple[int, PeriodCounts]]:
        """Every endpoint's counters summed per minute of the last hour, oldest first."""

    async def deliveries_by_id(self, delivery_ids: Sequence[int]) -> list[views.Delivery]:
        """These deliveries without their attempts, newest first; unknown ids left out."""

    async def get_delivery(self, delivery_id: int) -> views.Delivery:
        """One delivery with every attempt; 404 when unknown."""

    async def retry_delivery(self, delivery_id: int, now: float) -> views.Delivery:
        """Make a delivery due now; a finished one starts a new round of attempts."""

    async def replay_endpoint(self, endpoint_id: str, status: str, since: float, now: float) -> int:
        """Re-queue an endpoint's deliveries with `status` created since `since`."""

    async def endpoint_stats(
        self, endpoint_id: str | None, now: float
    ) -> list[views.EndpointStats]:
        """Health, backlog and windowed statistics of one endpoint (404 if unknown) or all."""

    async def status(self, version: str, now: float) -> views.Status:
        """Endpoint and delivery counts, and the age of the oldest pending delivery."""

    async def backlog(self) -> Backlog:
        """The pending deliveries of every live endpoint, and the size on disk."""

    # -- retention ----------------------------------------------------------------------

    async def retention_due(self, cutoff: float) -> RetentionDue:
        """What a retention round with `cutoff` has to do, found without writing."""

    async def purge_finished(self, cutoff: float, limit: int) -> Purged:
        """Delete up to `limit` deliveries finished before `cutoff` (oldest first), their
        attempts, and those of their events received before `cutoff` left with none."""

    async def sweep_events(self, cutoff: float, after: int, limit: int) -> tuple[int, int | None]:
        """Delete the events without deliveries among the next `limit` after seq `after`,
        in arrival order, stopping at the first one received since `cutoff`.

        Returns how many were deleted and the seq to go on after, or None at the end.
        """

    async def vacuum(self, pages: int) -> tuple[int, int]:
        """Give up to `pages` (at least 1) free pages back to the file system; how many
        were given back, and how many stay free."""

    async def checkpoint(self) -> None:
        """Copy the WAL into the database file without waiting for anyone; the file then
        shrinks to what `vacuum` left (SQLite truncates it when the WAL is all copied)."""

    # -- audit --------------------------------------------------------------------------

    async def list_audit(
        self, limit: int, before: int | None, filters: dict[str, Any]
    ) -> views.Page[views.AuditEntry]:
        """Endpoint changes newest first, filtered by `endpoint` and/or `since` (a time)."""
