"""Endpoint secrets at rest: sealed with AES-256-GCM under the install's key before they
are written, opened again by the queries that sign with them.

Rules (docs/ARCHITECTURE.md, "Storage"; README, "Secrets at rest"):
- A key ring is one or more 32-byte keys (`runtime.keys`): the first seals, any of them
  opens. A sealed secret names its key: `hookd-sealed:v1:<key id>:<base64 of nonce,
  ciphertext and tag>`, the key id being the first 8 hex digits of SHA-256 of
  "hookd secret key" and the key. The endpoint's id is the associated data: a sealed
  secret copied into another endpoint's row does not open.
- The queries seal and open in SQL, through two functions every connection of the
  engine has (`register`): `seal_secret(endpoint_id, secret)` and
  `open_secret(endpoint_id, stored)`; both pass NULL through.
- Without a key ring secrets are written in clear (development); a sealed secret then
  does not open, nor one sealed under a key the ring lacks: `SealError`, naming the key.
- At open, `seal_stored` seals every secret still in clear (a database from before the
  key) and opens every sealed one, so a missing or wrong key stops the start with a
  clear message rather than the first delivery.
- Nonces are 12 random bytes each (os.urandom); an install seals a few secrets per
  endpoint change, far from the 2^32 messages a key may seal with random nonces.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence
from typing import Any, cast

import apsw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hookd.db.errors import StorageError

PREFIX = "hookd-sealed:v1:"
NONCE_BYTES = 12
OPENED_KEPT = 10_000  # opened secrets remembered (the scheduler opens one per job)
SECRET_COLUMNS = ("secret", "previous_secret", "next_secret")
STORED_SECRETS = f"SELECT id, {', '.join(SECRET_COLUMNS)} FROM endpoints"
RESEAL = (
    "UPDATE endpoints SET secret = seal_secret(id, :secret),"
    " previous_secret = seal_secret(id, :previous), next_secret = seal_secret(id, :next)"
    " WHERE id = :id"
)


class SealError(StorageError):
    """A stored secret does not open: no key, another key, or damaged."""


def key_id(key: bytes) -> str:
    """The short name a sealed secret gives its key."""
    return hashlib.sha256(b"hookd secret key" + key).hexdigest()[:8]


class Sealer:
    """Seals and opens endpoint secrets under a key ring (None: secrets in clear)."""

    def __init__(self, ring: Sequence[bytes] | None) -> None:
        self._ring = {key_id(key): AESGCM(key) for key in ring or ()}
        self.current = key_id(ring[0]) if ring else None  # the key id that seals
        self._opened: dict[tuple[str, str], str] = {}

    def seal(self, endpoint_id: str | None, secret: str | None) -> str | None:
        """`secret` as it is stored: sealed under the first key, or as is without one."""
        if secret is None or self.current is None:
            return secret
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ring[self.current].encrypt(nonce, secret.encode(), _aad(endpoint_id))
        return f"{PREFIX}{self.current}:{base64.b64encode(nonce + sealed).decode()}"

    def open(self, endpoint_id: str | None, stored: str | None) -> str | None:
        """The secret a stored value holds (SealError when it does not open)."""
        if stored is None or not stored.startswith(PREFIX):
            return stored
        try:
            return self._opened[endpoint_id or "", stored]
        except KeyError:
            pass
        kid, _, text = stored[len(PREFIX) :].partition(":")
        cipher = self._ring.get(kid)
        if cipher is None:
            raise SealError(self._missing(kid))
        try:
            raw = base64.b64decode(text, validate=True)
            secret = cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(endpoint_id))
        except (binascii.Error, InvalidTag, ValueError):
            raise SealError(
                f"the secret of endpoint {endpoint_id} does not open under key {kid}: "
                "the database is damaged; restore the latest backup "
                '(README, "Backup and restore")'
            ) from None
        if len(self._opened) >= OPENED_KEPT:
            self._opened.clear()
        opened = self._opened[endpoint_id or "", stored] = secret.decode()
        return opened

    def _missing(self, kid: str) -> str:
        if self.current is None:
            return (
                f"the database's endpoint secrets are encrypted (key {kid}) and hookd was "
                "given no key: set storage.key_file, or the hookd-key credential "
                '(README, "Secrets at rest")'
            )
        return (
            f"the database's endpoint secrets are encrypted with key {kid}; the key "
            f"given is {', '.join(self._ring)}: point storage.key_file (or the hookd-key "
            f"credential) at the key file this database was used with"
        )

    def register(self, conn: apsw.Connection) -> None:
        """Give `conn` the SQL functions `seal_secret` and `open_secret`."""
        # (apsw's stubs want functions of any SQLite values; these take text or NULL)
        conn.create_scalar_function("seal_secret", cast(Any, self.seal), 2)
        conn.create_scalar_function("open_secret", cast(Any, self.open), 2, deterministic=True)

    def seal_stored(self, conn: apsw.Connection) -> int:
        """Open every stored secret and seal again, under the first key, those that are
        not sealed under it (in one transaction); how many rows changed."""
        changed = 0
        with conn:
            for ident, *stored in list(conn.execute(STORED_SECRETS)):
                opened = [self.open(ident, value) for value in stored]
                if self.current is None or all(
                    value is None or value.startswith(f"{PREFIX}{self.current}:")
                    for value in stored
                ):
                    continue
                secret, previous, following = opened
                conn.execute(
                    RESEAL,
                    {"id": ident, "secret": secret, "previous": previous, "next": following},
                )
                changed += 1
        return changed


def _aad(endpoint_id: str | None) -> bytes:
    return (endpoint_id or "").encode()
