"""The per-install keys: the subject index's, beside the database, and the key ring
endpoint secrets are sealed under (db.sealing).

Rules (docs/ARCHITECTURE.md; README, "Personal data" and "Secrets at rest"):
- The subject index's key (`domain.subjects`) is 32 random bytes in `<database>.subject-key`,
  created owner-only (0600) at the first start and read at every start after. It is not
  in the database, so the index there gives no value back alone; a backup needs it
  beside the database for access and erasure to find what was indexed before.
- A key file of the wrong size, or one that cannot be read, stops the start with a
  message naming it; it is never replaced silently.
- The secrets' key ring is read from the systemd credential `hookd-key`
  (`$CREDENTIALS_DIRECTORY/hookd-key`, from `LoadCredential=` or
  `LoadCredentialEncrypted=`) when the service has one, else from `storage.key_file`.
  It is text: one key per line, each 32 bytes in base64 (`#` comments and blank lines
  ignored); the first seals, every one opens. A key file must be the owner's alone
  (mode 0600 or stricter): any other mode stops the start.
- A key file is written whole or not at all (a temporary file beside it, fsynced,
  renamed over it); `hookd db init-key` never overwrites one.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence

SUBJECT_KEY_BYTES = 32
SECRET_KEY_BYTES = 32
CREDENTIAL = "hookd-key"
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


def secret_ring(key_file: str) -> tuple[list[bytes], str] | None:
    """The key ring of endpoint secrets and where it was read from: the credential
    `hookd-key` when the service has one, else `key_file`; None when there is neither."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY", "")
    credential = os.path.join(directory, CREDENTIAL) if directory else ""
    if credential and os.path.exists(credential):
        return read_ring(credential, check_mode=False), credential
    if not key_file:
        return None
    return read_ring(key_file), key_file


def read_ring(path: str, check_mode: bool = True) -> list[bytes]:
    """The keys of the key file at `path`, the one that seals first."""
    try:
        with open(path, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode & 0o777
            if check_mode and mode & 0o077:
                raise KeyFileError(
                    f"the key file {path} may be read by others (mode {mode:o}); "
                    f"make it the owner's alone: chmod 600 {path}"
                )
            text = handle.read(64 * 1024)
    except OSError as exc:
        raise KeyFileError(f"cannot read the key file {path}: {exc.strerror}") from None
    ring = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(b"#"):
            continue
        try:
            key = base64.b64decode(line, validate=True)
        except binascii.Error:
            key = b""
        if len(key) != SECRET_KEY_BYTES:
            raise KeyFileError(
                f"line {number} of the key file {path} is not a key "
                f"({SECRET_KEY_BYTES} bytes in base64, as `hookd db init-key` writes)"
            )
        ring.append(key)
    if not ring:
        raise KeyFileError(f"the key file {path} holds no key")
    return ring


def new_key() -> bytes:
    """A fresh key for the ring."""
    return os.urandom(SECRET_KEY_BYTES)


def create_ring(path: str, key: bytes) -> None:
    """Write a new key file holding `key` (KeyFileError when `path` exists)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, OWNER_ONLY)
    except FileExistsError:
        raise KeyFileError(f"{path} already exists; hookd never overwrites a key file") from None
    except OSError as exc:
        raise KeyFileError(f"cannot create the key file {path}: {exc.strerror}") from None
    try:
        os.write(fd, _ring_text([key]))
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_ring(path: str, ring: Sequence[bytes]) -> None:
    """Replace the key file at `path` with `ring`, whole or not at all."""
    partial = f"{path}.partial-{os.getpid()}"
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, OWNER_ONLY)
        try:
            os.write(fd, _ring_text(ring))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(partial, path)
        directory = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as exc:
        raise KeyFileError(f"cannot write the key file {path}: {exc.strerror}") from None


def _ring_text(ring: Sequence[bytes]) -> bytes:
    return b"".join(base64.b64encode(key) + b"\n" for key in ring)
