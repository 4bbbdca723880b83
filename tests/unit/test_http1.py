"""hookd.protocol.http1: request heads, chunked bodies and response bytes, without I/O."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hookd.protocol.http1 import (
    CLOSED,
    CONTINUE,
    NEED_DATA,
    ChunkedBody,
    Event,
    Incomplete,
    ProtocolError,
    RequestReader,
    ResponseReader,
    head_bytes,
    parse_head,
    parse_response_head,
    request_bytes,
    response_bytes,
)

# -- parse_head: accepted heads --------------------------------------------------------

GET = b"GET / HTTP/1.1\r\nHost: hookd"
POST = b"POST /v1/events HTTP/1.1\r\nHost: hookd"

# (head without the final empty line, the Head fields it must have)
ACCEPTED: list[tuple[bytes, dict[str, Any]]] = [
    # a simple GET: no body, kept alive, nothing expected
    (
        GET,
        {
            "method": "GET",
            "target": "/",
            "headers": {"host": "hookd"},
            "content_length": None,
            "chunked": False,
            "keep_alive": True,
            "expects_continue": False,
        },
    ),
    # a POST framed by Content-Length
    (POST + b"\r\nContent-Length: 42", {"method": "POST", "content_length": 42, "chunked": False}),
    # Content-Length: 0 is a length, not "no framing"
    (POST + b"\r\nContent-Length: 0", {"content_length": 0}),
    # the same Content-Length repeated in one field
    (POST + b"\r\nContent-Length: 5, 5", {"content_length": 5}),
    # the same Content-Length in two fields
    (POST + b"\r\nContent-Length: 5\r\nContent-Length: 5", {"content_length": 5}),
    # chunked
    (POST + b"\r\nTransfer-Encoding: chunked", {"chunked": True, "content_length": None}),
    # the transfer coding's name is case-insensitive
    (POST + b"\r\nTransfer-Encoding: Chunked", {"chunked": True}),
    # header names are case-insensitive and stored lower-case
    (
        POST + b"\r\nCONTENT-length: 3\r\nX-Trace-ID: a",
        {
            "content_length": 3,
            "headers": {"host": "hookd", "content-length": "3", "x-trace-id": "a"},
        },
    ),
    # repeated headers are joined with ", ", whatever the case of their names
    (
        GET + b"\r\nAccept: a\r\naccept: b\r\nACCEPT: c",
        {"headers": {"host": "hookd", "accept": "a, b, c"}},
    ),
    # HTTP/1.0 closes by default
    (b"GET / HTTP/1.0", {"keep_alive": False, "headers": {}}),
    # HTTP/1.0 with keep-alive keeps the connection (any case)
    (b"GET / HTTP/1.0\r\nConnection: Keep-Alive", {"keep_alive": True}),
    # HTTP/1.1 with Connection: close
    (GET + b"\r\nConnection: close", {"keep_alive": False}),
    # close among other connection options, any case
    (GET + b"\r\nConnection: keep-alive, Close", {"keep_alive": False}),
    # HTTP/1.1 with an explicit keep-alive
    (GET + b"\r\nConnection: keep-alive", {"keep_alive": True}),
    # Expect: 100-continue on HTTP/1.1
    (POST + b"\r\nContent-Length: 5\r\nExpect: 100-continue", {"expects_continue": True}),
    # the expectation is case-insensitive
    (POST + b"\r\nContent-Length: 5\r\nExpect: 100-Continue", {"expects_continue": True}),
    # HTTP/1.0 clients do not get a 100 (RFC 9110 10.1.1)
    (b"POST / HTTP/1.0\r\nContent-Length: 5\r\nExpect: 100-continue", {"expects_continue": False}),
    # an unknown expectation is not 100-continue
    (POST + b"\r\nContent-Length: 5\r\nExpect: 200-ok", {"expects_continue": False}),
    # a tab inside a value is kept
    (GET + b"\r\nX-Note: a\tb", {"headers": {"host": "hookd", "x-note": "a\tb"}}),
    # spaces and tabs around a value are not part of it
    (GET + b"\r\nX-Note: \t v \t", {"headers": {"host": "hookd", "x-note": "v"}}),
    # no space after the colon, and an empty value
    (GET + b"\r\nX-A:1\r\nX-Empty:", {"headers": {"host": "hookd", "x-a": "1", "x-empty": ""}}),
    # obs-text (bytes >= 0x80) in a value is read as latin-1
    (GET + b"\r\nX-Name: Jos\xe9", {"headers": {"host": "hookd", "x-name": "José"}}),
    # the query string stays in the target
    (b"GET /v1/events?limit=5&after=a%20b HTTP/1.1", {"target": "/v1/events?limit=5&after=a%20b"}),
    # methods are case-sensitive tokens (RFC 9110 9.1): "get" is an unknown method for
    # the router to refuse, not a malformed request line, and is not upper-cased
    (b"get / HTTP/1.1", {"method": "get"}),
    # an extension method
    (b"M-SEARCH / HTTP/1.1", {"method": "M-SEARCH"}),
]


@pytest.mark.parametrize(("data", "expected"), ACCEPTED)
def test_parse_head_accepts(data: bytes, expected: dict[str, Any]) -> None:
    head = parse_head(data)
    assert {name: getattr(head, name) for name in expected} == expected


# -- parse_head: refused heads ---------------------------------------------------------

# (head without the final empty line, status to answer)
REFUSED: list[tuple[bytes, int]] = [
    # two spaces between method and target
    (b"GET  / HTTP/1.1", 400),
    # no version
    (b"GET /", 400),
    # no version after a trailing space: an invalid request line, not an unsupported version
    (b"GET / ", 400),
    # a version that is not an HTTP-version at all: invalid request line, not a 505
    (b"GET / JUNK", 400),
    # only a method
    (b"GET", 400),
    # an empty request line
    (b"", 400),
    # a space before the method
    (b" GET / HTTP/1.1", 400),
    # a space after the version
    (b"GET / HTTP/1.1 ", 400),
    # absolute-form target
    (b"GET http://x/ HTTP/1.1", 400),
    # asterisk-form target
    (b"OPTIONS * HTTP/1.1", 400),
    # a target with a space
    (b"GET /a b HTTP/1.1", 400),
    # a control character in the target
    (b"GET /a\x7f HTTP/1.1", 400),
    # a NUL in the method
    (b"GE\x00T / HTTP/1.1", 400),
    # a character a token cannot hold in the method
    (b"G(T / HTTP/1.1", 400),
    # a non-ASCII method
    (b"G\xc9T / HTTP/1.1", 400),
    # HTTP/2.0 over HTTP/1 framing
    (b"GET / HTTP/2.0", 505),
    # HTTP/0.9-style version
    (b"GET / HTTP/0.9", 505),
    # a header line without a colon
    (GET + b"\r\nX-No-Colon", 400),
    # a space before the colon
    (b"GET / HTTP/1.1\r\nHost : x", 400),
    # a tab before the colon
    (b"GET / HTTP/1.1\r\nHost\t: x", 400),
    # an empty header name
    (GET + b"\r\n: x", 400),
    # a header name with a character outside token
    (GET + b"\r\nX(A): 1", 400),
    # obs-fold: a continuation line starting with a space
    (GET + b"\r\nX-A: 1\r\n folded", 400),
    # obs-fold: a continuation line starting with a tab
    (GET + b"\r\nX-A: 1\r\n\tfolded", 400),
    # obs-fold that looks like a header of its own
    (GET + b"\r\nX-A: 1\r\n X-B: 2", 400),
    # NUL in a value
    (GET + b"\r\nX-A: a\x00b", 400),
    # a bare CR in a value
    (GET + b"\r\nX-A: a\rb", 400),
    # a bare LF in a value (a header line smuggled behind it)
    (GET + b"\r\nX-A: a\nX-B: b", 400),
    # ESC in a value
    (GET + b"\r\nX-A: \x1b[31m", 400),
    # DEL in a value
    (GET + b"\r\nX-A: a\x7f", 400),
    # two different Content-Length values in one field
    (POST + b"\r\nContent-Length: 5, 6", 400),
    # two different Content-Length values in two fields
    (POST + b"\r\nContent-Length: 5\r\nContent-Length: 6", 400),
    # a trailing comma is an empty second value
    (POST + b"\r\nContent-Length: 5,", 400),
    # non-numeric
    (POST + b"\r\nContent-Length: abc", 400),
    # empty
    (POST + b"\r\nContent-Length:", 400),
    # negative
    (POST + b"\r\nContent-Length: -1", 400),
    # a sign
    (POST + b"\r\nContent-Length: +5", 400),
    # hex
    (POST + b"\r\nContent-Length: 0x10", 400),
    # a space inside the number
    (POST + b"\r\nContent-Length: 1 0", 400),
    # a non-ASCII digit (latin-1 superscript two, which str.isdigit() accepts)
    (POST + b"\r\nContent-Length: \xb2", 400),
    # huge: 16 digits
    (POST + b"\r\nContent-Length: 9999999999999999", 400),
    # huge: far beyond any integer type
    (POST + b"\r\nContent-Length: " + b"9" * 100, 400),
    # Content-Length and Transfer-Encoding: request smuggling
    (POST + b"\r\nContent-Length: 5\r\nTransfer-Encoding: chunked", 400),
    # the same, in the other order
    (POST + b"\r\nTransfer-Encoding: chunked\r\nContent-Length: 5", 400),
    # the same on HTTP/1.0: still smuggling, refused before the version is looked at
    (b"POST / HTTP/1.0\r\nContent-Length: 5\r\nTransfer-Encoding: chunked", 400),
    # a transfer coding other than chunked
    (POST + b"\r\nTransfer-Encoding: gzip", 501),
    # chunked after another coding
    (POST + b"\r\nTransfer-Encoding: gzip, chunked", 501),
    # the same, as two fields
    (POST + b"\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked", 501),
    # chunked on HTTP/1.0, which has no transfer codings
    (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked", 501),
]


@pytest.mark.parametrize(("data", "status"), REFUSED)
def test_parse_head_refuses(data: bytes, status: int) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_head(data)
    assert caught.value.status == status
    assert str(caught.value)  # a message to put in the error body


# -- ChunkedBody -----------------------------------------------------------------------


def decode(*pieces: bytes) -> tuple[ChunkedBody, bytearray]:
    """Feed `pieces` one after another to a fresh decoder; it and the unconsumed buffer."""
    decoder = ChunkedBody()
    buffer = bytearray()
    for piece in pieces:
        buffer += piece
        decoder.feed(buffer)
    return decoder, buffer


def one_byte_at_a_time(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


# (chunked bytes, the body they carry)
CHUNKED: list[tuple[bytes, bytes]] = [
    # one chunk
    (b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
    # several chunks
    (b"5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n", b"hello world"),
    # a zero-length body
    (b"0\r\n\r\n", b""),
    # chunk extensions, with and without values, after optional whitespace
    (b'5;name=value\r\nhello\r\n6 ;x;y="q"\r\n world\r\n0;last\r\n\r\n', b"hello world"),
    # trailer fields are read and ignored
    (b"5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n", b"hello"),
    # upper-case hex sizes
    (b"A\r\n0123456789\r\n1F\r\n" + b"x" * 31 + b"\r\n0\r\n\r\n", b"0123456789" + b"x" * 31),
    # lower-case hex and leading zeros
    (b"00a\r\n0123456789\r\n000\r\n\r\n", b"0123456789"),
    # data holding CRLF and things that look like size lines
    (b"7\r\n0\r\n\r\nab\r\n0\r\n\r\n", b"0\r\n\r\nab"),
]


@pytest.mark.parametrize(("data", "body"), CHUNKED)
def test_chunked_in_one_feed(data: bytes, body: bytes) -> None:
    decoder, buffer = decode(data)
    assert decoder.done
    assert bytes(decoder.body) == body
    assert buffer == b""


@pytest.mark.parametrize(("data", "body"), CHUNKED)
def test_chunked_one_byte_at_a_time(data: bytes, body: bytes) -> None:
    pieces = one_byte_at_a_time(data)
    decoder, _ = decode(*pieces[:-1])
    assert not decoder.done  # nothing is finished before the last byte
    decoder, buffer = decode(*pieces)
    assert decoder.done
    assert bytes(decoder.body) == body
    assert buffer == b""


def test_chunked_leaves_the_next_request_in_the_buffer() -> None:
    following = b"GET /healthz HTTP/1.1\r\n\r\n"
    decoder, buffer = decode(b"3\r\nabc\r\n0\r\n\r\n" + following)
    assert decoder.done
    assert bytes(decoder.body) == b"abc"
    assert buffer == following
    decoder.feed(buffer)  # a finished decoder takes nothing more
    assert buffer == following


# (chunked bytes that break the framing)
MALFORMED_CHUNKED: list[bytes] = [
    b"x\r\nhello\r\n0\r\n\r\n",  # a size that is not hex
    b"-5\r\nhello\r\n0\r\n\r\n",  # a negative size
    b"0x5\r\nhello\r\n0\r\n\r\n",  # a 0x prefix
    b"\r\nhello\r\n0\r\n\r\n",  # an empty size line
    b" 5\r\nhello\r\n0\r\n\r\n",  # whitespace before the size
    b"5 x\r\nhello\r\n0\r\n\r\n",  # junk after the size that is not an extension
    b"5\nhello\r\n0\r\n\r\n",  # a bare LF ending the size line
    b"1" * 17 + b"\r\n",  # more than 16 hex digits
    b"5\r\nhelloXX\r\n0\r\n\r\n",  # more data than the size says
    b"5\r\nhello0\r\n\r\n",  # no CRLF after the data
    b"3\r\nhello\r\n0\r\n\r\n",  # less data than there is
]


@pytest.mark.parametrize("data", MALFORMED_CHUNKED)
def test_malformed_chunked_is_400(data: bytes) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode(data)
    assert caught.value.status == 400


@pytest.mark.parametrize("data", MALFORMED_CHUNKED)
def test_malformed_chunked_is_400_when_trickled(data: bytes) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode(*one_byte_at_a_time(data))
    assert caught.value.status == 400


def test_partial_size_line_waits() -> None:
    decoder, buffer = decode(b"5;ext=" + b"v" * 2000)
    assert not decoder.done
    assert decoder.body == b""
    assert len(buffer) == 2006  # kept for the next feed


@pytest.mark.parametrize(
    "data",
    [
        b"5;ext=" + b"v" * 5000,  # a size line with a huge extension and no CRLF yet
        b"5\r\nhello\r\n" + b"a" * 5000,  # the same for the second size line
        b"0\r\nX-T: " + b"t" * 5000,  # a trailer line
    ],
)
def test_size_line_longer_than_4096_is_400(data: bytes) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode(data)
    assert caught.value.status == 400


def chunked(body: bytes, sizes: list[int]) -> bytes:
    """`body` in chunked framing, cut into chunks of `sizes` bytes (cycled), hex cases mixed."""
    out = bytearray()
    start = 0
    for i in range(len(body)):
        if start >= len(body):
            break
        piece = body[start : start + sizes[i % len(sizes)]]
        out += (b"%x" if i % 2 else b"%X") % len(piece) + b"\r\n" + piece + b"\r\n"
        start += len(piece)
    return bytes(out + b"0\r\n\r\n")


def cut(data: bytes, points: list[int]) -> list[bytes]:
    """`data` cut at `points` (any order, any repeats)."""
    edges = [0, *sorted(p % (len(data) + 1) for p in points), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@settings(max_examples=300, deadline=None)
@given(
    body=st.binary(max_size=600),
    sizes=st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=8),
    points=st.lists(st.integers(min_value=0, max_value=10_000), max_size=30),
    trailing=st.binary(max_size=40),
)
def test_chunked_round_trip(
    body: bytes, sizes: list[int], points: list[int], trailing: bytes
) -> None:
    data = chunked(body, sizes)
    decoder, buffer = decode(*cut(data + trailing, points))
    assert decoder.done
    assert bytes(decoder.body) == body
    assert buffer == trailing


# -- response_bytes --------------------------------------------------------------------

# (status, headers, body, send_body, the exact bytes)
RESPONSES: list[tuple[int, list[tuple[str, str]], bytes, bool, bytes]] = [
    # a body, no headers: Content-Length is added
    (200, [], b"{}", True, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"),
    # headers come in order, before Content-Length
    (
        202,
        [("Server", "hookd"), ("Content-Type", "application/json")],
        b'{"id":"x"}',
        True,
        b"HTTP/1.1 202 Accepted\r\nServer: hookd\r\nContent-Type: application/json\r\n"
        b'Content-Length: 10\r\n\r\n{"id":"x"}',
    ),
    # an empty body still has Content-Length: 0
    (204, [], b"", True, b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"),
    # a reason phrase of several words
    (404, [], b"!", True, b"HTTP/1.1 404 Not Found\r\nContent-Length: 1\r\n\r\n!"),
    # the answer to HEAD: no body, but the body's Content-Length
    (
        405,
        [("Allow", "GET")],
        b'{"error":1}',
        False,
        b"HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\nContent-Length: 11\r\n\r\n",
    ),
    # a 505's reason phrase
    (505, [], b"", True, b"HTTP/1.1 505 HTTP Version Not Supported\r\nContent-Length: 0\r\n\r\n"),
    # header values are latin-1 on the wire
    (
        200,
        [("X-Name", "José")],
        b"",
        True,
        b"HTTP/1.1 200 OK\r\nX-Name: Jos\xe9\r\nContent-Length: 0\r\n\r\n",
    ),
]


@pytest.mark.parametrize(("status", "headers", "body", "send_body", "expected"), RESPONSES)
def test_response_bytes(
    status: int, headers: list[tuple[str, str]], body: bytes, send_body: bool, expected: bytes
) -> None:
    assert response_bytes(status, headers, body, send_body=send_body) == expected


def test_response_bytes_sends_the_body_by_default() -> None:
    assert response_bytes(200, [], b"abc").endswith(b"\r\n\r\nabc")


def test_continue_is_a_whole_interim_response() -> None:
    assert CONTINUE == b"HTTP/1.1 100 Continue\r\n\r\n"


# -- parse_response_head ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 2\r\nConnection: keep-alive",
            {"status": 200, "content_length": 2, "chunked": False, "keep_alive": True},
        ),
        (
            b"HTTP/1.1 500 Internal Server Error\r\ncontent-length:  10 \r\nConnection: close",
            {"status": 500, "content_length": 10, "keep_alive": False},
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 5",
            {"chunked": True, "content_length": None, "keep_alive": True},
        ),
        (b"HTTP/1.1 200 OK", {"status": 200, "content_length": None, "keep_alive": False}),
        (b"HTTP/1.1 204 No Content", {"content_length": 0, "keep_alive": True}),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0", {"keep_alive": False}),
        (b"HTTP/1.1 200\r\nContent-Length: 0", {"status": 200, "keep_alive": True}),
        (
            b"HTTP/1.1 503 Busy\r\nRetry-After: 120\r\nContent-Length: 0",
            {"status": 503, "retry_after": "120"},
        ),
        (
            b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive\r\nCONNECTION: Close\r\nContent-Length: 0",
            {"keep_alive": False},
        ),
        (b"HTTP/1.1 200 OK\r\nX-Empty:\r\nContent-Length: 0", {"content_length": 0}),
        # Repeats of one value are that value (RFC 9110 section 8.6), in a list or not.
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5", {"content_length": 5}),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5", {"content_length": 5}),
    ],
)
def test_parse_response_head_accepts(data: bytes, expected: dict[str, Any]) -> None:
    head = parse_response_head(data)
    assert {name: getattr(head, name) for name in expected} == expected


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/2 200 OK",
        b"HTTP/1.1 2000 OK",
        b"HTTP/1.1 099 Odd",
        b"ICY 200 OK",
        b"HTTP/1.1 200 OK\r\nno colon here",
        b"HTTP/1.1 200 OK\r\nBad Name: x",
        b"HTTP/1.1 200 OK\r\n: no name",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: abc",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456",
        # Two different lengths: where the answer ends is unknown (as for a request).
        b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5,",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5, abc",
    ],
)
def test_parse_response_head_refuses(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_response_head(data)


# -- request_bytes ---------------------------------------------------------------------


def test_request_bytes_is_a_post_with_its_length() -> None:
    data = request_bytes(b"/hook?a=1", [("Host", "x.example"), ("X-Name", "José")], b"{}")
    assert data == (
        b"POST /hook?a=1 HTTP/1.1\r\nHost: x.example\r\nX-Name: Jos\xe9\r\n"
        b"Content-Length: 2\r\n\r\n{}"
    )


def test_request_bytes_other_methods() -> None:
    assert request_bytes(b"/", [], b"", method=b"GET") == (
        b"GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"
    )


# -- RequestReader ---------------------------------------------------------------------


def read_requests(reader: RequestReader, *pieces: bytes) -> list[Any]:
    """Feed `pieces` one by one; every event `next_event` gave after each."""
    events: list[Any] = []
    for piece in pieces:
        reader.feed(piece)
        while True:
            event = reader.next_event()
            events.append(event)
            if event is NEED_DATA or event is CLOSED:
                break
    return events


def test_pipelined_requests_come_one_by_one() -> None:
    data = POST + b"\r\nContent-Length: 2\r\n\r\n{}" + GET + b"\r\n\r\n"
    reader = RequestReader()
    first, second, need = read_requests(reader, data)
    assert (first.head.method, first.body) == ("POST", b"{}")
    assert (second.head.method, second.body) == ("GET", b"")
    assert need is NEED_DATA
    assert reader.idle
    assert read_requests(reader, b"") == [CLOSED]


def test_request_waits_for_its_whole_body() -> None:
    reader = RequestReader()
    events = read_requests(reader, POST + b"\r\nContent-Length: 5\r\n\r\nhe", b"llo")
    assert events[0] is NEED_DATA
    assert not reader.idle or events[1] is not NEED_DATA
    assert events[1].body == b"hello"


def test_chunked_request_body() -> None:
    reader = RequestReader()
    head = POST + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
    *_, request, need = read_requests(reader, head + b"5\r\nhel", b"lo\r\n0\r\n\r\n")
    assert (request.body, need) == (b"hello", NEED_DATA)


@pytest.mark.parametrize(
    "pieces",
    [
        [POST + b"\r\nContent-Length: 5\r\n\r\nhel", b""],
        [POST + b"\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", b""],
        [GET, b""],
    ],
    ids=["length", "chunked", "head"],
)
def test_end_of_stream_inside_a_request_is_400(pieces: list[bytes]) -> None:
    with pytest.raises(Incomplete) as caught:
        read_requests(RequestReader(), *pieces)
    assert caught.value.status == 400


def test_head_limit_is_431_whole_or_in_pieces() -> None:
    head = GET + b"\r\nX-Pad: " + b"a" * 100
    at_limit = RequestReader(max_head_bytes=len(head))
    assert read_requests(at_limit, head + b"\r\n\r\n")[0].head.method == "GET"
    for pieces in ([head + b"\r\n\r\n"], [head + b"b", b"\r\n\r\n"]):
        with pytest.raises(ProtocolError) as caught:
            read_requests(RequestReader(max_head_bytes=len(head) - 1), *pieces)
        assert caught.value.status == 431


def test_announced_body_over_the_limit_is_413_before_it_arrives() -> None:
    reader = RequestReader(max_body_bytes=4)
    assert read_requests(reader, POST + b"\r\nContent-Length: 4\r\n\r\nabcd")[0].body == b"abcd"
    with pytest.raises(ProtocolError) as caught:
        read_requests(reader, POST + b"\r\nContent-Length: 5\r\n\r\n")
    assert caught.value.status == 413


def test_chunked_body_over_the_limit_is_413() -> None:
    reader = RequestReader(max_body_bytes=4)
    with pytest.raises(ProtocolError) as caught:
        read_requests(reader, POST + b"\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
    assert caught.value.status == 413


EXPECT = POST + b"\r\nExpect: 100-continue"


def test_continue_is_wanted_until_the_body_starts() -> None:
    reader = RequestReader()
    assert read_requests(reader, EXPECT + b"\r\nContent-Length: 2\r\n\r\n") == [NEED_DATA]
    assert reader.expects_continue
    assert read_requests(reader, b"{") == [NEED_DATA]
    assert not reader.expects_continue


@pytest.mark.parametrize(
    "data",
    [
        EXPECT + b"\r\nContent-Length: 2\r\n\r\n{",  # the body already started
        EXPECT + b"\r\nContent-Length: 0\r\n\r\n",  # no body
        EXPECT + b"\r\n\r\n",  # no framing
    ],
)
def test_continue_is_not_wanted(data: bytes) -> None:
    reader = RequestReader()
    read_requests(reader, data)
    assert not reader.expects_continue


# -- ResponseReader --------------------------------------------------------------------


def read_responses(reader: ResponseReader, *pieces: bytes) -> list[Any]:
    """Feed `pieces` one by one; the responses read, NEED_DATA where one is awaited
    (nothing more after an answer that ends the connection)."""
    events: list[Any] = []
    for piece in pieces:
        reader.feed(piece)
        while (event := reader.next_event()) is not NEED_DATA:
            events.append(event)
            if event.head.status >= 200 and not event.head.keep_alive:
                return events
        events.append(NEED_DATA)
    return events


OK = b"HTTP/1.1 200 OK\r\n"


def test_interim_answers_come_before_the_final_one() -> None:
    data = b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + OK + b"Content-Length: 2\r\n\r\nhi"
    early, final, need = read_responses(ResponseReader(), data)
    assert (early.head.status, early.body, early.complete) == (103, b"", True)
    assert (final.head.status, final.body, final.complete) == (200, b"hi", True)
    assert need is NEED_DATA


def test_response_headers_keep_order_case_and_repeats() -> None:
    data = OK + b"Set-Cookie: a=1\r\nRetry-After: Wed, 21 Oct 2026 07:28:00 GMT\r\n"
    data += b"set-cookie: b=2\r\nContent-Length: 0\r\n\r\n"
    [response, _] = read_responses(ResponseReader(), data)
    assert response.head.headers == [
        ("set-cookie", "a=1"),
        ("retry-after", "Wed, 21 Oct 2026 07:28:00 GMT"),
        ("set-cookie", "b=2"),
        ("content-length", "0"),
    ]
    assert response.head.retry_after == "Wed, 21 Oct 2026 07:28:00 GMT"
    assert (response.head.reason, response.head.http_version) == ("OK", "1.1")


def test_body_is_cut_at_its_length_and_kept_to_keep_body_bytes() -> None:
    reader = ResponseReader(keep_body_bytes=3)
    [response, _] = read_responses(reader, OK + b"Content-Length: 5\r\n\r\nhelloNEXT")
    assert (response.body, response.complete) == (b"hel", True)
    assert not reader.idle  # "NEXT" waits: the connection is not clean


def test_length_over_max_body_gives_up_after_max_body_bytes() -> None:
    head = OK + b"Content-Length: 10\r\n\r\n"
    reader = ResponseReader(max_body_bytes=4, keep_body_bytes=2)
    assert read_responses(reader, head + b"abcd") == [NEED_DATA]
    [response, _] = read_responses(reader, b"e")
    assert (response.body, response.complete) == (b"ab", False)
    # All of it at once: whole, so the connection can be used again.
    [response, _] = read_responses(ResponseReader(max_body_bytes=4), head + b"0123456789")
    assert (response.body, response.complete) == (b"0123", True)


def test_chunked_over_max_body_gives_up() -> None:
    reader = ResponseReader(max_body_bytes=4)
    data = OK + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
    [response, _] = read_responses(reader, data)
    assert (response.body, response.complete) == (b"hell", False)


def test_body_to_the_end_of_the_stream() -> None:
    reader = ResponseReader()
    assert read_responses(reader, OK + b"\r\nabc") == [NEED_DATA]
    [response] = read_responses(reader, b"")
    assert (response.body, response.complete, response.head.keep_alive) == (b"abc", True, False)
    [cut] = read_responses(ResponseReader(max_body_bytes=2), OK + b"\r\nabc")
    assert (cut.body, cut.complete) == (b"ab", False)


def test_answer_to_head_has_no_body() -> None:
    reader = ResponseReader()
    reader.expect_no_body()
    data = b"HTTP/1.1 100 Continue\r\n\r\n" + OK + b"Content-Length: 5\r\n\r\n" + OK + b"\r\n"
    interim, final, need = read_responses(reader, data)
    assert (interim.head.status, final.head.content_length, final.body) == (100, 0, b"")
    assert need is NEED_DATA  # the next answer is read with its own framing again


@pytest.mark.parametrize(
    ("pieces", "message"),
    [
        ([b""], "connection closed before an answer"),
        ([OK + b"Content-Length: 1", b""], "connection closed before an answer"),
        ([OK + b"Content-Length: 2\r\n\r\nh", b""], "connection closed in the middle"),
        ([OK + b"Transfer-Encoding: chunked\r\n\r\n", b""], "connection closed in the middle"),
    ],
)
def test_end_of_stream_inside_an_answer(pieces: list[bytes], message: str) -> None:
    with pytest.raises(Incomplete, match=message):
        read_responses(ResponseReader(), *pieces)


def test_answer_head_limit() -> None:
    head = OK + b"Content-Length: 0\r\nX-Pad: " + b"a" * 100
    [response, _] = read_responses(ResponseReader(max_head_bytes=len(head)), head + b"\r\n\r\n")
    assert response.head.status == 200
    with pytest.raises(ProtocolError, match="answer head too large"):
        read_responses(ResponseReader(max_head_bytes=len(head) - 1), head + b"b")


# -- what a wrong line would change (each case was a surviving mutant) -------------------


def response(*lines: bytes) -> bytes:
    return b"\r\n".join(lines)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # a value holding ':' (an HTTP date) is the whole value after the first colon
        (
            response(
                b"HTTP/1.1 503 Busy",
                b"Retry-After: Wed, 21 Oct 2015 07:28:00 GMT",
                b"Content-Length: 0",
            ),
            (503, "Wed, 21 Oct 2015 07:28:00 GMT", 0, False, True),
        ),
        # repeated fields are joined; repeats of one Content-Length are that length
        (
            response(
                b"HTTP/1.1 200 OK",
                b"Content-Length: 5",
                b"content-length:5",
                b"Retry-After: 1",
                b"Retry-After: 2",
            ),
            (200, "1, 2", 5, False, True),
        ),
        (response(b"HTTP/1.1 200 OK", b"Content-Length: 5, 5"), (200, None, 5, False, True)),
        # Connection tokens with or without spaces, in one field or several
        (
            response(b"HTTP/1.1 200 OK", b"Content-Length: 0", b"Connection: keep-alive,close"),
            (200, None, 0, False, False),
        ),
        (
            response(
                b"HTTP/1.1 200 OK",
                b"Content-Length: 0",
                b"Connection: keep-alive",
                b"Connection: Close",
            ),
            (200, None, 0, False, False),
        ),
        (
            response(b"HTTP/1.1 200 OK", b"Content-Length: 0", b"Connection: closed"),
            (200, None, 0, False, True),
        ),
        # no body for 1xx, 204 and 304, whatever they announce
        (response(b"HTTP/1.1 100 Continue", b"Content-Length: 9"), (100, None, 0, False, True)),
        (response(b"HTTP/1.1 199 Odd", b"Content-Length: 9"), (199, None, 0, False, True)),
        (response(b"HTTP/1.1 204 No Content", b"Content-Length: 9"), (204, None, 0, False, True)),
        (response(b"HTTP/1.1 304 Not Modified", b"Content-Length: 9"), (304, None, 0, False, True)),
        (response(b"HTTP/1.1 200 OK", b"Content-Length: 9"), (200, None, 9, False, True)),
        (response(b"HTTP/1.1 205 Reset", b"Content-Length: 9"), (205, None, 9, False, True)),
        # chunked wins over Content-Length; any coding list ending in chunked is chunked
        (
            response(b"HTTP/1.1 200 OK", b"Transfer-Encoding: gzip, CHUNKED", b"Content-Length: 9"),
            (200, None, None, True, True),
        ),
        # no framing: the body runs to the end of the connection, which cannot be kept
        (response(b"HTTP/1.1 200 OK", b"Server: x"), (200, None, None, False, False)),
        (b"HTTP/1.1 200 OK", (200, None, None, False, False)),
        (b"HTTP/1.1 204", (204, None, 0, False, True)),  # no reason phrase
        (response(b"HTTP/1.0 200 OK", b"Content-Length: 0"), (200, None, 0, False, False)),
        # the longest Content-Length taken: 15 digits
        (
            response(b"HTTP/1.1 200 OK", b"Content-Length: 999999999999999"),
            (200, None, 999999999999999, False, True),
        ),
    ],
)
def test_response_heads(
    data: bytes, expected: tuple[int, str | None, int | None, bool, bool]
) -> None:
    head = parse_response_head(data)
    assert (
        head.status,
        head.retry_after,
        head.content_length,
        head.chunked,
        head.keep_alive,
    ) == expected


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            response(b"HTTP/1.1 200 OK", b"Content-Length: 5, 6"),
            "conflicting Content-Length values in the answer",
        ),
        (
            response(b"HTTP/1.1 200 OK", b"Content-Length: 5", b"Content-Length: 6"),
            "conflicting Content-Length values in the answer",
        ),
        (
            response(b"HTTP/1.1 200 OK", b"Content-Length: 1000000000000000"),
            "invalid Content-Length in the answer",
        ),
        (
            response(b"HTTP/1.1 200 OK", b"Content-Length: +5"),
            "invalid Content-Length in the answer",
        ),
        (
            response(
                b"HTTP/1.1 200 OK", "Content-Length: \u0665".encode("latin-1", "ignore") + b"\xb2"
            ),
            "invalid Content-Length in the answer",
        ),
        (b"HTTP/2 200", "malformed status line b'HTTP/2 200'"),
        (
            b"HTTP/1.1 20" + b"x" * 100,
            "malformed status line " + repr(b"HTTP/1.1 20" + b"x" * 49),
        ),
        (response(b"HTTP/1.1 200 OK", b"Bad Name: x"), "malformed header line in the answer"),
    ],
)
def test_response_heads_refused_word_for_word(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_response_head(data)
    assert (info.value.status, str(info.value)) == (502, message)


@pytest.mark.parametrize(
    ("data", "keep_alive"),
    [
        (GET + b"\r\nConnection: keep-alive,close", False),  # no space after the comma
        (GET + b"\r\nConnection: Upgrade,Close", False),
        (GET + b"\r\nConnection: closed", True),
        (b"GET / HTTP/1.0\r\nConnection: Upgrade,Keep-Alive", True),
        (b"GET / HTTP/1.0\r\nConnection: close", False),
    ],
)
def test_request_connection_tokens(data: bytes, keep_alive: bool) -> None:
    assert parse_head(data).keep_alive is keep_alive


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (
            POST + b"\r\nContent-Length: 5\r\nTransfer-Encoding: chunked",
            400,
            "both Content-Length and Transfer-Encoding",
        ),
        (
            POST + b"\r\nTransfer-Encoding: gzip",
            501,
            "only the chunked transfer coding is supported",
        ),
        (
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked",
            501,
            "only the chunked transfer coding is supported",
        ),
        (POST + b"\r\nContent-Length: 1, 2", 400, "conflicting Content-Length values"),
        (POST + b"\r\nContent-Length: 1000000000000000", 400, "invalid Content-Length"),
        (b"GET / HTTP/2.0", 505, "only HTTP/1.0 and HTTP/1.1 are served"),
        (b"GET / HTTP/1.1 x", 400, "malformed request line"),
        (b"GET / HTTPS/1.1", 400, "malformed request line"),
        (GET + b"\r\nBad Name: x", 400, "malformed header line"),
        (GET + b"\r\nX: a\x01b", 400, "control character in a header value"),
    ],
)
def test_request_heads_refused_word_for_word(data: bytes, status: int, message: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_head(data)
    assert (info.value.status, str(info.value)) == (status, message)


def test_request_content_length_repeats_and_digits() -> None:
    assert parse_head(POST + b"\r\nContent-Length: 5, 5").content_length == 5
    assert parse_head(POST + b"\r\nContent-Length: 5\r\nContent-Length: 5").content_length == 5
    assert (
        parse_head(POST + b"\r\nContent-Length: 999999999999999").content_length == 999999999999999
    )
    assert parse_head(b"POST / HTTP/1.0\r\nExpect: 100-continue").expects_continue is False
    assert parse_head(POST + b"\r\nExpect: 100-Continue ").expects_continue is True


def test_a_size_line_of_exactly_4096_bytes_waits_for_its_end() -> None:
    decoder = ChunkedBody()
    buffer = bytearray(b"0" * 4096)
    decoder.feed(buffer)  # not yet too long: the CRLF may still come
    assert (decoder.done, len(buffer)) == (False, 4096)
    buffer += b"0"
    with pytest.raises(ProtocolError) as info:
        decoder.feed(buffer)
    assert (info.value.status, str(info.value)) == (400, "chunk size line too long")


def test_chunk_sizes_of_16_hex_digits_are_read_17_are_refused() -> None:
    decoder, _ = decode(b"000000000000000" + b"3\r\nabc\r\n0\r\n\r\n")
    assert (decoder.done, bytes(decoder.body)) == (True, b"abc")
    with pytest.raises(ProtocolError) as info:
        decode(b"0000000000000000" + b"3\r\nabc\r\n0\r\n\r\n")
    assert (info.value.status, str(info.value)) == (400, "malformed chunk size")
    with pytest.raises(ProtocolError) as info:
        decode(b"3\r\nabcX\r\n0\r\n\r\n")
    assert (info.value.status, str(info.value)) == (400, "malformed chunk")


def test_request_bytes_is_what_hookd_sends() -> None:
    data = request_bytes(
        b"/hook?a=1",
        [("Host", "erp.example.com"), ("Content-Type", "application/json")],
        b'{"a":1}',
    )
    assert data == (
        b"POST /hook?a=1 HTTP/1.1\r\nHost: erp.example.com\r\nContent-Type: application/json\r\n"
        b'Content-Length: 7\r\n\r\n{"a":1}'
    )
    assert request_bytes(b"/", [("X-Caf\xe9", "\xe9")], b"") == (
        b"POST / HTTP/1.1\r\nX-Caf\xe9: \xe9\r\nContent-Length: 0\r\n\r\n"
    )


def test_response_bytes_of_an_unknown_status() -> None:
    assert response_bytes(299, [], b"") == b"HTTP/1.1 299 Unknown\r\nContent-Length: 0\r\n\r\n"


def test_head_bytes_has_no_length_of_its_own() -> None:
    # A stream (the console's Server-Sent Events) is delimited by the end of the connection.
    assert head_bytes(200, [("Content-Type", "text/event-stream")]) == (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"
    )
    assert head_bytes(299, []) == b"HTTP/1.1 299 Unknown\r\n\r\n"


def test_request_header_values_keep_colons_and_lose_only_spaces_and_tabs() -> None:
    head = parse_head(GET + b":8080\r\nX-Tag: \t XaX:b \t")  # Host: hookd:8080
    assert head.headers == {"host": "hookd:8080", "x-tag": "XaX:b"}
    with pytest.raises(ProtocolError) as info:  # a form feed is not stripped: it is refused
        parse_head(GET + b"\r\nX-Tag: a\x0c")
    assert (info.value.status, str(info.value)) == (400, "control character in a header value")


def test_response_header_values_lose_only_spaces_and_tabs() -> None:
    head = parse_response_head(
        response(b"HTTP/1.1 503 Busy", b"Retry-After:\t X1X\x0b", b"Content-Length: 0")
    )
    assert head.retry_after == "X1X\x0b"


def test_http_version_of_an_answer() -> None:
    assert parse_response_head(response(OK.strip(), b"Content-Length: 0")).http_version == "1.1"
    assert parse_response_head(b"HTTP/1.0 200 OK\r\nContent-Length: 0").http_version == "1.0"


def test_an_empty_head_is_refused_not_awaited() -> None:
    reader = RequestReader()
    reader.feed(b"\r\n\r\n")
    with pytest.raises(ProtocolError) as info:
        reader.next_event()
    assert (info.value.status, str(info.value)) == (400, "malformed request line")
    with pytest.raises(ProtocolError) as info:
        read_responses(ResponseReader(), b"\r\n\r\n")
    assert (info.value.status, str(info.value)) == (502, "malformed status line b''")
    with pytest.raises(ProtocolError) as info:  # an empty status line, then a status line
        parse_response_head(b"\r\n" + OK.strip())
    assert (info.value.status, str(info.value)) == (502, "malformed status line b''")


LONG_HEAD = GET + b"\r\nX-Pad: " + b"a" * 100
CHUNKED_POST = POST + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
IN_THE_MIDDLE = "the connection closed in the middle of a request"


@pytest.mark.parametrize(
    ("read", "status", "message"),
    [
        (  # the whole head, past the limit
            lambda: read_requests(RequestReader(max_head_bytes=100), LONG_HEAD + b"\r\n\r\n"),
            431,
            "the request head is too large",
        ),
        (  # not ended yet, already past the limit
            lambda: read_requests(RequestReader(max_head_bytes=100), LONG_HEAD),
            431,
            "the request head is too large",
        ),
        (lambda: read_requests(RequestReader(), GET, b""), 400, IN_THE_MIDDLE),
        (
            lambda: read_requests(RequestReader(), POST + b"\r\nContent-Length: 5\r\n\r\nh", b""),
            400,
            IN_THE_MIDDLE,
        ),
        (
            lambda: read_requests(
                RequestReader(max_body_bytes=4), POST + b"\r\nContent-Length: 5\r\n\r\n"
            ),
            413,
            "request body is larger than 4 bytes",
        ),
        (
            lambda: read_requests(
                RequestReader(max_body_bytes=4), CHUNKED_POST + b"5\r\nhello\r\n"
            ),
            413,
            "request body is larger than 4 bytes",
        ),
        (
            lambda: read_responses(
                ResponseReader(max_head_bytes=100), OK + b"X-Pad: " + b"a" * 100
            ),
            502,
            "answer head too large",
        ),
        (lambda: read_responses(ResponseReader(), b""), 502, "connection closed before an answer"),
        (
            lambda: read_responses(ResponseReader(), OK + b"Content-Length: 2\r\n\r\nh", b""),
            502,
            "connection closed in the middle of the answer",
        ),
    ],
)
def test_reader_refusals_word_for_word(
    read: Callable[[], object], status: int, message: str
) -> None:
    with pytest.raises(ProtocolError) as info:
        read()
    assert (info.value.status, str(info.value)) == (status, message)


def test_request_limits_are_inclusive() -> None:
    reader = RequestReader(max_head_bytes=len(LONG_HEAD), max_body_bytes=4)
    # a head of exactly the limit, its empty line still to come
    assert read_requests(reader, LONG_HEAD) == [NEED_DATA]
    assert read_requests(reader, b"\r\n\r\n")[0].head.method == "GET"
    # a chunked body of exactly the limit
    [request, _] = read_requests(reader, CHUNKED_POST + b"4\r\nabcd\r\n0\r\n\r\n")
    assert request.body == b"abcd"


def test_default_request_limits() -> None:
    head = b"GET / HTTP/1.1\r\nX-Pad: "
    at_limit = head + b"a" * (16_384 - len(head))
    assert read_requests(RequestReader(), at_limit + b"\r\n\r\n")[0].head.method == "GET"
    with pytest.raises(ProtocolError) as info:
        read_requests(RequestReader(), at_limit + b"a\r\n\r\n")
    assert info.value.status == 431
    announce = POST + b"\r\nContent-Length: %d\r\n\r\n"
    assert read_requests(RequestReader(), announce % 1_048_576) == [NEED_DATA]
    with pytest.raises(ProtocolError) as info:
        read_requests(RequestReader(), announce % 1_048_577)
    assert info.value.status == 413


def test_default_response_limits() -> None:
    head = OK + b"Content-Length: 0\r\nX-Pad: "
    at_limit = head + b"a" * (65_536 - len(head))
    [response, _] = read_responses(ResponseReader(), at_limit + b"\r\n\r\n")
    assert response.head.status == 200
    with pytest.raises(ProtocolError) as info:
        read_responses(ResponseReader(), at_limit + b"a\r\n\r\n")
    assert info.value.status == 502
    reader = ResponseReader()  # a body to the end of the stream, one byte over the limit
    [cut] = read_responses(reader, OK + b"\r\n" + b"b" * 65_537)
    assert (len(cut.body), cut.complete) == (65_536, False)


def test_answer_limits_are_inclusive() -> None:
    # a chunked body that reaches the limit before its last chunk is waited on
    reader = ResponseReader(max_body_bytes=4)
    chunked = OK + b"Transfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n"
    assert read_responses(reader, chunked) == [NEED_DATA]
    [response, _] = read_responses(reader, b"0\r\n\r\n")
    assert (response.body, response.complete) == (b"abcd", True)
    # a body to the end of the stream, of exactly the limit, is whole
    reader = ResponseReader(max_body_bytes=4)
    assert read_responses(reader, OK + b"\r\nabcd") == [NEED_DATA]
    [whole] = read_responses(reader, b"")
    assert (whole.body, whole.complete) == (b"abcd", True)
    # one byte more, with the end of the stream already there when it is asked for
    reader = ResponseReader(max_body_bytes=4)
    reader.feed(OK + b"\r\nabcde")
    reader.feed(b"")
    cut = reader.next_event()
    assert not isinstance(cut, Event)
    assert (cut.body, cut.complete) == (b"abcd", False)


def test_continue_is_wanted_only_when_asked_for() -> None:
    reader = RequestReader()
    assert reader.expects_continue is False  # a fresh reader
    assert read_requests(reader, POST + b"\r\nContent-Length: 2\r\n\r\n") == [NEED_DATA]
    assert reader.expects_continue is False  # a body is coming, but nobody asked
    reader.feed(b"{")
    assert reader.expects_continue is False  # after a feed
    assert read_requests(reader, b"}")[0].body == b"{}"
    assert reader.expects_continue is False  # after a whole request
