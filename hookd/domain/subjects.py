"""Data subjects: which values of an event name a person, their normal form, and the keyed
hashes the subject index stores instead of them (LGPD access and erasure, README
"Personal data").

Rules (docs/ARCHITECTURE.md, "Layers"):
- Pure: the per-install key is an argument; nothing here reads a file, the clock or
  random bytes.
- A subject field is `kind:path`: a kind (`cliente_id`, `email`, `phone`) and a dotted
  path into `data` (`alteracoes.email.novo`). A value that is absent, not a string (a
  number, for `cliente_id`) or does not normalise is not indexed.
- What is one (the same regular expressions are the API's schema, `EMAIL`, `PHONE`): a
  client id is 1 to 320 characters (or a number); an e-mail address is one `@` between
  non-empty parts without blanks or control characters, spaces around allowed; a phone
  number is 8 to 15 digits, with spaces, `(`, `)`, `-`, `.` between them and an optional
  `+` in front.
- Normal forms: a client id as sent (a number as its decimal text); an e-mail without
  the spaces around it, lower-cased; a phone reduced to its digits with the country code:
  written with `+`, its digits; starting with `00` (the international prefix), the
  digits after it; otherwise 10 or 11 digits (a Brazilian DDD and number, as the spec's
  `(11) 99999-9999`) get 55 in front, and any other count is taken as already having it
  (`5511999999999`).
- The index holds `HMAC-SHA256(key, kind + NUL + normal form)`, its first 16 bytes: the
  same person gives the same hash on every event, and the hash does not give the value
  back without the key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

Kind = Literal["cliente_id", "email", "phone"]
KINDS: tuple[Kind, ...] = ("cliente_id", "email", "phone")
HASH_BYTES = 16
MAX_VALUE = 320  # characters of a value worth normalising (an e-mail's maximum)
REMEMBERED = 10_000  # values whose hashes a Hasher keeps

EMAIL = r" *[^@\x00-\x20\x7f]+@[^@\x00-\x20\x7f]+ *"
PHONE = r" *\+?[ ().-]*(?:[0-9][ ().-]*){8,15}"
_EMAIL = re.compile(EMAIL)
_PHONE = re.compile(PHONE)
_NOT_DIGIT = re.compile(r"[^0-9]")
_SHA256_BLOCK = 64  # bytes: HMAC pads a key to this


class SubjectField(NamedTuple):
    """One field of an event type's `data` that names a person."""

    kind: Kind
    path: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.kind}:{'.'.join(self.path)}"


def parse_field(text: str) -> SubjectField:
    """`kind:dotted.path` -> a SubjectField (ValueError naming what is wrong)."""
    kind, colon, path = text.partition(":")
    if not colon or kind not in KINDS:
        raise ValueError(f"{text!r} must be 'KIND:path' with KIND one of {', '.join(KINDS)}")
    parts = tuple(path.split("."))
    if not all(parts):
        raise ValueError(f"{text!r} must name a field path like 'contato.email'")
    return SubjectField(kind, parts)


def fields(*texts: str) -> tuple[SubjectField, ...]:
    """SubjectFields from `kind:path` texts (for the catalog's table)."""
    return tuple(parse_field(text) for text in texts)


def normalise(kind: Kind, value: object) -> str | None:
    """The normal form of `value` as a `kind`, or None when it is not one."""
    if isinstance(value, bool):
        return None
    if kind == "cliente_id":
        if isinstance(value, int):
            return str(value)
        return value if isinstance(value, str) and 0 < len(value) <= MAX_VALUE else None
    if not isinstance(value, str) or len(value) > MAX_VALUE:
        return None
    if kind == "email":
        return value.strip(" ").lower() if _EMAIL.fullmatch(value) else None
    return _phone(value) if _PHONE.fullmatch(value) else None


def _phone(text: str) -> str:
    digits = _NOT_DIGIT.sub("", text)
    if text.lstrip(" ").startswith("+"):
        return digits
    if digits.startswith("00"):
        return digits[2:]
    return "55" + digits if len(digits) in (10, 11) else digits


def subject_hash(key: bytes, kind: Kind, normal: str) -> bytes:
    """The index's hash of one normalised value."""
    return hmac.digest(key, _message(kind, normal), hashlib.sha256)[:HASH_BYTES]


def _message(kind: Kind, normal: str) -> bytes:
    return kind.encode() + b"\x00" + normal.encode("utf-8", "surrogatepass")


class Hasher:
    """The index's hashes under one key, made fast for ingest: HMAC-SHA256 from the key's
    two padded states computed once (RFC 2104; `hmac.HMAC` costs three times as much per
    value here), and the hashes of the last values seen remembered (at most REMEMBERED
    per kind: the same people recur across events)."""

    def __init__(self, key: bytes) -> None:
        if len(key) > _SHA256_BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_SHA256_BLOCK, b"\x00")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
        self._known: dict[Kind, dict[str | int, bytes | None]] = {kind: {} for kind in KINDS}

    def value_hash(self, kind: Kind, value: object) -> bytes | None:
        """The hash of `value` as a `kind`, or None when it is not one."""
        if not isinstance(value, str | int) or isinstance(value, bool):
            return None  # (True would be remembered as 1)
        known = self._known[kind]
        try:
            return known[value]
        except KeyError:
            pass
        normal = normalise(kind, value)
        digest = None
        if normal is not None:
            inner = self._inner.copy()
            inner.update(_message(kind, normal))
            outer = self._outer.copy()
            outer.update(inner.digest())
            digest = outer.digest()[:HASH_BYTES]
        if len(known) >= REMEMBERED:
            known.clear()
        known[value] = digest
        return digest

    def event_hashes(
        self, subject_fields: Iterable[SubjectField], data: Mapping[str, Any]
    ) -> tuple[bytes, ...]:
        """The distinct hashes of the subjects `data` names, in field order."""
        found: list[bytes] = []
        for kind, path in subject_fields:
            value: object = data
            for name in path:
                value = value.get(name) if isinstance(value, dict) else None
            digest = self.value_hash(kind, value)
            if digest is not None and digest not in found:
                found.append(digest)
        return tuple(found)


class Selector(NamedTuple):
    """One selector of an access or erasure request: its kind and normal form."""

    kind: Kind
    normal: str


def selectors(given: Mapping[str, str]) -> list[Selector]:
    """The selectors of a request (`cliente_id`, `email`, `phone`), normalised.

    ValueError names the first one malformed, or says none was given; other names
    are the caller's to refuse."""
    chosen: list[Selector] = []
    for kind in KINDS:
        if kind in given:
            normal = normalise(kind, given[kind])
            if normal is None:
                raise ValueError(f"{kind}: {str(given[kind])[:80]!r} is not a valid {_WHAT[kind]}")
            chosen.append(Selector(kind, normal))
    if not chosen:
        raise ValueError("give at least one of cliente_id, email, phone")
    return chosen


_WHAT = {
    "cliente_id": "client id (1 to 320 characters)",
    "email": "e-mail address",
    "phone": "phone number (8 to 15 digits; spaces, ( ) - . between them; + in front)",
}


def selector_hashes(key: bytes, chosen: Sequence[Selector]) -> list[bytes]:
    """The index hashes of `chosen`, in order."""
    return [subject_hash(key, s.kind, s.normal) for s in chosen]
