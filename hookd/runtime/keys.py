"""The per-install keys hookd keeps beside its database.

Rules (docs/ARCHITECTURE.md; README, "Personal data"):
- The subject index's key (`domain.subjects`) is 32 random bytes in `<database>.subject-key`,
  created owner-only (0600) at the first start and read at every start after. It is not
  in the database, so the index there gives no value back alone; a backup needs it
  beside the database for access and erasure to find what was indexed before.
- A key file of the wrong size, or one that cannot be read, stops the start with a
  message naming it; it is never replaced silently.
"""

from __future__ import annotations

import os

SUBJECT_KEY_BYTES = 32
OWNER_ONLY = 0o600


class KeyFileError(Exception):
    """A key cannot be read or made; the message names its file."""


def subject_key_path(db_path: str) -> str:
    """Where the subject index's key of the database at `db_path` lives."""
    return f"{db_path}.subject-key"


def subject_key(db_path: str) -> bytes:
    """The subject index's key of the database at `db_path`, made at the first start."""
    path = subject_key_path(db_path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, OWNER_ONLY)
    except FileExistsError:
        return _read(path)
    except OSError as exc:
        raise KeyFileError(f"cannot create the subject index key {path}: {exc.strerror}") from None
    try:
        os.write(fd, os.urandom(SUBJECT_KEY_BYTES))
        os.fsync(fd)
    finally:
        os.close(fd)
    return _read(path)


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            key = handle.read(SUBJECT_KEY_BYTES + 1)
    except OSError as exc:
        raise KeyFileError(f"cannot read the subject index key {path}: {exc.strerror}") from None
    if len(key) != SUBJECT_KEY_BYTES:
        raise KeyFileError(
            f"the subject index key {path} has {len(key)} bytes, not {SUBJECT_KEY_BYTES}; "
            "restore it from the backup made with the database"
        )
    return key
