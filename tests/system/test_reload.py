"""SIGHUP (`systemctl reload hookd`): a running `hookd serve` re-reads its config file.

Each test runs hookd as a real process, rewrites its config file, sends SIGHUP and checks
the outcome through the API, the receivers and the log (hookd's stderr, kept in a file).
"""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import h11
import httpx
import trio

from tests.cli_runner import cli
from tests.daemon_process import DaemonProcess
from tests.receiver import Answer, Received, Receiver, serve_receiver

SECRET = "whsec_c2VjcmV0LW9mLXRoZS1lcnA="


def endpoint(url: str, ident: str = "erp", enabled: bool = True) -> str:
    """An `[[endpoint]]` table subscribed to everything."""
    return (
        f'[[endpoint]]\nid = "{ident}"\nurl = "{url}"\nevents = ["*"]\n'
        f'secret = "{SECRET}"\nenabled = {"true" if enabled else "false"}\n'
    )


@asynccontextmanager
async def serving(
    directory: Path, extra: str = "", env: dict[str, str] | None = None
) -> AsyncIterator[tuple[DaemonProcess, httpx.AsyncClient]]:
    """`hookd serve` on a config with `extra`; stopped with SIGTERM at the end (exit 0)."""
    daemon = DaemonProcess(directory, extra)
    async with trio.open_nursery() as nursery:
        client = await daemon.start(nursery, env)
        try:
            yield daemon, client
        finally:
            await client.aclose()
            daemon.signal(signal.SIGTERM)
            with trio.fail_after(15):
                assert await daemon.wait() == 0


async def reload(daemon: DaemonProcess, extra: str, count: int = 1) -> str:
    """Rewrite the config with `extra`, send SIGHUP; the `count`th reload's summary line."""
    daemon.rewrite(extra)
    daemon.signal(signal.SIGHUP)
    return (await daemon.wait_for_log("action=config.reloaded", count))[count - 1]


async def received(receiver: Receiver, count: int) -> list[Received]:
    """The receiver's requests once `count` have arrived (10 s at most)."""
    with trio.fail_after(10):
        return await receiver.wait_for(count)


async def ingest(client: httpx.AsyncClient, n: int = 0) -> int:
    """Ingest one event; the id of its (single) delivery."""
    response = await client.post("/v1/events", json={"event": "cliente.criado", "data": {"n": n}})
    assert response.status_code == 202, response.text
    event = (await client.get(f"/v1/events/{response.json()['id']}")).json()
    [delivery] = event["deliveries"]
    return int(delivery["id"])


async def delivery_when(
    client: httpx.AsyncClient, delivery_id: int, attempts: int, status: str | None = None
) -> dict[str, Any]:
    """The delivery once it has `attempts` attempts recorded (and `status`)."""
    with trio.fail_after(10):
        while True:
            found: dict[str, Any] = (await client.get(f"/v1/deliveries/{delivery_id}")).json()
            if len(found["attempt_log"]) >= attempts and status in (None, found["status"]):
                return found
            await trio.sleep(0.02)


async def test_an_endpoint_added_to_the_file_receives_after_a_reload(short_dir: Path) -> None:
    async with serve_receiver() as receiver, serving(short_dir) as (daemon, client):
        made = await client.post("/v1/endpoints", json={"url": receiver.url, "events": ["x.*"]})
        assert made.status_code == 201
        line = await reload(daemon, endpoint(receiver.url))
        assert "endpoints_added=1 endpoints_changed=0 endpoints_removed=0" in line
        listed = (await client.get("/v1/endpoints")).json()["items"]
        assert [(e["id"], e["origin"]) for e in listed] == [
            (made.json()["id"], "api"),  # the API's endpoints are not the file's business
            ("erp", "config"),
        ]
        delivery_id = await ingest(client)
        [request] = await received(receiver, 1)
        assert request.headers["x-webhook-event"] == "cliente.criado"
        assert (await delivery_when(client, delivery_id, 1, "succeeded"))["endpoint_id"] == "erp"


async def test_a_url_changed_in_the_file_takes_the_next_retry(short_dir: Path) -> None:
    schedule = '[delivery]\nretry_schedule = ["0s", "3s"]\n'
    async with (
        serve_receiver(lambda _: Answer(status=500)) as old,
        serve_receiver() as new,
        serving(short_dir, schedule + endpoint(old.url)) as (daemon, client),
    ):
        delivery_id = await ingest(client)
        await delivery_when(client, delivery_id, 1)  # failed, its retry kept in memory
        line = await reload(daemon, schedule + endpoint(new.url))
        assert "endpoints_added=0 endpoints_changed=1 endpoints_removed=0" in line
        [request] = await received(new, 1)
        assert request.headers["x-webhook-attempt"] == "2"
        delivery = await delivery_when(client, delivery_id, 2, "succeeded")
        assert [a["status_code"] for a in delivery["attempt_log"]] == [500, 200]
        assert len(old.received) == 1


async def test_an_endpoint_removed_from_the_file_is_deleted_and_its_deliveries_cancelled(
    short_dir: Path,
) -> None:
    async with (
        serve_receiver(lambda _: Answer(delay=60)) as receiver,
        serving(short_dir, endpoint(receiver.url)) as (daemon, client),
    ):
        delivery_id = await ingest(client)
        await received(receiver, 1)
        line = await reload(daemon, "")
        assert "endpoints_added=0 endpoints_changed=0 endpoints_removed=1" in line
        assert (await client.get("/v1/endpoints/erp")).status_code == 404
        # Its attempt in flight is cut short, as when it is deleted through the API.
        delivery = await delivery_when(client, delivery_id, 1, "cancelled")
        assert delivery["attempt_log"][0]["error_kind"] == "interrupted"
        audit = (await client.get("/v1/audit", params={"endpoint": "erp"})).json()["items"]
        assert [(a["action"], a["origin"]) for a in audit] == [
            ("delete", "config"),
            ("create", "config"),
        ]


async def test_the_log_level_changes(short_dir: Path) -> None:
    async with (
        serve_receiver() as receiver,
        serving(short_dir, endpoint(receiver.url)) as (
            daemon,
            client,
        ),
    ):
        await delivery_when(client, await ingest(client), 1, "succeeded")
        assert daemon.lines("action=attempt.succeeded") == []  # DEBUG: not at "info"
        line = await reload(daemon, endpoint(receiver.url) + '[log]\nlevel = "debug"\n')
        assert "settings_changed=1 refused=0 settings=log.level" in line
        delivery_id = await ingest(client, 1)
        [debug] = await daemon.wait_for_log("action=attempt.succeeded")
        assert f"delivery={delivery_id}" in debug


async def test_delivery_limits_apply_to_the_next_attempts(short_dir: Path) -> None:
    async with (
        serve_receiver(lambda _: Answer(delay=2)) as receiver,
        serving(short_dir, endpoint(receiver.url)) as (daemon, client),
    ):
        limits = '[delivery]\ntimeout = "300ms"\nretry_schedule = ["0s"]\n'
        line = await reload(daemon, limits + endpoint(receiver.url))
        assert "settings=delivery.timeout,delivery.retry_schedule" in line
        delivery = await delivery_when(client, await ingest(client), 1, "failed")
        [attempt] = delivery["attempt_log"]
        assert "within 0.3s" in attempt["error"], attempt


async def test_a_new_secret_overlap_is_the_next_rotations_default(short_dir: Path) -> None:
    async with serving(short_dir) as (daemon, client):
        subscription = {"url": "http://127.0.0.1:9/", "events": ["*"]}
        made = await client.post("/v1/endpoints", json=subscription)
        ident = made.json()["id"]
        line = await reload(daemon, '[delivery]\nsecret_overlap = "2h"\n')
        assert "settings=delivery.secret_overlap" in line
        rotated = (await client.post(f"/v1/endpoints/{ident}/rotate-secret", json={})).json()
        until = datetime.fromisoformat(rotated["previous_secret_until"])
        gap = (until - datetime.fromisoformat(rotated["updated_at"])).total_seconds()
        assert abs(gap - 2 * 3600) < 1, rotated


async def test_event_types_and_the_validation_mode_change(short_dir: Path) -> None:
    pedido = '[[event_type]]\nname = "pedido.criado"\nrequired = ["pedidoId"]\n'
    async with serving(short_dir) as (daemon, client):
        assert (await client.get("/v1/event-types/pedido.criado")).status_code == 404
        line = await reload(daemon, '[ingest]\nvalidate = "strict"\n' + pedido)
        assert "event_types_changed=1 settings_changed=1" in line
        assert "settings=ingest.validate" in line
        assert (await client.get("/v1/event-types/pedido.criado")).status_code == 200
        document = (await client.get("/v1/openapi.json")).text
        assert "pedido.criado" in document
        refused = await client.post("/v1/events", json={"event": "pedido.criado", "data": {}})
        assert refused.status_code == 422
        assert refused.json()["error"]["message"] == "$.data.pedidoId is required"


async def test_a_lowered_per_endpoint_limit_lets_workers_go(short_dir: Path) -> None:
    async with (
        serve_receiver(lambda _: Answer(delay=0.5)) as receiver,
        serving(short_dir, endpoint(receiver.url)) as (daemon, client),
    ):
        first = [await ingest(client, n) for n in range(4)]
        for delivery_id in first:  # four workers made, now idle
            await delivery_when(client, delivery_id, 1, "succeeded")
        assert receiver.most_in_flight == 4
        limits = "[delivery]\nper_endpoint_concurrency = 1\n"
        await reload(daemon, limits + endpoint(receiver.url))
        receiver.most_in_flight = 0
        later = [await ingest(client, n) for n in range(4, 7)]
        with trio.fail_after(5):  # not the 30 s an idle worker waits before it exits
            for delivery_id in later:
                await delivery_when(client, delivery_id, 1, "succeeded")
        assert receiver.most_in_flight == 1


async def test_a_concurrency_beyond_the_descriptor_limit_is_refused(short_dir: Path) -> None:
    async with serving(short_dir) as (daemon, _):
        daemon.rewrite('[delivery]\nconcurrency = 100000000\n[log]\nlevel = "debug"\n')
        daemon.signal(signal.SIGHUP)
        [line] = await daemon.wait_for_log("action=config.reloaded")
        assert "refused=1 settings=log.level" in line
        [warning] = daemon.lines("action=config.reload_refused")
        assert "key=delivery.concurrency kept=64 wanted=100000000" in warning
        assert "LimitNOFILE" in warning


async def test_what_needs_a_restart_is_refused_and_the_rest_applied(short_dir: Path) -> None:
    other = short_dir / "other.sock"
    token = "a-token-nobody-may-read-0123456789"
    async with serving(short_dir) as (daemon, client):
        daemon.rewrite(
            f'[server]\nsocket = "{other}"\napi_token = "{token}"\n'
            '[storage]\ndurability = "full"\n[delivery]\ntimeout = "7s"\n'
        )
        daemon.signal(signal.SIGHUP)
        [line] = await daemon.wait_for_log("action=config.reloaded")
        assert "refused=3 settings=delivery.timeout" in line
        refused = daemon.lines("action=config.reload_refused")
        assert all(" WARNING " in warning for warning in refused)
        assert [warning.split("key=")[1].split()[0] for warning in refused] == [
            "server.socket",
            "server.api_token",
            "storage.durability",
        ]
        assert f"kept='{daemon.socket}' wanted='{other}'" in refused[0]
        assert "restart" in refused[0]
        assert "kept=(none) wanted=(hidden)" in refused[1]
        assert token not in daemon.log.read_text()
        assert (await client.get("/healthz")).status_code == 200  # the old socket still serves
        assert not other.exists()


async def test_a_file_that_does_not_check_changes_nothing(short_dir: Path) -> None:
    async with serving(short_dir, endpoint("https://erp.example.com/old")) as (daemon, client):
        daemon.rewrite("[delivery]\nconcurrency = 0\n" + endpoint("https://erp.example.com/new"))
        daemon.signal(signal.SIGHUP)
        [error] = await daemon.wait_for_log("action=config.reload_failed")
        assert " ERROR " in error
        assert "delivery.concurrency" in error
        daemon.config.write_text("[delivery\n")
        daemon.signal(signal.SIGHUP)
        error = (await daemon.wait_for_log("action=config.reload_failed", 2))[1]
        assert "not valid TOML" in error
        assert daemon.lines("action=config.reloaded") == []
        erp = (await client.get("/v1/endpoints/erp")).json()
        assert erp["url"] == "https://erp.example.com/old"
        audit = (await client.get("/v1/audit")).json()["items"]
        assert [a["action"] for a in audit] == ["create"]


async def test_the_api_answers_once_the_reload_is_applied(short_dir: Path) -> None:
    async with (
        serve_receiver() as receiver,
        serving(short_dir, endpoint(receiver.url, "old")) as (daemon, client),
    ):
        daemon.rewrite(endpoint(receiver.url, "new") + '[log]\nlevel = "debug"\n')
        answer = await client.post("/v1/config/reload")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {
            "applied": True,
            "error": None,
            "endpoints_added": ["new"],
            "endpoints_changed": [],
            "endpoints_removed": ["old"],
            "event_types_changed": 0,
            "settings_changed": ["log.level"],
            "refused": [],
        }
        # Applied when the answer came: no waiting for a log line.
        listed = (await client.get("/v1/endpoints")).json()["items"]
        assert [e["id"] for e in listed] == ["new"]
        [line] = daemon.lines("action=config.reloaded")
        assert "endpoints_added=1 endpoints_changed=0 endpoints_removed=1" in line


async def test_the_api_refuses_a_file_that_does_not_check_naming_why(short_dir: Path) -> None:
    async with serving(short_dir, endpoint("https://erp.example.com/old")) as (daemon, client):
        daemon.rewrite("[delivery]\nconcurrency = 0\n" + endpoint("https://erp.example.com/new"))
        answer = await client.post("/v1/config/reload")
        assert answer.status_code == 409
        error = answer.json()["error"]
        assert error["code"] == "not_reloaded"
        assert "delivery.concurrency: Expected `int` >= 1" in error["message"]
        erp = (await client.get("/v1/endpoints/erp")).json()
        assert erp["url"] == "https://erp.example.com/old"
        assert len(daemon.lines("action=config.reload_failed")) == 1


async def test_hookd_config_reload_prints_what_changed_and_fails_on_a_bad_file(
    short_dir: Path,
) -> None:
    async with serving(short_dir) as (daemon, _):
        other = short_dir / "other.sock"
        daemon.rewrite(endpoint("https://erp.example.com/") + f'[server]\nsocket = "{other}"\n')
        ran = await cli(daemon.socket, "config", "reload")
        assert ran.code == 0, ran.err
        assert ran.lines[0] == "configuration reloaded"
        assert "endpoints added      erp\n" in ran.out
        assert f"kept server.socket = '{daemon.socket}' (the file has '{other}')" in ran.err
        daemon.config.write_text("[delivery\n")
        ran = await cli(daemon.socket, "config", "reload")
        assert ran.code == 1
        assert ran.out == ""
        assert "configuration not reloaded" in ran.err
        assert "not valid TOML" in ran.err


async def test_a_ca_file_that_does_not_load_changes_nothing(short_dir: Path) -> None:
    bad = short_dir / "ca.pem"
    bad.write_text("not a certificate\n")
    async with serving(short_dir) as (daemon, client):
        daemon.rewrite(f'[delivery]\nca_file = "{bad}"\n' + endpoint("https://erp.example.com/"))
        daemon.signal(signal.SIGHUP)
        [error] = await daemon.wait_for_log("action=config.reload_failed")
        assert "delivery.ca_file: cannot load" in error
        assert (await client.get("/v1/endpoints")).json()["items"] == []
        assert daemon.lines("action=config.reloaded") == []


async def _get(stream: trio.SocketStream, conn: h11.Connection, path: str) -> int:
    """One request on an open connection; the answer's status."""
    request = h11.Request(method="GET", target=path, headers=[("Host", "hookd")])
    await stream.send_all(conn.send(request) + conn.send(h11.EndOfMessage()))
    status = 0
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(65536))
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.EndOfMessage):
            conn.start_next_cycle()
            return status


async def test_an_attempt_in_flight_and_an_open_connection_live_through_a_reload(
    short_dir: Path,
) -> None:
    async with (
        serve_receiver(lambda _: Answer(delay=3)) as receiver,
        serving(short_dir, endpoint(receiver.url)) as (daemon, client),
    ):
        stream = await trio.open_unix_socket(daemon.socket)
        conn = h11.Connection(h11.CLIENT)
        assert await _get(stream, conn, "/healthz") == 200
        delivery_id = await ingest(client)
        await received(receiver, 1)
        changed = endpoint(receiver.url) + endpoint("https://crm.example.com/hook", "crm")
        line = await reload(daemon, changed + "[delivery]\nper_endpoint_concurrency = 2\n")
        assert "endpoints_added=1" in line
        assert receiver.in_flight == 1  # the reload happened while the attempt was out
        assert await _get(stream, conn, "/v1/status") == 200  # the same connection
        await stream.aclose()
        delivery = await delivery_when(client, delivery_id, 1, "succeeded")
        assert [a["status_code"] for a in delivery["attempt_log"]] == [200]


def _sighup(pid: int) -> str:
    """ "ignored", "caught" or "default": what the process does with SIGHUP now."""
    bit = 1 << (signal.SIGHUP - 1)
    fields = dict(
        line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    if int(fields["SigIgn"], 16) & bit:
        return "ignored"
    return "caught" if int(fields["SigCgt"], 16) & bit else "default"


async def test_a_sighup_during_start_up_does_not_end_the_daemon(short_dir: Path) -> None:
    daemon = DaemonProcess(short_dir)
    async with trio.open_nursery() as nursery:
        await daemon.launch(nursery)
        assert daemon.process is not None
        with trio.fail_after(10):
            while True:
                handling = _sighup(daemon.process.pid)
                if handling != "default":
                    break
                await trio.sleep(0.001)
        # `hookd serve` ignores it first thing; the daemon catches it from its start on.
        assert handling == "ignored"
        socket_file = trio.Path(daemon.socket)
        assert not await socket_file.exists()  # not ready yet
        sent = 0
        with trio.fail_after(10):  # SIGHUP after SIGHUP until it answers
            while True:
                if await socket_file.exists():
                    break
                daemon.signal(signal.SIGHUP)
                sent += 1
                await trio.sleep(0.01)
        client = await daemon.ready()
        assert sent > 1
        assert daemon.process.returncode is None
        await reload(daemon, "")
        lines = daemon.log.read_text().splitlines()
        ready = next(i for i, line in enumerate(lines) if "action=ready" in line)
        assert all(i > ready for i, line in enumerate(lines) if "action=config.reload" in line)
        await client.aclose()
        daemon.signal(signal.SIGTERM)
        assert await daemon.wait() == 0


async def test_systemd_hears_reloading_then_ready(short_dir: Path) -> None:
    address = str(short_dir / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(address)
        notify.setblocking(False)
        seen: list[dict[str, str]] = []

        def receive() -> None:
            """Take the notifications waiting, but the periodic STATUS= figures."""
            while True:
                try:
                    text = notify.recv(4096).decode()
                except BlockingIOError:
                    return
                fields = dict(line.split("=", 1) for line in text.splitlines())
                if fields.keys() != {"STATUS"}:
                    seen.append(fields)

        async def until(count: int) -> None:
            with trio.fail_after(10):
                while True:
                    receive()
                    if len(seen) >= count:
                        return
                    await trio.lowlevel.wait_readable(notify)

        async with serving(short_dir, env={"NOTIFY_SOCKET": address}) as (daemon, _):
            await until(1)
            before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
            daemon.signal(signal.SIGHUP)
            daemon.signal(signal.SIGHUP)  # during the first: queued, not run beside it
            await until(3)
            after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
            ready, reloading, reloaded = seen[:3]
            assert ready == {"READY": "1", "STATUS": "ready"}
            assert reloading["RELOADING"] == "1"
            assert before <= int(reloading["MONOTONIC_USEC"]) <= after
            assert reloaded["READY"] == "1"
            assert reloaded["STATUS"].startswith("configuration reloaded: endpoints_added=0")
            await daemon.wait_for_log("action=config.reloaded")
        receive()
        reloads = len(daemon.lines("action=config.reloaded"))
        assert [next(iter(fields)) for fields in seen] == [
            "READY",
            *["RELOADING", "READY"] * reloads,  # one at a time
            "STOPPING",
        ]
