"""HTTP/1.1 framing without I/O: the server's request heads and responses, and the
delivery client's requests and response heads.

Rules (RFC 9112, the subset an API server needs):
- A request head is the request line and header lines up to an empty line, CRLF-ended.
  The request line is `METHOD SP origin-form-target SP HTTP/1.x`; header names are
  tokens; values carry no control characters but tab; obsolete line folding is refused.
- The body is framed by `Content-Length` (one value, or repeats of the same value) or by
  `Transfer-Encoding: chunked`; both at once is refused (request smuggling), and so is
  any other transfer coding (501). No framing means no body.
- HTTP/1.1 keeps the connection unless `Connection: close`; HTTP/1.0 closes it unless
  `Connection: keep-alive`.
- Every refusal is a `ProtocolError` carrying the status to answer with; after one the
  connection is closed, because where the next request starts is unknown.
- Responses read by the client: 1xx heads are skipped by the caller, 204 and 304 have no
  body, then chunked, then Content-Length (framed as in a request: different values are
  refused, so such an answer is a failed attempt), else the body runs to the end of the
  connection. Only an HTTP/1.1 answer without `Connection: close` keeps the connection.
"""

from __future__ import annotations

import re
from http import HTTPStatus

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
    lines = [b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, b"Unknown"))]
    lines += [f"{name}: {value}".encode("latin-1") for name, value in headers]
    lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body if send_body else b"")


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class ResponseHead(msgspec.Struct, frozen=True, kw_only=True):
    """A parsed response head, as the delivery client needs it."""

    status: int
    retry_after: str | None
    content_length: int | None  # None: chunked, or delimited by the end of the connection
    chunked: bool
    keep_alive: bool


_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([1-9][0-9]{2})(?: [^\r\n]*)?")


_HEADER_LINES = re.compile(rb"(?:\r\n[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\r\n]*)*")
_RESPONSE_FIELDS = frozenset(
    {b"content-length", b"transfer-encoding", b"connection", b"retry-after"}
)


def parse_response_head(data: bytes) -> ResponseHead:
    """Parse a response head (without the final empty line)."""
    end = data.find(b"\r\n")
    first = data if end < 0 else data[:end]
    match = _STATUS_LINE.fullmatch(first)
    if match is None:
        raise ProtocolError(502, f"malformed status line {first[:60]!r}")
    if end >= 0 and not _HEADER_LINES.fullmatch(data, end):
        raise ProtocolError(502, "malformed header line in the answer")
    minor, status = match.group(1), int(match.group(2))
    fields: dict[bytes, bytes] = {}
    for line in data[end + 2 :].split(b"\r\n") if end >= 0 else ():
        name, _, value = line.partition(b":")
        key = name.lower()
        if key in _RESPONSE_FIELDS:  # the only fields the client acts on
            value = value.strip(b" \t")
            fields[key] = fields[key] + b", " + value if key in fields else value
    chunked = b"chunked" in fields.get(b"transfer-encoding", b"").lower()
    length = None
    if status in (204, 304) or 100 <= status < 200:
        length = 0
    elif not chunked and b"content-length" in fields:
        length = content_length(fields[b"content-length"].decode("latin-1"), 502, " in the answer")
    tokens = {t.strip() for t in fields.get(b"connection", b"").lower().split(b",")}
    framed = chunked or length is not None
    retry_after = fields.get(b"retry-after")
    return ResponseHead(
        status=status,
        retry_after=retry_after.decode("latin-1") if retry_after is not None else None,
        content_length=length,
        chunked=chunked,
        keep_alive=minor == b"1" and b"close" not in tokens and framed,
    )


def request_bytes(target: bytes, headers: list[tuple[str, str]], body: bytes) -> bytes:
    """A whole POST request; header values must already be free of CR and LF."""
    lines = [b"POST " + target + b" HTTP/1.1"]
    lines += [f"{name}: {value}".encode("latin-1") for name, value in headers]
    lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
