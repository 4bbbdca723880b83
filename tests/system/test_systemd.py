"""hookd under systemd: sd_notify messages, the watchdog, and socket activation.

Each test runs `hookd serve` as a real process with the variables systemd would set:
its own NOTIFY_SOCKET (a datagram socket bound by the test, by path or abstract name),
WATCHDOG_USEC, and LISTEN_FDS with a pre-bound listening socket as fd 3.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing

from hookd.domain.views import Status
from hookd.runtime import systemd
from hookd.runtime.daemon import status_line
from tests.conftest import Running, write_config
from tests.system.test_api_events import create_endpoint
from tests.system.test_delivery import wait_status

Factory = Callable[..., Awaitable[Running]]
SERVE = [sys.executable, "-m", "hookd", "serve", "--config"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LISTEN_", "WATCHDOG_"))}
    env.pop("NOTIFY_SOCKET", None)
    return {**env, **extra}


@contextlib.contextmanager
def _notify_socket(address: str) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + address[1:] if address.startswith("@") else address)
    sock.settimeout(10)
    try:
        yield sock
    finally:
        sock.close()


def _messages_until(sock: socket.socket, wanted: str) -> list[str]:
    """Datagrams received until one containing the line `wanted`."""
    received = []
    while True:
        message = sock.recv(4096).decode()
        received.append(message)
        if wanted in message.splitlines():
            return received


def _next_ping(sock: socket.socket) -> None:
    """Wait for the next WATCHDOG=1, letting STATUS= updates pass."""
    while (message := sock.recv(4096).decode()) != "WATCHDOG=1":
        assert message.startswith("STATUS="), message


def _get(socket_path: str, path: str = "/healthz") -> httpx.Response:
    transport = httpx.HTTPTransport(uds=socket_path)
    with httpx.Client(transport=transport, base_url="http://hookd", timeout=5) as client:
        return client.get(path)


def _stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=15)


def _stop_and_read(process: subprocess.Popen[bytes]) -> tuple[int, str]:
    """SIGTERM, then the exit status and everything hookd wrote to stderr."""
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=15)
    return process.returncode, stderr.decode()


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_ready_watchdog_and_stopping_arrive_in_order(short_dir: Path, abstract: bool) -> None:
    address = (
        f"@hookd-test-{os.getpid()}-{time.monotonic_ns()}"
        if abstract
        else str(short_dir / "notify")
    )
    config = write_config(short_dir)
    with _notify_socket(address) as notify:
        env = _env(NOTIFY_SOCKET=address, WATCHDOG_USEC="200000")
        process = subprocess.Popen([*SERVE, str(config)], env=env, stderr=subprocess.DEVNULL)
        try:
            before_ready = _messages_until(notify, "READY=1")
            assert before_ready[-1].splitlines()[0] == "READY=1"
            assert "STATUS=ready" in before_ready[-1].splitlines()
            assert all("WATCHDOG=1" not in m for m in before_ready)  # none before READY
            assert _get(str(short_dir / "hookd.sock")).status_code == 200  # ready means ready
            after_ready = [notify.recv(4096).decode() for _ in range(6)]
            statuses = [m for m in after_ready if m != "WATCHDOG=1"]
            assert statuses == [
                "STATUS=0 pending, 0 failed in the last hour, 0 of 0 endpoints enabled"
            ]
            assert after_ready.count("WATCHDOG=1") == 5
        finally:
            status = _stop(process)
        after = _messages_until(notify, "STOPPING=1")
    assert status == 0
    assert set(after[:-1]) <= {"WATCHDOG=1"}


def test_watchdog_pings_come_at_half_the_timeout(short_dir: Path) -> None:
    config = write_config(short_dir)
    with _notify_socket(str(short_dir / "notify")) as notify:
        env = _env(NOTIFY_SOCKET=str(short_dir / "notify"), WATCHDOG_USEC="400000")
        process = subprocess.Popen([*SERVE, str(config)], env=env, stderr=subprocess.DEVNULL)
        try:
            _messages_until(notify, "READY=1")
            _next_ping(notify)
            start = time.monotonic()
            for _ in range(4):
                _next_ping(notify)
            period = (time.monotonic() - start) / 4
        finally:
            _stop(process)
    assert 0.15 <= period <= 0.3, period  # 0.2 s expected


def test_no_watchdog_pings_for_another_process(short_dir: Path) -> None:
    config = write_config(short_dir)
    with _notify_socket(str(short_dir / "notify")) as notify:
        env = _env(
            NOTIFY_SOCKET=str(short_dir / "notify"), WATCHDOG_USEC="100000", WATCHDOG_PID="1"
        )
        process = subprocess.Popen([*SERVE, str(config)], env=env, stderr=subprocess.DEVNULL)
        try:
            _messages_until(notify, "READY=1")
            notify.settimeout(0.5)
            with pytest.raises(TimeoutError):
                _next_ping(notify)
        finally:
            _stop(process)


def test_without_notify_socket_nothing_is_sent_and_it_still_serves(short_dir: Path) -> None:
    config = write_config(short_dir)
    process = subprocess.Popen([*SERVE, str(config)], env=_env(), stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):  # the socket file appears once hookd listens on it
            if (short_dir / "hookd.sock").exists():
                break
            time.sleep(0.05)
        assert _get(str(short_dir / "hookd.sock")).status_code == 200
    finally:
        assert _stop(process) == 0


# -- socket activation ----------------------------------------------------------------

# Runs in the child between fork and exec, like systemd: the passed socket becomes fd 3
# and LISTEN_PID names the process that will exec hookd.
_EXEC_WITH_FD3 = """
import os, sys
fd = int(sys.argv[1])
os.dup2(fd, 3)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_FDNAMES"] = "api"
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.executable, [sys.executable, "-m", "hookd", *sys.argv[2:]])
"""


def _serve_with_fd3(fd: int, config: Path) -> subprocess.Popen[bytes]:
    """`hookd serve` started as systemd would, with `fd` passed as fd 3."""
    command = [sys.executable, "-c", _EXEC_WITH_FD3, str(fd), "serve", "--config", str(config)]
    return subprocess.Popen(command, pass_fds=[fd], env=_env(), stderr=subprocess.PIPE)


def _listening_unix_socket(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(16)
    return sock


def test_adopts_a_passed_unix_socket_and_leaves_it_in_place(short_dir: Path) -> None:
    passed = short_dir / "passed.sock"
    config = write_config(short_dir)
    with _listening_unix_socket(passed) as sock:
        # Requests queue on the socket before hookd even starts: none is refused.
        early = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        early.connect(str(passed))
        early.sendall(b"GET /healthz HTTP/1.1\r\nHost: hookd\r\nConnection: close\r\n\r\n")
        process = _serve_with_fd3(sock.fileno(), config)
        try:
            early.settimeout(10)
            assert early.recv(4096).startswith(b"HTTP/1.1 200 ")
            early.close()
            response = _get(str(passed), "/v1/endpoints")
            assert response.status_code == 200
            assert not (short_dir / "hookd.sock").exists()  # nothing bound of its own
        finally:
            status, log = _stop_and_read(process)
    assert status == 0, log
    assert "action=sockets.adopted count=1 origins=socket" in log
    assert passed.exists()  # systemd's socket: not removed on the way out


def test_a_passed_fd_that_is_not_a_listening_socket_is_refused(short_dir: Path) -> None:
    config = write_config(short_dir)
    with open(short_dir / "plain-file", "w") as plain:
        process = _serve_with_fd3(plain.fileno(), config)
        _, stderr = process.communicate(timeout=15)
    assert process.returncode == 1
    assert "fd 3 passed by systemd is not a socket" in stderr.decode()


def test_a_passed_tcp_socket_needs_the_api_token(short_dir: Path) -> None:
    config = write_config(short_dir)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        tcp.bind(("0.0.0.0", 0))
        tcp.listen(8)
        process = _serve_with_fd3(tcp.fileno(), config)
        _, stderr = process.communicate(timeout=15)
    assert process.returncode == 1
    assert "needs server.api_token" in stderr.decode()


def test_listen_fds_for_another_process_are_ignored_and_removed() -> None:
    environ = {"LISTEN_FDS": "1", "LISTEN_PID": "1", "LISTEN_FDNAMES": "api"}
    assert systemd.listen_sockets(environ) == []
    assert environ == {}


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "abc"}, None),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}, 2.0),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "x"}, None),
    ],
)
def test_watchdog_interval(environ: dict[str, str], expected: float | None) -> None:
    assert systemd.watchdog_interval(environ) == expected


@pytest.mark.skipif(
    shutil.which("systemd-socket-activate") is None, reason="no systemd-socket-activate here"
)
def test_socket_activation_through_systemd_socket_activate(short_dir: Path) -> None:
    passed = short_dir / "activated.sock"
    config = write_config(short_dir)
    hookd = Path(sys.executable).parent / "hookd"
    process = subprocess.Popen(
        [
            "systemd-socket-activate",
            "-l",
            str(passed),
            str(hookd),
            "serve",
            "--config",
            str(config),
        ],
        env=_env(),
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(100):  # the tool binds first, then execs hookd on the first connection
            if passed.exists():
                break
            time.sleep(0.05)
        assert _get(str(passed)).status_code == 200
        assert not (short_dir / "hookd.sock").exists()
    finally:
        status, log = _stop_and_read(process)
    assert status == 0, log
    assert "action=sockets.adopted" in log


def test_status_line_figures() -> None:
    figures = Status(
        version="x",
        endpoints=3,
        endpoints_enabled=2,
        deliveries={"pending": 12345, "succeeded": 9, "failed": 4, "cancelled": 0, "erased": 0},
        oldest_pending_at="2024-01-01T10:00:00Z",
        oldest_pending_age_s=200.5,
    )
    assert status_line(figures, 7) == (
        "12,345 pending (oldest 3m 20s), 7 failed in the last hour, 2 of 3 endpoints enabled"
    )


async def test_failures_of_the_last_hour_are_counted(hookd_factory: Factory) -> None:
    running = await hookd_factory('[delivery]\nretry_schedule = ["0s"]')
    await create_endpoint(running.client, ["*"])  # refuses connections
    response = await running.client.post("/v1/events", json={"event": "cliente.criado", "data": {}})
    event = (await running.client.get(f"/v1/events/{response.json()['id']}")).json()
    await wait_status(running, event["deliveries"][0]["id"], "failed")
    await trio.testing.wait_all_tasks_blocked()  # the recorder has moved on too
    scheduler = running.daemon.scheduler
    assert scheduler is not None
    assert scheduler.failed_since(0) == 1
    assert scheduler.failed_since(time.time() + 1) == 0  # older ones are let go
