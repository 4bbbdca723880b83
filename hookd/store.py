"""The database: SQLite through apsw, in WAL mode, with one writer and group commit.

Rules:
- This is the only module that imports apsw. apsw errors are translated here: a full
  disk or an unusable file becomes `StorageError` (the API answers 503), never a crash.
- No apsw call runs on the trio thread. Writes go to one writer thread that owns the
  write connection: it takes every write waiting in its queue, runs each in its own
  savepoint inside one transaction, commits once, and only then wakes the callers
  (group commit). With `durability = "full"` the commit is fsynced before anyone is
  acknowledged. Reads run on a small pool of read-only connections in worker threads.
- Each write is a plain function of the connection; what it raises (an `ApiError` for a
  missing endpoint, say) rolls back its savepoint alone and is re-raised to its caller.
- Callers pass the time in: the store never reads the clock.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import apsw
import msgspec
import trio

from hookd import models, sql
from hookd.core.envelope import PreparedEvent
from hookd.core.routing import Router, Subscription
from hookd.errors import ApiError, conflict, not_found

T = TypeVar("T")
Row = tuple[Any, ...]

READERS = 4
MAX_GROUP = 512  # writes committed together at most


class StorageError(Exception):
    """The database cannot take the write (disk full, file unusable)."""


class NewDelivery(msgspec.Struct, frozen=True, array_like=True):
    """A delivery row just created, due at once."""

    id: int
    endpoint_id: str


class Ingested(msgspec.Struct, frozen=True):
    """What ingesting one event did: its answer, and the deliveries it created."""

    accepted: models.Accepted
    created: list[NewDelivery]
    replayed: bool = False


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
        self._token: trio.lowlevel.TrioToken | None = None
        self.commits = 0  # transactions committed by the writer
        self.writes = 0  # writes they carried

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
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(directory, exist_ok=True)
            writer = apsw.Connection(self.path)
            writer.setbusytimeout(5000)
            writer.pragma("auto_vacuum", "incremental")  # only takes on a new file
            writer.pragma("journal_mode", "wal")
            writer.pragma("synchronous", "full" if self._durability == "full" else "normal")
            writer.pragma("foreign_keys", False)
            _migrate(writer)
            self._writer = writer
            for _ in range(READERS):
                reader = apsw.Connection(self.path)
                reader.setbusytimeout(5000)
                reader.pragma("query_only", True)
                self._readers.append(reader)
        except (apsw.Error, OSError) as exc:
            raise StorageError(f"cannot open database {self.path}: {exc}") from exc

    async def aclose(self) -> None:
        """Finish the queued writes, stop the writer and close every connection."""
        if self._thread is not None:
            self._queue.put(None)
            await trio.to_thread.run_sync(self._thread.join)
            self._thread = None
        connections = [*self._readers, *([self._writer] if self._writer else [])]
        self._readers, self._writer = [], None
        await trio.to_thread.run_sync(_close_all, connections)

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
            self._commit(self._writer, group)
            self._token.run_sync_soon(_wake, group)

    def _commit(self, conn: apsw.Connection, group: list[_Write]) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op in group:
                conn.execute("SAVEPOINT op")
                try:
                    op.result = op.fn(conn)
                except Exception as exc:
                    conn.execute("ROLLBACK TO op")
                    op.error = _translate(exc)
                conn.execute("RELEASE op")
            conn.execute("COMMIT")
            self.commits += 1
            self.writes += len(group)
        except apsw.Error as exc:
            self._router = None
            if not conn.getautocommit():
                conn.execute("ROLLBACK")
            failure = StorageError(f"database write failed: {exc}")
            for op in group:
                op.error = op.error or failure

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

    async def ingest(
        self, events: Sequence[tuple[PreparedEvent, str, str | None]], now: float
    ) -> list[Ingested]:
        """Store events with their deliveries, all or nothing.

        Each item is (event, id to use when it brings none, idempotency key). An event
        whose id or key is already stored creates nothing and answers as it first did.
        """
        return await self.write(lambda conn: self._ingest(conn, events, now))

    def _ingest(
        self,
        conn: apsw.Connection,
        events: Sequence[tuple[PreparedEvent, str, str | None]],
        now: float,
    ) -> list[Ingested]:
        router = self._current_router(conn)
        results = []
        for event, fresh_id, key in events:
            earlier = _first(conn, sql.EVENT_BY_KEY, (key,)) if key else None
            if earlier is None and event.id is not None:
                earlier = _first(conn, sql.EVENT_BY_ID, (event.id,))
            if earlier is not None:
                results.append(Ingested(models.Accepted(*earlier), [], replayed=True))
                continue
            event_id = event.id or fresh_id
            targets = router.endpoints_for(event.event)
            conn.execute(
                sql.INSERT_EVENT,
                (event_id, event.event, event.timestamp, now, event.body, key, len(targets)),
            )
            seq = conn.last_insert_rowid()
            created = []
            for endpoint_id in targets:
                conn.execute(sql.INSERT_DELIVERY, (seq, endpoint_id, now, now, now))
                created.append(NewDelivery(conn.last_insert_rowid(), endpoint_id))
            results.append(Ingested(models.Accepted(event_id, event.event, len(targets)), created))
        return results

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
    ) -> models.Page:
        """Events newest first; `before` is the cursor of the previous page."""

        def query(conn: apsw.Connection) -> models.Page:
            rows = list(
                conn.execute(
                    sql.LIST_EVENTS,
                    {"before": before or 2**62, "type": event_type, "since": since, "limit": limit},
                )
            )
            cursor = str(rows[-1][0]) if len(rows) == limit else None
            return models.Page([_event(r) for r in rows], cursor)

        return await self.read(query)

    # -- endpoints ----------------------------------------------------------------------

    async def create_endpoint(self, fields: dict[str, Any], now: float) -> models.Endpoint:
        """Store a new API-made endpoint; `fields` has every column but the times."""

        def op(conn: apsw.Connection) -> models.Endpoint:
            conn.execute(sql.INSERT_ENDPOINT, _endpoint_params(fields, "api", now))
            self._router = None
            return _get_endpoint(conn, fields["id"], with_secret=True)

        return await self.write(op)

    async def get_endpoint(self, endpoint_id: str) -> models.Endpoint:
        """One endpoint (without its secret); 404 when unknown or deleted."""
        return await self.read(lambda conn: _get_endpoint(conn, endpoint_id))

    async def list_endpoints(self, limit: int, after: int | None) -> models.Page:
        """Endpoints in creation order; `after` is the cursor of the previous page."""

        def query(conn: apsw.Connection) -> models.Page:
            rows = list(conn.execute(sql.LIST_ENDPOINTS, (after or 0, limit)))
            cursor = str(rows[-1][-1]) if len(rows) == limit else None
            return models.Page([_endpoint(r) for r in rows], cursor)

        return await self.read(query)

    async def update_endpoint(
        self, endpoint_id: str, changes: dict[str, Any], now: float
    ) -> tuple[models.Endpoint, bool]:
        """Apply `changes` to an API-made endpoint; True when it stopped receiving.

        An endpoint that is disabled has its pending deliveries cancelled.
        """

        def op(conn: apsw.Connection) -> tuple[models.Endpoint, bool]:
            current = _get_endpoint(conn, endpoint_id, with_secret=True)
            if current.origin == "config":
                raise conflict(
                    f"endpoint {endpoint_id!r} is declared in the config file; change it there"
                )
            merged = {**msgspec.structs.asdict(current), **changes}
            conn.execute(sql.UPDATE_ENDPOINT, _endpoint_params(merged, "api", now))
            stopped = current.enabled and not merged["enabled"]
            if stopped:
                conn.execute(sql.CANCEL_PENDING_OF_ENDPOINT, (now, endpoint_id))
            self._router = None
            return _get_endpoint(conn, endpoint_id, with_secret="secret" in changes), stopped

        return await self.write(op)

    async def delete_endpoint(self, endpoint_id: str, now: float) -> None:
        """Delete an API-made endpoint and cancel its pending deliveries."""

        def op(conn: apsw.Connection) -> None:
            current = _get_endpoint(conn, endpoint_id)
            if current.origin == "config":
                raise conflict(
                    f"endpoint {endpoint_id!r} is declared in the config file; remove it there"
                )
            conn.execute(sql.DELETE_ENDPOINT, (now, endpoint_id))
            conn.execute(sql.CANCEL_PENDING_OF_ENDPOINT, (now, endpoint_id))
            self._router = None

        await self.write(op)

    async def sync_config_endpoints(self, declared: Iterable[dict[str, Any]], now: float) -> None:
        """Make the config file's endpoints the stored ones with origin "config".

        Endpoints that left the file are deleted (their history stays).
        """
        wanted = list(declared)

        def op(conn: apsw.Connection) -> None:
            for fields in wanted:
                conn.execute(sql.UPSERT_CONFIG_ENDPOINT, _endpoint_params(fields, "config", now))
            keep = {fields["id"] for fields in wanted}
            for (ident,) in list(conn.execute(sql.CONFIG_ENDPOINT_IDS)):
                if ident not in keep:
                    conn.execute(sql.DELETE_ENDPOINT, (now, ident))
                    conn.execute(sql.CANCEL_PENDING_OF_ENDPOINT, (now, ident))
            self._router = None

        await self.write(op)


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
            conn.pragma("user_version", target)


def _translate(exc: Exception) -> Exception:
    if isinstance(exc, ApiError | StorageError):
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
        raise StorageError(f"database read failed: {exc}") from exc


def _first(conn: apsw.Connection, query: str, params: Sequence[Any]) -> Row | None:
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


def _endpoint(row: Row, with_secret: bool = False) -> models.Endpoint:
    ident, url, events, secret, description, enabled, origin, created, updated, _rowid = row
    return models.Endpoint(
        id=ident,
        url=url,
        events=msgspec.json.decode(events),
        description=description,
        enabled=bool(enabled),
        origin=origin,
        created_at=models.iso(created),
        updated_at=models.iso(updated),
        secret=secret if with_secret else msgspec.UNSET,
    )


def _get_endpoint(
    conn: apsw.Connection, endpoint_id: str, with_secret: bool = False
) -> models.Endpoint:
    row = _first(conn, sql.GET_ENDPOINT, (endpoint_id,))
    if row is None:
        raise not_found(f"endpoint {endpoint_id!r}")
    return _endpoint(row, with_secret)


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
