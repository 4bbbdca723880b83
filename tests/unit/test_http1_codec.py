"""hookd.protocol.http1's readers against h11, the reference: the same bytes, cut at random
points, give the same messages; what h11 refuses, the readers refuse too.

Deliberate differences (each checked below, in DIFFERENCES):
- refused by hookd, accepted by h11: obsolete line folding, Content-Length together with
  Transfer-Encoding (h11 ignores the length: a smuggling risk), control characters in a
  header value, HTTP versions other than 1.0 and 1.1 (505), an absolute-form target (the
  API serves only origin-form), lines ended by a bare LF, chunk sizes over 16 hex digits;
- accepted by hookd, refused by h11: an HTTP/1.1 request without Host (hookd serves one
  name on a Unix socket), whitespace before a chunk extension (RFC 9112 7.1.1 allows it);
- HTTP/1.0 with `Connection: keep-alive` keeps the connection in hookd, never in h11;
- responses: hookd acts only on Content-Length, Transfer-Encoding, Connection and
  Retry-After, so it does not check other header values for control characters.
The fixed seed keeps a failure reproducible; `derandomize` makes every run the same.
"""

from __future__ import annotations

import itertools
from typing import Any

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hookd.protocol.http1 import (
    CLOSED,
    NEED_DATA,
    ProtocolError,
    RequestReader,
    ResponseReader,
)

# -- generating messages ---------------------------------------------------------------

TOKEN = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Fields the codecs give meaning to: each is set on purpose by the strategies.
SPECIAL = {"host", "content-length", "transfer-encoding", "connection", "expect", "upgrade"}

names = st.text(TOKEN, min_size=1, max_size=12).filter(lambda n: n.lower() not in SPECIAL)
VCHAR = "".join(map(chr, range(0x21, 0x7F))) + "\xe9\xff"
values = st.builds(
    lambda first, middle: (first + middle).strip(" \t"),
    st.text(VCHAR, min_size=1, max_size=1),
    st.text(VCHAR + " \t", max_size=20),
)
fields = st.lists(st.tuples(names, values), max_size=5)
bodies = st.binary(max_size=300)


@st.composite
def chunked(draw: st.DrawFn, body: bytes) -> bytes:
    """`body` chunked at drawn sizes, with extensions and trailers now and then."""
    out = b""
    rest = body
    while rest:
        size = draw(st.integers(1, len(rest)))
        ext = draw(st.sampled_from([b"", b";a", b";a=1", b';n="v"']))
        out += b"%x%s\r\n%s\r\n" % (size, ext, rest[:size])
        rest = rest[size:]
    trailers = draw(st.lists(st.tuples(names, values), max_size=2))
    out += b"0\r\n" + b"".join(f"{n}: {v}\r\n".encode("latin-1") for n, v in trailers)
    return out + b"\r\n"


@st.composite
def requests(draw: st.DrawFn, last: bool) -> tuple[bytes, dict[str, Any]]:
    """One valid HTTP/1.1 request and what it must read as."""
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "X-Op"]))
    target = "/" + draw(st.text("".join(map(chr, range(0x21, 0x7F))), max_size=30))
    headers = [("Host", draw(st.sampled_from(["hookd", "a.example:8080"]))), *draw(fields)]
    framing = draw(st.sampled_from(["none", "length", "chunked"]))
    body = b"" if framing == "none" else draw(bodies)
    if framing == "length":
        headers.append(("Content-Length", str(len(body))))
    elif framing == "chunked":
        headers.append(("Transfer-Encoding", draw(st.sampled_from(["chunked", "Chunked"]))))
    close = last and draw(st.booleans())
    if close:
        headers.append(("Connection", "close"))
    order = draw(st.permutations(headers))
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{n}: {v}\r\n" for n, v in order)
    data = head.encode("latin-1") + b"\r\n"
    data += draw(chunked(body)) if framing == "chunked" else body
    return data, {"method": method, "target": target, "body": body, "keep_alive": not close}


@st.composite
def request_streams(draw: st.DrawFn) -> bytes:
    """Pipelined requests: only the last may ask to close."""
    count = draw(st.integers(1, 4))
    return b"".join(draw(requests(last=i == count - 1))[0] for i in range(count))


@st.composite
def cuts(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """`data` cut at drawn points into non-empty pieces (an empty one would be the end);
    one time in four, at every byte, so that every boundary is a cut somewhere."""
    if draw(st.integers(0, 3)) == 0:
        return [data[i : i + 1] for i in range(len(data))]
    points = sorted(set(draw(st.lists(st.integers(1, max(1, len(data) - 1)), max_size=8))))
    edges = [0, *[p for p in points if p < len(data)], len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges) if b > a]


# -- reading with each codec -----------------------------------------------------------


def ours_requests(pieces: list[bytes]) -> list[dict[str, Any]]:
    reader = RequestReader(max_body_bytes=1 << 20)
    out: list[dict[str, Any]] = []
    for piece in [*pieces, b""]:
        reader.feed(piece)
        while (event := reader.next_event()) is not NEED_DATA:
            if event is CLOSED:
                return out
            out.append(
                {
                    "method": event.head.method,
                    "target": event.head.target,
                    "headers": _lower_coding(event.head.headers),
                    "body": event.body,
                    "keep_alive": event.head.keep_alive,
                }
            )
    raise AssertionError("no end after the end of the stream")


def _lower_coding(headers: dict[str, str]) -> dict[str, str]:
    """h11 lower-cases the value of Transfer-Encoding; hookd keeps it as sent."""
    coding = headers.get("transfer-encoding")
    return headers if coding is None else {**headers, "transfer-encoding": coding.lower()}


def _joined(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw_name, raw_value in headers:
        name, value = raw_name.decode("ascii"), raw_value.decode("latin-1")
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def h11_requests(pieces: list[bytes]) -> list[dict[str, Any]]:
    conn = h11.Connection(h11.SERVER)
    out: list[dict[str, Any]] = []
    head: h11.Request | None = None
    body = b""
    for piece in [*pieces, b""]:
        conn.receive_data(piece)
        while (event := conn.next_event()) is not h11.NEED_DATA:
            if isinstance(event, h11.ConnectionClosed):
                return out
            if isinstance(event, h11.Request):
                head, body = event, b""
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                out.append(
                    {
                        "method": head.method.decode(),
                        "target": head.target.decode(),
                        "headers": _joined(list(head.headers)),
                        "body": body,
                        "keep_alive": conn.their_state is h11.DONE,
                    }
                )
                conn.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
                conn.send(h11.EndOfMessage())
                if conn.their_state is h11.MUST_CLOSE:
                    return out
                conn.start_next_cycle()
    raise AssertionError("no end after the end of the stream")


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.data())
def test_requests_read_as_h11_reads_them(data: st.DataObject) -> None:
    stream = data.draw(request_streams())
    pieces = data.draw(cuts(stream))
    assert ours_requests(pieces) == h11_requests(pieces)


@settings(max_examples=100, derandomize=True, deadline=None)
@given(st.data())
def test_requests_read_as_generated(data: st.DataObject) -> None:
    message, expected = data.draw(requests(last=True))
    [read] = ours_requests(data.draw(cuts(message)))
    assert {key: read[key] for key in expected} == expected


# -- responses -------------------------------------------------------------------------

STATUSES = st.sampled_from([200, 201, 202, 299, 301, 400, 404, 410, 429, 500, 503, 599])
reasons = st.text("abcdefghijklmnopqrstuvwxyz ABCXYZ-", max_size=20).map(lambda r: r.strip())


@st.composite
def responses(draw: st.DrawFn, last: bool) -> tuple[bytes, dict[str, Any]]:
    """One valid HTTP/1.1 response, maybe after interim ones, and what it must read as."""
    data = b"".join(
        b"HTTP/1.1 %d Early\r\nLink: </a>\r\n\r\n" % code
        for code in draw(st.lists(st.sampled_from([100, 102, 103]), max_size=2))
    )
    status = draw(st.one_of(STATUSES, st.sampled_from([204, 304])))
    headers = draw(fields)
    framing = "none" if status in (204, 304) else draw(st.sampled_from(["length", "chunked"]))
    if last and framing != "none" and draw(st.booleans()):
        framing = "eof"
    body = b"" if framing == "none" else draw(bodies)
    if framing == "length":
        headers.append(("Content-Length", str(len(body))))
    elif framing == "chunked":
        headers.append(("Transfer-Encoding", "chunked"))
    close = framing == "eof" or (last and draw(st.booleans()))
    if close:
        headers.append(("Connection", "close"))
    order = draw(st.permutations(headers))
    reason = draw(reasons)
    line = f"HTTP/1.1 {status} {reason}" if reason or draw(st.booleans()) else f"HTTP/1.1 {status}"
    head = line + "\r\n" + "".join(f"{n}: {v}\r\n" for n, v in order)
    data += head.encode("latin-1") + b"\r\n"
    data += draw(chunked(body)) if framing == "chunked" else body
    return data, {"status": status, "body": body, "keep_alive": not close}


@st.composite
def response_streams(draw: st.DrawFn) -> bytes:
    """Responses one after another on one connection: only the last may close it."""
    count = draw(st.integers(1, 4))
    return b"".join(draw(responses(last=i == count - 1))[0] for i in range(count))


def ours_responses(pieces: list[bytes]) -> list[dict[str, Any]]:
    reader = ResponseReader(max_body_bytes=1 << 20)
    out: list[dict[str, Any]] = []
    for piece in [*pieces, b""]:
        if not piece and reader.idle:  # the end of the stream between answers
            return out
        reader.feed(piece)
        while (event := reader.next_event()) is not NEED_DATA:
            assert event.complete
            head = event.head
            out.append(
                {
                    "status": head.status,
                    "reason": head.reason,
                    "headers": head.headers,
                    "body": event.body,
                    "keep_alive": head.keep_alive,
                }
            )
            if not head.keep_alive and head.status >= 200:
                return out
    return out


def _ask(conn: h11.Connection) -> None:
    conn.send(h11.Request(method="POST", target="/", headers=[("Host", "a")]))
    conn.send(h11.EndOfMessage())


def h11_responses(pieces: list[bytes]) -> list[dict[str, Any]]:
    conn = h11.Connection(h11.CLIENT)
    _ask(conn)
    out: list[dict[str, Any]] = []
    head: h11.Response | h11.InformationalResponse | None = None
    body = b""
    for piece in [*pieces, b""]:
        if not piece and conn.their_state is h11.SEND_RESPONSE and not conn.trailing_data[0]:
            return out  # the end of the stream between answers
        conn.receive_data(piece)
        while (event := conn.next_event()) is not h11.NEED_DATA:
            if isinstance(event, h11.ConnectionClosed):
                return out
            if isinstance(event, h11.Data):
                body += event.data
                continue
            if isinstance(event, h11.Response | h11.InformationalResponse):
                head, body = event, b""
            if isinstance(event, h11.InformationalResponse | h11.EndOfMessage):
                assert head is not None
                final = isinstance(event, h11.EndOfMessage)
                out.append(
                    {
                        "status": head.status_code,
                        "reason": head.reason.decode("latin-1"),
                        "headers": [(n.decode(), v.decode("latin-1")) for n, v in head.headers],
                        "body": body,
                        "keep_alive": conn.their_state is h11.DONE if final else True,
                    }
                )
                if final:
                    if conn.their_state is h11.MUST_CLOSE:
                        return out
                    conn.start_next_cycle()
                    _ask(conn)
    return out


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.data())
def test_responses_read_as_h11_reads_them(data: st.DataObject) -> None:
    stream = data.draw(response_streams())
    pieces = data.draw(cuts(stream))
    assert ours_responses(pieces) == h11_responses(pieces)


@settings(max_examples=100, derandomize=True, deadline=None)
@given(st.data())
def test_responses_read_as_generated(data: st.DataObject) -> None:
    message, expected = data.draw(responses(last=True))
    read = ours_responses(data.draw(cuts(message)))[-1]
    assert {key: read[key] for key in expected} == expected


# -- refusals --------------------------------------------------------------------------

POST = b"POST / HTTP/1.1\r\nHost: a\r\n"

# Malformed requests both codecs refuse.
MALFORMED = [
    b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",  # two spaces in the request line
    b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",  # no request line
    b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",  # a space before the colon
    b"GET / HTTP/1.1\r\nHost: a\r\nno colon\r\n\r\n",  # a header line without a colon
    POST + b"Content-Length: 1x\r\n\r\n1x",  # not a number
    POST + b"Content-Length: +5\r\n\r\nhello",  # a sign is not a digit
    POST + b"Content-Length: 5, 6\r\n\r\nhello!",  # two lengths
    POST + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",  # two lengths, two fields
    POST + b"Transfer-Encoding: gzip\r\n\r\n",  # a coding not supported
    POST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",  # a bad chunk size
    POST + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",  # no CRLF after data
    POST + b"Content-Length: 5\r\n\r\nhel",  # the end of the stream inside the body
    POST + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",  # ... inside a chunked one
    b"GET / HTTP/1.1\r\nHost: a\r\n",  # ... inside the head
]


def ours_refuse(pieces: list[bytes]) -> bool:
    try:
        ours_requests(pieces)
    except ProtocolError:
        return True
    return False


def h11_refuses(pieces: list[bytes]) -> bool:
    try:
        h11_requests(pieces)
    except h11.RemoteProtocolError:
        return True
    return False


@pytest.mark.parametrize("message", MALFORMED)
@settings(max_examples=20, derandomize=True, deadline=None)
@given(st.data())
def test_both_refuse_malformed_requests(message: bytes, data: st.DataObject) -> None:
    pieces = data.draw(cuts(message))
    assert h11_refuses(pieces)
    assert ours_refuse(pieces)


# (request, whether hookd refuses it): where hookd parts from h11 on purpose
DIFFERENCES = [
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n folded\r\n\r\n", True),  # obs-fold
    (POST + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", True),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", True),  # a control character
    (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", True),  # not HTTP/1.x: 505
    (b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", True),  # absolute-form
    (b"GET / HTTP/1.1\nHost: a\n\n", True),  # bare LF
    (POST + b"Transfer-Encoding: chunked\r\n\r\n00000000000000005\r\nhello\r\n0\r\n\r\n", True),
    (b"GET / HTTP/1.1\r\n\r\n", False),  # no Host
    (POST + b"Transfer-Encoding: chunked\r\n\r\n5 ;x=1\r\nhello\r\n0\r\n\r\n", False),  # BWS
]


@pytest.mark.parametrize(("message", "refused"), DIFFERENCES)
def test_deliberate_differences_from_h11(message: bytes, refused: bool) -> None:
    assert h11_refuses([message]) is not refused
    assert ours_refuse([message]) is refused


def test_http10_keep_alive_is_kept_by_hookd_only() -> None:
    message = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    [ours] = ours_requests([message])
    [theirs] = h11_requests([message])
    assert (ours["keep_alive"], theirs["keep_alive"]) == (True, False)


# Malformed responses both codecs refuse.
MALFORMED_RESPONSES = [
    b"HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
    b"ICY 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello!",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel",  # cut off
    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n",  # cut off in the head
]


@pytest.mark.parametrize("message", MALFORMED_RESPONSES)
@settings(max_examples=20, derandomize=True, deadline=None)
@given(st.data())
def test_both_refuse_malformed_responses(message: bytes, data: st.DataObject) -> None:
    pieces = data.draw(cuts(message))
    with pytest.raises(h11.RemoteProtocolError):
        h11_responses(pieces)
    with pytest.raises(ProtocolError):
        ours_responses(pieces)
