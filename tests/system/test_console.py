"""The web console's server side, without a browser: sign-in and its cookie, the CSRF
check, the Host check (console and API), the security headers, escaping, languages and
the live stream (tests/ui/ drives the same pages in Chromium)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest
import trio

from hookd.ui import security
from hookd.ui.security import CSP, SESSION_LIFETIME
from tests.conftest import API_TOKEN, Running, free_port
from tests.receiver import Answer, serve_receiver

HOSTILE = "<img src=x onerror=alert(1)>"


@dataclass
class Console:
    running: Running
    port: int
    web: httpx.AsyncClient  # over TCP, as a browser would

    async def sign_in(self) -> None:
        answer = await self.web.post("/ui/signin", data={"token": API_TOKEN})
        assert answer.status_code == 303, answer.text

    async def csrf(self, path: str = "/ui/endpoints") -> str:
        page = await self.web.get(path)
        found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
        assert found, page.text
        return found.group(1)


@pytest.fixture
async def console(hookd_factory: Callable[..., Awaitable[Running]]) -> AsyncIterator[Console]:
    port = free_port()
    running = await hookd_factory(
        f'[server]\nlisten = "127.0.0.1:{port}"\napi_token = "{API_TOKEN}"\n'
        'allowed_hosts = ["hookd.example.com"]'
    )
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as web:
        yield Console(running, port, web)


async def test_signed_out_only_the_sign_in_page_answers(console: Console) -> None:
    for path in ("/ui/", "/ui/deliveries", "/ui/endpoints", "/ui/events", "/ui/catalog",
                 "/ui/audit", "/ui/deliveries/1", "/ui/live?ids=1"):  # fmt: skip
        answer = await console.web.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"] == "/ui/signin"
        assert answer.headers["content-security-policy"] == CSP
    refused = await console.web.post("/ui/endpoints", data={"url": "http://x.example"})
    assert refused.status_code == 401
    page = await console.web.get("/ui/signin")
    assert page.status_code == 200
    assert 'name="token"' in page.text
    listed = await console.running.client.get("/v1/endpoints")
    assert listed.json()["items"] == []


async def test_the_session_cookie_and_its_flags(console: Console) -> None:
    wrong = await console.web.post("/ui/signin", data={"token": "x" * 32})
    assert wrong.status_code == 401
    assert "set-cookie" not in wrong.headers
    answer = await console.web.post("/ui/signin", data={"token": API_TOKEN})
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("hookd_session=")
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite", "path", "max-age"} <= flags
    assert "SameSite=Strict" in cookie
    assert "Path=/ui" in cookie
    assert f"Max-Age={SESSION_LIFETIME}" in cookie
    assert "secure" not in flags  # plain HTTP: a Secure cookie would never come back
    overview = await console.web.get("/ui/")
    assert overview.status_code == 200
    assert "Deliveries" in overview.text
    async with httpx.AsyncClient(base_url=console.web.base_url) as proxied:
        behind_tls = await proxied.post(
            "/ui/signin", data={"token": API_TOKEN}, headers={"X-Forwarded-Proto": "https"}
        )
    assert "; Secure" in behind_tls.headers["set-cookie"]


async def test_a_forged_or_altered_cookie_is_refused(console: Console) -> None:
    await console.sign_in()
    good = console.web.cookies["hookd_session"]
    expires, nonce, mac = good.split(".")
    forged = [
        f"{int(expires) + 3600}.{nonce}.{mac}",  # a longer life
        f"{expires}.{'0' * len(nonce)}.{mac}",  # another session
        f"{expires}.{nonce}.{'0' * len(mac)}",
        "1.00.00",
        "garbage",
    ]
    for value in forged:
        async with httpx.AsyncClient(
            base_url=console.web.base_url, cookies={"hookd_session": value}
        ) as other:
            answer = await other.get("/ui/deliveries")
            assert answer.status_code == 303, value
    async with httpx.AsyncClient(
        base_url=console.web.base_url, cookies={"hookd_session": good}
    ) as same:
        assert (await same.get("/ui/deliveries")).status_code == 200


async def test_a_post_without_the_csrf_token_changes_nothing(console: Console) -> None:
    await console.sign_in()
    form = {"url": "http://127.0.0.1:9/hook", "events": "*", "description": "x"}
    missing = await console.web.post("/ui/endpoints", data=form)
    assert missing.status_code == 403
    assert "CSRF" in missing.text
    wrong = await console.web.post("/ui/endpoints", data={**form, "csrf": "0" * 64})
    assert wrong.status_code == 403
    token = await console.csrf()
    foreign = await console.web.post(
        "/ui/endpoints", data={**form, "csrf": token}, headers={"Origin": "http://evil.example"}
    )
    assert foreign.status_code == 403
    assert (await console.running.client.get("/v1/endpoints")).json()["items"] == []
    made = await console.web.post("/ui/endpoints", data={**form, "csrf": token})
    assert made.status_code == 201
    [endpoint] = (await console.running.client.get("/v1/endpoints")).json()["items"]
    assert (await console.running.client.get("/v1/audit")).json()["items"][0]["origin"] == (
        "console"
    )
    secret = re.search(r'<pre id="secret">([^<]+)</pre>', made.text)
    assert secret
    assert secret.group(1).startswith("whsec_")
    for path in (f"/ui/endpoints/{endpoint['id']}", "/ui/endpoints", "/ui/audit", "/ui/"):
        assert secret.group(1) not in (await console.web.get(path)).text, path


@pytest.mark.parametrize("path", ["/ui/signin", "/v1/status", "/healthz"])
async def test_a_foreign_host_is_refused(console: Console, path: str) -> None:
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    refused = await console.web.get(path, headers={**headers, "Host": "rebind.evil.example"})
    assert refused.status_code == 421
    assert "rebind.evil.example" in refused.json()["error"]["message"]
    for host in (f"localhost:{console.port}", f"[::1]:{console.port}", "hookd.example.com",
                 "HOOKD.example.com:443", f"127.0.0.1:{console.port}"):  # fmt: skip
        answered = await console.web.get(path, headers={**headers, "Host": host})
        assert answered.status_code == 200, host
    for host in ("localhost:1", "127.0.0.1:1", "10.1.2.3", "127.0.0.1", "hookd.example.net",
                 "127.0.0.1.nip.io:{port}", "[::1", "", "localhost"):  # fmt: skip
        refused = await console.web.get(
            path, headers={**headers, "Host": host.format(port=console.port)}
        )
        assert refused.status_code == 421, host
    # An address is no rebinding: a page at http://10.1.2.3:port is that address's own.
    for host in (f"10.1.2.3:{console.port}", f"[fe80::1]:{console.port}"):
        assert (await console.web.get(path, headers={**headers, "Host": host})).status_code == 200


async def test_the_unix_socket_has_no_console(console: Console) -> None:
    assert (await console.running.client.get("/ui/signin")).status_code == 404


async def test_every_answer_carries_the_security_headers(console: Console) -> None:
    await console.sign_in()
    for path in ("/ui/signin", "/ui/", "/ui/deliveries", "/ui/static/console.js",
                 "/ui/deliveries/999", "/ui/nothing"):  # fmt: skip
        answer = await console.web.get(path)
        assert answer.headers["content-security-policy"] == CSP, path
        assert "'unsafe-inline'" not in answer.headers["content-security-policy"]
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "no-referrer"
    assert (await console.web.get("/ui/deliveries/999")).status_code == 404
    page = (await console.web.get("/ui/deliveries")).text
    assert "<script>" not in page
    assert " style=" not in page
    assert "onclick" not in page


async def test_bad_input_is_a_4xx_page_naming_it(console: Console) -> None:
    await console.sign_in()
    for path, words in (
        ("/ui/deliveries?status=lost", "status"),
        ("/ui/deliveries?since=yesterday", "since"),
        ("/ui/deliveries?cursor=-1", "cursor"),
        ("/ui/deliveries/abc", "delivery id"),
        ("/ui/live?ids=1,x", "ids"),
    ):
        answer = await console.web.get(path)
        assert answer.status_code == 400, path
        assert words in answer.text, path
    token = await console.csrf()
    bad_url = await console.web.post(
        "/ui/endpoints", data={"url": "ftp://x", "events": "*", "csrf": token}
    )
    assert bad_url.status_code == 422
    assert "url" in bad_url.text


async def test_strings_from_the_crm_and_receivers_are_escaped(console: Console) -> None:
    await console.sign_in()
    excerpt = b"<script>alert(2)</script>"
    async with serve_receiver(lambda _: Answer(500, body=excerpt)) as receiver:
        api = console.running.client
        made = await api.post(
            "/v1/endpoints", json={"url": receiver.url, "events": ["*"], "description": HOSTILE}
        )
        endpoint = made.json()["id"]
        await api.post("/v1/events", json={"event": "cliente.criado", "data": {"nome": HOSTILE}})
        await receiver.wait_for(1)
        with trio.fail_after(5):
            while True:
                [delivery] = (await api.get("/v1/deliveries")).json()["items"]
                if delivery["attempts"]:
                    break
                await trio.sleep(0.05)
    pages = [
        f"/ui/deliveries/{delivery['id']}",
        f"/ui/endpoints/{endpoint}",
        "/ui/endpoints",
        "/ui/events",
        f"/ui/events/{delivery['event_id']}",
    ]
    for path in pages:
        text = (await console.web.get(path)).text
        assert "<img src=x" not in text, path
        assert "<script>alert" not in text, path
    detail = (await console.web.get(pages[0])).text
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in detail
    assert "500" in detail
    assert "X-Webhook-Signature: sha256=" in detail  # the signature, never the secret
    secret = made.json()["secret"]
    assert secret not in detail


async def test_pages_speak_the_browser_language(console: Console) -> None:
    await console.sign_in()
    pt = await console.web.get("/ui/deliveries", headers={"Accept-Language": "pt-BR,pt;q=0.9"})
    assert "Entregas" in pt.text
    assert 'lang="pt-BR"' in pt.text
    en = await console.web.get("/ui/deliveries", headers={"Accept-Language": "en-US,pt;q=0.5"})
    assert "Deliveries" in en.text
    assert 'lang="en"' in en.text
    other = await console.web.get("/ui/deliveries", headers={"Accept-Language": "de"})
    assert 'lang="en"' in other.text


async def test_the_live_stream_sends_changes_and_ends_at_a_stop(console: Console) -> None:
    await console.sign_in()
    api = console.running.client
    async with serve_receiver() as receiver:
        await api.post("/v1/endpoints", json={"url": receiver.url, "events": ["*"]})
        async with console.web.stream("GET", "/ui/live?after=0") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert stream.headers["content-security-policy"] == CSP
            await api.post("/v1/events", json={"event": "cliente.criado", "data": {}})
            seen = b""
            chunks = stream.aiter_bytes()
            with trio.fail_after(10):
                async for chunk in chunks:
                    seen += chunk
                    if b'"status":"succeeded"' in seen:
                        break
            assert b"event: delivery" in seen
            assert b'"status_word":"delivered"' in seen
            # A graceful stop does not wait for the open stream.
            started = trio.current_time()
            console.running.daemon.stop()
            with trio.fail_after(5):
                async for _ in chunks:
                    pass
            assert trio.current_time() - started < 1.5  # the test config's grace is 2 s


@pytest.mark.parametrize(
    ("header", "language"),
    [
        ("", "en"),
        ("pt-BR", "pt-BR"),
        ("pt", "pt-BR"),
        ("en-US,en;q=0.9,pt-BR;q=0.8", "en"),
        ("de-DE,pt-BR;q=0.7,en;q=0.5", "pt-BR"),
        ("fr, en;q=0.3, pt;q=0.6", "pt-BR"),
        ("pt;q=0, en;q=0.1", "en"),
        ("pt;q=zz", "en"),
    ],
)
def test_the_language_is_the_browsers_first_of_pt_and_en(header: str, language: str) -> None:
    assert security.language(header) == language


async def test_deliveries_filter_and_page_back(console: Console) -> None:
    await console.sign_in()
    api = console.running.client
    await api.post("/v1/endpoints", json={"url": "http://127.0.0.1:9/x", "events": ["*"]})
    batch = [{"event": "cliente.criado", "data": {"n": n}} for n in range(53)]
    batch += [{"event": "tarefa.criada", "data": {}}, {"event": "tarefa.criada", "data": {}}]
    assert (await api.post("/v1/events/batch", json=batch)).status_code == 202

    def rows(page: httpx.Response) -> list[int]:
        return [int(n) for n in re.findall(r'<tr data-id="(\d+)"', page.text)]

    first = await console.web.get("/ui/deliveries")
    assert rows(first) == list(range(55, 5, -1))
    older = re.search(r'href="(/ui/deliveries\?cursor=\d+)"', first.text)
    assert older
    assert rows(await console.web.get(older.group(1))) == [5, 4, 3, 2, 1]
    typed = await console.web.get("/ui/deliveries?type=tarefa.criada")
    assert rows(typed) == [55, 54]
    future = "2999-01-01T00:00"
    assert rows(await console.web.get(f"/ui/deliveries?since={future}")) == []
    assert (
        len(rows(await console.web.get(f"/ui/deliveries?until={future}&type=cliente.criado"))) == 50
    )
    assert rows(await console.web.get("/ui/deliveries?until=2000-01-01T00:00")) == []
    # A rare type (under 1% of the events) is found through the events of that type.
    more = [{"event": "cliente.criado", "data": {"n": n}} for n in range(150)]
    assert (await api.post("/v1/events/batch", json=more)).status_code == 202
    assert rows(await console.web.get("/ui/deliveries?type=tarefa.criada")) == [55, 54]
    assert rows(await console.web.get("/ui/deliveries?type=tarefa.criada&status=failed")) == []
    assert rows(await console.web.get("/ui/deliveries?type=nenhum.tipo")) == []


async def test_a_live_stream_holds_a_tcp_connection_slot(
    hookd_factory: Callable[..., Awaitable[Running]],
) -> None:
    port = free_port()
    running = await hookd_factory(
        f'[server]\nlisten = "127.0.0.1:{port}"\napi_token = "{API_TOKEN}"\nmax_tcp_connections = 1'
    )
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as web:
        console = Console(running, port, web)
        await console.sign_in()
        async with web.stream("GET", "/ui/live?ids=1") as stream:
            assert stream.status_code == 200
            async with httpx.AsyncClient(base_url=web.base_url, timeout=10) as other:
                refused = await other.get("/ui/signin")
                assert refused.status_code == 503
        for _ in range(20):  # the stream closed: its slot is free again at once
            if (await web.get("/ui/signin")).status_code == 200:
                break
            await trio.sleep(0.05)
        else:
            raise AssertionError("the closed stream's slot was never freed")
