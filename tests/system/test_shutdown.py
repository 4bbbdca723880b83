"""SIGTERM: stop accepting, let attempts in flight finish within the grace period, exit 0."""

from __future__ import annotations

import signal
import sqlite3
import sys
from pathlib import Path

import httpx
import trio

from tests.daemon_process import DaemonProcess
from tests.receiver import Answer, serve_receiver


def deliveries(database: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(database) as db:
        return db.execute("SELECT status, attempts FROM deliveries ORDER BY id").fetchall()


async def start_with_slow_receiver(
    nursery: trio.Nursery, directory: Path, url: str, grace: str
) -> tuple[DaemonProcess, httpx.AsyncClient]:
    daemon = DaemonProcess(directory, f'[delivery]\nshutdown_grace = "{grace}"')
    client = await daemon.start(nursery)
    response = await client.post("/v1/endpoints", json={"url": url, "events": ["*"]})
    assert response.status_code == 201
    for n in range(3):
        response = await client.post(
            "/v1/events", json={"event": "cliente.criado", "data": {"n": n}}
        )
        assert response.status_code == 202
    return daemon, client


async def test_attempts_in_flight_finish_and_are_recorded(short_dir: Path) -> None:
    async with (
        trio.open_nursery() as nursery,
        serve_receiver(lambda _: Answer(delay=1)) as receiver,
    ):
        daemon, client = await start_with_slow_receiver(nursery, short_dir, receiver.url, "5s")
        await receiver.wait_for(3)
        daemon.signal(signal.SIGTERM)
        with trio.fail_after(5):
            status = await daemon.wait()
        await client.aclose()
    assert status == 0
    assert deliveries(daemon.database) == [("succeeded", 1)] * 3
    assert not await trio.Path(daemon.socket).exists()


async def test_a_second_signal_during_the_stop_changes_nothing(short_dir: Path) -> None:
    # The single-file binary's bootloader forwards signals: Ctrl-C arrives twice.
    async with (
        trio.open_nursery() as nursery,
        serve_receiver(lambda _: Answer(delay=1)) as receiver,
    ):
        daemon, client = await start_with_slow_receiver(nursery, short_dir, receiver.url, "5s")
        await receiver.wait_for(3)
        daemon.signal(signal.SIGINT)
        await trio.sleep(0.2)
        daemon.signal(signal.SIGINT)
        daemon.signal(signal.SIGTERM)
        with trio.fail_after(5):
            status = await daemon.wait()
        await client.aclose()
    assert status == 0
    assert deliveries(daemon.database) == [("succeeded", 1)] * 3  # the grace was kept


async def test_attempts_cut_off_by_the_grace_period_are_due_again(short_dir: Path) -> None:
    async with trio.open_nursery() as nursery, serve_receiver(lambda _: Answer(delay=60)) as slow:
        daemon, client = await start_with_slow_receiver(nursery, short_dir, slow.url, "500ms")
        await slow.wait_for(3)
        started = trio.current_time()
        daemon.signal(signal.SIGTERM)
        with trio.fail_after(5):
            status = await daemon.wait()
        stopped_in = trio.current_time() - started
        await client.aclose()
    assert status == 0
    assert stopped_in < 3
    # cut short, recorded as such, and still due
    assert deliveries(daemon.database) == [("pending", 1)] * 3
    with sqlite3.connect(daemon.database) as db:
        attempts = db.execute("SELECT number, error_kind, error FROM attempts").fetchall()
    assert [(number, kind) for number, kind, _ in attempts] == [(1, "interrupted")] * 3
    assert all("hookd stopped after the request went out" in error for *_, error in attempts)

    async with trio.open_nursery() as nursery, serve_receiver() as fast:
        with sqlite3.connect(daemon.database) as db:
            db.execute("UPDATE endpoints SET url = ?", (fast.url,))
        client = await daemon.start(nursery)
        await fast.wait_for(3)
        daemon.signal(signal.SIGTERM)
        await daemon.wait()
        await client.aclose()
    assert {r.headers["x-webhook-attempt"] for r in fast.received} == {"2"}  # never 1 again
    assert deliveries(daemon.database) == [("succeeded", 2)] * 3


async def test_no_request_is_served_after_sigterm(short_dir: Path) -> None:
    async with trio.open_nursery() as nursery:
        daemon = DaemonProcess(short_dir)
        client = await daemon.start(nursery)
        daemon.signal(signal.SIGTERM)
        assert await daemon.wait() == 0
        try:
            response = await client.get("/healthz")
        except httpx.TransportError:
            pass  # the socket is gone: refused
        else:
            raise AssertionError(f"served after stop: {response.status_code}")
        await client.aclose()


async def test_a_second_daemon_refused_the_socket_leaves_the_first_one_reachable(
    short_dir: Path,
) -> None:
    async with trio.open_nursery() as nursery:
        first = DaemonProcess(short_dir)
        client = await first.start(nursery)
        # Its own database (one on the same database is refused before the socket: see
        # tests/system/test_db_safety.py), the same socket.
        second = DaemonProcess(short_dir, f'[storage]\npath = "{short_dir / "second.db"}"')
        command = [sys.executable, "-m", "hookd", "serve", "--config", str(second.config)]
        result = await trio.run_process(command, check=False, capture_stderr=True)
        assert result.returncode == 1
        assert b"already running" in result.stderr
        assert (await client.get("/healthz")).status_code == 200  # the socket is still there
        first.signal(signal.SIGTERM)
        assert await first.wait() == 0
        await client.aclose()
