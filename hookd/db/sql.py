"""Every SQL statement hookd runs, by name, and the schema's migrations.

Rules:
- The schema version is `PRAGMA user_version`; `MIGRATIONS[n]` takes a database from
  version n to n + 1. Migrations only move forward and each runs in one transaction.
- Times are Unix seconds (REAL). A delivery is due when `status = 'pending'` and
  `next_attempt_at <= now`; the partial index `deliveries_due` serves exactly that
  question per endpoint, so the scheduler never scans finished rows.
- Retention deletes finished deliveries through the partial index `deliveries_finished`
  (oldest last change first), and sweeps events in `seq` order (arrival order).
- Ids only grow: events, deliveries and attempts are AUTOINCREMENT tables, so an id
  quoted in a log line or a ticket names one record forever, across purges.
- Idempotency keys live in two spaces that cannot meet: (`key`, -1) for a single event,
  (`key`, N) for item N of a batch sent with that key.
- Only `store.py` executes these.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 0 -> 1: events, endpoints, deliveries, attempts.
    """
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        timestamp TEXT NOT NULL,
        received_at REAL NOT NULL,
        body BLOB NOT NULL,
        idempotency_key TEXT UNIQUE,
        delivery_count INTEGER NOT NULL
    );
    CREATE INDEX events_type ON events (type, seq);

    CREATE TABLE endpoints (
        id TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        events TEXT NOT NULL,
        secret TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        enabled INTEGER NOT NULL DEFAULT 1,
        origin TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        deleted_at REAL
    );

    CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY,
        event_seq INTEGER NOT NULL,
        endpoint_id TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        round_start INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        last_status_code INTEGER,
        last_error TEXT
    );
    CREATE INDEX deliveries_due ON deliveries (endpoint_id, next_attempt_at, id)
        WHERE status = 'pending';
    CREATE INDEX deliveries_event ON deliveries (event_seq);
    CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id, id);
    CREATE INDEX deliveries_status ON deliveries (status, id);

    CREATE TABLE attempts (
        id INTEGER PRIMARY KEY,
        delivery_id INTEGER NOT NULL,
        number INTEGER NOT NULL,
        started_at REAL NOT NULL,
        duration_ms REAL NOT NULL,
        status_code INTEGER,
        error_kind TEXT,
        error TEXT,
        response_excerpt BLOB NOT NULL DEFAULT x''
    );
    CREATE INDEX attempts_delivery ON attempts (delivery_id, number);
    """,
    # 1 -> 2: endpoint health, and per-endpoint statistics by the minute and the hour.
    """
    ALTER TABLE endpoints ADD COLUMN consecutive_failures INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE endpoints ADD COLUMN failing_since REAL;
    ALTER TABLE endpoints ADD COLUMN last_success_at REAL;
    ALTER TABLE endpoints ADD COLUMN disabled_reason TEXT;

    CREATE TABLE endpoint_stats (
        endpoint_id TEXT NOT NULL,
        unit INTEGER NOT NULL,
        period INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        attempts_failed INTEGER NOT NULL DEFAULT 0,
        succeeded INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        b0 INTEGER NOT NULL DEFAULT 0, b1 INTEGER NOT NULL DEFAULT 0,
        b2 INTEGER NOT NULL DEFAULT 0, b3 INTEGER NOT NULL DEFAULT 0,
        b4 INTEGER NOT NULL DEFAULT 0, b5 INTEGER NOT NULL DEFAULT 0,
        b6 INTEGER NOT NULL DEFAULT 0, b7 INTEGER NOT NULL DEFAULT 0,
        b8 INTEGER NOT NULL DEFAULT 0, b9 INTEGER NOT NULL DEFAULT 0,
        b10 INTEGER NOT NULL DEFAULT 0, b11 INTEGER NOT NULL DEFAULT 0,
        b12 INTEGER NOT NULL DEFAULT 0, b13 INTEGER NOT NULL DEFAULT 0,
        b14 INTEGER NOT NULL DEFAULT 0, b15 INTEGER NOT NULL DEFAULT 0,
        b16 INTEGER NOT NULL DEFAULT 0, b17 INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (endpoint_id, unit, period)
    ) WITHOUT ROWID;
    """,
    # 2 -> 3: retention finds finished deliveries by their last change, oldest first.
    # Pending deliveries stay out of it, so ingest never writes to it.
    """
    CREATE INDEX deliveries_finished ON deliveries (updated_at) WHERE status <> 'pending';
    """,
    # 3 -> 4: the audit log of endpoint changes (field names only, never values).
    """
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        origin TEXT NOT NULL,
        action TEXT NOT NULL,
        endpoint_id TEXT NOT NULL,
        fields TEXT NOT NULL
    );
    CREATE INDEX audit_endpoint ON audit (endpoint_id, id);
    """,
    # 4 -> 5: secret rotation with overlap: the rotated-out secret, and until when it
    # still signs `webhook-signature` beside the new one.
    """
    ALTER TABLE endpoints ADD COLUMN previous_secret TEXT;
    ALTER TABLE endpoints ADD COLUMN previous_secret_until REAL;
    """,
    # 5 -> 6: ids that only grow, and idempotency keys of batch items in a space of their
    # own. Events, deliveries and attempts are copied into AUTOINCREMENT tables keeping
    # every id (nothing is renumbered): SQLite then never hands out an id again, even
    # after retention deleted the newest rows. A batch item's key was `KEY#N`; it becomes
    # (`KEY`, N) (`store._split_batch_keys`); a single event's key has `key_item` -1.
    """
    CREATE TABLE events_v6 (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        timestamp TEXT NOT NULL,
        received_at REAL NOT NULL,
        body BLOB NOT NULL,
        idempotency_key TEXT,
        key_item INTEGER NOT NULL DEFAULT -1,
        delivery_count INTEGER NOT NULL
    );
    INSERT INTO events_v6 (seq, id, type, timestamp, received_at, body, idempotency_key,
                           delivery_count)
        SELECT seq, id, type, timestamp, received_at, body, idempotency_key, delivery_count
        FROM events ORDER BY seq;
    DROP TABLE events;
    ALTER TABLE events_v6 RENAME TO events;
    CREATE INDEX events_type ON events (type, seq);
    CREATE UNIQUE INDEX events_key ON events (idempotency_key, key_item)
        WHERE idempotency_key IS NOT NULL;

    CREATE TABLE deliveries_v6 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        event_seq INTEGER NOT NULL,
        endpoint_id TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        round_start INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        last_status_code INTEGER,
        last_error TEXT
    );
    INSERT INTO deliveries_v6 SELECT id, event_seq, endpoint_id, status, attempts,
        round_start, next_attempt_at, created_at, updated_at, last_status_code, last_error
        FROM deliveries ORDER BY id;
    DROP TABLE deliveries;
    ALTER TABLE deliveries_v6 RENAME TO deliveries;
    CREATE INDEX deliveries_due ON deliveries (endpoint_id, next_attempt_at, id)
        WHERE status = 'pending';
    CREATE INDEX deliveries_event ON deliveries (event_seq);
    CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id, id);
    CREATE INDEX deliveries_status ON deliveries (status, id);
    CREATE INDEX deliveries_finished ON deliveries (updated_at) WHERE status <> 'pending';

    CREATE TABLE attempts_v6 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        delivery_id INTEGER NOT NULL,
        number INTEGER NOT NULL,
        started_at REAL NOT NULL,
        duration_ms REAL NOT NULL,
        status_code INTEGER,
        error_kind TEXT,
        error TEXT,
        response_excerpt BLOB NOT NULL DEFAULT x''
    );
    INSERT INTO attempts_v6 SELECT id, delivery_id, number, started_at, duration_ms,
        status_code, error_kind, error, response_excerpt FROM attempts ORDER BY id;
    DROP TABLE attempts;
    ALTER TABLE attempts_v6 RENAME TO attempts;
    CREATE INDEX attempts_delivery ON attempts (delivery_id, number);
    """,
    # 6 -> 7: a staged secret rotation: the next secret, when it takes over (it is current
    # from then on, computed from these columns: nothing is written at that time), and
    # how long the secret it replaces keeps signing beside it after that.
    """
    ALTER TABLE endpoints ADD COLUMN next_secret TEXT;
    ALTER TABLE endpoints ADD COLUMN next_secret_at REAL;
    ALTER TABLE endpoints ADD COLUMN next_secret_overlap REAL;
    """,
]

# After migration 5 -> 6, in its transaction (`store._split_batch_keys`): the keys that
# may be a batch item's (`KEY#N`), and the move of one to (`KEY`, N).
KEYS_WITH_ITEM_SUFFIX = (
    "SELECT seq, idempotency_key FROM events WHERE idempotency_key GLOB '*#[0-9]*'"
)
SET_EVENT_KEY = "UPDATE events SET idempotency_key = ?, key_item = ? WHERE seq = ?"

# -- events ---------------------------------------------------------------------------

EVENT_BY_ID = "SELECT id, type, delivery_count FROM events WHERE id = ?"
EVENT_BY_KEY = """
    SELECT id, type, delivery_count FROM events INDEXED BY events_key
    WHERE idempotency_key = ? AND key_item = ?
"""
INSERT_EVENT = """
    INSERT INTO events (id, type, timestamp, received_at, body, idempotency_key, key_item,
                        delivery_count)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""
EVENT_ID_AT = "SELECT id FROM events WHERE seq = ?"
EVENT_COLUMNS = "seq, id, type, timestamp, received_at, body"
GET_EVENT = f"SELECT {EVENT_COLUMNS} FROM events WHERE id = ?"
LIST_EVENTS = f"""
    SELECT {EVENT_COLUMNS} FROM events
    WHERE seq < :before AND (:type IS NULL OR type = :type)
      AND (:since IS NULL OR received_at >= :since)
    ORDER BY seq DESC LIMIT :limit
"""

# -- endpoints ------------------------------------------------------------------------

SECRET_COLUMNS = (
    "secret, previous_secret, previous_secret_until, next_secret, next_secret_at,"
    " coalesce(next_secret_overlap, 0)"
)
ENDPOINT_COLUMNS = (
    f"id, url, events, description, enabled, origin, created_at, updated_at, {SECRET_COLUMNS},"
    " rowid"
)
GET_ENDPOINT = f"SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE id = ? AND deleted_at IS NULL"
GET_SECRETS = f"SELECT {SECRET_COLUMNS} FROM endpoints WHERE id = ? AND deleted_at IS NULL"
LIST_ENDPOINTS = f"""
    SELECT {ENDPOINT_COLUMNS} FROM endpoints
    WHERE deleted_at IS NULL AND rowid > ? ORDER BY rowid LIMIT ?
"""
ALL_SUBSCRIPTIONS = """
    SELECT id, events, enabled FROM endpoints WHERE deleted_at IS NULL ORDER BY rowid
"""
INSERT_ENDPOINT = """
    INSERT INTO endpoints (id, url, events, secret, description, enabled, origin,
                           created_at, updated_at)
    VALUES (:id, :url, :events, :secret, :description, :enabled, :origin, :now, :now)
"""
UPSERT_CONFIG_ENDPOINT = """
    INSERT INTO endpoints (id, url, events, secret, description, enabled, origin,
                           created_at, updated_at)
    VALUES (:id, :url, :events, :secret, :description, :enabled, 'config', :now, :now)
    ON CONFLICT (id) DO UPDATE SET
        url = excluded.url, events = excluded.events, secret = excluded.secret,
        description = excluded.description, enabled = excluded.enabled, origin = 'config',
        deleted_at = NULL,
        -- re-enabled or pointed elsewhere: its run of failures starts again
        consecutive_failures = CASE WHEN (enabled = 0 AND excluded.enabled)
            OR url IS NOT excluded.url THEN 0 ELSE consecutive_failures END,
        failing_since = CASE WHEN (enabled = 0 AND excluded.enabled)
            OR url IS NOT excluded.url THEN NULL ELSE failing_since END,
        disabled_reason = CASE WHEN enabled IS NOT excluded.enabled
            OR url IS NOT excluded.url THEN NULL ELSE disabled_reason END,
        updated_at = CASE WHEN url IS excluded.url AND events IS excluded.events
                          AND secret IS excluded.secret AND description IS excluded.description
                          AND enabled IS excluded.enabled AND deleted_at IS NULL
                     THEN updated_at ELSE excluded.updated_at END
"""
CONFIG_ENDPOINT_IDS = "SELECT id FROM endpoints WHERE origin = 'config' AND deleted_at IS NULL"
UPDATE_ENDPOINT = """
    UPDATE endpoints SET url = :url, events = :events, secret = :secret,
        description = :description, enabled = :enabled, updated_at = :now,
        -- re-enabled or pointed elsewhere: its run of failures starts again; a state the
        -- operator sets is no longer hookd's automatic disable
        consecutive_failures = CASE WHEN (enabled = 0 AND :enabled) OR url IS NOT :url
            THEN 0 ELSE consecutive_failures END,
        failing_since = CASE WHEN (enabled = 0 AND :enabled) OR url IS NOT :url
            THEN NULL ELSE failing_since END,
        disabled_reason = CASE WHEN enabled IS NOT :enabled OR url IS NOT :url
            THEN NULL ELSE disabled_reason END,
        -- a secret set here replaces every other at once
        previous_secret = CASE WHEN secret IS :secret THEN previous_secret END,
        previous_secret_until = CASE WHEN secret IS :secret THEN previous_secret_until END,
        next_secret = CASE WHEN secret IS :secret THEN next_secret END,
        next_secret_at = CASE WHEN secret IS :secret THEN next_secret_at END,
        next_secret_overlap = CASE WHEN secret IS :secret THEN next_secret_overlap END
    WHERE id = :id AND deleted_at IS NULL
"""
SET_SECRETS = """
    UPDATE endpoints SET secret = :current, previous_secret = :previous,
        previous_secret_until = :previous_until, next_secret = :next,
        next_secret_at = :next_at, next_secret_overlap = :next_overlap,
        updated_at = coalesce(:now, updated_at)
    WHERE id = :id AND deleted_at IS NULL
"""
DELETE_ENDPOINT = "UPDATE endpoints SET deleted_at = ?, enabled = 0 WHERE id = ?"

# -- deliveries -----------------------------------------------------------------------

INSERT_DELIVERY = """
    INSERT INTO deliveries (event_seq, endpoint_id, status, next_attempt_at,
                            created_at, updated_at)
    VALUES (?, ?, 'pending', ?, ?, ?)
"""
DELIVERY_COLUMNS = """
    d.id, e.id, e.type, d.endpoint_id, d.status, d.attempts, d.next_attempt_at,
    d.created_at, d.updated_at, d.last_status_code, d.last_error
"""
DELIVERIES_OF_EVENT = f"""
    SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN events e ON e.seq = d.event_seq
    WHERE d.event_seq = ? ORDER BY d.id
"""
CANCEL_PENDING_OF_ENDPOINT = """
    UPDATE deliveries SET status = 'cancelled', next_attempt_at = NULL, updated_at = ?
    WHERE endpoint_id = ? AND status = 'pending'
"""

# -- the scheduler ----------------------------------------------------------------------

ENDPOINTS_WITH_PENDING = "SELECT DISTINCT endpoint_id FROM deliveries WHERE status = 'pending'"
DUE_OF_ENDPOINT = """
    SELECT id, next_attempt_at FROM deliveries INDEXED BY deliveries_due
    WHERE status = 'pending' AND endpoint_id = :endpoint
      AND (next_attempt_at, id) > (:after_time, :after_id) AND next_attempt_at <= :until
    ORDER BY next_attempt_at, id LIMIT :limit
"""
NEXT_DUE_OF_ENDPOINT = """
    SELECT min(next_attempt_at) FROM deliveries INDEXED BY deliveries_due
    WHERE status = 'pending' AND endpoint_id = ? AND next_attempt_at > ?
"""
LOAD_JOBS = f"""
    SELECT d.id, d.endpoint_id, p.url, e.id, e.type, e.body, d.attempts, d.round_start,
        {SECRET_COLUMNS}
    FROM deliveries d
    JOIN events e ON e.seq = d.event_seq
    JOIN endpoints p ON p.id = d.endpoint_id
    WHERE d.id IN (SELECT value FROM json_each(?))
      AND d.status = 'pending' AND p.enabled = 1 AND p.deleted_at IS NULL
"""
INSERT_ATTEMPT = """
    INSERT INTO attempts (delivery_id, number, started_at, duration_ms, status_code,
                          error_kind, error, response_excerpt)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""
# An interrupted attempt (`:skip` 1) counts its number but not a step of the schedule:
# the next attempt's number within its round stays the one this attempt had.
FINISH_ATTEMPT = """
    UPDATE deliveries SET attempts = max(attempts, :number), round_start = round_start + :skip,
        status = :status, next_attempt_at = :next, updated_at = :now,
        last_status_code = :code, last_error = :error
    WHERE id = :id AND status = 'pending'
    RETURNING id
"""
# An attempt whose delivery left `pending` meanwhile (cancelled): its number still counts,
# so `attempts` and `X-Webhook-Attempt` never fall behind what was sent.
COUNT_ATTEMPT = """
    UPDATE deliveries SET attempts = max(attempts, ?) WHERE id = ? AND status <> 'pending'
"""

# -- endpoint health and statistics (core.stats) ------------------------------------------

LATENCY_COLUMNS = ", ".join(f"b{i}" for i in range(18))  # core.stats.BUCKETS
COUNT_COLUMNS = f"attempts, attempts_failed, succeeded, failed, {LATENCY_COLUMNS}"
ADD_STATS = f"""
    INSERT INTO endpoint_stats (endpoint_id, unit, period, {COUNT_COLUMNS})
    VALUES (?, ?, ?, {", ".join("?" * (4 + 18))})
    ON CONFLICT (endpoint_id, unit, period) DO UPDATE SET
    {", ".join(f"{c} = {c} + excluded.{c}" for c in COUNT_COLUMNS.split(", "))}
"""


def window_totals(one_endpoint: bool) -> str:
    """Summed periods of `:unit` from `:start` to `:end`, per endpoint (or `:endpoint`'s)."""
    where = "unit = :unit AND period BETWEEN :start AND :end"
    if one_endpoint:
        where = f"endpoint_id = :endpoint AND {where}"
    sums = ", ".join(f"sum({c})" for c in COUNT_COLUMNS.split(", "))
    return f"SELECT endpoint_id, {sums} FROM endpoint_stats WHERE {where} GROUP BY endpoint_id"


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

# -- deliveries through the API ----------------------------------------------------------

DELIVERY_FROM = "FROM deliveries d JOIN events e ON e.seq = d.event_seq"
GET_DELIVERY = f"SELECT {DELIVERY_COLUMNS} {DELIVERY_FROM} WHERE d.id = ?"
DELIVERY_FILTERS = {
    "status": "d.status = :status",
    "endpoint": "d.endpoint_id = :endpoint",
    "event": "d.event_seq = (SELECT seq FROM events WHERE id = :event)",
}
ATTEMPTS_OF_DELIVERY = """
    SELECT number, started_at, duration_ms, status_code, error_kind, error, response_excerpt
    FROM attempts WHERE delivery_id = ? ORDER BY id
"""
DELIVERY_ENDPOINT_STATE = """
    SELECT d.endpoint_id, p.enabled, p.deleted_at FROM deliveries d
    JOIN endpoints p ON p.id = d.endpoint_id WHERE d.id = ?
"""
RETRY_DELIVERY = """
    UPDATE deliveries SET
        round_start = CASE WHEN status = 'pending' THEN round_start ELSE attempts END,
        status = 'pending', next_attempt_at = :now, updated_at = :now
    WHERE id = :id
"""
REPLAY_ENDPOINT = """
    UPDATE deliveries SET round_start = attempts, status = 'pending',
        next_attempt_at = :now, updated_at = :now
    WHERE endpoint_id = :endpoint AND status = :status AND created_at >= :since
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


def list_deliveries(filters: list[str]) -> str:
    """The listing query for the given filter names (keys of DELIVERY_FILTERS)."""
    where = " AND ".join(["d.id < :before", *(DELIVERY_FILTERS[name] for name in filters)])
    return (
        f"SELECT {DELIVERY_COLUMNS} {DELIVERY_FROM} WHERE {where} ORDER BY d.id DESC LIMIT :limit"
    )


# -- retention ------------------------------------------------------------------------

# Whether a round has deliveries to purge, and events to sweep (the first one is old).
RETENTION_DUE = """
    SELECT
        EXISTS (SELECT 1 FROM deliveries INDEXED BY deliveries_finished
                WHERE status <> 'pending' AND updated_at < ?1),
        EXISTS (SELECT 1 FROM events
                WHERE seq = (SELECT min(seq) FROM events) AND received_at < ?1)
"""

# One row (not one per delivery: each row costs the writer thread a GIL hand-off): how
# many, their ids, and their events' seqs, as JSON arrays.
PURGE_FINISHED = """
    SELECT count(*), json_group_array(id), json_group_array(DISTINCT event_seq) FROM (
        SELECT id, event_seq FROM deliveries INDEXED BY deliveries_finished
        WHERE status <> 'pending' AND updated_at < :cutoff
        ORDER BY updated_at LIMIT :limit
    )
"""
PURGE_ATTEMPTS = "DELETE FROM attempts WHERE delivery_id IN (SELECT value FROM json_each(?))"
PURGE_DELIVERIES = "DELETE FROM deliveries WHERE id IN (SELECT value FROM json_each(?))"
# Events among the given ones that are old and have no delivery left.
PURGE_EMPTIED_EVENTS = """
    DELETE FROM events WHERE seq IN (SELECT value FROM json_each(:seqs))
      AND received_at < :cutoff
      AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_seq = events.seq)
"""
# Of the next :limit events in arrival order, those before the first one received since
# :cutoff: how many, the last seq, and the seqs of those without deliveries (one row).
SWEEP_EVENTS = """
    WITH next AS (
        SELECT seq, received_at FROM events WHERE seq > :after ORDER BY seq LIMIT :limit
    ), old AS (
        SELECT seq FROM next
        WHERE seq < coalesce((SELECT min(seq) FROM next WHERE received_at >= :cutoff), 1 << 62)
    )
    SELECT count(*), max(seq), json_group_array(seq) FILTER (
        WHERE NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_seq = old.seq)
    ) FROM old
"""
DELETE_EVENTS = "DELETE FROM events WHERE seq IN (SELECT value FROM json_each(?))"
FREE_PAGES = "PRAGMA freelist_count"
CHECKPOINT = "PRAGMA wal_checkpoint(PASSIVE)"


def incremental_vacuum(pages: int) -> str:
    """Give at most `pages` free pages back to the file system (one row per page)."""
    return f"PRAGMA incremental_vacuum({int(pages)})"


# -- audit ----------------------------------------------------------------------------

INSERT_AUDIT = """
    INSERT INTO audit (at, origin, action, endpoint_id, fields) VALUES (?, ?, ?, ?, ?)
"""
AUDIT_FILTERS = {
    "endpoint": "endpoint_id = :endpoint",
    "since": "at >= :since",
}


def list_audit(filters: list[str]) -> str:
    """The audit listing, newest first, for the given filter names (keys of AUDIT_FILTERS)."""
    where = " AND ".join(["id < :before", *(AUDIT_FILTERS[name] for name in filters)])
    return (
        "SELECT id, at, origin, action, endpoint_id, fields FROM audit"
        f" WHERE {where} ORDER BY id DESC LIMIT :limit"
    )
