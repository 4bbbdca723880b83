"""The schema: its migrations, and running them.

Rules (docs/ARCHITECTURE.md, "Storage"):
- The schema version is `PRAGMA user_version`; `MIGRATIONS[n]` takes a database from
  version n to n + 1. Migrations only move forward and each runs in one transaction.
  A new one is appended at the end; none is ever edited once released.
- Times are Unix seconds (REAL). A delivery is due when `status = 'pending'` and
  `next_attempt_at <= now`; the partial index `deliveries_due` serves exactly that
  question per endpoint, so the scheduler never scans finished rows.
- Retention deletes finished deliveries through the partial index `deliveries_finished`
  (oldest last change first), and sweeps events in `seq` order (arrival order).
- Ids only grow: events, deliveries and attempts are AUTOINCREMENT tables, so an id
  quoted in a log line or a ticket names one record forever, across purges.
- Idempotency keys live in two spaces that cannot meet: (`key`, -1) for a single event,
  (`key`, N) for item N of a batch sent with that key.
"""

from __future__ import annotations

import re

import apsw

from hookd.db.errors import StorageError
from hookd.db.retention import incremental_vacuum

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
    # (`KEY`, N) (`_split_batch_keys`); a single event's key has `key_item` -1.
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
    # 7 -> 8: the subject index (db.subjects): each event's keyed hashes of the
    # values naming a person, in its row (`subjects`, 16 bytes each) and in a table found
    # by hash within each run of 1024 seqs (`part` = event_seq >> 10), so that ingest
    # writes only the table's newest pages (a plain hash index takes a random page per
    # hash, and every commit rewrites them).
    """
    ALTER TABLE events ADD COLUMN subjects BLOB;
    CREATE TABLE subjects (
        part INTEGER NOT NULL,
        hash BLOB NOT NULL,
        event_seq INTEGER NOT NULL,
        PRIMARY KEY (part, hash, event_seq)
    ) WITHOUT ROWID;
    """,
    # 8 -> 9: the subject index is filled behind ingest (db.subjects.catch_up), up to
    # done_seq; every event stored so far was indexed as it was stored.
    """
    CREATE TABLE subject_index (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        done_seq INTEGER NOT NULL
    );
    INSERT INTO subject_index VALUES (1, (SELECT coalesce(max(seq), 0) FROM events));
    """,
]

# After migration 5 -> 6, in its transaction (`_split_batch_keys`): the keys that
# may be a batch item's (`KEY#N`), and the move of one to (`KEY`, N).
KEYS_WITH_ITEM_SUFFIX = (
    "SELECT seq, idempotency_key FROM events WHERE idempotency_key GLOB '*#[0-9]*'"
)
SET_EVENT_KEY = "UPDATE events SET idempotency_key = ?, key_item = ? WHERE seq = ?"


def migrate(conn: apsw.Connection) -> None:
    """Bring the database to the newest schema version; refuse one newer than hookd."""
    version = conn.pragma("user_version")
    if version > len(MIGRATIONS):
        raise StorageError(
            f"the database is at schema version {version}, newer than this hookd knows "
            f"({len(MIGRATIONS)}); upgrade hookd"
        )
    for target, script in enumerate(MIGRATIONS[version:], start=version + 1):
        with conn:
            conn.execute(script)
            if target == 6:
                _split_batch_keys(conn)
            conn.pragma("user_version", target)
    if version < 6 <= len(MIGRATIONS):  # the copied tables' old pages go back at once
        for _ in conn.execute(incremental_vacuum(conn.pragma("freelist_count"))):
            pass  # a row per page given back


_ITEM_SUFFIX = re.compile(r"(.*)#(0|[1-9][0-9]{0,5})", re.DOTALL)


def _split_batch_keys(conn: apsw.Connection) -> None:
    """Move the keys hookd stored for batch items as `KEY#N` to (`KEY`, N)."""
    for seq, key in list(conn.execute(KEYS_WITH_ITEM_SUFFIX)):
        match = _ITEM_SUFFIX.fullmatch(key)
        if match is not None:
            conn.execute(SET_EVENT_KEY, (match[1], int(match[2]), seq))
