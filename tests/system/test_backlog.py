"""A backlog larger than a lane holds: everything is delivered, nothing stays on disk.

The lane limits are made small so a few hundred deliveries overflow them many times.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable

import pytest
import trio

from hookd.delivery import scheduler as dispatcher
from tests.conftest import Running
from tests.receiver import Answer, Received, serve_receiver
from tests.system.test_delivery import subscribe

Start = Callable[..., Awaitable[Running]]


@pytest.fixture(autouse=True)
def small_lanes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dispatcher, "LANE_MAX", 40)
    monkeypatch.setattr(dispatcher, "REFILL_BATCH", 16)


async def ingest_batch(hookd: Running, count: int, start: int = 0) -> None:
    events = [{"event": "cliente.criado", "data": {"n": n}} for n in range(start, start + count)]
    response = await hookd.client.post("/v1/events/batch", json=events)
    assert response.status_code == 202, response.text


async def wait_none_pending(hookd: Running) -> None:
    while True:
        if not (await hookd.client.get("/v1/deliveries?status=pending")).json()["items"]:
            return
        await trio.sleep(0.02)


async def test_overflowing_backlog_is_all_delivered(hookd: Running) -> None:
    async with serve_receiver() as receiver:
        await subscribe(hookd, receiver.url, ["*"])
        await ingest_batch(hookd, 300)
        await ingest_batch(hookd, 300, start=300)
        await receiver.wait_for(600)
        with trio.fail_after(5):  # the last answers are being recorded
            await wait_none_pending(hookd)
    counts = Counter(r.headers["x-webhook-id"] for r in receiver.received)
    assert len(counts) == 600


async def test_overflowing_retries_are_all_delivered(hookd_factory: Start) -> None:
    hookd = await hookd_factory('[delivery]\nretry_schedule = ["0s", "0s"]')
    seen: Counter[str] = Counter()

    def first_fails(request: Received) -> Answer:
        seen[request.headers["x-webhook-id"]] += 1
        return Answer(500 if seen[request.headers["x-webhook-id"]] == 1 else 200)

    async with serve_receiver(first_fails) as receiver:
        await subscribe(hookd, receiver.url, ["*"])
        await ingest_batch(hookd, 200)
        await receiver.wait_for(400)
    assert set(seen.values()) == {2}
