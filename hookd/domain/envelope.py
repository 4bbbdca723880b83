"""Ingest requests -> validated events and the exact body bytes every receiver gets.

Rules (docs: the README's "Sending events"; the spec's payloads):
- A request is `{"event", "data", "timestamp"?, "id"?, ...}`: `event` a dotted lowercase
  name (`cliente.criado`, `whatsapp.mensagem.recebida`), `data` an object, `timestamp` a
  string (passed through unchanged: whether it is RFC 3339 is the catalog's question,
  `domain.catalog`), `id` a header-safe token. That is all this module refuses: a relay
  refuses as little as it can.
- Envelope keys beyond these four are accepted and delivered unchanged after the three
  the spec defines (`id` is hookd's metadata and never delivered). The common request
  has none and decodes straight into `IngestRequest`; only one that has some takes the
  slower path through a plain dict.
- A string holding a lone UTF-16 surrogate escape (`"\\ud83d"`, what `JSON.stringify`
  writes for half an emoji) is not an error: the escape becomes `\\ufffd` before
  decoding, and the request says how many were replaced (`Decoded.repaired`).
- The body is built once, here, as compact UTF-8 JSON with the keys in the spec's order:
  `{"event":...,"timestamp":...,"data":{...}}`. `data` keeps the CRM's keys, order and
  values.
- The body must survive the spec's Node receiver, which re-serialises the parsed body
  with `JSON.stringify` before checking the signature. Strings and safe integers already
  come out of msgspec exactly as JavaScript writes them; floats are rewritten in
  JavaScript's number format (`1.0` -> `1`, `1e21` -> `1e+21`), which denotes the same
  value; object keys that JavaScript treats as array indexes (`"0"`, `"2024"`) are put
  first in ascending order, as JavaScript keeps them. Numbers JavaScript cannot hold
  exactly (integers beyond 2**53, floats beyond a double) are refused with a 422 naming
  the field, rather than delivered in a form the receiver would see changed.
- Malformed JSON (bad syntax, invalid UTF-8, absurd nesting) is a 400; well-formed JSON
  of the wrong shape is a 422 naming the field.
"""

from __future__ import annotations

import functools
import math
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

import msgspec

from hookd.domain.errors import bad_request, invalid, too_large

MAX_EVENT_NAME = 128
MAX_BATCH = 1000

EVENT_NAME = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+")
EVENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}")
# The ranges of every field are in the pattern (hour 00-23, second 00-60, ...); only a
# day from 29 on needs the calendar, so most times cost one match (checked per time
# field of every catalog event at ingest: domain.catalog).
_RFC3339 = re.compile(
    r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])[Tt]"
    r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)(?:\.[0-9]{1,9})?"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class IngestRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One event as the CRM sends it."""

    event: str
    data: dict[str, Any]
    timestamp: str | None = None
    id: str | None = None


Extra = dict[str, Any]  # envelope keys beyond the spec's, in the order sent


class Decoded(NamedTuple):
    """Decoded ingest requests, the extra envelope keys of each (None: none), and how many
    lone surrogates were replaced by U+FFFD in the whole body."""

    requests: list[IngestRequest]
    extras: list[Extra | None]
    repaired: int = 0


class Envelope(msgspec.Struct, frozen=True):
    """The body every receiver gets; field order is the wire order."""

    event: str
    timestamp: str
    data: dict[str, Any]


class PreparedEvent(msgspec.Struct, frozen=True):
    """A validated event with its final body bytes, ready to store."""

    event: str
    timestamp: str
    body: bytes
    id: str | None


def js_number(text: str) -> msgspec.Raw:
    """A JSON float literal rewritten the way JavaScript's JSON.stringify prints it."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is too large to deliver")
    if value == 0:
        return msgspec.Raw(b"0")
    _sign, digits, exponent = Decimal(repr(abs(value))).as_tuple()
    assert isinstance(exponent, int)
    text_digits = "".join(map(str, digits)).rstrip("0")
    exponent += len(digits) - len(text_digits)
    k = len(text_digits)
    n = k + exponent  # value = 0.<digits> * 10**n
    if k <= n <= 21:
        out = text_digits + "0" * (n - k)
    elif 0 < n <= 21:
        out = text_digits[:n] + "." + text_digits[n:]
    elif -6 < n <= 0:
        out = "0." + "0" * -n + text_digits
    else:
        mantissa = text_digits if k == 1 else text_digits[0] + "." + text_digits[1:]
        out = f"{mantissa}e{'+' if n - 1 >= 0 else '-'}{abs(n - 1)}"
    return msgspec.Raw(("-" if value < 0 else "") + out)


_request_decoder = msgspec.json.Decoder(IngestRequest, float_hook=js_number)
_batch_decoder = msgspec.json.Decoder(list[IngestRequest], float_hook=js_number)
# The slower path, for requests with envelope keys beyond the spec's.
_loose_decoder = msgspec.json.Decoder(dict[str, Any], float_hook=js_number)
_loose_batch_decoder = msgspec.json.Decoder(list[dict[str, Any]], float_hook=js_number)
_syntax_decoder = msgspec.json.Decoder(float_hook=str)  # any JSON, numbers unchecked
_encoder = msgspec.json.Encoder()
_KNOWN_KEYS = frozenset(IngestRequest.__struct_fields__)


def _decode(decoder: msgspec.json.Decoder[Any], raw: bytes, where: str = "") -> Any:
    if not raw.strip():
        raise bad_request(f"{where}empty body: expected a JSON object", "empty_body")
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        _check_syntax(raw, where)  # a type error found before a syntax error is still a 400
        if str(exc).startswith("Object contains unknown field"):
            raise _HasExtras() from None
        raise invalid(f"{where}{exc}", "invalid_event") from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise bad_request(f"{where}invalid JSON: {exc}", "invalid_json") from None
    except RecursionError:
        raise bad_request(f"{where}invalid JSON: nested too deeply", "invalid_json") from None


class _HasExtras(Exception):
    """The request has envelope keys beyond the spec's: decode it the slower way."""


def _decode_with_extras(raw: bytes, where: str, batch: bool) -> Decoded:
    """Decode requests whose envelopes may hold extra keys, keeping those keys apart."""
    objects = (
        _decode(_loose_batch_decoder, raw, where)
        if batch
        else [_decode(_loose_decoder, raw, where)]
    )
    requests, extras = [], []
    for index, obj in enumerate(objects):
        known = {k: v for k, v in obj.items() if k in _KNOWN_KEYS}
        try:
            requests.append(msgspec.convert(known, IngestRequest))
        except msgspec.ValidationError as exc:
            at = f"{where}item {index}: " if batch else where
            raise invalid(f"{at}{exc}", "invalid_event") from None
        extra = {k: v for k, v in obj.items() if k not in _KNOWN_KEYS}
        extras.append(extra or None)
    return Decoded(requests, extras)


def _decode_requests(raw: bytes, where: str = "", batch: bool = False) -> Decoded:
    """The requests in `raw` (one object, or an array of them when `batch`)."""
    repaired = 0
    if b"\\u" in raw:
        raw, repaired = _repair_surrogates(raw)
    try:
        requests = _decode(_batch_decoder if batch else _request_decoder, raw, where)
        decoded = Decoded(
            requests if batch else [requests], [None] * (len(requests) if batch else 1)
        )
    except _HasExtras:
        decoded = _decode_with_extras(raw, where, batch)
    return decoded._replace(repaired=repaired)


# A JSON escape, read from its backslash: a surrogate pair, a lone surrogate, or any other
# (`\\` is consumed whole, so the backslash it escapes starts nothing).
_ESCAPE = re.compile(
    rb"\\(?:u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
    rb"|(u[dD][89a-fA-F][0-9a-fA-F]{2})|.)",
    re.DOTALL,
)
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


def _repair_surrogates(raw: bytes) -> tuple[bytes, int]:
    """`raw` with each lone surrogate escape replaced by `\\ufffd`, and how many were."""
    if _SURROGATE.search(raw) is None:
        return raw, 0
    count = 0

    def replace(match: re.Match[bytes]) -> bytes:
        nonlocal count
        if match[1] is None:
            return match[0]
        count += 1
        return b"\\ufffd"

    return _ESCAPE.sub(replace, raw), count


def _check_syntax(raw: bytes, where: str) -> None:
    try:
        _syntax_decoder.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise bad_request(f"{where}invalid JSON: {exc}", "invalid_json") from None
    except RecursionError:
        raise bad_request(f"{where}invalid JSON: nested too deeply", "invalid_json") from None


# Cheap byte scans that tell whether the JavaScript walk below can change anything: a
# run of digits long enough to be an unsafe integer, or a key made of digits only (it
# may be index-like). Digits are mapped to NUL first (C speed); the key pattern then
# starts with the literal '"\0', which the regex engine finds with a fast search.
_DIGITS_TO_NUL = bytes.maketrans(b"0123456789", b"\0" * 10)
_DIGITS_KEY = re.compile(b'"\0{1,10}"[ \t\r\n]*:')


def _javascript_sensitive(raw: bytes) -> bool:
    digits = raw.translate(_DIGITS_TO_NUL)
    if digits.find(b"\0" * 16) >= 0:
        return True
    return _DIGITS_KEY.search(digits) is not None


MAX_SAFE_INTEGER = 2**53 - 1
_MAX_INDEX = 2**32 - 2


def _as_javascript(value: Any, path: str) -> Any:
    """`value` with object keys in JavaScript's order; unsafe integers refused."""
    if isinstance(value, dict):
        items = [(k, _as_javascript(v, f"{path}.{k}")) for k, v in value.items()]
        indexes = [(int(k), k, v) for k, v in items if _is_index(k)]
        if indexes:
            rest = [(k, v) for k, v in items if not _is_index(k)]
            items = [(k, v) for _, k, v in sorted(indexes)] + rest
        return dict(items)
    if isinstance(value, list):
        return [_as_javascript(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SAFE_INTEGER:
        raise invalid(
            f"{path} is an integer JavaScript cannot hold exactly ({value}); send it as a string",
            "invalid_event",
        )
    return value


def _is_index(key: str) -> bool:
    return (
        key.isascii()
        and key.isdigit()
        and (key == "0" or key[0] != "0")
        and (int(key) <= _MAX_INDEX)
    )


def _javascript_safe(decoded: Decoded, raw: bytes) -> Decoded:
    if not _javascript_sensitive(raw):
        return decoded
    prefix = "" if len(decoded.requests) == 1 else "item {}: "
    requests, extras = [], []
    for index, (request, extra) in enumerate(zip(decoded.requests, decoded.extras, strict=True)):
        where = prefix.format(index) + "$"
        requests.append(
            msgspec.structs.replace(request, data=_as_javascript(request.data, f"{where}.data"))
        )
        extras.append(None if extra is None else _as_javascript(extra, where))
    return decoded._replace(requests=requests, extras=extras)


def is_rfc3339(text: str) -> bool:
    """True when `text` is an RFC 3339 date-time with a real calendar date."""
    if _RFC3339.fullmatch(text) is None:
        return False
    if text[8:10] < "29":
        return True
    year, month, day = int(text[:4]), int(text[5:7]), int(text[8:10])
    if day > _DAYS[month - 1]:
        return False
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return not (month == 2 and day == 29 and not leap)


_KNOWN_NAMES: set[str] = set()  # names already checked (bounded: a cache, not a catalog)


def check_event_name(name: str, where: str = "$.event") -> None:
    """Refuse anything but a dotted lowercase event name."""
    if name in _KNOWN_NAMES:
        return
    if len(name) > MAX_EVENT_NAME or EVENT_NAME.fullmatch(name) is None:
        raise invalid(
            f"{where} must be a dotted lowercase name like 'cliente.criado', got {name[:80]!r}",
            "invalid_event",
        )
    if len(_KNOWN_NAMES) < 10_000:
        _KNOWN_NAMES.add(name)


def _validate(request: IngestRequest, where: str) -> None:
    check_event_name(request.event, where + "$.event")
    if request.id is not None and EVENT_ID.fullmatch(request.id) is None:
        raise invalid(
            f"{where}$.id must be 1-128 characters of letters, digits and . _ : -, "
            f"got {request.id[:80]!r}",
            "invalid_event",
        )


RESERVED_PREFIX = "hookd."  # hookd's own events (alerts, tests): never from a client


def prepare(
    request: IngestRequest, received_at: str, item: int | None = None, extra: Extra | None = None
) -> PreparedEvent:
    """Validate `request` and build its body; `received_at` stands in for a missing timestamp.

    `item` is the request's position in a batch, named in error messages; `extra` the
    envelope keys beyond the spec's, delivered after `data`.
    """
    if request.event.startswith(RESERVED_PREFIX):
        where = "" if item is None else f"item {item}: "
        raise invalid(
            f"{where}$.event: names starting with {RESERVED_PREFIX!r} are hookd's own events",
            "invalid_event",
        )
    if not (request.event in _KNOWN_NAMES and request.id is None):
        _validate(request, "" if item is None else f"item {item}: ")
    timestamp = received_at if request.timestamp is None else request.timestamp
    if extra is None:
        body = _encoder.encode(Envelope(request.event, timestamp, request.data))
    else:
        body = _encoder.encode(
            {"event": request.event, "timestamp": timestamp, "data": request.data, **extra}
        )
    return PreparedEvent(request.event, timestamp, body, request.id)


def internal_event(name: str, data: dict[str, Any], timestamp: str) -> PreparedEvent:
    """One of hookd's own events (a `hookd.` name), built without the client's checks."""
    return PreparedEvent(name, timestamp, _encoder.encode(Envelope(name, timestamp, data)), None)


def decode_event(raw: bytes) -> Decoded:
    """Decode one ingest request (400 for bad JSON, 422 for a bad shape)."""
    return _javascript_safe(_decode_requests(raw), raw)


def decode_batch(raw: bytes, ndjson: bool) -> Decoded:
    """Decode a batch: a JSON array, or one object per line; at most MAX_BATCH items."""
    if ndjson:
        lines = [line for line in raw.split(b"\n") if line.strip()]
        if not lines:
            raise bad_request("empty body: expected one JSON object per line", "empty_body")
        _check_batch_size(len(lines))
        parts = [_decode_requests(line, f"line {n}: ") for n, line in enumerate(lines, 1)]
        decoded = Decoded(
            [part.requests[0] for part in parts],
            [part.extras[0] for part in parts],
            sum(part.repaired for part in parts),
        )
        return _javascript_safe(decoded, raw)
    stripped = raw.lstrip()
    if stripped[:1] != b"[" and stripped:
        raise invalid("a batch is a JSON array of events (or NDJSON)", "invalid_batch")
    decoded = _decode_requests(raw, batch=True)
    if not decoded.requests:
        raise invalid("a batch needs at least one event", "invalid_batch")
    _check_batch_size(len(decoded.requests))
    return _javascript_safe(decoded, raw)


def _check_batch_size(count: int) -> None:
    if count > MAX_BATCH:
        raise too_large(f"a batch holds at most {MAX_BATCH} events, got {count}", "batch_too_large")


def format_timestamp(unix_seconds: float) -> str:
    """`unix_seconds` as the spec writes timestamps: UTC, whole seconds, `Z`."""
    return _whole_second(int(unix_seconds))


@functools.lru_cache(maxsize=4)  # every event within the same second shares the string
def _whole_second(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
