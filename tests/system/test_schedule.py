"""The retry schedule under trio's virtual clock: hours of retries in well under a second.

The daemon runs in-process on a MockClock that jumps ahead whenever every task is
waiting; hookd's wall clock follows trio's, so stored times and waits agree. A jump can
also happen while a database call runs in a worker thread; it then goes to the nearest
deadline, which is never more than a lane's refill period (30 s) away, so schedules here
use delays above that and time retries exactly. Waiting is done on the receiver's
arrivals, not by polling, so few jumps are needed.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import trio
import trio.testing

from tests.conftest import Running
from tests.receiver import Answer, Policy, Received, serve_receiver
from tests.system.test_delivery import ingest, subscribe

Start = Callable[..., Awaitable[Running]]
# Long server deadlines under the virtual clock; and no subject index: its background
# writes are more waits on the writer thread, during which the autojump clock moves on,
# and these tests count the scheduler's virtual time.
FAST = '[server]\nidle_timeout = "2h"\nrequest_timeout = "2h"\n[storage]\nsubject_index = false\n'


async def start(hookd_factory: Start, extra: str = "") -> Running:
    return await hookd_factory(FAST + extra, client_timeout=None)


async def settled(hookd: Running, status: str) -> dict[str, Any]:
    """The only delivery, once it has reached `status`."""
    while True:
        [delivery] = (await hookd.client.get("/v1/deliveries")).json()["items"]
        if delivery["status"] == status:
            response = await hookd.client.get(f"/v1/deliveries/{delivery['id']}")
            shown: dict[str, Any] = response.json()
            return shown
        await trio.sleep(1)


@pytest.fixture
def virtual_clock() -> trio.testing.MockClock:
    # Jump only after a few real milliseconds of idleness, so database work done in
    # worker threads is not mistaken for idleness.
    return trio.testing.MockClock(autojump_threshold=0.02)


def gaps(received: list[Received]) -> list[float]:
    return [round(b.at - a.at, 1) for a, b in itertools.pairwise(received)]


def answers(*statuses: int, headers: list[tuple[str, str]] | None = None) -> Policy:
    sequence: Iterator[int] = iter(statuses)

    def answer(_: Received) -> Answer:
        return Answer(next(sequence, 200), headers or [])

    return answer


async def test_default_schedule_then_failed(
    virtual_clock: trio.testing.MockClock, hookd_factory: Start
) -> None:
    hookd = await start(hookd_factory)
    real_start = trio.current_time()
    async with serve_receiver(lambda _: Answer(500)) as receiver:
        await subscribe(hookd, receiver.url, ["*"])
        await ingest(hookd, "cliente.criado", {"id": "c"})
        await receiver.wait_for(5)
        failed = await settled(hookd, "failed")
        await trio.sleep(3 * 3600)  # nothing more happens
    assert gaps(receiver.received) == [60.0, 300.0, 900.0, 3600.0]
    assert [r.headers["x-webhook-attempt"] for r in receiver.received] == list("12345")
    assert failed["attempts"] == 5
    assert failed["next_attempt_at"] is None
    assert failed["last_error"] == "HTTP 500"
    assert trio.current_time() - real_start >= 4860  # the virtual time really passed


async def test_success_at_attempt_three_ends_the_round(
    virtual_clock: trio.testing.MockClock, hookd_factory: Start
) -> None:
    hookd = await start(hookd_factory)
    async with serve_receiver(answers(500, 503)) as receiver:
        await subscribe(hookd, receiver.url, ["*"])
        await ingest(hookd, "cliente.criado", {"id": "c"})
        await receiver.wait_for(3)
        done = await settled(hookd, "succeeded")
        await trio.sleep(2 * 3600)
    assert gaps(receiver.received) == [60.0, 300.0]
    assert [a["status_code"] for a in done["attempt_log"]] == [500, 503, 200]


@pytest.mark.parametrize(
    ("status", "retry_after", "gap"),
    [
        (503, "100", 100.0),  # later than the scheduled 60 s: honoured
        (429, "1000", 120.0),  # capped at twice the scheduled delay
        (503, "10", 60.0),  # never earlier than the schedule
        (500, "100", 60.0),  # only 429 and 503 carry a meaningful Retry-After
        (503, "Thu, 01 Jan 1970 00:00:00 GMT", 60.0),  # a date in the past: schedule
    ],
)
async def test_retry_after(
    virtual_clock: trio.testing.MockClock,
    hookd_factory: Start,
    status: int,
    retry_after: str,
    gap: float,
) -> None:
    hookd = await start(hookd_factory)
    async with serve_receiver(answers(status, headers=[("Retry-After", retry_after)])) as receiver:
        await subscribe(hookd, receiver.url, ["*"])
        await ingest(hookd, "cliente.criado", {"id": "c"})
        await receiver.wait_for(2)
    assert gaps(receiver.received) == [gap]


async def test_schedule_from_config(
    virtual_clock: trio.testing.MockClock, hookd_factory: Start
) -> None:
    hookd = await start(hookd_factory, '[delivery]\nretry_schedule = ["0s", "45s", "10m"]')
    async with serve_receiver(lambda _: Answer(500)) as receiver:
        await subscribe(hookd, receiver.url, ["*"])
        await ingest(hookd, "cliente.criado", {"id": "c"})
        await receiver.wait_for(3)
        await settled(hookd, "failed")
    assert gaps(receiver.received) == [45.0, 600.0]


async def test_failed_attempts_are_logged_per_endpoint_in_summary(
    virtual_clock: trio.testing.MockClock, hookd_factory: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hookd.delivery")
    hookd = await start(hookd_factory, '[delivery]\nretry_schedule = ["0s", "40s", "40s"]\n')
    dead = [await subscribe(hookd, f"http://127.0.0.1:9/{name}", ["*"]) for name in "ab"]
    batch = [{"event": "cliente.criado", "data": {"id": f"c{n}"}} for n in range(200)]
    assert (await hookd.client.post("/v1/events/batch", json=batch)).status_code == 202
    await trio.sleep(40 + 40 + 2 * 60)  # the three attempts, then every summary period ends
    pending = await hookd.client.get("/v1/deliveries", params={"status": "pending"})
    assert pending.json()["items"] == []

    lines = [r for r in caplog.records if r.name == "hookd.delivery"]
    assert all(r.getMessage().startswith("action=attempts.failed ") for r in lines)
    for endpoint in dead:
        mine = [r for r in lines if f"endpoint={endpoint['id']} " in r.getMessage()]
        figures = [dict(f.split("=", 1) for f in r.getMessage().split()[2:5]) for r in mine]
        # 600 failed attempts over about 80 s: the first at once, then one line a minute.
        # (On a loaded machine the virtual clock can jump while the database threads
        # work, spreading the attempts over one or two more minutes: still a handful of
        # lines, not 600.)
        assert 2 <= len(mine) <= 5, [r.getMessage() for r in mine]
        assert figures[0] == {"attempts": "1", "ended_failed": "0", "over": "0s"}
        assert sum(int(f["attempts"]) for f in figures) == 600
        assert sum(int(f["ended_failed"]) for f in figures) == 200
        assert mine[-1].levelno == logging.WARNING  # deliveries ended failed in it
        assert "last='connect: 127.0.0.1:9: " in mine[-1].getMessage()
