"""What storage hands in and out: the values every backend shares.

Rules (docs/ARCHITECTURE.md, "Storage"):
- Plain values only: no connection, no SQL, no I/O. The service and the scheduler import
  these from here, never from a backend module; what storage fails with is `db.errors`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import msgspec

from hookd.domain import views
from hookd.domain.catalog import DisabledEndpoint, FailedDelivery
from hookd.domain.envelope import PreparedEvent

DISABLED_BY_HAND = "disabled through the API"


class NewDelivery(msgspec.Struct, frozen=True, array_like=True):
    """A delivery just made due: its id, endpoint and due time exactly as stored."""

    id: int
    endpoint_id: str
    due: float


class NewEvent(NamedTuple):
    """One event to ingest: the event, the id it gets when it brings none, and its
    idempotency key with the item's position in its batch (-1: a single event), and the
    subject index's hashes of the people it names (`domain.subjects`)."""

    event: PreparedEvent
    fresh_id: str
    key: str | None = None
    key_item: int = -1
    subjects: tuple[bytes, ...] = ()


class Ingested(msgspec.Struct, frozen=True):
    """What ingesting one event did: its answer, and the deliveries it created."""

    accepted: views.Accepted
    created: list[NewDelivery]
    replayed: bool = False


class ConfigSync(NamedTuple):
    """What syncing the config file's endpoints did: the ids added, those changed with
    the names of their fields that changed (as the audit log has them), those removed."""

    added: list[str]
    changed: dict[str, list[str]]
    removed: list[str]


class Backlog(msgspec.Struct, frozen=True):
    """Per live endpoint: pending deliveries and the creation time of the oldest (None
    when none is pending); and the bytes of the database file and its WAL."""

    pending: dict[str, tuple[int, float | None]]
    file_bytes: int


class RetentionDue(msgspec.Struct, frozen=True, kw_only=True):
    """Whether there are finished deliveries and events to purge, and free pages."""

    deliveries: bool
    events: bool
    free_pages: int


class Purged(msgspec.Struct, frozen=True, kw_only=True):
    """What one retention batch deleted."""

    deliveries: int = 0
    attempts: int = 0
    events: int = 0


class Erasure(NamedTuple):
    """What erasing a batch of events did."""

    events: int  # events whose body became a tombstone
    erased: list[tuple[int, str]]  # (delivery id, endpoint id) of the pending ones ended
    excerpts: int  # attempts whose response excerpt was dropped


class Recorded(NamedTuple):
    """What recording a batch of attempts did."""

    moved: list[bool]  # per record: False when its delivery was no longer pending
    disabled: list[tuple[str, str]]  # endpoints disabled by it, with the reason
    alerts: list[Ingested]  # the alert events stored with it


# Builds the alert events of final failures and disabled endpoints (`alerts.alert_events`);
# called on the writer thread inside the write that raised them.
AlertBuilder = Callable[
    [Sequence[FailedDelivery], Sequence[DisabledEndpoint], float], list[NewEvent]
]
