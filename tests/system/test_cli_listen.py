"""`hookd listen`: real deliveries from a real daemon, signatures checked (OK, and BAD for
a tampered body), failures answered on purpose and retried, and a clean Ctrl-C.

The first test runs the installed command as a process; the others run its `Receiver`
in the test's trio run, with a seeded random generator for `--fail-rate`.
"""

from __future__ import annotations

import base64
import io
import json
import random
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import trio

from hookd.cli.output import Screen
from hookd.cli.receiver import Options, Receiver, check_signatures
from hookd.domain import signing
from tests.cli_runner import cli, hookd_cli
from tests.conftest import Running
from tests.system.test_delivery import wait_attempts, wait_status

Factory = Callable[..., Awaitable[Running]]
SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
# The spec's "Teste de Assinatura": the body, its secret, and what its openssl line prints.
SPEC_BODY = b'{"test": true}'
SPEC_SECRET = "sua_chave_secreta"
SPEC_DIGEST = "865cfcf2a884ce3febc643da65937a7b5b288706cd9a33ad3bab8798a639b994"


class Lines:
    """Lines read as they arrive from a process's pipe."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = b""
        self.seen: list[str] = []

    async def next(self) -> str:
        with trio.fail_after(10):
            while b"\n" not in self._buffer:
                data = await self._stream.receive_some()
                if not data:
                    raise AssertionError(f"the stream ended; it said {self.seen}")
                self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        self.seen.append(line.decode())
        return self.seen[-1]


async def subscribe(hookd: Running, port: int, secret: str) -> None:
    url = f"http://127.0.0.1:{port}/webhook"
    ran = await cli(hookd.socket, "endpoints", "add", url, "--events", "*", "--secret", secret)
    assert ran.code == 0, ran.err


async def send(hookd: Running) -> str:
    ran = await cli(hookd.socket, "send", "cliente.criado", "--data", '{"id": "c1"}', "--json")
    assert ran.code == 0, ran.err
    return str(ran.json()["id"])


async def test_listen_command_checks_real_deliveries_and_stops_on_ctrl_c(
    hookd: Running,
) -> None:
    command = [sys.executable, "-m", "hookd", "listen", "--port", "0", "--secret", SECRET]
    process = await trio.lowlevel.open_process(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        out, err = Lines(process.stdout), Lines(process.stderr)
        started = re.fullmatch(
            r"listening on http://127\.0\.0\.1:(\d+)/webhook; .*", await err.next()
        )
        assert started is not None
        port = int(started.group(1))
        await subscribe(hookd, port, SECRET)

        event_id = await send(hookd)
        delivered = await out.next()
        assert re.fullmatch(
            rf"\d\d:\d\d:\d\d  cliente\.criado  {event_id}  attempt 1  \d+ B  "
            r"spec OK  std OK  -> 200",
            delivered,
        )

        # A body changed on the way, under the signatures of the real one: both BAD.
        body = b'{"event":"cliente.criado","timestamp":"2024-01-01T10:00:00Z","data":{}}'
        headers = dict(signing.sign(SECRET, "evt_x", 1_700_000_000, body))
        headers |= {"X-Webhook-Id": "evt_x", "X-Webhook-Event": "cliente.criado"}
        tampered = body.replace(b"{}", b'{"id":"c2"}')
        async with httpx.AsyncClient(trust_env=False) as client:
            answer = await client.post(
                f"http://127.0.0.1:{port}/webhook", content=tampered, headers=headers
            )
        assert answer.status_code == 200
        assert "spec BAD  std BAD" in await out.next()

        process.send_signal(signal.SIGINT)
        with trio.fail_after(10):
            assert await process.wait() == 0
        assert await err.next() == "stopped"
        assert not any("Traceback" in line for line in err.seen)
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
        await process.stdout.aclose()
        await process.stderr.aclose()


@dataclass
class Listening:
    receiver: Receiver
    port: int
    out: io.StringIO  # the deliveries printed
    err: io.StringIO  # the notes

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhook"


@asynccontextmanager
async def receiving(seed: int = 0, **options: Any) -> AsyncIterator[Listening]:
    """A Receiver on a free port, its draws seeded with `seed`."""
    out, err = io.StringIO(), io.StringIO()
    screen = Screen(out, err, colour=False, now=0.0)
    receiver = Receiver(Options(port=0, **options), screen, random.Random(seed))
    async with trio.open_nursery() as nursery:
        port = await nursery.start(receiver.serve, await receiver.open_listeners())
        yield Listening(receiver, port, out, err)
        nursery.cancel_scope.cancel()


async def test_failing_on_purpose_shows_the_retries(hookd_factory: Factory) -> None:
    hookd = await hookd_factory('[delivery]\nretry_schedule = ["0s", "0s", "0s", "0s"]')
    # Seed 7's first draws are 0.32, 0.15, 0.65: fail, fail, then succeed at a 0.5 rate.
    async with receiving(secret=SPEC_SECRET, fail_rate=0.5, seed=7) as listening:
        await subscribe(hookd, listening.port, SPEC_SECRET)
        event_id = await send(hookd)
        [delivery] = (await hookd.client.get("/v1/deliveries")).json()["items"]
        with trio.fail_after(5):
            done = await wait_status(hookd, delivery["id"], "succeeded")
    assert [a["status_code"] for a in done["attempt_log"]] == [500, 500, 200]
    lines = listening.out.getvalue().splitlines()
    assert [re.findall(r"attempt (\d)", line) for line in lines] == [["1"], ["2"], ["3"]]
    assert [line.rsplit(" ", 1)[1] for line in lines] == ["500", "500", "200"]
    assert all(event_id in line and "spec OK  std -" in line for line in lines)
    assert re.search(r"attempt 2 \(\+0s\)", lines[1])


async def test_json_lines(hookd: Running) -> None:
    async with receiving(secret=SECRET, json=True, status=503) as listening:
        await subscribe(hookd, listening.port, SECRET)
        event_id = await send(hookd)
        [delivery] = (await hookd.client.get("/v1/deliveries")).json()["items"]
        with trio.fail_after(5):  # the line is printed before the answer is sent
            await wait_attempts(hookd, delivery["id"], 1)
    line = json.loads(listening.out.getvalue())
    assert line["event"] == "cliente.criado"
    assert line["id"] == event_id
    assert line["attempt"] == 1
    assert line["since_last_attempt_s"] is None
    assert line["signature"] == {"spec": "OK", "standard": "OK"}
    assert line["status"] == 503
    assert line["body"]["data"] == {"id": "c1"}
    assert line["bytes"] == len(json.dumps(line["body"], separators=(",", ":")).encode())
    assert delivery["event_id"] == event_id


async def test_the_specs_signature_test_request() -> None:
    """The spec's curl line, with the signature its openssl pipeline prints."""
    async with receiving(secret=SPEC_SECRET) as listening, httpx.AsyncClient() as client:
        answer = await client.post(
            listening.url,
            content=SPEC_BODY,
            headers={
                "Content-Type": "application/json",
                "X-Webhook-Signature": f"sha256={SPEC_DIGEST}",
            },
        )
    assert answer.json() == {"success": True}
    printed = listening.out.getvalue()
    assert re.fullmatch(r"\S+  -  -  attempt -  14 B  spec OK  std -  -> 200\n", printed)


async def test_delay_wrong_path_and_method() -> None:
    async with receiving(delay=0.3) as listening, httpx.AsyncClient() as client:
        started = trio.current_time()
        assert (await client.post(listening.url, content=b"{}")).status_code == 200
        assert trio.current_time() - started >= 0.3
        other = listening.url.replace("/webhook", "/other")
        assert (await client.post(other, content=b"{}")).status_code == 404
        assert (await client.get(listening.url)).status_code == 405
    notes = listening.err.getvalue()
    assert len(listening.out.getvalue().splitlines()) == 1  # only the delivery is printed
    assert "POST /other: 404, not /webhook" in notes
    assert "GET /webhook: 405" in notes


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, [200] * 4),  # answers 200 by default
        ({"status": 500}, [500] * 4),  # --status alone: every time
        ({"status": 204}, [204] * 4),  # a success status too
        ({"fail_rate": 1.0}, [500] * 4),  # --fail-rate 1 fails all, with 500
        ({"fail_rate": 0.0}, [200] * 4),  # --fail-rate 0 fails none
        ({"fail_rate": 0.5, "status": 503}, [503, 503, 200, 503]),  # seed 7: .32 .15 .65 .07
    ],
)
def test_answer_status(options: dict[str, Any], expected: list[int]) -> None:
    screen = Screen(io.StringIO(), io.StringIO(), colour=False, now=0.0)
    receiver = Receiver(Options(**options), screen, random.Random(7))
    assert [receiver.answer_status() for _ in expected] == expected


@pytest.mark.parametrize(
    ("secret", "headers", "verdicts"),
    [
        (None, {}, ("-", "-")),  # nothing sent, nothing to check
        (None, {"x-webhook-signature": "sha256=00"}, ("?", "-")),  # sent, but no secret
        (SPEC_SECRET, {"x-webhook-signature": f"sha256={SPEC_DIGEST}"}, ("OK", "-")),
        (SPEC_SECRET, {"x-webhook-signature": f"sha256={SPEC_DIGEST[::-1]}"}, ("BAD", "-")),
        ("outra_chave", {"x-webhook-signature": f"sha256={SPEC_DIGEST}"}, ("BAD", "-")),
        *(  # during a rotation: the old or the next secret's signature beside the current
            (
                SPEC_SECRET,
                {"x-webhook-signature": "sha256=00", name: f"sha256={SPEC_DIGEST}"},
                ("OK", "-"),
            )
            for name in ("x-webhook-signature-previous", "x-webhook-signature-next")
        ),
        (SPEC_SECRET, {"x-webhook-signature-previous": f"sha256={SPEC_DIGEST}"}, ("-", "-")),
        (
            SECRET,  # a Standard Webhooks signature made for another id
            {"webhook-id": "b", "webhook-timestamp": "1", "webhook-signature": "v1,xx"},
            ("-", "BAD"),
        ),
    ],
)
def test_check_signatures(
    secret: str | None, headers: dict[str, str], verdicts: tuple[str, str]
) -> None:
    assert check_signatures(secret, headers, SPEC_BODY) == verdicts


async def test_port_in_use_is_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ran = await hookd_cli("listen", "--port", str(port))
    assert ran.code == 1
    assert ran.err.startswith(f"hookd: cannot listen on 127.0.0.1:{port}: ")


async def test_bad_flags_are_2() -> None:
    for argv in (
        ["--fail-rate", "2"],
        ["--fail-rate", "nan"],
        ["--port", "70000"],
        ["--status", "99"],
        ["--delay", "soon"],
        ["--path", "webhook"],
    ):
        ran = await hookd_cli("listen", *argv)
        assert ran.code == 2, argv
