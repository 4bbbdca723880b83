"""Operations on the database file: an online backup, and an integrity check.

Rules:
- Both work while the daemon runs: they open their own query-only connection, and in
  WAL mode a reader never blocks the daemon's writer nor sees half a transaction. It is
  opened read-write (query_only forbids writes) so that, the daemon stopped, closing it
  removes the `-wal` and `-shm` files it had to create: left behind, owned by root, they
  would keep the `hookd` user from opening its database.
- A backup is one consistent snapshot (SQLite's backup API copying every page in one
  step, inside one read transaction). It is written to a temporary file beside the
  target, checked (`quick_check`), made durable, then renamed into place: the target
  path never holds a partial copy, and an existing file is never overwritten. The copy
  is the owner's alone (0600), like the database: it holds endpoint secrets.
- Failures are `DatabaseToolError` with a message for the operator.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import apsw

from hookd import sql


class DatabaseToolError(Exception):
    """A backup or check could not be done."""


@contextlib.contextmanager
def _query_only(path: str) -> Iterator[apsw.Connection]:
    if not os.path.exists(path):
        raise DatabaseToolError(f"no database at {path}")
    try:
        conn = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READWRITE)
        conn.setbusytimeout(5000)
        conn.pragma("query_only", True)
    except apsw.Error as exc:
        raise DatabaseToolError(f"cannot open {path}: {exc}") from None
    try:
        yield conn
    finally:
        conn.close()


def backup(source: str, target: str) -> int:
    """Copy the database at `source` to the new file `target`; its size in bytes."""
    if os.path.lexists(target):
        raise DatabaseToolError(f"{target} already exists; choose a new file name")
    directory = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(directory):
        raise DatabaseToolError(f"cannot write {target}: {directory} is not a directory")
    partial = os.path.join(directory, f".{os.path.basename(target)}.partial-{os.getpid()}")
    try:
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        with _query_only(source) as conn:
            copy = apsw.Connection(partial)
            try:
                with copy.backup("main", conn, "main") as job:
                    job.step(-1)  # every page in one step: one consistent snapshot
                problems = _problems(copy, "quick_check")
                copy.pragma("journal_mode", "delete")  # one self-contained file
            finally:
                copy.close()
        if problems:
            raise DatabaseToolError(f"the copy failed its check: {problems[0]}")
        _fsync(partial)
        os.link(partial, target)  # fails, rather than overwrites, if target appeared
        _fsync(directory)
        return os.path.getsize(target)
    except apsw.Error as exc:
        raise DatabaseToolError(f"backup of {source} failed: {exc}") from None
    except OSError as exc:
        raise DatabaseToolError(f"cannot write {target}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)


def check(path: str) -> list[str]:
    """Integrity problems in the database at `path`: [] when it is sound."""
    with _query_only(path) as conn:
        try:
            problems = _problems(conn, "integrity_check")
            version = conn.pragma("user_version")
        except apsw.Error as exc:
            return [f"cannot read the database: {exc}"]
    if version > len(sql.MIGRATIONS):
        problems.append(
            f"schema version {version} is newer than this hookd knows ({len(sql.MIGRATIONS)})"
        )
    return problems


def _problems(conn: apsw.Connection, pragma: str) -> list[str]:
    rows = [str(row[0]) for row in conn.execute(f"PRAGMA {pragma}")]
    return [] if rows == ["ok"] else rows


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
