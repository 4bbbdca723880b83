"""At-least-once across kill -9 (DESIGN §1), seen from the receiver.

`hookd serve` runs as a real subprocess with `durability = "full"`; a receiver in the
test records the X-Webhook-Id of every request (answering 200 after a short delay, so
deliveries are in flight); several clients ingest for about a second; the daemon gets
SIGKILL mid-flight and is restarted on the same files. Every id acknowledged with 202
before the kill must then reach the receiver at least once. Receiving an id more than
once is allowed (a delivery cut by the kill is sent again); the most copies of one id
is printed.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from tests.conftest import socket_client, write_config
from tests.receiver import Answer, Receiver, serve_receiver
from tests.system.test_api_events import create_endpoint
from tests.system.test_crash import BATCH_CLIENTS, RUN_FOR, Load, hammer, wait_until_serving

CONFIG = """
[storage]
durability = "full"

[delivery]
per_endpoint_concurrency = 8  # slower than ingest: a backlog is waiting at the kill
"""
WORKERS = range(BATCH_CLIENTS, BATCH_CLIENTS + 6)  # hammer()'s one-event-per-request clients
RECEIVER_DELAY = 0.05  # seconds before each 200: keeps deliveries in flight at the kill
REDELIVERY_LIMIT = 20  # seconds the restarted daemon gets to deliver everything


@asynccontextmanager
async def hookd_process(config: Path, log: Path) -> AsyncIterator[trio.Process]:
    """`hookd serve --config config` as a subprocess, serving on its socket; killed at exit."""
    with log.open("ab") as out:
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "hookd", "serve", "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )
    try:
        await wait_until_serving(config.parent / "hookd.sock", process, log)
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        with trio.CancelScope(shield=True):  # reap it even when the test is cancelled
            await process.wait()


def received_ids(receiver: Receiver) -> Counter[str]:
    """How many times each X-Webhook-Id has reached the receiver."""
    return Counter(r.headers["x-webhook-id"] for r in receiver.received)


async def wait_all_received(receiver: Receiver, ids: set[str], seconds: float) -> set[str]:
    """Wait until every id in `ids` has reached the receiver; those still missing."""
    missing = set(ids)
    seen = 0
    with trio.move_on_after(seconds):
        while True:
            missing.difference_update(r.headers["x-webhook-id"] for r in receiver.received[seen:])
            seen = len(receiver.received)
            if not missing:
                break
            receiver.arrived = trio.Event()
            await receiver.arrived.wait()
    return missing


# A request cut by the kill leaves httpx's request-body generator unfinished; trio closes
# it when it is collected, and warns. That is the client's side of the kill, not hookd's.
@pytest.mark.filterwarnings(
    "ignore:Async generator 'httpx._content.ByteStream.__aiter__' was garbage collected"
    ":ResourceWarning"
)
async def test_kill_9_every_acknowledged_event_reaches_the_receiver(short_dir: Path) -> None:
    config = write_config(short_dir, CONFIG)
    socket_path = short_dir / "hookd.sock"
    log = short_dir / "hookd.log"
    load = Load()
    async with serve_receiver(lambda _: Answer(delay=RECEIVER_DELAY)) as receiver:
        async with hookd_process(config, log) as first:
            async with socket_client(str(socket_path)) as client:
                await create_endpoint(client, ["*"], url=receiver.url)
            with trio.fail_after(5):
                async with trio.open_nursery() as nursery:
                    for worker in WORKERS:
                        nursery.start_soon(hammer, socket_path, worker, load)
                    await trio.sleep(RUN_FOR)
                    first.send_signal(signal.SIGKILL)
                assert await first.wait() == -signal.SIGKILL
        in_flight_at_kill = receiver.in_flight
        undelivered_at_kill = load.acknowledged - received_ids(receiver).keys()

        async with hookd_process(config, log):
            missing = await wait_all_received(receiver, load.acknowledged, REDELIVERY_LIMIT)
        times = received_ids(receiver)

    acknowledged = load.acknowledged
    most = max((times[i] for i in acknowledged), default=0)
    print(
        f"acknowledged={len(acknowledged)} undelivered_at_kill={len(undelivered_at_kill)}"
        f" in_flight_at_kill={in_flight_at_kill} received={sum(times.values())}"
        f" duplicated_ids={sum(1 for i in acknowledged if times[i] > 1)}"
        f" max_times_one_id_received={most}"
    )
    assert not load.refused, load.refused[:3]
    assert len(acknowledged) >= 50, "too little load to test anything"
    assert undelivered_at_kill, "everything was delivered before the kill: nothing to test"
    assert not missing, (
        f"{len(missing)} of {len(acknowledged)} acknowledged ids never reached the receiver"
        f" within {REDELIVERY_LIMIT} s of the restart: {sorted(missing)[:5]};"
        f" hookd's log ends: {log.read_text()[-2000:]}"
    )
    assert all(times[i] >= 1 for i in acknowledged)
