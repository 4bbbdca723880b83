"""Bad requests over the real socket: each gets a fitting 4xx with a JSON error, stores
nothing, and leaves the daemon serving. Plus slow and oversized clients on a raw socket.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import trio

from tests.conftest import Running, socket_client
from tests.system.test_api_events import assert_error, count, counts

JSON = "application/json"


def _nested(depth: int) -> bytes:
    return b'{"event":"cliente.criado","data":' + b'{"a":' * depth + b"1" + b"}" * depth + b"}"


def _event(**fields: Any) -> bytes:
    return json.dumps({"event": "cliente.criado", "data": {}, **fields}).encode()


def _endpoint(**fields: Any) -> bytes:
    return json.dumps({"url": "https://example.com/hook", "events": ["*"], **fields}).encode()


# (method, path, content type or None, body, expected status)
BAD_REQUESTS = [
    # not JSON at all
    ("POST", "/v1/events", JSON, b"event=cliente.criado", 400),
    # JSON cut short
    ("POST", "/v1/events", JSON, b'{"event":"cliente.criado","data":{', 400),
    # invalid UTF-8 inside a string
    ("POST", "/v1/events", JSON, b'{"event":"cliente.criado","data":{"nome":"Jo\xe3o"}}', 400),
    # empty body
    ("POST", "/v1/events", JSON, b"", 400),
    # only whitespace
    ("POST", "/v1/events", JSON, b"  \n ", 400),
    # a JSON array instead of an object
    ("POST", "/v1/events", JSON, b'[{"event":"cliente.criado","data":{}}]', 422),
    # a JSON string instead of an object
    ("POST", "/v1/events", JSON, b'"cliente.criado"', 422),
    # event missing
    ("POST", "/v1/events", JSON, b'{"data":{}}', 422),
    # event empty
    ("POST", "/v1/events", JSON, _event(event=""), 422),
    # event a number
    ("POST", "/v1/events", JSON, _event(event=42), 422),
    # event not lowercase
    ("POST", "/v1/events", JSON, _event(event="Cliente.Criado"), 422),
    # event not dotted
    ("POST", "/v1/events", JSON, _event(event="cliente"), 422),
    # data missing
    ("POST", "/v1/events", JSON, b'{"event":"cliente.criado"}', 422),
    # data a list
    ("POST", "/v1/events", JSON, _event(data=[1, 2]), 422),
    # data null
    ("POST", "/v1/events", JSON, _event(data=None), 422),
    # timestamp a number (any string is relayed as sent; its format is the catalog's
    # question: tests/system/test_ingest_variants.py)
    ("POST", "/v1/events", JSON, _event(timestamp=1704103200), 422),
    # timestamp a list
    ("POST", "/v1/events", JSON, _event(timestamp=["2024-01-01T10:00:00Z"]), 422),
    # id with characters that cannot go in a header
    ("POST", "/v1/events", JSON, _event(id="a b\r\nX-Evil: 1"), 422),
    # an extra envelope key (relayed) holding an integer JavaScript cannot hold
    ("POST", "/v1/events", JSON, _event(tipo=2**60), 422),
    # Content-Type text/plain
    ("POST", "/v1/events", "text/plain", _event(), 415),
    # no Content-Type at all
    ("POST", "/v1/events", None, _event(), 415),
    # JSON in a charset other than UTF-8
    ("POST", "/v1/events", "application/json; charset=latin-1", _event(), 415),
    # 20000 levels of nesting
    ("POST", "/v1/events", JSON, _nested(20_000), 400),
    # an empty batch
    ("POST", "/v1/events/batch", JSON, b"[]", 422),
    # a batch that is an object
    ("POST", "/v1/events/batch", JSON, _event(), 422),
    # page size out of range
    ("GET", "/v1/events?limit=0", None, b"", 400),
    # a cursor the API never gave
    ("GET", "/v1/events?cursor=abc", None, b"", 400),
    # unknown route
    ("GET", "/v1/nothing-here", None, b"", 404),
    # unknown route under a known prefix
    ("POST", "/v1/events/batch/extra", JSON, _event(), 404),
    # wrong method on a known route
    ("DELETE", "/v1/events", None, b"", 405),
    # endpoint with an ftp:// URL
    ("POST", "/v1/endpoints", JSON, _endpoint(url="ftp://example.com/hook"), 422),
    # endpoint URL with no host
    ("POST", "/v1/endpoints", JSON, _endpoint(url="http://"), 422),
    # endpoint URL that is not a URL
    ("POST", "/v1/endpoints", JSON, _endpoint(url="not a url"), 422),
    # endpoint URL with a user and password
    ("POST", "/v1/endpoints", JSON, _endpoint(url="https://u:p@example.com/"), 422),
    # endpoint URL hosts that cannot be resolved as written (a typo used to crash hookd)
    ("POST", "/v1/endpoints", JSON, _endpoint(url="https://api..example.com/hook"), 422),
    ("POST", "/v1/endpoints", JSON, _endpoint(url=f"http://{'a' * 64}.example.com/"), 422),
    ("POST", "/v1/endpoints", JSON, _endpoint(url="http://.../"), 422),
    ("POST", "/v1/endpoints", JSON, _endpoint(url="http://a..b/"), 422),
    # endpoint events not a list
    ("POST", "/v1/endpoints", JSON, _endpoint(events="cliente.*"), 422),
    # endpoint events an empty list
    ("POST", "/v1/endpoints", JSON, _endpoint(events=[]), 422),
    # endpoint events with a bad pattern
    ("POST", "/v1/endpoints", JSON, _endpoint(events=["Bad Pattern"]), 422),
    # endpoint events with a wildcard in the middle
    ("POST", "/v1/endpoints", JSON, _endpoint(events=["cliente.*.criado"]), 422),
    # endpoint with an empty secret (PATCH refuses it too)
    ("POST", "/v1/endpoints", JSON, _endpoint(secret=""), 422),
    # endpoint body not JSON
    ("POST", "/v1/endpoints", JSON, b"url=https://example.com", 400),
]


async def assert_still_serving(running: Running) -> None:
    """A fresh connection gets /healthz answered."""
    async with socket_client(running.socket) as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


@pytest.mark.parametrize(
    ("method", "path", "content_type", "body", "status"),
    BAD_REQUESTS,
    ids=[f"{i:02d}-{row[0]}-{row[1]}-{row[4]}" for i, row in enumerate(BAD_REQUESTS)],
)
async def test_bad_request_is_refused_and_stores_nothing(
    hookd: Running, method: str, path: str, content_type: str | None, body: bytes, status: int
) -> None:
    before = await counts(hookd)
    headers = {"Content-Type": content_type} if content_type else {}
    response = await hookd.client.request(method, path, content=body, headers=headers)

    error = assert_error(response, status)
    if status == 405:
        allowed = {m.strip() for m in response.headers["allow"].split(",")}
        assert allowed == {"GET", "POST"}, error
    assert await counts(hookd) == before
    await assert_still_serving(hookd)


async def test_body_over_max_body_bytes_is_413(hookd_factory: Any) -> None:
    running: Running = await hookd_factory("[server]\nmax_body_bytes = 2048")
    big = _event(data={"pad": "x" * 4000})
    response = await running.client.post("/v1/events", content=big, headers={"Content-Type": JSON})
    assert_error(response, 413)
    assert await count(running, "events") == 0
    fits = _event(data={"pad": "x" * 1000})
    response = await running.client.post("/v1/events", content=fits, headers={"Content-Type": JSON})
    assert response.status_code == 202, response.text
    assert await count(running, "events") == 1
    await assert_still_serving(running)


# -- raw sockets ---------------------------------------------------------------------------


async def read_until_closed(stream: trio.SocketStream, limit: float) -> tuple[bytes, bool]:
    """Everything the server sends within `limit` seconds, and whether it then closed."""
    received = b""
    with trio.move_on_after(limit):
        while True:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return received, True
            received += chunk
    return received, False


def status_of(response: bytes) -> int:
    """The status code of a raw HTTP/1.1 response (0 when there is none)."""
    match = re.match(rb"HTTP/1\.1 (\d{3})", response)
    return int(match.group(1)) if match else 0


async def test_half_sent_request_is_dropped_after_request_timeout(hookd: Running) -> None:
    # conftest sets request_timeout = 2s.
    stream = await trio.open_unix_socket(hookd.socket)
    async with stream:
        await stream.send_all(
            b"POST /v1/events HTTP/1.1\r\nHost: hookd\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n" + b'{"event":"'
        )
        started = trio.current_time()
        closed_at: list[float] = []

        async def wait_for_close() -> None:
            received, closed = await read_until_closed(stream, 5)
            assert closed, received
            closed_at.append(trio.current_time())
            # Closing in silence or after a 408 are both fine; any other answer is not.
            assert received == b"" or status_of(received) == 408, received

        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait_for_close)
            # Meanwhile another client is served at once, over and over.
            for _ in range(5):
                with trio.fail_after(0.5):
                    await assert_still_serving(hookd)
                    response = await hookd.client.post(
                        "/v1/events", json={"event": "cliente.criado", "data": {}}
                    )
                assert response.status_code == 202
                await trio.sleep(0.2)

        waited = closed_at[0] - started
        assert 1.5 <= waited <= 4, waited
    assert await count(hookd, "events") == 5


async def test_huge_header_block_is_refused_and_closed(hookd: Running) -> None:
    headers = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"y" * 990) for i in range(64))  # ~64 KiB
    request = b"GET /healthz HTTP/1.1\r\nHost: hookd\r\n" + headers + b"\r\n"
    stream = await trio.open_unix_socket(hookd.socket)
    async with stream:
        await stream.send_all(request)
        received, closed = await read_until_closed(stream, 3)
    assert status_of(received) in (400, 413, 431), received[:200]
    assert closed
    await assert_still_serving(hookd)


async def test_huge_header_block_arriving_slowly_is_refused(hookd: Running) -> None:
    stream = await trio.open_unix_socket(hookd.socket)
    async with stream:
        await stream.send_all(b"GET /healthz HTTP/1.1\r\nHost: hookd\r\n")
        try:
            for i in range(64):
                await stream.send_all(b"X-Filler-%d: %s\r\n" % (i, b"y" * 990))
                await trio.sleep(0.001)
            await stream.send_all(b"\r\n")
        except trio.BrokenResourceError:
            pass  # the server already answered and closed
        received, closed = await read_until_closed(stream, 3)
    assert status_of(received) in (400, 413, 431), received[:200]
    assert closed
    await assert_still_serving(hookd)
