"""Endpoint health and statistics, and the status figures: counting attempts in,
reading them back for `GET /v1/endpoints/stats`, `GET /v1/status` and `GET /metrics`.

Rules (docs/ARCHITECTURE.md, "Storage"):
- Attempts are counted per endpoint by the minute and by the hour (`domain.stats`), in
  the transaction that records them; what left every window is dropped at most once a
  minute (`Pruner`). An interrupted attempt says nothing of its receiver: it counts in
  neither statistics nor health.
- An endpoint that answered 410 Gone, or (with `disable_after`) has had nothing but
  failures for that long, is disabled in that same transaction, its pending deliveries
  cancelled and the change written to the audit log with origin "hookd".
- The figures are reads over indexes (`deliveries_status`, `deliveries_due`): none
  scans finished deliveries row by row.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence

import apsw

from hookd.db import audit, endpoints
from hookd.db.rows import Row, first
from hookd.db.types import Backlog
from hookd.domain import stats, views
from hookd.domain.attempts import INTERRUPTED, AttemptRecord
from hookd.domain.catalog import DisabledEndpoint
from hookd.domain.durations import format_duration
from hookd.domain.errors import not_found

LATENCY_COLUMNS = ", ".join(f"b{i}" for i in range(18))  # domain.stats.BUCKETS
COUNT_COLUMNS = f"attempts, attempts_failed, succeeded, failed, {LATENCY_COLUMNS}"
ADD_STATS = f"""
    INSERT INTO endpoint_stats (endpoint_id, unit, period, {COUNT_COLUMNS})
    VALUES (?, ?, ?, {", ".join("?" * (4 + 18))})
    ON CONFLICT (endpoint_id, unit, period) DO UPDATE SET
    {", ".join(f"{c} = {c} + excluded.{c}" for c in COUNT_COLUMNS.split(", "))}
"""
FORGET_STATS = "DELETE FROM endpoint_stats WHERE unit = ? AND period < ?"
UPDATE_HEALTH = """
    UPDATE endpoints SET
        consecutive_failures =
            CASE WHEN :reset THEN :failures ELSE consecutive_failures + :failures END,
        failing_since = CASE WHEN :reset THEN :first_failure
                             ELSE coalesce(failing_since, :first_failure) END,
        last_success_at = coalesce(:last_success, last_success_at)
    WHERE id = :endpoint AND deleted_at IS NULL
    RETURNING enabled, failing_since
"""
DISABLE_ENDPOINT = """
    UPDATE endpoints SET enabled = 0, disabled_reason = ?, updated_at = ?
    WHERE id = ? AND enabled = 1 AND deleted_at IS NULL
    RETURNING url
"""
HEALTH_COLUMNS = """
    id, url, enabled, consecutive_failures, failing_since, last_success_at, disabled_reason
"""
ENDPOINT_HEALTH = f"SELECT {HEALTH_COLUMNS} FROM endpoints WHERE id = ? AND deleted_at IS NULL"
ALL_ENDPOINT_HEALTH = (
    f"SELECT {HEALTH_COLUMNS} FROM endpoints WHERE deleted_at IS NULL ORDER BY rowid"
)
PENDING_OF_ENDPOINT = """
    SELECT p.endpoint_id, p.n, d.created_at
    FROM (SELECT endpoint_id, count(*) AS n, min(id) AS first
          FROM deliveries INDEXED BY deliveries_due
          WHERE status = 'pending' AND endpoint_id = ?) p
    JOIN deliveries d ON d.id = p.first
"""

# -- status figures (GET /v1/status) ------------------------------------------------------

# A scan of the covering index `deliveries_status`: ~40 ms per million deliveries.
DELIVERY_COUNTS = "SELECT status, count(*) FROM deliveries GROUP BY status"
# Delivery ids grow with creation time, so the oldest pending one is the first pending id.
OLDEST_PENDING = """
    SELECT created_at FROM deliveries
    WHERE id = (SELECT min(id) FROM deliveries WHERE status = 'pending')
"""
ENDPOINT_COUNTS = """
    SELECT count(*), coalesce(sum(enabled), 0) FROM endpoints WHERE deleted_at IS NULL
"""

# -- scrape-time gauges (GET /metrics) ----------------------------------------------------

LIVE_ENDPOINT_IDS = "SELECT id FROM endpoints WHERE deleted_at IS NULL"
# One pass over the partial index `deliveries_due` (pending rows only), then a primary-key
# look-up per endpoint for the creation time of its first pending id, the oldest.
PENDING_BY_ENDPOINT = """
    SELECT p.endpoint_id, p.n, d.created_at
    FROM (SELECT endpoint_id, count(*) AS n, min(id) AS first
          FROM deliveries INDEXED BY deliveries_due WHERE status = 'pending'
          GROUP BY endpoint_id) p
    JOIN deliveries d ON d.id = p.first
"""


def window_totals(one_endpoint: bool) -> str:
    """Summed periods of `:unit` from `:start` to `:end`, per endpoint (or `:endpoint`'s)."""
    where = "unit = :unit AND period BETWEEN :start AND :end"
    if one_endpoint:
        where = f"endpoint_id = :endpoint AND {where}"
    sums = ", ".join(f"sum({c})" for c in COUNT_COLUMNS.split(", "))
    return f"SELECT endpoint_id, {sums} FROM endpoint_stats WHERE {where} GROUP BY endpoint_id"


def minute_series(conn: apsw.Connection, now: float) -> list[tuple[int, stats.PeriodCounts]]:
    """Every endpoint's counters summed per minute over the last hour, oldest first (the
    minutes without attempts left out)."""
    sums = ", ".join(f"sum({c})" for c in COUNT_COLUMNS.split(", "))
    start = stats.window_start(now, stats.MINUTE, 60)
    query = (
        f"SELECT period, {sums} FROM endpoint_stats WHERE unit = ? AND period >= ?"
        " GROUP BY period ORDER BY period"
    )
    return [
        (row[0], stats.PeriodCounts.from_row(row[1:]))
        for row in conn.execute(query, (stats.MINUTE, start))
    ]


class Pruner:
    """Drops the statistics that left every window, at most once a minute (writer thread)."""

    def __init__(self) -> None:
        self._kept_from = -1  # the minute old statistics were last dropped at

    def prune(self, conn: apsw.Connection, now: float) -> None:
        """Drop what left every window, unless that was done this minute already."""
        minute = stats.period_of(now, stats.MINUTE)
        if minute != self._kept_from:
            self._kept_from = minute
            for unit, count in stats.WINDOWS.values():
                conn.execute(FORGET_STATS, (unit, stats.window_start(now, unit, count)))


def account(
    conn: apsw.Connection,
    routes: endpoints.Routes,
    pruner: Pruner,
    records: Sequence[AttemptRecord],
    moved: Sequence[bool],
    disable_after: float,
) -> list[DisabledEndpoint]:
    """Count attempts into the statistics (by minute and hour) and health of their
    endpoints; the endpoints this disabled, with the reason."""
    periods: dict[tuple[str, int, int], stats.PeriodCounts] = {}
    health: dict[str, stats.HealthDelta] = {}
    gone: set[str] = set()
    for record, finished in zip(records, moved, strict=True):
        if record.result.error_kind == INTERRUPTED:
            continue
        ok = record.result.ok
        for unit in stats.UNITS:
            key = (record.endpoint_id, unit, stats.period_of(record.finished_at, unit))
            counts = periods.get(key) or periods.setdefault(key, stats.PeriodCounts())
            counts.add_attempt(record.duration_ms, ok)
            if finished:
                counts.add_finished(record.status)
        health.setdefault(record.endpoint_id, stats.HealthDelta()).add(ok, record.started_at)
        if record.result.status_code == 410:
            gone.add(record.endpoint_id)
    if periods:
        conn.executemany(ADD_STATS, [(*key, *c.row()) for key, c in periods.items()])
    now = max(record.finished_at for record in records)
    pruner.prune(conn, now)
    disabled = []
    for endpoint_id, delta in health.items():
        row = first(conn, UPDATE_HEALTH, {"endpoint": endpoint_id, **delta.params()})
        if row is None:  # deleted meanwhile
            continue
        enabled, failing_since = row
        reason = None
        if endpoint_id in gone:
            reason = "it answered 410 Gone"
        elif disable_after and failing_since is not None and now - failing_since >= disable_after:
            reason = (
                f"nothing but failures since {views.iso(failing_since)} "
                f"(delivery.disable_after = {format_duration(disable_after)})"
            )
        if enabled and reason is not None:
            [(url,)] = conn.execute(DISABLE_ENDPOINT, (reason, now, endpoint_id))
            endpoints.cancel_pending(conn, endpoint_id, now)
            audit.record(conn, now, "hookd", endpoint_id, {"enabled": True}, {"enabled": False})
            routes.invalidate()
            disabled.append(DisabledEndpoint(endpointId=endpoint_id, url=url, motivo=reason))
    return disabled


def endpoint_stats(
    conn: apsw.Connection, endpoint_id: str | None, now: float
) -> list[views.EndpointStats]:
    """Health, backlog and windowed statistics of one endpoint (404 if unknown) or all."""
    if endpoint_id is None:
        rows = list(conn.execute(ALL_ENDPOINT_HEALTH))
        pending = list(conn.execute(PENDING_BY_ENDPOINT))
    else:
        rows = list(conn.execute(ENDPOINT_HEALTH, (endpoint_id,)))
        if not rows:
            raise not_found(f"endpoint {endpoint_id!r}")
        pending = list(conn.execute(PENDING_OF_ENDPOINT, (endpoint_id,)))
    windows: dict[str, dict[str, stats.PeriodCounts]] = {}
    for name, (unit, count) in stats.WINDOWS.items():
        params = {
            "unit": unit,
            "start": stats.window_start(now, unit, count),
            "end": stats.period_of(now, unit),
            "endpoint": endpoint_id,
        }
        totals = conn.execute(window_totals(endpoint_id is not None), params)
        windows[name] = {r[0]: stats.PeriodCounts.from_row(r[1:]) for r in totals}
    backlog = {ident: (count, oldest) for ident, count, oldest in pending}
    return [_endpoint_stats(row, backlog, windows, now) for row in rows]


def status(conn: apsw.Connection, version: str, now: float) -> views.Status:
    """Endpoint and delivery counts, and the age of the oldest pending delivery."""
    counts = dict.fromkeys(views.DELIVERY_STATUSES, 0)
    counts.update((state, n) for state, n in conn.execute(DELIVERY_COUNTS))
    endpoint_count, enabled = first(conn, ENDPOINT_COUNTS, ()) or (0, 0)
    oldest = first(conn, OLDEST_PENDING, ())
    return views.Status(
        version=version,
        endpoints=endpoint_count,
        endpoints_enabled=enabled,
        deliveries=counts,
        oldest_pending_at=views.iso(oldest[0]) if oldest else None,
        oldest_pending_age_s=round(max(0.0, now - oldest[0]), 3) if oldest else None,
    )


def backlog(conn: apsw.Connection, path: str) -> Backlog:
    """The pending deliveries of every live endpoint, and the size on disk of `path`."""
    pending: dict[str, tuple[int, float | None]] = {
        ident: (0, None) for (ident,) in conn.execute(LIVE_ENDPOINT_IDS)
    }
    for ident, count, oldest in conn.execute(PENDING_BY_ENDPOINT):
        pending[ident] = (count, oldest)
    return Backlog(pending, _file_bytes(path))


def _file_bytes(path: str) -> int:
    total = 0
    for name in (path, f"{path}-wal"):
        with contextlib.suppress(FileNotFoundError):  # no WAL yet, or checkpointed away
            total += os.stat(name).st_size
    return total


def _endpoint_stats(
    row: Row,
    backlog: dict[str, tuple[int, float | None]],
    windows: dict[str, dict[str, stats.PeriodCounts]],
    now: float,
) -> views.EndpointStats:
    ident, url, enabled, failures, failing_since, last_success, reason = row
    pending, oldest = backlog.get(ident, (0, None))
    return views.EndpointStats(
        id=ident,
        url=url,
        enabled=bool(enabled),
        disabled_reason=None if enabled else reason,
        pending=pending,
        oldest_pending_at=views.iso(oldest) if oldest is not None else None,
        oldest_pending_age_s=round(max(0.0, now - oldest), 3) if oldest is not None else None,
        last_success_at=views.iso(last_success) if last_success is not None else None,
        consecutive_failures=failures,
        failing_since=views.iso(failing_since) if failing_since is not None else None,
        windows={
            name: stats.summarize(by_endpoint.get(ident) or stats.PeriodCounts())
            for name, by_endpoint in windows.items()
        },
    )
