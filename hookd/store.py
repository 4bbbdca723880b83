"""The database: SQLite through apsw, in WAL mode, with one writer and group commit.

Rules:
- This is the only module that imports apsw. apsw errors are translated here: a full
  disk or an unusable file becomes `StorageError` (the API answers 503), never a crash.
- No apsw call runs on the trio thread. Writes go to one writer thread that owns the
  write connection: it takes every write waiting in its queue, runs each in its own
  savepoint inside one transaction, commits once, and only then wakes the callers
  (group commit). With `durability = "full"` the commit is fsynced before anyone is
  acknowledged. Reads run on a small pool of read-only connections in worker threads.
- Each write is a plain function of the connection. It may refuse with an `ApiError`
  (a missing endpoint, say) only before it has written anything; the refusal goes to its
  caller and the others in the group commit. Any other failure rolls the group back and
  its writes are run again one per transaction, so only the failing one fails.
- Callers pass the time in: the store never reads the clock, but to time its own
  group commits into `commit_seconds` when it is set (for `GET /metrics`).
- One store per database: an open store holds an exclusive lock (flock) on `<db>.lock`,
  which names its pid, until it is closed; a second one is refused with that pid. A
  separate file, because SQLite's own POSIX locks on the database would be released by
  any close of it in this process. `hookd db backup` and `db check` take no such lock.
- The store opens a database only after `PRAGMA quick_check` finds it sound (before
  migrating it); a damaged one is `StorageError`, pointing to `hookd db check` and the
  README's restore steps. Its files (database, WAL, shared memory, lock) are the owner's
  alone (0600): the database holds endpoint secrets.
- A list page holds at most `limit` rows and about PAGE_BYTES of them (one at least):
  rows are read only until either is reached, so one request's memory stays bounded
  whatever the rows weigh.
- A failed read is `ReadError` (a `StorageError`), so answers can say "read".
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple, TypeVar

import apsw
import msgspec
import trio

from hookd import models, sql
from hookd.core import audit, stats
from hookd.core.catalog import DisabledEndpoint, FailedDelivery
from hookd.core.durations import format_duration
from hookd.core.endpoints import Secrets
from hookd.core.envelope import PreparedEvent
from hookd.core.retry import AttemptResult
from hookd.core.routing import Router, Subscription
from hookd.errors import ApiError, conflict, not_found
from hookd.metrics import Histogram
from hookd.sender import Job

T = TypeVar("T")
Row = tuple[Any, ...]

READERS = 4
MAX_GROUP = 512  # writes committed together at most
INTERRUPTED = "interrupted"  # the error kind of an attempt cut short by hookd itself
DISABLED_BY_HAND = "disabled through the API"
PAGE_BYTES = 8 * 1024 * 1024  # a list page stops growing at about this many bytes


class StorageError(Exception):
    """The database cannot take the write (disk full, file unusable)."""


class ReadError(StorageError):
    """The database cannot be read (a damaged page, an I/O error)."""


OWNER_ONLY = 0o600
RESTORE_POINTER = (
    "run `hookd db check` for the details, and restore the latest backup "
    '(README, "Backup and restore")'
)


class NewDelivery(msgspec.Struct, frozen=True, array_like=True):
    """A delivery just made due: its id, endpoint and due time exactly as stored."""

    id: int
    endpoint_id: str
    due: float


class NewEvent(NamedTuple):
    """One event to ingest: the event, the id it gets when it brings none, and its
    idempotency key with the item's position in its batch (-1: a single event)."""

    event: PreparedEvent
    fresh_id: str
    key: str | None = None
    key_item: int = -1


class Ingested(msgspec.Struct, frozen=True):
    """What ingesting one event did: its answer, and the deliveries it created."""

    accepted: models.Accepted
    created: list[NewDelivery]
    replayed: bool = False


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


class AttemptRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One attempt as it is logged, and where it leaves its delivery."""

    delivery_id: int
    endpoint_id: str
    event_id: str = ""  # for the alert of a delivery that ends failed
    event_type: str = ""
    number: int
    started_at: float
    duration_ms: float
    finished_at: float
    result: AttemptResult
    status: str  # pending (to retry), succeeded or failed
    next_attempt_at: float | None
    error: str | None  # the delivery's last error, None when it succeeded


class Recorded(NamedTuple):
    """What recording a batch of attempts did."""

    moved: list[bool]  # per record: False when its delivery was no longer pending
    disabled: list[tuple[str, str]]  # endpoints disabled by it, with the reason
    alerts: list[Ingested]  # the alert events stored with it


# Builds the alert events of final failures and disabled endpoints (`alerts.alert_events`);
# called on the writer thread inside the write that raised them.
AlertBuilder = Callable[
    [Sequence[FailedDelivery], Sequence[DisabledEndpoint], float], list["NewEvent"]
]


class _Write:
    __slots__ = ("done", "error", "fn", "result")

    def __init__(self, fn: Callable[[apsw.Connection], Any]) -> None:
        self.fn = fn
        self.done = trio.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class Store:
    """hookd's database. Open with `await Store.open(...)`, close with `await aclose()`."""

    def __init__(self, path: str, durability: str) -> None:
        self.path = path
        self._durability = durability
        self._queue: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        self._writer: apsw.Connection | None = None
        self._thread: threading.Thread | None = None
        self._readers: list[apsw.Connection] = []
        self._reader_limit = trio.CapacityLimiter(READERS)
        self._router: Router | None = None
        self._stats_kept_from = -1  # the minute old statistics were last dropped at
        self._token: trio.lowlevel.TrioToken | None = None
        self._lock: int | None = None  # the descriptor of `<path>.lock`, flocked
        self.commits = 0  # transactions committed by the writer
        self.writes = 0  # writes they carried
        self.commit_seconds: Histogram | None = None  # observed by the writer thread alone

    # -- life cycle ---------------------------------------------------------------------

    @classmethod
    async def open(cls, path: str, durability: str = "full") -> Store:
        """Open (creating and migrating when needed) the database at `path`."""
        store = cls(path, durability)
        await trio.to_thread.run_sync(store._connect)
        store._token = trio.lowlevel.current_trio_token()
        store._thread = threading.Thread(target=store._write_loop, name="hookd-writer")
        store._thread.start()
        return store

    def _connect(self) -> None:
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            self._lock = _lock(self.path)
        except OSError as exc:
            raise StorageError(f"cannot open database {self.path}: {exc}") from exc
        try:
            self._open_connections()
        except BaseException:
            _close_all([*self._readers, *([self._writer] if self._writer else [])])
            self._readers, self._writer = [], None
            self._unlock()
            raise

    def _open_connections(self) -> None:
        try:
            _owner_only(self.path)
            self._writer = writer = apsw.Connection(self.path)
            writer.setbusytimeout(5000)
            _check_sound(writer, self.path)
            writer.pragma("page_size", 8192)  # only takes on a new file, like auto_vacuum
            writer.pragma("auto_vacuum", "incremental")
            writer.pragma("journal_mode", "wal")
            writer.pragma("synchronous", "full" if self._durability == "full" else "normal")
            writer.pragma("foreign_keys", False)
            _migrate(writer)
            for _ in range(READERS):
                reader = apsw.Connection(self.path)
                reader.setbusytimeout(5000)
                reader.pragma("query_only", True)
                self._readers.append(reader)
        except (apsw.CorruptError, apsw.NotADBError) as exc:
            raise StorageError(_damaged(self.path, str(exc))) from exc
        except (apsw.Error, OSError) as exc:
            raise StorageError(f"cannot open database {self.path}: {exc}") from exc

    def _unlock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # closing the descriptor releases the flock
            self._lock = None

    async def aclose(self) -> None:
        """Finish the queued writes, stop the writer and close every connection."""
        if self._thread is not None:
            self._queue.put(None)
            await trio.to_thread.run_sync(self._thread.join)
            self._thread = None
        connections = [*self._readers, *([self._writer] if self._writer else [])]
        self._readers, self._writer = [], None
        await trio.to_thread.run_sync(_close_all, connections)
        self._unlock()

    # -- the writer ---------------------------------------------------------------------

    async def write(self, fn: Callable[[apsw.Connection], T]) -> T:
        """Run `fn(connection)` in the writer's next transaction; return once committed."""
        if self._thread is None:
            raise StorageError("the database is closed")
        op = _Write(fn)
        self._queue.put(op)
        with trio.CancelScope(shield=True):  # the write happens anyway: learn its fate
            await op.done.wait()
        if op.error is not None:
            raise op.error
        result: T = op.result
        return result

    def _write_loop(self) -> None:
        assert self._writer is not None
        assert self._token is not None
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            group = [first]
            while len(group) < MAX_GROUP:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                group.append(more)
            began = time.perf_counter()
            self._commit(self._writer, group)
            if self.commit_seconds is not None:
                self.commit_seconds.observe((), time.perf_counter() - began)
            self._token.run_sync_soon(_wake, group)

    def _commit(self, conn: apsw.Connection, group: list[_Write]) -> None:
        try:
            self._transaction(conn, group)
        except Exception as exc:
            if len(group) == 1:
                group[0].error = _translate(exc)
                return
            for op in group:  # find the one that failed: each alone, in its own transaction
                try:
                    self._transaction(conn, [op])
                except Exception as alone:
                    op.error = _translate(alone)

    def _transaction(self, conn: apsw.Connection, group: list[_Write]) -> None:
        """Run `group` in one transaction; refusals (ApiError) are the op's own result."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            for op in group:
                op.error = None
                try:
                    op.result = op.fn(conn)
                except ApiError as exc:  # raised before the op wrote anything
                    op.error = exc
            conn.execute("COMMIT")
        except BaseException:
            self._router = None
            if not conn.getautocommit():
                conn.execute("ROLLBACK")
            raise
        self.commits += 1
        self.writes += len(group)

    # -- the readers --------------------------------------------------------------------

    async def read(self, fn: Callable[[apsw.Connection], T]) -> T:
        """Run `fn(connection)` on a read-only connection in a worker thread."""
        async with self._reader_limit:
            if not self._readers:
                raise StorageError("the database is closed")
            conn = self._readers.pop()
            try:
                return await trio.to_thread.run_sync(_read_with, conn, fn)
            finally:
                self._readers.append(conn)

    # -- ingest -------------------------------------------------------------------------

    async def ingest(self, events: Sequence[NewEvent], now: float) -> list[Ingested]:
        """Store events with their deliveries, all or nothing.

        An event whose id or idempotency key is already stored (or came earlier in
        `events`) creates nothing and answers as it first did, marked `replayed`.
        """
        return await self.write(lambda conn: self._ingest(conn, events, now))

    def _ingest(
        self, conn: apsw.Connection, events: Sequence[NewEvent], now: float
    ) -> list[Ingested]:
        router = self._current_router(conn)
        results: list[Ingested] = []
        rows: list[tuple[Any, ...]] = []  # the new events, in order
        targets_of: list[Sequence[str]] = []  # and the endpoints each goes to
        by_id: dict[str, models.Accepted] = {}  # new in this call, for repeats within it
        by_key: dict[tuple[str, int], models.Accepted] = {}
        for event, fresh_id, key, item in events:
            earlier = None
            if key is not None:
                earlier = by_key.get((key, item)) or _accepted(conn, sql.EVENT_BY_KEY, (key, item))
            if earlier is None and event.id is not None:
                earlier = by_id.get(event.id) or _accepted(conn, sql.EVENT_BY_ID, (event.id,))
            if earlier is not None:
                results.append(Ingested(earlier, [], replayed=True))
                continue
            event_id = event.id or fresh_id
            targets = router.endpoints_for(event.event)
            accepted = by_id[event_id] = models.Accepted(event_id, event.event, len(targets))
            if key is not None:
                by_key[key, item] = accepted
            rows.append(
                (event_id, event.event, event.timestamp, now, event.body, key, item, len(targets))
            )
            targets_of.append(targets)
            results.append(Ingested(accepted, []))
        if rows:
            self._insert_new(conn, rows, targets_of, [r for r in results if not r.replayed], now)
        return results

    def _insert_new(
        self,
        conn: apsw.Connection,
        rows: list[tuple[Any, ...]],
        targets_of: list[Sequence[str]],
        results: list[Ingested],
        now: float,
    ) -> None:
        """Insert events and their deliveries with one executemany each.

        In the writer's transaction nobody else inserts, and a rowid is one more than the
        largest before it, so the rows get consecutive rowids ending at the last one.
        """
        conn.executemany(sql.INSERT_EVENT, rows)
        first_seq = conn.last_insert_rowid() - len(rows) + 1
        if _first(conn, sql.EVENT_ID_AT, (first_seq,)) != (rows[0][0],):
            raise StorageError("event rowids were not consecutive")
        deliveries = [
            (first_seq + n, endpoint_id, now, now, now)
            for n, targets in enumerate(targets_of)
            for endpoint_id in targets
        ]
        if not deliveries:
            return
        conn.executemany(sql.INSERT_DELIVERY, deliveries)
        delivery_id = conn.last_insert_rowid() - len(deliveries) + 1
        for result, targets in zip(results, targets_of, strict=True):
            for endpoint_id in targets:
                result.created.append(NewDelivery(delivery_id, endpoint_id, now))
                delivery_id += 1

    def _current_router(self, conn: apsw.Connection) -> Router:
        if self._router is None:
            self._router = Router(
                Subscription(ident, tuple(msgspec.json.decode(events)), bool(enabled))
                for ident, events, enabled in conn.execute(sql.ALL_SUBSCRIPTIONS)
            )
        return self._router

    # -- events -------------------------------------------------------------------------

    async def get_event(self, event_id: str) -> models.Event:
        """One event with its deliveries; 404 when unknown."""

        def query(conn: apsw.Connection) -> models.Event:
            row = _first(conn, sql.GET_EVENT, (event_id,))
            if row is None:
                raise not_found(f"event {event_id!r}")
            event = _event(row)
            event.deliveries = [
                _delivery(r) for r in conn.execute(sql.DELIVERIES_OF_EVENT, (row[0],))
            ]
            return event

        return await self.read(query)

    async def list_events(
        self, limit: int, before: int | None, event_type: str | None, since: float | None
    ) -> models.Page[models.Event]:
        """Events newest first; `before` is the cursor of the previous page."""

        def query(conn: apsw.Connection) -> models.Page[models.Event]:
            rows = conn.execute(
                sql.LIST_EVENTS,
                {"before": before or 2**62, "type": event_type, "since": since, "limit": limit},
            )
            return _page(rows, limit, _event, lambda row: row[0])

        return await self.read(query)

    # -- endpoints ----------------------------------------------------------------------

    async def create_endpoint(
        self, fields: dict[str, Any], now: float, *, origin: str
    ) -> models.Endpoint:
        """Store a new API-made endpoint; `fields` has every column but the times.

        `origin` (socket, tcp) is who asked, for the audit log.
        """

        def op(conn: apsw.Connection) -> models.Endpoint:
            conn.execute(sql.INSERT_ENDPOINT, _endpoint_params(fields, "api", now))
            _audit(conn, now, origin, fields["id"], None, fields)
            self._router = None
            return _get_endpoint(conn, fields["id"], now, with_secret=True)

        return await self.write(op)

    async def get_endpoint(self, endpoint_id: str, now: float) -> models.Endpoint:
        """One endpoint (without its secret) as it stands at `now`; 404 when unknown or
        deleted."""
        return await self.read(lambda conn: _get_endpoint(conn, endpoint_id, now))

    async def list_endpoints(
        self, limit: int, after: int | None, now: float
    ) -> models.Page[models.Endpoint]:
        """Endpoints in creation order, as they stand at `now`; `after` is the cursor of
        the previous page."""

        def query(conn: apsw.Connection) -> models.Page[models.Endpoint]:
            rows = conn.execute(sql.LIST_ENDPOINTS, (after or 0, limit))
            return _page(rows, limit, lambda row: _endpoint(row, now), lambda row: row[-1])

        return await self.read(query)

    async def update_endpoint(
        self,
        endpoint_id: str,
        changes: dict[str, Any],
        now: float,
        *,
        origin: str,
        alert: AlertBuilder | None = None,
    ) -> tuple[models.Endpoint, list[Ingested]]:
        """Apply `changes` to an API-made endpoint, asked from `origin` (audit log); the
        endpoint, and the `alert` stored when this change disabled it.

        An endpoint that is disabled has its pending deliveries cancelled.
        """

        def op(conn: apsw.Connection) -> tuple[models.Endpoint, list[Ingested]]:
            current = _get_endpoint(conn, endpoint_id, now, with_secret=True)
            if current.origin == "config":
                raise conflict(
                    f"endpoint {endpoint_id!r} is declared in the config file; change it there"
                )
            _settled_secrets(conn, endpoint_id, now)  # the row's secret is `current`'s
            before = msgspec.structs.asdict(current)
            merged = {**before, **changes}
            conn.execute(sql.UPDATE_ENDPOINT, _endpoint_params(merged, "api", now))
            self._router = None  # before an alert is routed
            stored: list[Ingested] = []
            if current.enabled and not merged["enabled"]:
                conn.execute(sql.CANCEL_PENDING_OF_ENDPOINT, (now, endpoint_id))
                if alert is not None:
                    gone = DisabledEndpoint(
                        endpointId=endpoint_id, url=merged["url"], motivo=DISABLED_BY_HAND
                    )
                    stored = self._ingest(conn, alert([], [gone], now), now)
            _audit(conn, now, origin, endpoint_id, before, merged)
            changed = "secret" in changes
            return _get_endpoint(conn, endpoint_id, now, with_secret=changed), stored

        return await self.write(op)

    async def rotate_secret(
        self,
        endpoint_id: str,
        secret: str,
        overlap: float,
        now: float,
        *,
        origin: str,
        activate_at: float | None = None,
    ) -> models.Endpoint:
        """Give an API-made endpoint a new secret, at once or staged to take over at
        `activate_at` (`Secrets.rotated`); the one it replaces keeps signing beside it
        for `overlap` seconds from then (none when 0). `origin` is who asked (audit
        log). The answer shows the new secret.
        """

        def op(conn: apsw.Connection) -> models.Endpoint:
            current = _get_endpoint(conn, endpoint_id, now, with_secret=True)
            if current.origin == "config":
                raise conflict(
                    f"endpoint {endpoint_id!r} is declared in the config file; change it there"
                )
            rotated = _settled_secrets(conn, endpoint_id, now).rotated(
                secret, now, overlap, activate_at
            )
            conn.execute(sql.SET_SECRETS, _secret_params(endpoint_id, rotated, now))
            before = msgspec.structs.asdict(current)
            field = "secret" if rotated.current == secret else "next_secret"
            _audit(conn, now, origin, endpoint_id, before, {**before, field: secret})
            endpoint = _get_endpoint(conn, endpoint_id, now)
            endpoint.secret = secret
            return endpoint

        return await self.write(op)

    async def delete_endpoint(self, endpoint_id: str, now: float, *, origin: str) -> None:
        """Delete an API-made endpoint and cancel its pending deliveries; `origin` is who
        asked (audit log)."""

        def op(conn: apsw.Connection) -> None:
            current = _get_endpoint(conn, endpoint_id, now)
            if current.origin == "config":
                raise conflict(
                    f"endpoint {endpoint_id!r} is declared in the config file; remove it there"
                )
            conn.execute(sql.DELETE_ENDPOINT, (now, endpoint_id))
            conn.execute(sql.CANCEL_PENDING_OF_ENDPOINT, (now, endpoint_id))
            _audit(conn, now, origin, endpoint_id, {}, None)
            self._router = None

        await self.write(op)

    async def sync_config_endpoints(self, declared: Iterable[dict[str, Any]], now: float) -> None:
        """Make the config file's endpoints the stored ones with origin "config".

        Endpoints that left the file are deleted (their history stays). What this changes
        is in the audit log with origin "config".
        """
        wanted = list(declared)

        def op(conn: apsw.Connection) -> None:
            for fields in wanted:
                row = _first(conn, sql.GET_ENDPOINT, (fields["id"],))
                before = msgspec.structs.asdict(_endpoint(row, now, True)) if row else None
                conn.execute(sql.UPSERT_CONFIG_ENDPOINT, _endpoint_params(fields, "config", now))
                if not fields.get("enabled", True):  # disabled in the file: as through the API
                    conn.execute(sql.CANCEL_PENDING_OF_ENDPOINT, (now, fields["id"]))
                _audit(conn, now, "config", fields["id"], before, {**fields, "origin": "config"})
            keep = {fields["id"] for fields in wanted}
            for (ident,) in list(conn.execute(sql.CONFIG_ENDPOINT_IDS)):
                if ident not in keep:
                    conn.execute(sql.DELETE_ENDPOINT, (now, ident))
                    conn.execute(sql.CANCEL_PENDING_OF_ENDPOINT, (now, ident))
                    _audit(conn, now, "config", ident, {}, None)
            self._router = None

        await self.write(op)

    async def send_test_event(
        self, endpoint_id: str, event: PreparedEvent, event_id: str, now: float
    ) -> Ingested:
        """Store `event` with one delivery, to `endpoint_id` alone (the endpoint test)."""

        def op(conn: apsw.Connection) -> Ingested:
            _enabled_endpoint(conn, endpoint_id, now)
            conn.execute(
                sql.INSERT_EVENT,
                (event_id, event.event, event.timestamp, now, event.body, None, -1, 1),
            )
            seq = conn.last_insert_rowid()
            conn.execute(sql.INSERT_DELIVERY, (seq, endpoint_id, now, now, now))
            created = [NewDelivery(conn.last_insert_rowid(), endpoint_id, now)]
            return Ingested(models.Accepted(event_id, event.event, 1), created)

        return await self.write(op)

    # -- the scheduler ------------------------------------------------------------------

    async def endpoints_with_pending(self) -> list[str]:
        """Ids of the endpoints that have pending deliveries."""
        return await self.read(
            lambda conn: [r[0] for r in conn.execute(sql.ENDPOINTS_WITH_PENDING)]
        )

    async def due_rows(
        self, endpoint_id: str, after: tuple[float, int], until: float, limit: int
    ) -> tuple[list[tuple[int, float]], float | None]:
        """An endpoint's pending deliveries after `after` and due by `until`.

        Returns up to `limit` (id, due) pairs in due order and, when there are fewer, the
        due time of the first pending delivery after `until` (None if there is none).
        """
        params = {
            "endpoint": endpoint_id,
            "after_time": after[0],
            "after_id": after[1],
            "until": until,
            "limit": limit,
        }

        def query(conn: apsw.Connection) -> tuple[list[tuple[int, float]], float | None]:
            rows = [(r[0], r[1]) for r in conn.execute(sql.DUE_OF_ENDPOINT, params)]
            later = None
            if len(rows) < limit:
                later = _first(conn, sql.NEXT_DUE_OF_ENDPOINT, (endpoint_id, until))
            return rows, later[0] if later else None

        return await self.read(query)

    async def load_jobs(self, delivery_ids: Sequence[int]) -> dict[int, Job]:
        """What the attempts of these deliveries need; those no longer due are left out."""
        ids = msgspec.json.encode(list(delivery_ids))

        def query(conn: apsw.Connection) -> dict[int, Job]:
            jobs = {}
            for row in conn.execute(sql.LOAD_JOBS, (ids,)):
                ident, endpoint, url, event_id, kind, body, attempts, start, *secrets = row
                jobs[ident] = Job(
                    delivery_id=ident,
                    endpoint_id=endpoint,
                    url=url,
                    secrets=Secrets(*secrets),
                    event_id=event_id,
                    event_type=kind,
                    body=body,
                    attempt=attempts + 1,
                    round_attempt=attempts - start + 1,
                )
            return jobs

        return await self.read(query)

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

        def op(conn: apsw.Connection) -> Recorded:
            conn.executemany(sql.INSERT_ATTEMPT, [_attempt_row(r) for r in records])
            params = [_finish_params(r) for r in records]
            moved = {row[0] for row in conn.executemany(sql.FINISH_ATTEMPT, params)}
            flags = [r.delivery_id in moved for r in records]
            if len(moved) < len(records):
                left = [(r.number, r.delivery_id) for r in records if r.delivery_id not in moved]
                conn.executemany(sql.COUNT_ATTEMPT, left)
            disabled = self._account(conn, records, flags, disable_after)
            now = max(record.finished_at for record in records)
            failed = [
                _failure(record)
                for record, moved_on in zip(records, flags, strict=True)
                if moved_on and record.status == "failed"
            ]
            stored = []
            if alert is not None and (failed or disabled):
                gone = [
                    DisabledEndpoint(endpointId=e, url=url, motivo=why) for e, url, why in disabled
                ]
                stored = self._ingest(conn, alert(failed, gone, now), now)
            return Recorded(flags, [(e, why) for e, _, why in disabled], stored)

        return await self.write(op)

    def _account(
        self,
        conn: apsw.Connection,
        records: Sequence[AttemptRecord],
        moved: Sequence[bool],
        disable_after: float,
    ) -> list[tuple[str, str, str]]:
        """Statistics (by minute and hour) and health of the endpoints; who got disabled
        (id, URL, reason). An interrupted attempt says nothing of its receiver: it counts
        in neither."""
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
            conn.executemany(sql.ADD_STATS, [(*key, *c.row()) for key, c in periods.items()])
        now = max(record.finished_at for record in records)
        if stats.period_of(now, stats.MINUTE) != self._stats_kept_from:  # once a minute
            self._stats_kept_from = stats.period_of(now, stats.MINUTE)
            for unit, count in stats.WINDOWS.values():  # drop what left every window
                conn.execute(sql.FORGET_STATS, (unit, stats.window_start(now, unit, count)))
        disabled = []
        for endpoint_id, delta in health.items():
            row = _first(conn, sql.UPDATE_HEALTH, {"endpoint": endpoint_id, **delta.params()})
            if row is None:  # deleted meanwhile
                continue
            enabled, failing_since = row
            reason = None
            if endpoint_id in gone:
                reason = "it answered 410 Gone"
            elif (
                disable_after and failing_since is not None and now - failing_since >= disable_after
            ):
                reason = (
                    f"nothing but failures since {models.iso(failing_since)} "
                    f"(delivery.disable_after = {format_duration(disable_after)})"
                )
            if enabled and reason is not None:
                [(url,)] = conn.execute(sql.DISABLE_ENDPOINT, (reason, now, endpoint_id))
                conn.execute(sql.CANCEL_PENDING_OF_ENDPOINT, (now, endpoint_id))
                _audit(conn, now, "hookd", endpoint_id, {"enabled": True}, {"enabled": False})
                self._router = None
                disabled.append((endpoint_id, url, reason))
        return disabled

    # -- statistics ---------------------------------------------------------------------

    async def endpoint_stats(
        self, endpoint_id: str | None, now: float
    ) -> list[models.EndpointStats]:
        """Health, backlog and windowed statistics of one endpoint (404 if unknown) or all."""

        def query(conn: apsw.Connection) -> list[models.EndpointStats]:
            if endpoint_id is None:
                rows = list(conn.execute(sql.ALL_ENDPOINT_HEALTH))
                pending = list(conn.execute(sql.PENDING_BY_ENDPOINT))
            else:
                rows = list(conn.execute(sql.ENDPOINT_HEALTH, (endpoint_id,)))
                if not rows:
                    raise not_found(f"endpoint {endpoint_id!r}")
                pending = list(conn.execute(sql.PENDING_OF_ENDPOINT, (endpoint_id,)))
            windows: dict[str, dict[str, stats.PeriodCounts]] = {}
            for name, (unit, count) in stats.WINDOWS.items():
                params = {
                    "unit": unit,
                    "start": stats.window_start(now, unit, count),
                    "end": stats.period_of(now, unit),
                    "endpoint": endpoint_id,
                }
                totals = conn.execute(sql.window_totals(endpoint_id is not None), params)
                windows[name] = {r[0]: stats.PeriodCounts.from_row(r[1:]) for r in totals}
            backlog = {ident: (count, oldest) for ident, count, oldest in pending}
            return [_endpoint_stats(row, backlog, windows, now) for row in rows]

        return await self.read(query)

    # -- deliveries ---------------------------------------------------------------------

    async def list_deliveries(
        self, limit: int, before: int | None, filters: dict[str, str]
    ) -> models.Page[models.Delivery]:
        """Deliveries newest first, filtered by status, endpoint and/or event id."""
        query_text = sql.list_deliveries(sorted(filters))
        params: dict[str, Any] = {**filters, "before": before or 2**62, "limit": limit}

        def query(conn: apsw.Connection) -> models.Page[models.Delivery]:
            return _page(conn.execute(query_text, params), limit, _delivery, lambda row: row[0])

        return await self.read(query)

    async def get_delivery(self, delivery_id: int) -> models.Delivery:
        """One delivery with every attempt; 404 when unknown."""
        return await self.read(lambda conn: _get_delivery(conn, delivery_id))

    async def retry_delivery(self, delivery_id: int, now: float) -> models.Delivery:
        """Make a delivery due now; a finished one starts a new round of attempts."""

        def op(conn: apsw.Connection) -> models.Delivery:
            state = _first(conn, sql.DELIVERY_ENDPOINT_STATE, (delivery_id,))
            if state is None:
                raise not_found(f"delivery {delivery_id}")
            endpoint_id, enabled, deleted_at = state
            if deleted_at is not None or not enabled:
                raise conflict(
                    f"endpoint {endpoint_id!r} is {'deleted' if deleted_at else 'disabled'}; "
                    "its deliveries cannot be retried"
                )
            conn.execute(sql.RETRY_DELIVERY, {"id": delivery_id, "now": now})
            return _get_delivery(conn, delivery_id)

        return await self.write(op)

    async def replay_endpoint(self, endpoint_id: str, status: str, since: float, now: float) -> int:
        """Re-queue an endpoint's deliveries with `status` created since `since`."""

        def op(conn: apsw.Connection) -> int:
            _enabled_endpoint(conn, endpoint_id, now)
            conn.execute(
                sql.REPLAY_ENDPOINT,
                {"endpoint": endpoint_id, "status": status, "since": since, "now": now},
            )
            return conn.changes()

        return await self.write(op)

    # -- status -------------------------------------------------------------------------

    async def status(self, version: str, now: float) -> models.Status:
        """Endpoint and delivery counts, and the age of the oldest pending delivery."""

        def query(conn: apsw.Connection) -> models.Status:
            counts = dict.fromkeys(models.DELIVERY_STATUSES, 0)
            counts.update((status, n) for status, n in conn.execute(sql.DELIVERY_COUNTS))
            endpoints, enabled = _first(conn, sql.ENDPOINT_COUNTS, ()) or (0, 0)
            oldest = _first(conn, sql.OLDEST_PENDING, ())
            return models.Status(
                version=version,
                endpoints=endpoints,
                endpoints_enabled=enabled,
                deliveries=counts,
                oldest_pending_at=models.iso(oldest[0]) if oldest else None,
                oldest_pending_age_s=round(max(0.0, now - oldest[0]), 3) if oldest else None,
            )

        return await self.read(query)

    async def backlog(self) -> Backlog:
        """The pending deliveries of every live endpoint, and the size on disk."""

        def query(conn: apsw.Connection) -> Backlog:
            pending: dict[str, tuple[int, float | None]] = {
                ident: (0, None) for (ident,) in conn.execute(sql.LIVE_ENDPOINT_IDS)
            }
            for ident, count, oldest in conn.execute(sql.PENDING_BY_ENDPOINT):
                pending[ident] = (count, oldest)
            return Backlog(pending, _file_bytes(self.path))

        return await self.read(query)

    # -- retention ----------------------------------------------------------------------

    async def retention_due(self, cutoff: float) -> RetentionDue:
        """What a retention round with `cutoff` has to do, found without writing."""

        def query(conn: apsw.Connection) -> RetentionDue:
            deliveries, events = _first(conn, sql.RETENTION_DUE, (cutoff,)) or (0, 0)
            free: int = conn.pragma("freelist_count")
            return RetentionDue(deliveries=bool(deliveries), events=bool(events), free_pages=free)

        return await self.read(query)

    async def purge_finished(self, cutoff: float, limit: int) -> Purged:
        """Delete up to `limit` deliveries finished before `cutoff` (oldest first), their
        attempts, and those of their events received before `cutoff` left with none."""

        def op(conn: apsw.Connection) -> Purged:
            params = {"cutoff": cutoff, "limit": limit}
            count, ids, seqs = _first(conn, sql.PURGE_FINISHED, params) or (0, "[]", "[]")
            if not count:
                return Purged()
            conn.execute(sql.PURGE_ATTEMPTS, (ids,))
            attempts = conn.changes()
            conn.execute(sql.PURGE_DELIVERIES, (ids,))
            conn.execute(sql.PURGE_EMPTIED_EVENTS, {"seqs": seqs, "cutoff": cutoff})
            return Purged(deliveries=count, attempts=attempts, events=conn.changes())

        return await self.write(op)

    async def sweep_events(self, cutoff: float, after: int, limit: int) -> tuple[int, int | None]:
        """Delete the events without deliveries among the next `limit` after seq `after`,
        in arrival order, stopping at the first one received since `cutoff`.

        Returns how many were deleted and the seq to go on after, or None at the end.
        """

        def op(conn: apsw.Connection) -> tuple[int, int | None]:
            params = {"after": after, "limit": limit, "cutoff": cutoff}
            seen, last, doomed = _first(conn, sql.SWEEP_EVENTS, params) or (0, None, "[]")
            deleted = 0
            if doomed != "[]":
                conn.execute(sql.DELETE_EVENTS, (doomed,))
                deleted = conn.changes()
            return deleted, (last if seen == limit else None)

        return await self.write(op)

    async def vacuum(self, pages: int) -> tuple[int, int]:
        """Give up to `pages` (at least 1) free pages back to the file system; how many
        were given back, and how many stay free."""
        if pages < 1:
            raise ValueError("vacuum needs a number of pages of at least 1")

        def op(conn: apsw.Connection) -> tuple[int, int]:
            freed = sum(1 for _ in conn.execute(sql.incremental_vacuum(pages)))  # a row a page
            free: int = conn.pragma("freelist_count")
            return freed, free

        return await self.write(op)

    async def checkpoint(self) -> None:
        """Copy the WAL into the database file without waiting for anyone; the file then
        shrinks to what `vacuum` left (SQLite truncates it when the WAL is all copied)."""
        await self.read(lambda conn: list(conn.execute(sql.CHECKPOINT)))

    # -- audit --------------------------------------------------------------------------

    async def list_audit(
        self, limit: int, before: int | None, filters: dict[str, Any]
    ) -> models.Page[models.AuditEntry]:
        """Endpoint changes newest first, filtered by `endpoint` and/or `since` (a time)."""
        query_text = sql.list_audit(sorted(filters))
        params: dict[str, Any] = {**filters, "before": before or 2**62, "limit": limit}

        def query(conn: apsw.Connection) -> models.Page[models.AuditEntry]:
            rows = conn.execute(query_text, params)
            return _page(rows, limit, _audit_entry, lambda row: row[0])

        return await self.read(query)


# -- helpers (writer thread or reader threads) -------------------------------------------


def _migrate(conn: apsw.Connection) -> None:
    version = conn.pragma("user_version")
    if version > len(sql.MIGRATIONS):
        raise StorageError(
            f"the database is at schema version {version}, newer than this hookd knows "
            f"({len(sql.MIGRATIONS)}); upgrade hookd"
        )
    for target, script in enumerate(sql.MIGRATIONS[version:], start=version + 1):
        with conn:
            conn.execute(script)
            if target == 6:
                _split_batch_keys(conn)
            conn.pragma("user_version", target)
    if version < 6 <= len(sql.MIGRATIONS):  # the copied tables' old pages go back at once
        for _ in conn.execute(sql.incremental_vacuum(conn.pragma("freelist_count"))):
            pass  # a row per page given back


_ITEM_SUFFIX = re.compile(r"(.*)#(0|[1-9][0-9]{0,5})", re.DOTALL)


def _split_batch_keys(conn: apsw.Connection) -> None:
    """Move the keys hookd stored for batch items as `KEY#N` to (`KEY`, N)."""
    for seq, key in list(conn.execute(sql.KEYS_WITH_ITEM_SUFFIX)):
        match = _ITEM_SUFFIX.fullmatch(key)
        if match is not None:
            conn.execute(sql.SET_EVENT_KEY, (match[1], int(match[2]), seq))


def _translate(exc: Exception) -> Exception:
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, apsw.ConstraintError):
        return conflict(f"conflicts with a stored record: {exc}")
    if isinstance(exc, apsw.Error):
        return StorageError(f"database write failed: {exc}")
    return exc


def _close_all(connections: list[apsw.Connection]) -> None:
    for conn in connections:
        conn.close()


def _wake(group: list[_Write]) -> None:
    for op in group:
        op.done.set()


def _read_with(conn: apsw.Connection, fn: Callable[[apsw.Connection], T]) -> T:
    try:
        return fn(conn)
    except apsw.Error as exc:
        raise ReadError(f"database read failed: {exc}") from exc


def _lock(path: str) -> int:
    """Lock `<path>.lock` for this process and write its pid there; its descriptor."""
    name = f"{path}.lock"
    fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, OWNER_ONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise StorageError(
            f"the database {path} is in use by another hookd (pid {holder}, "
            f"holding {name}); stop it first"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _owner_only(path: str) -> None:
    """Create the database file 0600 if new; take group and other access off old files."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, OWNER_ONLY))
    for name in (path, f"{path}-wal", f"{path}-shm"):  # SQLite gives new ones path's mode
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if os.stat(name).st_mode & 0o077:
                os.chmod(name, OWNER_ONLY)


def _check_sound(conn: apsw.Connection, path: str) -> None:
    """Refuse a database whose pages `PRAGMA quick_check` finds damaged."""
    rows = [str(row[0]) for row in conn.execute("PRAGMA quick_check(1)")]
    if rows != ["ok"]:
        first = " ".join(rows[0].split()) if rows else "no answer"  # one line for the log
        raise StorageError(_damaged(path, first))


def _damaged(path: str, problem: str) -> str:
    return f"the database {path} is damaged ({problem}); hookd will not start on it: " + (
        RESTORE_POINTER
    )


def _page(
    rows: Iterable[Row], limit: int, item: Callable[[Row], T], cursor: Callable[[Row], Any]
) -> models.Page[T]:
    """A page of at most `limit` items and about PAGE_BYTES: the rows are read only until
    either is reached (always one at least), and the cursor then points past the last."""
    items: list[T] = []
    size = 0
    for row in rows:
        items.append(item(row))
        size += sum(len(value) for value in row if isinstance(value, str | bytes))
        if len(items) == limit or size >= PAGE_BYTES:
            return models.Page(items, str(cursor(row)))
    return models.Page(items, None)


def _file_bytes(path: str) -> int:
    total = 0
    for name in (path, f"{path}-wal"):
        with contextlib.suppress(FileNotFoundError):  # no WAL yet, or checkpointed away
            total += os.stat(name).st_size
    return total


def _accepted(conn: apsw.Connection, query: str, params: Row) -> models.Accepted | None:
    row = _first(conn, query, params)
    return models.Accepted(*row) if row else None


def _first(conn: apsw.Connection, query: str, params: Sequence[Any] | dict[str, Any]) -> Row | None:
    for row in conn.execute(query, params):
        return tuple(row)
    return None


_body_data = msgspec.json.Decoder(dict[str, msgspec.Raw])


def _event(row: Row) -> models.Event:
    _seq, ident, kind, timestamp, received_at, body = row
    return models.Event(
        id=ident,
        event=kind,
        timestamp=timestamp,
        received_at=models.iso(received_at),
        data=_body_data.decode(body)["data"],
    )


def _endpoint(row: Row, now: float, with_secret: bool = False) -> models.Endpoint:
    ident, url, events, description, enabled, origin, created, updated, *stored, _ = row
    secrets = Secrets(*stored).at(now)
    return models.Endpoint(
        id=ident,
        url=url,
        events=msgspec.json.decode(events),
        description=description,
        enabled=bool(enabled),
        origin=origin,
        created_at=models.iso(created),
        updated_at=models.iso(updated),
        previous_secret_until=models.iso(secrets.previous_until),
        next_secret_at=models.iso(secrets.next_at),
        secret=secrets.current if with_secret else msgspec.UNSET,
    )


def _get_endpoint(
    conn: apsw.Connection, endpoint_id: str, now: float, with_secret: bool = False
) -> models.Endpoint:
    row = _first(conn, sql.GET_ENDPOINT, (endpoint_id,))
    if row is None:
        raise not_found(f"endpoint {endpoint_id!r}")
    return _endpoint(row, now, with_secret)


def _settled_secrets(conn: apsw.Connection, endpoint_id: str, now: float) -> Secrets:
    """An endpoint's secrets as they stand at `now`, written back when a staged secret
    has taken over since they were stored (nothing is written at that moment itself)."""
    row = _first(conn, sql.GET_SECRETS, (endpoint_id,))
    if row is None:
        raise not_found(f"endpoint {endpoint_id!r}")
    stored = Secrets(*row)
    settled = stored.at(now)
    if settled != stored:
        conn.execute(sql.SET_SECRETS, _secret_params(endpoint_id, settled, None))
    return settled


def _secret_params(endpoint_id: str, secrets: Secrets, now: float | None) -> dict[str, Any]:
    """SET_SECRETS's parameters; `now` None leaves `updated_at` as it is."""
    return {**secrets._asdict(), "id": endpoint_id, "now": now}


def _endpoint_stats(
    row: Row,
    backlog: dict[str, tuple[int, float | None]],
    windows: dict[str, dict[str, stats.PeriodCounts]],
    now: float,
) -> models.EndpointStats:
    ident, url, enabled, failures, failing_since, last_success, reason = row
    pending, oldest = backlog.get(ident, (0, None))
    return models.EndpointStats(
        id=ident,
        url=url,
        enabled=bool(enabled),
        disabled_reason=None if enabled else reason,
        pending=pending,
        oldest_pending_at=models.iso(oldest) if oldest is not None else None,
        oldest_pending_age_s=round(max(0.0, now - oldest), 3) if oldest is not None else None,
        last_success_at=models.iso(last_success) if last_success is not None else None,
        consecutive_failures=failures,
        failing_since=models.iso(failing_since) if failing_since is not None else None,
        windows={
            name: stats.summarize(by_endpoint.get(ident) or stats.PeriodCounts())
            for name, by_endpoint in windows.items()
        },
    )


def _attempt_row(record: AttemptRecord) -> tuple[Any, ...]:
    result = record.result
    return (
        record.delivery_id,
        record.number,
        record.started_at,
        record.duration_ms,
        result.status_code,
        result.error_kind,
        result.error,
        result.excerpt,
    )


def _failure(record: AttemptRecord) -> FailedDelivery:
    return FailedDelivery(
        entregaId=record.delivery_id,
        eventoId=record.event_id,
        evento=record.event_type,
        endpointId=record.endpoint_id,
        tentativas=record.number,
        ultimoStatus=record.result.status_code,
        ultimoErro=record.error,
    )


def _finish_params(record: AttemptRecord) -> dict[str, Any]:
    return {
        "id": record.delivery_id,
        "number": record.number,
        "skip": int(record.result.error_kind == INTERRUPTED),
        "status": record.status,
        "next": record.next_attempt_at,
        "now": record.finished_at,
        "code": record.result.status_code,
        "error": record.error,
    }


def _enabled_endpoint(conn: apsw.Connection, endpoint_id: str, now: float) -> models.Endpoint:
    endpoint = _get_endpoint(conn, endpoint_id, now)
    if not endpoint.enabled:
        raise conflict(f"endpoint {endpoint_id!r} is disabled; enable it first")
    return endpoint


def _endpoint_params(fields: dict[str, Any], origin: str, now: float) -> dict[str, Any]:
    return {
        "id": fields["id"],
        "url": fields["url"],
        "events": msgspec.json.encode(list(fields["events"])).decode(),
        "secret": fields["secret"],
        "description": fields.get("description", ""),
        "enabled": int(fields.get("enabled", True)),
        "origin": origin,
        "now": now,
    }


def _get_delivery(conn: apsw.Connection, delivery_id: int) -> models.Delivery:
    row = _first(conn, sql.GET_DELIVERY, (delivery_id,))
    if row is None:
        raise not_found(f"delivery {delivery_id}")
    delivery = _delivery(row)
    delivery.attempt_log = [
        models.Attempt(
            number=number,
            started_at=models.iso(started),
            duration_ms=round(duration, 1),
            status_code=code,
            error_kind=kind,
            error=error,
            response_excerpt=bytes(excerpt).decode("utf-8", "replace"),
        )
        for number, started, duration, code, kind, error, excerpt in conn.execute(
            sql.ATTEMPTS_OF_DELIVERY, (delivery_id,)
        )
    ]
    return delivery


def _delivery(row: Row) -> models.Delivery:
    ident, event_id, kind, endpoint_id, status, attempts, due, created, updated, code, err = row
    return models.Delivery(
        id=ident,
        event_id=event_id,
        event=kind,
        endpoint_id=endpoint_id,
        status=status,
        attempts=attempts,
        next_attempt_at=models.iso(due),
        created_at=models.iso(created),
        updated_at=models.iso(updated),
        last_status_code=code,
        last_error=err,
    )


def _audit(
    conn: apsw.Connection,
    now: float,
    origin: str,
    endpoint_id: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    """Record the change from `before` to `after` (None: no endpoint) in the audit log."""
    change = audit.describe(before, after)
    if change is not None:
        fields = msgspec.json.encode(change.fields).decode()
        conn.execute(sql.INSERT_AUDIT, (now, origin, change.action, endpoint_id, fields))


def _audit_entry(row: Row) -> models.AuditEntry:
    ident, at, origin, action, endpoint_id, fields = row
    return models.AuditEntry(
        id=ident,
        at=models.iso(at),
        origin=origin,
        action=action,
        endpoint_id=endpoint_id,
        fields=msgspec.json.decode(fields),
    )
