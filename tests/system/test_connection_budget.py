"""Connection budgets: separate limits for the Unix socket and TCP, a short deadline for
TCP connections without the token, the descriptor limit and its reserve, and what
happens when descriptors run out anyway (accept backs off, attempts say why).

Real daemons on real sockets; the descriptor shortage is a real RLIMIT_NOFILE.
"""

from __future__ import annotations

import os
import resource
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
import trio

from hookd.runtime import descriptors
from tests.conftest import Running, free_port, socket_client, write_config
from tests.receiver import Answer, serve_receiver

Factory = Callable[..., Awaitable[Running]]
TOKEN = "k" * 32
LIMITS = """
[server]
listen = "127.0.0.1:{port}"
api_token = "{token}"
max_connections = 4
max_tcp_connections = 4
unauthenticated_timeout = "1s"
idle_timeout = "30s"
"""


@contextmanager
def held(count: int, connect: Callable[[], socket.socket]) -> Iterator[list[socket.socket]]:
    """`count` connections opened and left idle; closed at the end."""
    with ExitStack() as stack:
        yield [stack.enter_context(connect()) for _ in range(count)]


def unix(path: str) -> Callable[[], socket.socket]:
    def connect() -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        return sock

    return connect


def tcp(port: int) -> Callable[[], socket.socket]:
    return lambda: socket.create_connection(("127.0.0.1", port))


async def _limited(hookd_factory: Factory) -> tuple[Running, int, httpx.AsyncClient]:
    port = free_port()
    running = await hookd_factory(LIMITS.format(port=port, token=TOKEN))
    client = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    return running, port, client


async def test_idle_tcp_connections_leave_the_unix_socket_serving(hookd_factory: Factory) -> None:
    running, port, client = await _limited(hookd_factory)
    async with client:
        with held(4, tcp(port)):
            await trio.sleep(0.2)  # the daemon has taken all four
            assert (await running.client.get("/v1/status")).status_code == 200
            refused = await client.get("/v1/status")
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "overloaded"


async def test_idle_socket_connections_leave_tcp_serving(hookd_factory: Factory) -> None:
    running, _, client = await _limited(hookd_factory)
    async with client:
        with held(4, unix(running.socket)):
            await trio.sleep(0.2)
            assert (await client.get("/v1/status")).status_code == 200
            async with socket_client(running.socket) as another:
                assert (await another.get("/v1/status")).status_code == 503


async def test_tcp_connections_without_the_token_are_closed_after_the_short_deadline(
    hookd_factory: Factory,
) -> None:
    _, port, client = await _limited(hookd_factory)
    async with client:
        silent = await trio.open_tcp_stream("127.0.0.1", port)
        wrong = await trio.open_tcp_stream("127.0.0.1", port)
        host = f"Host: 127.0.0.1:{port}"
        await wrong.send_all(f"GET /v1/status HTTP/1.1\r\n{host}\r\n\r\n".encode())
        health = await trio.open_tcp_stream("127.0.0.1", port)
        await health.send_all(f"GET /healthz HTTP/1.1\r\n{host}\r\n\r\n".encode())
        good = await trio.open_tcp_stream("127.0.0.1", port)
        await good.send_all(
            f"GET /v1/status HTTP/1.1\r\n{host}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode()
        )
        assert b" 401 " in await wrong.receive_some(65536)
        assert b" 200 " in await health.receive_some(65536)
        assert b" 200 " in await good.receive_some(65536)
        started = trio.current_time()
        for stream in (silent, wrong, health):
            with trio.fail_after(3):
                assert await stream.receive_some(65536) == b""  # closed by the daemon
        assert trio.current_time() - started < 2
        with trio.move_on_after(2):  # the token was right: idle_timeout (30 s) applies
            await good.receive_some(65536)
            pytest.fail("the authenticated connection was closed")
        for stream in (silent, wrong, health, good):
            await stream.aclose()


def test_connection_limits_fit_in_the_descriptor_limit() -> None:
    reserve = descriptors.reserve(64)
    assert reserve == 64 + 3 * 64
    roomy = descriptors.budget(65536, 1024, 256, 64)
    assert (roomy.socket_connections, roomy.tcp_connections) == (1024, 256)
    no_tcp = descriptors.budget(1024 + reserve, 1024, 0, 64)
    assert (no_tcp.socket_connections, no_tcp.tcp_connections) == (1024, 0)
    tight = descriptors.budget(1024, 1024, 256, 64)  # systemd's default soft limit
    assert tight.socket_connections + tight.tcp_connections == 1024 - reserve
    assert tight.tcp_connections == (1024 - reserve) * 256 // 1280
    with pytest.raises(descriptors.BudgetError, match=r"too low: hookd needs at least 258"):
        descriptors.budget(257, 1024, 256, 64)


def _low_limit(soft: int, hard: int) -> Callable[[], None]:
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _max_open_files(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no 'Max open files' line")


def _wait_for_socket(path: Path, process: subprocess.Popen[bytes] | trio.Process) -> None:
    for _ in range(200):
        if path.exists():
            return
        assert process.poll() is None, "hookd exited"
        time.sleep(0.05)
    raise AssertionError("hookd did not start")


def test_the_soft_descriptor_limit_is_raised_to_the_hard_one(short_dir: Path) -> None:
    config = write_config(short_dir)
    process = subprocess.Popen(
        [sys.executable, "-m", "hookd", "serve", "--config", str(config)],
        stderr=subprocess.DEVNULL,
        preexec_fn=_low_limit(512, 4096),
    )
    try:
        _wait_for_socket(short_dir / "hookd.sock", process)
        assert _max_open_files(process.pid) == 4096
    finally:
        process.terminate()
        process.wait(timeout=15)


async def test_out_of_descriptors_accept_backs_off_quietly_and_attempts_say_why(
    short_dir: Path,
) -> None:
    """Descriptors taken by something else (here: inherited ones the budget cannot know
    of): accepting fails, and an attempt due meanwhile fails as `local`, not `dns`."""
    extra = (
        '[server]\nidle_timeout = "60s"\n'
        '[delivery]\nconcurrency = 4\nretry_schedule = ["0s", "2s", "5s"]\n'
        '[log]\nlevel = "info"\n'
    )
    config = write_config(short_dir, extra)
    log_path = short_dir / "stderr.log"
    limit = 200
    hogs = [os.open(os.devnull, os.O_RDONLY) for _ in range(limit - 70)]  # ~20 left free
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "hookd", "serve", "--config", str(config)],
            stderr=log,
            pass_fds=hogs,
            preexec_fn=_low_limit(limit, limit),
        )
    finally:
        for fd in [*hogs, log]:
            os.close(fd)
    try:
        # The 500 closes its connection: the next attempt needs a new one.
        answers = iter([Answer(500, [("Connection", "close")])])
        async with serve_receiver(lambda _: next(answers, Answer(200))) as receiver:
            sock_path = short_dir / "hookd.sock"
            await trio.to_thread.run_sync(_wait_for_socket, sock_path, process)
            async with socket_client(str(sock_path)) as client:
                endpoint = {"url": receiver.url, "events": ["*"]}
                assert (await client.post("/v1/endpoints", json=endpoint)).status_code == 201
                event = {"event": "cliente.criado", "data": {"id": "c"}}
                assert (await client.post("/v1/events", json=event)).status_code == 202
            with trio.fail_after(30):
                await receiver.wait_for(1)  # answered 500: the second attempt is due in 2 s
            with held(80, unix(str(sock_path))):  # more than the descriptors left
                await trio.sleep(4)  # the second attempt falls due in there, not the third
            with trio.fail_after(30):
                await receiver.wait_for(2)  # the next attempt, descriptors back
            async with socket_client(str(sock_path)) as client:
                [delivery] = (await client.get("/v1/deliveries")).json()["items"]
                shown = (await client.get(f"/v1/deliveries/{delivery['id']}")).json()
    finally:
        process.terminate()
        await process.wait()
    second = shown["attempt_log"][1]
    assert second["error_kind"] == "local", second
    assert "Too many open files" in second["error"]
    assert shown["status"] == "succeeded"
    lines = log_path.read_text().splitlines()
    accept_lines = [line for line in lines if "action=accept.failed" in line]
    assert len(accept_lines) == 1, accept_lines  # 5 s of failures: one line, not one per try
    assert "Too many open files" in accept_lines[0]
    assert any("action=connections.limited" in line for line in lines)


async def test_clients_that_reset_beyond_the_limit_do_not_take_the_daemon_down(
    hookd_factory: Factory,
) -> None:
    running, _, client = await _limited(hookd_factory)
    async with client:
        with held(4, unix(running.socket)):
            await trio.sleep(0.2)
            for _ in range(50):  # each resets at once: the 503 meant for it finds no one
                sock = unix(running.socket)()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
            await trio.sleep(0.5)
        assert (await running.client.get("/v1/status")).status_code == 200
        assert (await client.get("/v1/status")).status_code == 200
