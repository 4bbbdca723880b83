"""What the API shows: the JSON shapes of endpoints, events, deliveries and attempts.

Rules:
- One Struct per shape, built by the store from its rows and encoded as is by the API.
- Times are RFC 3339 strings in UTC with milliseconds (`2024-01-01T10:00:00.123Z`).
- A secret appears only where `secret` is set (on create and rotation); it is UNSET,
  and so absent from the JSON, everywhere else.
- `hookd.openapi` describes every answer with these Structs (`schema_components`), so
  the contract is the code: a shape changed here changes the document.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Generic, TypeVar

import msgspec

from hookd.domain.catalog import EventType, ValidateMode
from hookd.domain.stats import WindowSummary

T = TypeVar("T")


def iso(unix_seconds: float | None) -> str | None:
    """`unix_seconds` as an RFC 3339 UTC string with milliseconds (None stays None)."""
    if unix_seconds is None:
        return None
    moment = datetime.fromtimestamp(unix_seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class Endpoint(msgspec.Struct, kw_only=True):
    id: str
    url: str
    events: list[str]
    description: str
    enabled: bool
    origin: str  # "api" or "config"
    created_at: str | None
    updated_at: str | None
    # After a rotation, the previous secret also signs (X-Webhook-Signature-Previous and
    # `webhook-signature`) until then.
    previous_secret_until: str | None = None
    # A staged rotation: the next secret takes over then; until then it signs
    # X-Webhook-Signature-Next (and `webhook-signature`) beside the current one.
    next_secret_at: str | None = None
    secret: str | msgspec.UnsetType = msgspec.UNSET


class Attempt(msgspec.Struct, kw_only=True):
    number: int
    started_at: str | None
    duration_ms: float
    status_code: int | None
    error_kind: str | None
    error: str | None
    response_excerpt: str


DELIVERY_STATUSES = ("pending", "succeeded", "failed", "cancelled", "erased")
# What a replay may re-queue: finished deliveries whose body is still whole (an erased
# one's is a tombstone; a pending one is queued already).
REPLAYABLE_STATUSES = ("failed", "succeeded", "cancelled")


class Delivery(msgspec.Struct, kw_only=True):
    id: int
    event_id: str
    event: str
    endpoint_id: str
    status: str  # pending, succeeded, failed, cancelled, erased
    attempts: int
    next_attempt_at: str | None
    created_at: str | None
    updated_at: str | None
    last_status_code: int | None
    last_error: str | None
    attempt_log: list[Attempt] | msgspec.UnsetType = msgspec.UNSET


class Event(msgspec.Struct, kw_only=True):
    id: str
    event: str
    timestamp: str
    received_at: str | None
    data: msgspec.Raw
    deliveries: list[Delivery] | msgspec.UnsetType = msgspec.UNSET


class Accepted(msgspec.Struct):
    """The 202 answer to one ingested event (and to any repeat of it)."""

    id: str
    event: str
    deliveries: int


class BatchItem(msgspec.Struct):
    """One item of a batch: its event id, and whether it repeated an event already
    stored (same id or Idempotency-Key; `id` is then that event's) and created nothing."""

    id: str
    replayed: bool
    deliveries: int  # created for this item: 0 when replayed


class BatchAccepted(msgspec.Struct):
    """The 202 answer to a batch: the events' ids in order, the deliveries the batch
    created, and per item whether it was new."""

    ids: list[str]
    deliveries: int
    items: list[BatchItem]


class Page(msgspec.Struct, Generic[T]):
    """One page of a list, newest first; `next_cursor` is None on the last."""

    items: list[T]
    next_cursor: str | None


class Replayed(msgspec.Struct):
    """The 202 answer to a replay: how many deliveries were queued again."""

    replayed: int


class Health(msgspec.Struct):
    status: str  # "ok"
    version: str


class EventTypes(msgspec.Struct):
    """`GET /v1/event-types`: how ingest checks events, and the catalog."""

    validate: ValidateMode
    types: list[EventType]


class Status(msgspec.Struct, kw_only=True):
    """What `GET /v1/status` answers: the daemon's version and its queue figures."""

    version: str
    endpoints: int  # not deleted
    endpoints_enabled: int
    deliveries: dict[str, int]  # how many in each of DELIVERY_STATUSES, zeros included
    oldest_pending_at: str | None  # when the oldest pending delivery was created
    oldest_pending_age_s: float | None
    # The key id endpoint secrets are sealed under; None: stored in clear (no key given).
    secrets_key: str | None = None


class EndpointStats(msgspec.Struct, kw_only=True):
    """One endpoint's health, backlog and statistics (`GET /v1/stats`)."""

    id: str
    url: str
    enabled: bool
    disabled_reason: str | None  # why it was disabled automatically, if it was
    pending: int
    oldest_pending_at: str | None
    oldest_pending_age_s: float | None
    last_success_at: str | None
    consecutive_failures: int  # failed attempts since the last success
    failing_since: str | None  # the first of those
    windows: dict[str, WindowSummary]  # last_hour, last_24h


class Stats(msgspec.Struct):
    """`GET /v1/stats`: every endpoint's statistics, as of `generated_at`."""

    generated_at: str | None
    endpoints: list[EndpointStats]


class AuditEntry(msgspec.Struct, kw_only=True):
    """One endpoint change: when, who asked, what it did, which fields (never values)."""

    id: int
    at: str | None
    origin: str  # socket, tcp (the API), config (the config file) or hookd (auto-disable)
    action: str  # create, update, rotate_secret, stage_secret, enable, disable, delete
    endpoint_id: str
    fields: list[str]


class SubjectDelivery(msgspec.Struct):
    """A delivery of an event about a data subject: where it goes, how it stands."""

    id: int
    endpoint_id: str
    status: str


class SubjectEvent(msgspec.Struct, kw_only=True):
    """An event about a data subject (`GET /v1/subjects`): its type, times, deliveries."""

    id: str
    event: str
    timestamp: str
    received_at: str | None
    erased: bool  # its body is a tombstone: `event` and `timestamp`, no `data`
    deliveries: list[SubjectDelivery]


class Erased(msgspec.Struct, kw_only=True):
    """What an erasure did (`POST /v1/subjects/erase`)."""

    events: int  # events whose body became a tombstone
    deliveries_erased: int  # pending deliveries that ended `erased`
    attempts_cleared: int  # attempts whose response excerpt was dropped
    wal_truncated: bool  # the WAL was checkpointed and emptied afterwards


class ReloadRefusal(msgspec.Struct):
    """A key the file changed that a reload keeps at its running value, and why."""

    key: str
    kept: str  # values as the log shows them: a secret is `(hidden)`
    wanted: str
    reason: str


class Reloaded(msgspec.Struct, kw_only=True):
    """What reading the config file again did (`POST /v1/config/reload`, SIGHUP)."""

    applied: bool  # false: the file was not applied (`error` says why); nothing changed
    error: str | None = None
    endpoints_added: list[str] = msgspec.field(default_factory=list)
    endpoints_changed: list[str] = msgspec.field(default_factory=list)
    endpoints_removed: list[str] = msgspec.field(default_factory=list)
    event_types_changed: int = 0
    settings_changed: list[str] = msgspec.field(default_factory=list)  # the keys, not values
    refused: list[ReloadRefusal] = msgspec.field(default_factory=list)
