"""No endpoint URL takes hookd down (issue 14, item 1).

- Generated URLs: the API answers 201 or 422, never anything else (batches of them
  against a daemon), and an attempt to every URL its check accepts is a value whose
  kind is not `internal` (no bug was hit). The sender runs for real, with trio's
  hostname-resolver hook answering every name with 127.0.0.1, so no test depends on (or
  floods) the machine's DNS.
- The crash loop, end to end with `hookd serve` as a process: an endpoint stored with a
  host that cannot be resolved (as an older hookd accepted) is a failed attempt, the
  daemon stays up, and at the next start the delivery waits for its schedule.
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import string
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from hookd.delivery.client import Sender
from hookd.domain.addresses import AddressPolicy
from hookd.domain.endpoints import url_error
from hookd.domain.retry import AttemptResult
from hookd.runtime import config
from hookd.runtime.clock import Clock
from hookd.runtime.daemon import Daemon
from tests.conftest import socket_client, write_config
from tests.daemon_process import DaemonProcess
from tests.system.test_sender import make_job

LABEL_CHARS = string.ascii_letters + string.digits + "-_.%!*~ é☃⒈\ufffd\u00ad\u200b"


def _label() -> st.SearchStrategy[str]:
    return st.one_of(
        st.from_regex(r"[a-z0-9_-]{1,12}", fullmatch=True),  # mostly usable names
        st.from_regex(r"[a-z0-9_-]{1,12}", fullmatch=True),
        st.text(LABEL_CHARS, max_size=8),
        st.sampled_from(["", "a" * 63, "a" * 64, "xn--n3h", "xn--", "-a", "a-", "é" * 60]),
    )


def _host() -> st.SearchStrategy[str]:
    names = st.lists(_label(), min_size=1, max_size=6).map(".".join)
    return st.one_of(
        names,
        names.map(lambda n: n + "."),
        st.sampled_from(["[::1]", "[fe80::1%25eth0]", "[v1.x]", "[::1", "127.0.0.1", "0x7f.1"]),
        st.just("." * 3),
        st.just(".".join(["a" * 63] * 4)),
        st.text(max_size=12),
    )


URLS = st.builds(
    lambda scheme, host, port, path: f"{scheme}://{host}{port}{path}",
    st.sampled_from(["http", "https", "http", "https", "HTTP", "ftp", ""]),
    _host(),
    st.sampled_from(["", "", ":1", ":8080", ":0", ":65536", ":x", ":"]),
    st.sampled_from(["", "/", "/hook?a=1", "/é", "/%zz", "#frag"]),
)


class LoopbackResolver(trio.abc.HostnameResolver):
    """Every name is 127.0.0.1: the sender's whole path runs without real DNS."""

    async def getaddrinfo(
        self, host: bytes | None, port: Any, family: int = 0, type: int = 0, *args: Any
    ) -> list[Any]:
        assert isinstance(host, bytes), host  # the sender looks up the wire form
        return [(trio.socket.AF_INET, trio.socket.SOCK_STREAM, 6, "", ("127.0.0.1", 0))]

    async def getnameinfo(self, sockaddr: Any, flags: int) -> tuple[str, str]:
        raise NotImplementedError


async def _attempt(url: str) -> AttemptResult:
    trio.socket.set_custom_hostname_resolver(LoopbackResolver())
    with contextlib.closing(Sender(Clock(), timeout=1.0, policy=AddressPolicy(True))) as sender:
        return await sender.send(make_job(url))


@settings(max_examples=500, deadline=None)
@given(url=URLS)
def test_an_attempt_to_any_accepted_url_is_an_ordinary_failure(url: str) -> None:
    """What the API accepts (`url_error` is its check) the sender attempts without a bug."""
    if url_error(url) is None:
        event("accepted")
        result = trio.run(_attempt, url)
        assert result.error_kind != "internal", (url, result)


async def _create_all(directory: Path, urls: list[str]) -> None:
    settings = config.load(str(write_config(directory)))
    daemon = Daemon(settings, handle_signals=False)
    async with trio.open_nursery() as nursery, socket_client(settings.server.socket) as client:
        await nursery.start(daemon.run)
        for url in urls:
            response = await client.post("/v1/endpoints", json={"url": url, "events": ["*"]})
            expected = 422 if url_error(url) is not None else 201
            assert response.status_code == expected, (url, response.text)
        assert (await client.get("/healthz")).status_code == 200
        daemon.stop()


@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(urls=st.lists(URLS, min_size=50, max_size=50))
def test_the_api_answers_201_or_422_to_generated_urls(short_dir: Path, urls: list[str]) -> None:
    trio.run(_create_all, short_dir, urls)


@pytest.mark.parametrize(
    "url", ["https://api..example.com/hook", f"http://{'a' * 64}.example.com/", "http://a..b/"]
)
async def test_a_stored_typo_is_a_failed_attempt_not_a_crash_loop(
    short_dir: Path, url: str
) -> None:
    daemon = DaemonProcess(short_dir, '[delivery]\nretry_schedule = ["0s", "1h"]')
    async with trio.open_nursery() as nursery:
        client = await daemon.start(nursery)
        created = await client.post(
            "/v1/endpoints", json={"url": "http://127.0.0.1:9/hook", "events": ["*"]}
        )
        assert created.status_code == 201
        refused = await client.post("/v1/endpoints", json={"url": url, "events": ["*"]})
        assert refused.status_code == 422
        await client.aclose()
        daemon.signal(signal.SIGTERM)
        assert await daemon.wait() == 0
        # What an older hookd accepted: the typo is in the database.
        with sqlite3.connect(daemon.database) as db:
            db.execute("UPDATE endpoints SET url = ?", (url,))

        client = await daemon.start(nursery)
        sent = await client.post("/v1/events", json={"event": "cliente.criado", "data": {}})
        assert sent.status_code == 202
        with trio.fail_after(10):
            while True:
                delivery = (await client.get("/v1/deliveries/1")).json()
                if delivery["attempts"]:
                    break
                await trio.sleep(0.05)
        [attempt] = delivery["attempt_log"]
        assert attempt["error_kind"] == "dns", attempt
        assert delivery["status"] == "pending"
        assert (await client.get("/healthz")).status_code == 200  # still up
        await client.aclose()
        daemon.signal(signal.SIGTERM)
        assert await daemon.wait() == 0

        client = await daemon.start(nursery)  # the next start: not attempted at once
        await trio.sleep(1)
        again = (await client.get("/v1/deliveries/1")).json()
        assert (again["attempts"], again["status"]) == (1, "pending")
        await client.aclose()
        daemon.signal(signal.SIGTERM)
        assert await daemon.wait() == 0
