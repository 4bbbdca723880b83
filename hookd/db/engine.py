"""The SQLite engine: one writer thread with group commit, a pool of readers, and the
translation of apsw's errors. It knows no table: the writes and reads it runs are plain
functions of a connection, brought by the query modules through `sqlite.SqliteBackend`.

Over 400 lines: the writer, the checkpointer and the WAL's truncation share the
connections, the checkpoint lock and the writes' bookkeeping; apart they would pass
them around.

Rules (docs/ARCHITECTURE.md, "Storage" and "Group commit"):
- apsw errors are translated here: a full disk or an unusable file becomes
  `StorageError` (the API answers 503), never a crash; a failed read is `ReadError`.
  Beside the db package, only `hookd db backup` and `db check` (cli/dbtools.py) use apsw.
- No apsw call runs on the trio thread. Writes go to one writer thread that owns the
  write connection: it takes every write waiting in its queue, runs each in its own
  savepoint inside one transaction, commits once, and only then wakes the callers
  (group commit). With `durability = "full"` the commit is fsynced before anyone is
  acknowledged. `pending` counts the writes submitted and not yet committed, for
  background work that leaves the writer to everything else. Reads run on a small pool
  of read-only connections in worker threads.
- A background job (`in_steps`: a longer job that makes itself durable at its end, as an
  erasure does with its checkpoint) runs in steps, each alone in its own transaction,
  not fsynced (what it wrote reaches the disk with the next fsynced commit or
  checkpoint), and only between groups of the other writes: one step after each group,
  so neither kind starves, and the next step at once when no write waits. A step ends
  early once `others_waiting()`, so the writes behind it wait little; the job goes on
  from there in its next step, on the writer thread, with no trip to the trio thread.
- Checkpoints are mostly copied off the writer: once the WAL holds PRECOPY_PAGES a
  checkpointer thread copies it into the database (PASSIVE, its own connection, beside
  the writer), again each time it has grown by PRECOPY_STEP pages (not at every commit:
  each copy ends with an fsync of the database); at CHECKPOINT_PAGES the writer
  checkpoints itself after waking the writes it committed (SQLite's automatic
  checkpoint, which would run before, is off), which then has little left to copy and
  lets the next transaction start the WAL anew.
- Each write is a plain function of the connection. It may refuse (`domain.errors`)
  (a missing endpoint, say) only before it has written anything; the refusal goes to its
  caller and the others in the group commit. Any other failure rolls the group back
  (`on_rollback` is told, on the writer thread, so caches of the rows can be dropped) and
  its writes are run again one per transaction, so only the failing one fails.
- The engine never reads the clock, but to time its own group commits for `on_commit`
  when it is set (`GET /metrics`), and to bound how long `truncate_wal` waits.
- One engine per database: an open one holds an exclusive lock (flock) on `<db>.lock`,
  which names its pid, until it is closed; a second one is refused with that pid. A
  separate file, because SQLite's own POSIX locks on the database would be released by
  any close of it in this process. `hookd db backup` and `db check` take no such lock.
- The engine opens a database only after `PRAGMA quick_check` finds it sound (before
  `prepare`, the migrations, runs); a damaged one is `StorageError`, pointing to
  `hookd db check` and the README's restore steps. Its files (database, WAL, shared
  memory, lock) are the owner's alone (0600): the database holds endpoint secrets; so is
  a directory it creates for them (0700).
- The writer runs with `secure_delete`: content deleted or replaced (retention, an
  erasure) is overwritten with zeros in the file, not left in free space;
  `truncate_wal` then empties the WAL of the pages that held it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import apsw
import trio

from hookd.db.errors import ReadError, StorageError
from hookd.domain.errors import Refused, conflict

T = TypeVar("T")

READERS = 4
MAX_GROUP = 512  # writes committed together at most
PRECOPY_PAGES = 500  # WAL pages (8 KiB) that wake the checkpointer
PRECOPY_STEP = 100  # WAL pages it must have grown by to wake it again
TRUNCATE_TIMEOUT = 10.0  # seconds a truncating checkpoint waits for readers and writer
BUSY_PAUSE = 0.0005  # seconds between its tries
CHECKPOINT_PAGES = 1000  # WAL pages that make the writer checkpoint: SQLite's default
OWNER_ONLY = 0o600
OWNER_DIR = 0o700  # a directory hookd makes for its database (the dev one, ./var)
RESTORE_POINTER = (
    "run `hookd db check` for the details, and restore the latest backup "
    '(README, "Backup and restore")'
)


class _Write:
    __slots__ = ("background", "done", "error", "fn", "result")

    def __init__(self, fn: Callable[[apsw.Connection], Any], background: bool) -> None:
        self.fn = fn
        self.background = background
        self.done = trio.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class Engine:
    """An open SQLite database. Open with `await Engine.open(...)`, close with `aclose()`."""

    def __init__(
        self,
        path: str,
        durability: str,
        prepare: Callable[[apsw.Connection], None],
        setup: Callable[[apsw.Connection], None],
    ) -> None:
        self.path = path
        self._durability = durability
        self._prepare = prepare
        self._setup = setup
        self._queue: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        self._writer: apsw.Connection | None = None
        self._thread: threading.Thread | None = None
        self._checkpointer: threading.Thread | None = None
        # The writes the writer took from the queue and has not run yet (its own).
        self._waiting: list[_Write] = []  # in order, grouped
        self._background: list[_Write] = []  # one step after each group
        self._precopy = threading.Event()  # set by the writer: the checkpointer has work
        self._precopy_at = 0  # the WAL's pages when the writer last set it
        self._checkpoint_due = False  # the writer's own, after its next wake
        # Held by whoever checkpoints: SQLite refuses a second checkpoint at once (BUSY).
        self._checkpointing = threading.Lock()
        self._closing = False
        self._readers: list[apsw.Connection] = []
        self._reader_limit = trio.CapacityLimiter(READERS)
        self._token: trio.lowlevel.TrioToken | None = None
        self._lock: int | None = None  # the descriptor of `<path>.lock`, flocked
        self.pending = 0  # writes submitted, not yet committed (the trio thread's count)
        self._no_writes = trio.Event()  # set while `pending` is 0
        self._no_writes.set()
        self.commits = 0  # transactions committed by the writer
        self.writes = 0  # writes they carried
        # Told how long each group commit took, on the writer thread alone.
        self.on_commit: Callable[[float], None] | None = None
        # Told when a transaction was rolled back, on the writer thread alone.
        self.on_rollback: Callable[[], None] | None = None

    # -- life cycle ---------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        path: str,
        durability: str,
        prepare: Callable[[apsw.Connection], None],
        setup: Callable[[apsw.Connection], None],
    ) -> Engine:
        """Open the database at `path` (creating it when needed), then run `prepare` (the
        migrations) on the write connection before the readers open. `setup` is run on
        every connection as it opens (the SQL functions the queries use)."""
        engine = cls(path, durability, prepare, setup)
        await trio.to_thread.run_sync(engine._connect)
        engine._token = trio.lowlevel.current_trio_token()
        engine._thread = threading.Thread(target=engine._write_loop, name="hookd-writer")
        engine._thread.start()
        engine._checkpointer = threading.Thread(
            target=engine._checkpoint_loop, name="hookd-checkpointer"
        )
        engine._checkpointer.start()
        return engine

    def _connect(self) -> None:
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), OWNER_DIR, exist_ok=True)
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
            writer.pragma("secure_delete", True)  # what is deleted or replaced is zeroed
            writer.set_wal_hook(self._wal_grew)  # in place of the automatic checkpoint
            self._setup(writer)
            self._prepare(writer)
            for _ in range(READERS):
                reader = apsw.Connection(self.path)
                reader.setbusytimeout(5000)
                reader.pragma("query_only", True)
                self._setup(reader)
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
        if self._checkpointer is not None:
            self._closing = True
            self._precopy.set()
            await trio.to_thread.run_sync(self._checkpointer.join)
            self._checkpointer = None
        connections = [*self._readers, *([self._writer] if self._writer else [])]
        self._readers, self._writer = [], None
        await trio.to_thread.run_sync(_close_all, connections)
        self._unlock()

    # -- the writer ---------------------------------------------------------------------

    async def write(self, fn: Callable[[apsw.Connection], T]) -> T:
        """Run `fn(connection)` in the writer's next transaction; return once committed."""
        result: T = await self._submit(_Write(fn, background=False))
        return result

    async def in_steps(self, step: Callable[[apsw.Connection], T | None]) -> T:
        """Run `step(connection)` as a background job: in transactions of its own, not
        fsynced, one after each group of the other writes, until it returns something
        other than None (it has more to do while it returns None); return that."""
        result: T = await self._submit(_Write(step, background=True))
        return result

    async def _submit(self, op: _Write) -> Any:
        if self._thread is None:
            raise StorageError("the database is closed")
        self.pending += 1
        if self._no_writes.is_set():
            self._no_writes = trio.Event()
        self._queue.put(op)
        try:
            with trio.CancelScope(shield=True):  # the write happens anyway: learn its fate
                await op.done.wait()
        finally:
            self.pending -= 1
            if not self.pending:
                self._no_writes.set()
        if op.error is not None:
            raise op.error
        return op.result

    def others_waiting(self) -> bool:
        """Whether writes wait behind the one running (for a background job's step, on
        the writer thread, to end early)."""
        return bool(self._waiting) or not self._queue.empty()

    async def until_no_writes(self) -> None:
        """Return once no write is waiting or running (at once if none is)."""
        while self.pending:
            await self._no_writes.wait()

    def _write_loop(self) -> None:
        assert self._writer is not None
        waiting, background = self._waiting, self._background
        stopping = False
        while True:
            idle = not waiting and not background
            stopping = self._take(block=idle and not stopping) or stopping
            if not waiting and not background:
                if stopping:
                    break
                continue
            if waiting:
                group = waiting[:MAX_GROUP]
                del waiting[:MAX_GROUP]
                began = time.perf_counter()
                self._commit(self._writer, group)
                if self.on_commit is not None:
                    self.on_commit(time.perf_counter() - began)
                self._done(group)
            if background:
                job = background[0]
                self._commit(self._writer, [job])
                if job.error is not None or job.result is not None:
                    del background[0]
                    self._done([job])

    def _take(self, *, block: bool) -> bool:
        """Move every queued write to `_waiting` or `_background` (waiting for one first
        when `block`); whether the stop came."""
        try:
            item = self._queue.get(block=block)
            while item is not None:
                (self._background if item.background else self._waiting).append(item)
                item = self._queue.get_nowait()
        except queue.Empty:
            return False
        return True

    def _done(self, group: list[_Write]) -> None:
        """Wake the writers of `group`; then checkpoint, when the WAL asks for it."""
        assert self._token is not None
        assert self._writer is not None
        self._token.run_sync_soon(_wake, group)
        if self._checkpoint_due and self._checkpointing.acquire(blocking=False):
            self._checkpoint_due = False  # (else the next wake tries again)
            try:
                self._writer.wal_checkpoint(mode=apsw.SQLITE_CHECKPOINT_PASSIVE)
            except apsw.Error:  # the next commit asks again
                pass
            finally:
                self._checkpointing.release()

    def _wal_grew(self, _conn: apsw.Connection, _name: str, pages: int) -> int:
        """The writer's WAL hook, after each commit."""
        if pages < self._precopy_at:  # the WAL started anew
            self._precopy_at = 0
        if pages >= max(PRECOPY_PAGES, self._precopy_at + PRECOPY_STEP):
            self._precopy_at = pages
            self._precopy.set()
        if pages >= CHECKPOINT_PAGES:
            self._checkpoint_due = True
        return apsw.SQLITE_OK

    def _checkpoint_loop(self) -> None:
        conn = None
        while True:
            self._precopy.wait()
            self._precopy.clear()
            if self._closing:
                break
            try:
                if conn is None:
                    conn = apsw.Connection(self.path, flags=apsw.SQLITE_OPEN_READWRITE)
                with self._checkpointing:
                    next(conn.execute("PRAGMA wal_checkpoint(PASSIVE)"))  # reads the header
            except apsw.Error:  # asked again once the WAL grows by PRECOPY_STEP
                pass
        if conn is not None:
            conn.close()

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
        """Run `group` in one transaction; refusals (Refused) are the op's own result."""
        unsynced = self._durability == "full" and group[0].background  # then it is alone
        if unsynced:
            conn.pragma("synchronous", "normal")  # this commit only
        try:
            self._run_group(conn, group)
        finally:
            if unsynced:
                conn.pragma("synchronous", "full")

    def _run_group(self, conn: apsw.Connection, group: list[_Write]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for op in group:
                op.error = None
                try:
                    op.result = op.fn(conn)
                except Refused as exc:  # raised before the op wrote anything
                    op.error = exc
            conn.execute("COMMIT")
        except BaseException:
            if self.on_rollback is not None:
                self.on_rollback()
            if not conn.getautocommit():
                conn.execute("ROLLBACK")
            raise
        self.commits += 1
        self.writes += len(group)

    async def truncate_wal(self) -> bool:
        """Copy the whole WAL into the database and truncate it to nothing (waiting, up
        to the busy timeout, for readers and the writer); whether it was all copied."""
        if self._thread is None:
            raise StorageError("the database is closed")
        return await trio.to_thread.run_sync(_truncate_wal, self.path, self._checkpointing)

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


# -- helpers (writer thread or reader threads) -------------------------------------------


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


def _truncate_wal(path: str, checkpointing: threading.Lock) -> bool:
    try:
        conn = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READWRITE)
        try:
            with checkpointing:
                # Most pages are copied first without holding the writer up; the
                # truncating checkpoint, which makes the writer wait, then has little left.
                next(conn.execute("PRAGMA wal_checkpoint(PASSIVE)"))
                # Not SQLite's own busy timeout, whose sleeps grow to 100 ms: a truncating
                # checkpoint waits for the readers while holding the writer's lock.
                conn.set_busy_handler(_brief_waits(time.monotonic() + TRUNCATE_TIMEOUT))
                busy, _log, _copied = next(conn.execute("PRAGMA wal_checkpoint(TRUNCATE)"))
        finally:
            conn.close()
    except apsw.Error as exc:
        raise StorageError(f"checkpointing the WAL failed: {exc}") from exc
    return not busy


def _brief_waits(deadline: float) -> Callable[[int], bool]:
    """A busy handler that tries again every BUSY_PAUSE seconds until `deadline`."""

    def again(_tries: int) -> bool:
        if time.monotonic() >= deadline:
            return False
        time.sleep(BUSY_PAUSE)
        return True

    return again


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
