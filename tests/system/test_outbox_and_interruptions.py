"""Alerts committed with their cause, and attempts hookd cuts short recorded as such.

A real daemon (in-process, or a `hookd serve` process killed with SIGKILL), real
receivers on 127.0.0.1, and the SQLite file read as it is on disk.
"""

from __future__ import annotations

import json
import signal
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

from tests.conftest import Running
from tests.daemon_process import DaemonProcess
from tests.receiver import Answer, serve_receiver
from tests.system.test_delivery import ingest, subscribe

Start = Callable[..., Awaitable[Running]]


async def delivery_of(hookd: Running, event_id: str) -> dict[str, Any]:
    [delivery] = (await hookd.client.get(f"/v1/events/{event_id}")).json()["deliveries"]
    response = await hookd.client.get(f"/v1/deliveries/{delivery['id']}")
    shown: dict[str, Any] = response.json()
    return shown


async def first_attempt_recorded(hookd: Running, event_id: str) -> dict[str, Any]:
    """The delivery of `event_id`, once an attempt of it is recorded."""
    with trio.fail_after(5):
        while True:
            delivery = await delivery_of(hookd, event_id)
            if delivery["attempts"]:
                return delivery
            await trio.sleep(0.02)


async def test_an_attempt_cut_by_deleting_its_endpoint_is_recorded(hookd: Running) -> None:
    async with serve_receiver(lambda _: Answer(delay=60)) as slow:
        endpoint = await subscribe(hookd, slow.url, ["*"])
        event = await ingest(hookd, "cliente.criado", {"id": "c1"})
        await slow.wait_for(1)
        assert (await hookd.client.delete(f"/v1/endpoints/{endpoint['id']}")).status_code == 204
        delivery = await first_attempt_recorded(hookd, event["id"])
    assert delivery["status"] == "cancelled"
    [attempt] = delivery["attempt_log"]
    assert attempt["error_kind"] == "interrupted"
    assert "the endpoint was disabled or deleted after the request went out" in attempt["error"]


async def test_an_attempt_cut_by_disabling_then_retried_carries_the_next_number(
    hookd: Running,
) -> None:
    answers = [Answer(delay=60), Answer()]
    async with serve_receiver(lambda _: answers.pop(0)) as receiver:
        endpoint = await subscribe(hookd, receiver.url, ["*"])
        event = await ingest(hookd, "cliente.criado", {"id": "c1"})
        await receiver.wait_for(1)
        path = f"/v1/endpoints/{endpoint['id']}"
        await hookd.client.patch(path, json={"enabled": False})
        delivery = await first_attempt_recorded(hookd, event["id"])
        await hookd.client.patch(path, json={"enabled": True})
        retried = await hookd.client.post(f"/v1/deliveries/{delivery['id']}/retry")
        assert retried.status_code == 202, retried.text
        [first, second] = await receiver.wait_for(2)
    assert (first.headers["x-webhook-attempt"], second.headers["x-webhook-attempt"]) == ("1", "2")


def failed_without_alert(database: Path) -> tuple[int, list[int]]:
    """How many deliveries ended failed, and those with no alert event stored."""
    with sqlite3.connect(database) as db:
        failed = [row[0] for row in db.execute("SELECT id FROM deliveries WHERE status = 'failed'")]
        alerted = {
            json.loads(body)["data"]["entregaId"]
            for (body,) in db.execute("SELECT body FROM events WHERE type = 'hookd.entrega.falhou'")
        }
    return len(failed), [ident for ident in failed if ident not in alerted]


async def test_a_crash_right_after_a_final_failure_keeps_its_alert(short_dir: Path) -> None:
    extra = '[delivery]\nretry_schedule = ["0s"]\n'
    daemon = DaemonProcess(short_dir, extra)
    async with serve_receiver(lambda _: Answer(status=500)) as receiver, trio.open_nursery() as n:
        client = await daemon.start(n)
        await client.post("/v1/endpoints", json={"url": receiver.url, "events": ["*"]})
        batch = [{"event": "cliente.criado", "data": {"id": f"c{i}"}} for i in range(500)]
        assert (await client.post("/v1/events/batch", json=batch)).status_code == 202
        with trio.fail_after(10):  # kill as soon as the first failure is on disk
            while True:
                if failed_without_alert(daemon.database)[0]:
                    break
                await trio.sleep(0.001)
        daemon.signal(signal.SIGKILL)
        await daemon.wait()
        await client.aclose()
    failed, missing = failed_without_alert(daemon.database)
    assert failed > 0
    assert missing == []
    async with trio.open_nursery() as nursery:  # and hookd shows them after the restart
        client = await daemon.start(nursery)
        alerts = await client.get("/v1/events", params={"type": "hookd.entrega.falhou"})
        assert len(alerts.json()["items"]) >= failed
        daemon.signal(signal.SIGTERM)
        await daemon.wait()
        await client.aclose()
