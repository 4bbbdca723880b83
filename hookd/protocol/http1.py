"""HTTP/1.1 without I/O: readers that turn received bytes into whole messages, and writers
that turn messages into bytes; the server, the delivery client, the benchmarks and the
tests' raw clients all frame HTTP here. Why hookd has its own codec rather than h11:
docs/ARCHITECTURE.md. One module past 400 lines on purpose: the head parsers, the
readers that apply them and the writers are one set of framing rules, read together.

Rules (RFC 9112, the subset an API server and a webhook sender need):
- Sans-IO in h11's manner: a `RequestReader` or `ResponseReader` owns the connection's
  buffer and the framing state; the caller `feed`s it what arrived (`feed(b"")`: the peer
  closed) and asks `next_event()` for a whole message (head and body), `NEED_DATA`, or,
  for requests, `CLOSED` (the peer closed between two requests). Readers never block,
  read a clock or do I/O; one reader serves every message of one connection, in order
  (pipelined messages wait in its buffer).
- A request head is the request line and header lines up to an empty line, CRLF-ended.
  The request line is `METHOD SP origin-form-target SP HTTP/1.x`; header names are
  tokens; values carry no control characters but tab; obsolete line folding is refused.
- The body is framed by `Content-Length` (one value, or repeats of the same value) or by
  `Transfer-Encoding: chunked`; both at once is refused (request smuggling), and so is
  any other transfer coding (501). No framing means no body.
- HTTP/1.1 keeps the connection unless `Connection: close`; HTTP/1.0 closes it unless
  `Connection: keep-alive`.
- Every refusal is a `ProtocolError` carrying the status to answer with; after one the
  reader is unusable and the connection is closed, because where the next message
  starts is unknown. Limits are the reader's: a head over `max_head_bytes` (431 for a
  request), a request body over `max_body_bytes` (413, as soon as its Content-Length
  says so), a chunk size line over 4,096 bytes (400). The end of the stream inside a
  message is an `Incomplete` (a `ProtocolError`).
- Responses: 1xx answers are returned like any other (the caller skips them), 204, 304,
  1xx and answers to HEAD have no body, then chunked, then Content-Length (framed as in a
  request: different values are refused, so such an answer is a failed attempt), else
  the body runs to the end of the connection. Only an HTTP/1.1 answer without
  `Connection: close` keeps the connection. A body is read up to `max_body_bytes`;
  beyond that the answer is returned incomplete (`complete=False`: the connection cannot
  be reused), and only its first `keep_body_bytes` are kept.
"""

from __future__ import annotations

import enum
import re
from http import HTTPStatus
from typing import Final, Literal

import msgspec

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TARGET = re.compile(rb"/[\x21-\x7e]*")
_VERSION = re.compile(rb"HTTP/[0-9]\.[0-9]")
_FIELD_VALUE_BAD = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?")


class ProtocolError(Exception):
    """The request cannot be read; answer `status` and close the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Head(msgspec.Struct, frozen=True, kw_only=True):
    """A parsed request head."""

    method: str
    target: str
    headers: dict[str, str]  # lower-case names; repeated fields joined with ", "
    content_length: int | None
    chunked: bool
    keep_alive: bool
    expects_continue: bool


def parse_head(data: bytes) -> Head:
    """Parse a request head (without the final empty line)."""
    lines = data.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not _TARGET.fullmatch(parts[1]):
        raise ProtocolError(400, "malformed request line")
    method, target, version = parts
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        if _VERSION.fullmatch(version):
            raise ProtocolError(505, "only HTTP/1.0 and HTTP/1.1 are served")
        raise ProtocolError(400, "malformed request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            raise ProtocolError(400, "malformed header line")
        value = value.strip(b" \t")
        if _FIELD_VALUE_BAD.search(value):
            raise ProtocolError(400, "control character in a header value")
        key = name.decode("ascii").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return _framing(method.decode("ascii"), target.decode("ascii"), version, headers)


def _framing(method: str, target: str, version: bytes, headers: dict[str, str]) -> Head:
    length: int | None = None
    if "content-length" in headers:
        length = content_length(headers["content-length"], 400, "")
    chunked = False
    if "transfer-encoding" in headers:
        if length is not None:
            raise ProtocolError(400, "both Content-Length and Transfer-Encoding")
        if headers["transfer-encoding"].strip().lower() != "chunked" or version == b"HTTP/1.0":
            raise ProtocolError(501, "only the chunked transfer coding is supported")
        chunked = True
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    keep_alive = "close" not in tokens if version == b"HTTP/1.1" else "keep-alive" in tokens
    expects = headers.get("expect", "").strip().lower() == "100-continue"
    return Head(
        method=method,
        target=target,
        headers=headers,
        content_length=length,
        chunked=chunked,
        keep_alive=keep_alive,
        expects_continue=expects and version == b"HTTP/1.1",
    )


def content_length(value: str, status: int, where: str) -> int:
    """The length a Content-Length field (its repeats joined with ", ") announces.

    Repeats of one value are that value (RFC 9110 section 8.6); different values, or one
    that is not a decimal number, raise a `ProtocolError` with `status`.
    """
    values = {v.strip() for v in value.split(",")}
    if len(values) != 1:
        raise ProtocolError(status, f"conflicting Content-Length values{where}")
    text = values.pop()
    if not (text.isascii() and text.isdigit()) or len(text) > 15:
        raise ProtocolError(status, f"invalid Content-Length{where}")
    return int(text)


class ChunkedBody:
    """Decodes a chunked body as it arrives: `feed(buffer)` consumes what it can."""

    def __init__(self) -> None:
        self.body = bytearray()
        self.done = False
        self._left = -1  # bytes of the current chunk still to come; -1: a size line is next
        self._trailers = False

    def feed(self, buffer: bytearray) -> None:
        """Consume complete pieces of `buffer` (it is shortened in place)."""
        while not self.done:
            if self._left > 0:
                take = min(self._left, len(buffer))
                if not take:
                    return
                self.body += buffer[:take]
                del buffer[:take]
                self._left -= take
                continue
            end = buffer.find(b"\r\n")
            if end < 0:
                if len(buffer) > 4096:
                    raise ProtocolError(400, "chunk size line too long")
                return
            line = bytes(buffer[:end])
            del buffer[: end + 2]
            if self._trailers:  # trailer fields, ignored, up to an empty line
                self.done = not line
            elif self._left == 0:  # the CRLF that ends a chunk's data
                if line:
                    raise ProtocolError(400, "malformed chunk")
                self._left = -1
            else:
                match = _CHUNK_SIZE.fullmatch(line)
                if match is None:
                    raise ProtocolError(400, "malformed chunk size")
                size = int(match.group(1), 16)
                self._trailers = size == 0
                self._left = size or -1


_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}


def response_bytes(
    status: int, headers: list[tuple[str, str]], body: bytes, *, send_body: bool = True
) -> bytes:
    """A whole response: status line, headers (with Content-Length), body."""
    head = head_bytes(status, [*headers, ("Content-Length", str(len(body)))])
    return head + (body if send_body else b"")


def head_bytes(status: int, headers: list[tuple[str, str]]) -> bytes:
    """A response head alone (status line, headers, blank line): the body that follows is
    delimited by the end of the connection when `headers` give no length."""
    lines = [b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, b"Unknown"))]
    lines += [f"{name}: {value}".encode("latin-1") for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class ResponseHead(msgspec.Struct, frozen=True, kw_only=True):
    """A parsed response head."""

    status: int
    reason: str
    http_version: str  # "1.0" or "1.1"
    retry_after: str | None
    content_length: int | None  # None: chunked, or delimited by the end of the connection
    chunked: bool
    keep_alive: bool
    lines: bytes = b""  # the header lines as received, CRLF-separated

    @property
    def headers(self) -> list[tuple[str, str]]:
        """Every header field in order: lower-case names, values stripped, repeats kept
        (parsed when asked: the delivery client needs only the fields above)."""
        pairs = (line.partition(b":") for line in self.lines.split(b"\r\n") if line)
        return [
            (name.lower().decode("ascii"), value.strip(b" \t").decode("latin-1"))
            for name, _, value in pairs
        ]


_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([1-9][0-9]{2})(?: ([^\r\n]*))?")


_HEADER_LINES = re.compile(rb"(?:\r\n[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\r\n]*)*")
_RESPONSE_FIELDS = frozenset(
    {b"content-length", b"transfer-encoding", b"connection", b"retry-after"}
)


def parse_response_head(data: bytes, *, to_head: bool = False) -> ResponseHead:
    """Parse a response head (without the final empty line); `to_head`: it answers a
    HEAD request, so it has no body."""
    end = data.find(b"\r\n")
    first = data if end < 0 else data[:end]
    match = _STATUS_LINE.fullmatch(first)
    if match is None:
        raise ProtocolError(502, f"malformed status line {first[:60]!r}")
    if end >= 0 and not _HEADER_LINES.fullmatch(data, end):
        raise ProtocolError(502, "malformed header line in the answer")
    minor, status = match.group(1), int(match.group(2))
    lines = data[end + 2 :] if end >= 0 else b""
    fields: dict[bytes, bytes] = {}
    for line in lines.split(b"\r\n") if lines else ():
        name, _, value = line.partition(b":")
        key = name.lower()
        if key in _RESPONSE_FIELDS:  # the only fields the client acts on
            value = value.strip(b" \t")
            fields[key] = fields[key] + b", " + value if key in fields else value
    chunked = not to_head and b"chunked" in fields.get(b"transfer-encoding", b"").lower()
    length = None
    if status in (204, 304) or 100 <= status < 200 or to_head:
        length = 0
    elif not chunked and b"content-length" in fields:
        length = content_length(fields[b"content-length"].decode("latin-1"), 502, " in the answer")
    tokens = {t.strip() for t in fields.get(b"connection", b"").lower().split(b",")}
    framed = chunked or length is not None
    retry_after = fields.get(b"retry-after")
    return ResponseHead(
        status=status,
        reason=(match.group(3) or b"").decode("latin-1"),
        http_version="1.1" if minor == b"1" else "1.0",
        lines=lines,
        retry_after=retry_after.decode("latin-1") if retry_after is not None else None,
        content_length=length,
        chunked=chunked,
        keep_alive=minor == b"1" and b"close" not in tokens and framed,
    )


def request_bytes(
    target: bytes, headers: list[tuple[str, str]], body: bytes, *, method: bytes = b"POST"
) -> bytes:
    """A whole request (POST unless told), with Content-Length; header values must
    already be free of CR and LF."""
    lines = [method + b" " + target + b" HTTP/1.1"]
    lines += [f"{name}: {value}".encode("latin-1") for name, value in headers]
    lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


# -- readers ---------------------------------------------------------------------------


class Incomplete(ProtocolError):
    """The stream ended inside a message."""


class Event(enum.Enum):
    """What a reader answers when it has no message to give."""

    NEED_DATA = "need data"  # feed more bytes, then ask again
    CLOSED = "closed"  # the peer closed the stream between two messages


NEED_DATA: Final = Event.NEED_DATA
CLOSED: Final = Event.CLOSED


class Request(msgspec.Struct, frozen=True):
    """A whole request."""

    head: Head
    body: bytes


class Response(msgspec.Struct, frozen=True):
    """A whole response, or as much as the limits let through (`complete` False)."""

    head: ResponseHead
    body: bytes  # at most the reader's keep_body_bytes
    complete: bool


def _split_head(buffer: bytearray, limit: int, status: int, message: str) -> bytes | None:
    """The head at the front of `buffer` (taken out of it), or None if it has not all come."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > limit:
            raise ProtocolError(status, message)
        return None
    if end > limit:
        raise ProtocolError(status, message)
    head = bytes(buffer[:end])
    del buffer[: end + 4]
    return head


class RequestReader:
    """Frames the requests arriving on one connection."""

    __slots__ = ("_buffer", "_chunks", "_continue", "_eof", "_head", "max_body", "max_head")

    def __init__(self, *, max_head_bytes: int = 16_384, max_body_bytes: int = 1_048_576) -> None:
        self.max_head = max_head_bytes
        self.max_body = max_body_bytes
        self._buffer = bytearray()
        self._head: Head | None = None  # of the request being read
        self._chunks: ChunkedBody | None = None  # its body, if chunked
        self._continue = False
        self._eof = False

    @property
    def idle(self) -> bool:
        """No byte of a next request has arrived."""
        return self._head is None and not self._buffer

    @property
    def expects_continue(self) -> bool:
        """The request being read asked for a `100 Continue` before it sends its body,
        and nothing of that body came yet: send `CONTINUE` now."""
        return self._continue

    def feed(self, data: bytes | bytearray) -> None:
        """Add what arrived; `b""` says the peer closed its side."""
        if data:
            self._buffer += data
        else:
            self._eof = True
        self._continue = False

    def next_event(self) -> Request | Literal[Event.NEED_DATA, Event.CLOSED]:
        """The next whole request, `NEED_DATA`, or `CLOSED`; a `ProtocolError` if refused."""
        buffer = self._buffer
        head = self._head
        if head is None:
            raw = _split_head(buffer, self.max_head, 431, "the request head is too large")
            if raw is None:
                if not self._eof:
                    return NEED_DATA
                if buffer:
                    raise Incomplete(400, "the connection closed in the middle of a request")
                return CLOSED
            head = self._head = parse_head(raw)
            if head.content_length is not None and head.content_length > self.max_body:
                raise _too_large(self.max_body)
            self._continue = head.expects_continue and bool(head.content_length or head.chunked)
            self._continue = self._continue and not buffer
            if head.chunked:
                self._chunks = ChunkedBody()
        chunks = self._chunks
        if chunks is not None:
            chunks.feed(buffer)
            if len(chunks.body) > self.max_body:
                raise _too_large(self.max_body)
            if not chunks.done:
                return self._need_data()
            body = bytes(chunks.body)
            self._chunks = None
        else:
            length = head.content_length or 0
            if len(buffer) < length:
                return self._need_data()
            body = bytes(buffer[:length])
            del buffer[:length]
        self._head = None
        self._continue = False
        return Request(head, body)

    def _need_data(self) -> Literal[Event.NEED_DATA]:
        if self._eof:
            raise Incomplete(400, "the connection closed in the middle of a request")
        return NEED_DATA


def _too_large(limit: int) -> ProtocolError:
    return ProtocolError(413, f"request body is larger than {limit} bytes")


class ResponseReader:
    """Frames the responses arriving on one client connection."""

    __slots__ = (
        "_buffer",
        "_chunks",
        "_eof",
        "_head",
        "_no_body",
        "keep_body",
        "max_body",
        "max_head",
    )

    def __init__(
        self,
        *,
        max_head_bytes: int = 65_536,
        max_body_bytes: int = 65_536,
        keep_body_bytes: int | None = None,
    ) -> None:
        self.max_head = max_head_bytes
        self.max_body = max_body_bytes
        self.keep_body = max_body_bytes if keep_body_bytes is None else keep_body_bytes
        self._buffer = bytearray()
        self._head: ResponseHead | None = None
        self._chunks: ChunkedBody | None = None
        self._no_body = False
        self._eof = False

    @property
    def idle(self) -> bool:
        """No byte of a next response has arrived."""
        return self._head is None and not self._buffer

    def expect_no_body(self) -> None:
        """The next final response answers a HEAD request: it has no body."""
        self._no_body = True

    def feed(self, data: bytes | bytearray) -> None:
        """Add what arrived; `b""` says the peer closed its side."""
        if data:
            self._buffer += data
        else:
            self._eof = True

    def next_event(self) -> Response | Literal[Event.NEED_DATA]:
        """The next response (1xx included), or `NEED_DATA`; a `ProtocolError` if refused."""
        buffer = self._buffer
        head = self._head
        if head is None:
            raw = _split_head(buffer, self.max_head, 502, "answer head too large")
            if raw is None:
                if self._eof:
                    raise Incomplete(502, "connection closed before an answer")
                return NEED_DATA
            head = self._head = parse_response_head(raw, to_head=self._no_body)
            self._no_body = self._no_body and head.status < 200
            if head.chunked:
                self._chunks = ChunkedBody()
        chunks = self._chunks
        if chunks is not None:
            chunks.feed(buffer)
            if not chunks.done and len(chunks.body) <= self.max_body:
                return self._need_data()
            body, complete = bytes(chunks.body[: self.keep_body]), chunks.done
            self._chunks = None
        elif head.content_length is not None:
            length = head.content_length
            complete = len(buffer) >= length
            if not complete and len(buffer) <= self.max_body:
                return self._need_data()
            body = bytes(buffer[: min(length, self.keep_body)])
            del buffer[:length]
        else:  # delimited by the end of the stream
            if len(buffer) <= self.max_body and not self._eof:
                return NEED_DATA
            complete = self._eof and len(buffer) <= self.max_body
            body = bytes(buffer[: self.keep_body])
            buffer.clear()
        self._head = None
        return Response(head, body, complete)

    def _need_data(self) -> Literal[Event.NEED_DATA]:
        if self._eof:
            raise Incomplete(502, "connection closed in the middle of the answer")
        return NEED_DATA
