"""Pieces the benchmarks share: child processes, hookd configs, a Unix-socket HTTP client
(framed by hookd.protocol.http1), figures from /proc, percentiles and plain-text tables.

Every child process is started with `spawn`, which remembers it, so `stop_all` can stop
whatever is still running when a benchmark fails or is interrupted.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from hookd.protocol import http1


class BenchError(Exception):
    """A benchmark could not run (a server did not start, an answer was wrong)."""


# --------------------------------------------------------------------------- processes

_children: list[subprocess.Popen[Any]] = []


def spawn(cmd: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
    """`subprocess.Popen`, remembered for `stop_all`."""
    proc: subprocess.Popen[Any] = subprocess.Popen(list(cmd), **kwargs)
    _children.append(proc)
    return proc


def stop(proc: subprocess.Popen[Any] | None, timeout: float = 30.0) -> None:
    """SIGTERM, then SIGKILL after `timeout` seconds."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc in _children:
        _children.remove(proc)


def stop_all(timeout: float = 15.0, keep: Iterable[subprocess.Popen[Any]] = ()) -> None:
    """Stop every child `spawn` started that is still running, but those in `keep`
    (SIGTERM all, then wait)."""
    kept = list(keep)
    procs = [proc for proc in _children if proc not in kept]
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        stop(proc, timeout)


def exit_on_sigterm() -> None:
    """Make SIGTERM raise SystemExit, so `finally` blocks stop the children."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def script(main: Any) -> None:
    """Run a benchmark's `main()` as a script: exit with its status, errors as one line."""
    exit_on_sigterm()
    try:
        code = main()
    except BenchError as exc:
        code = f"error: {exc}"
    finally:
        stop_all()
    sys.exit(code)


def free_port() -> int:
    """A loopback TCP port nothing listens on (bound and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc; NaN where unavailable."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MiB."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", float("nan")), values.get("VmHWM", float("nan"))


# --------------------------------------------------------------------------- hookd


def _toml(value: Any) -> str:
    # JSON writes strings, integers, floats, booleans and lists the way TOML reads them.
    return json.dumps(value, ensure_ascii=False)


def write_config(
    path: str,
    sock_path: str,
    db_path: str,
    *,
    durability: str = "full",
    delivery: dict[str, Any] | None = None,
    log_level: str = "warning",
    storage: dict[str, Any] | None = None,
) -> None:
    """A throwaway hookd config: the socket, the database, `[delivery]` and more
    `[storage]` keys as given (private networks allowed, so loopback receivers work)."""
    keys = {"allow_private_networks": True, **(delivery or {})}
    stored = {"path": db_path, "durability": durability, **(storage or {})}
    with open(path, "w") as f:
        f.write(f"[server]\nsocket = {_toml(sock_path)}\n\n")
        f.write("[storage]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in stored.items()) + "\n")
        f.write("[delivery]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in keys.items()))
        f.write(f"\n[log]\nlevel = {_toml(log_level)}\n")


class Hookd:
    """`hookd serve` as a subprocess, its stderr lines collected with arrival times."""

    def __init__(self, config_path: str) -> None:
        self.lines: list[tuple[float, str]] = []
        self.ready_at: float | None = None
        self.started = time.monotonic()
        self.proc = spawn(
            [sys.executable, "-m", "hookd", "serve", "--config", config_path],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            now = time.monotonic()
            line = raw.decode(errors="replace").rstrip()
            self.lines.append((now, line))
            if self.ready_at is None and "action=ready" in line:
                self.ready_at = now

    def tail(self, n: int = 20) -> str:
        return "\n".join(line for _, line in self.lines[-n:])

    def wait_healthy(self, sock_path: str, timeout: float = 30.0) -> float:
        """Seconds from start until /healthz answers 200 on the socket."""
        try:
            wait_healthy(sock_path, self.proc, timeout - (time.monotonic() - self.started))
        except BenchError as exc:
            self._reader.join(2)
            raise BenchError(f"hookd: {exc}\n{self.tail()}") from None
        return time.monotonic() - self.started

    def wait_ready(self, sock_path: str, timeout: float) -> tuple[float, float]:
        """Seconds from start until /healthz answers, and until action=ready is logged
        (needs log level info)."""
        health_s = self.wait_healthy(sock_path, timeout)
        deadline = self.started + timeout
        while self.ready_at is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"hookd never logged action=ready:\n{self.tail()}")
            time.sleep(0.005)
        return health_s, self.ready_at - self.started

    def stop(self, timeout: float = 30.0) -> float:
        """SIGTERM; seconds until it exited (killed after `timeout`)."""
        if self.proc.poll() is not None:
            stop(self.proc)
            return 0.0
        began = time.monotonic()
        stop(self.proc, timeout)
        self._reader.join(2)
        return time.monotonic() - began

    def problems(self, expected: Iterable[str] = ()) -> list[str]:
        """stderr lines other than those containing one of `expected` (or the warning that
        a throwaway config gives no key for endpoint secrets)."""
        wanted = (*expected, "action=secrets.in_clear")
        return [line for _, line in self.lines if line and not any(x in line for x in wanted)]


# --------------------------------------------------------------------------- HTTP over the socket


BODY_BYTES = 1 << 30  # the largest response body a benchmark reads


def response_reader() -> http1.ResponseReader:
    """A reader for hookd's answers on one connection, whole bodies kept."""
    return http1.ResponseReader(max_body_bytes=BODY_BYTES)


def request_bytes(method: str, target: str, body: bytes = b"", *, close: bool = False) -> bytes:
    """A whole request (with `Content-Type: application/json` if it has a body)."""
    headers = [("Host", "hookd")]
    if close:
        headers.append(("Connection", "close"))
    if body or method == "POST":
        headers.append(("Content-Type", "application/json"))
    return http1.request_bytes(target.encode(), headers, body, method=method.encode())


def request(
    path: str, method: str, target: str, body: bytes = b"", timeout: float = 60.0
) -> tuple[int, bytes]:
    """One HTTP/1.1 request over the Unix socket at `path`, on its own connection."""
    with KeepAlive(path, timeout) as conn:
        return conn.request(method, target, body)


def healthy(path: str) -> bool:
    try:
        return request(path, "GET", "/healthz", timeout=2.0)[0] == 200
    except OSError:
        return False


def wait_healthy(path: str, proc: subprocess.Popen[Any], timeout: float = 30.0) -> None:
    """Wait until GET /healthz answers 200 on the socket at `path`."""
    deadline = time.monotonic() + timeout
    while not healthy(path):
        if proc.poll() is not None:
            raise BenchError(f"exited with status {proc.returncode} before answering")
        if time.monotonic() > deadline:
            raise BenchError(f"no healthy answer on {path} after {timeout:.0f}s")
        time.sleep(0.005)


class KeepAlive:
    """A blocking keep-alive HTTP/1.1 connection over a Unix socket."""

    def __init__(self, path: str, timeout: float = 60.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except OSError:
            self.sock.close()
            raise
        self.reader = response_reader()

    def __enter__(self) -> KeepAlive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def receive(self) -> tuple[int, bytes]:
        """The next whole response: (status, body)."""
        while (response := self.reader.next_event()) is http1.NEED_DATA:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed before a whole response")
            self.reader.feed(chunk)
        return response.head.status, response.body

    def request(self, method: str, target: str, body: bytes = b"") -> tuple[int, bytes]:
        self.send(request_bytes(method, target, body))
        return self.receive()


Respond = Callable[[Any, bytes], tuple[int, list[tuple[str, str]], bytes]]


async def serve_h11(stream: Any, respond: Respond, max_incomplete_event_size: int = 16384) -> None:
    """Answer the requests on a trio `stream` with h11, the ceilings' reference server:
    `respond(request, body)` (an `h11.Request` and its whole body) gives the status,
    headers and body of each answer. Returns when the client closes or errs."""
    import h11
    import trio

    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=max_incomplete_event_size)
    head: Any = None
    body = bytearray()
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Request):
                head = event
                body.clear()
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                status, headers, out = respond(head, bytes(body))
                data = conn.send(h11.Response(status_code=status, headers=headers))
                data += conn.send(h11.Data(data=out)) + conn.send(h11.EndOfMessage())
                await stream.send_all(data)
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
            else:
                return
    except (h11.ProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
        return


# --------------------------------------------------------------------------- figures


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The nearest-rank `q` quantile of already sorted values; NaN if there are none."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, int(q * len(sorted_values) + 0.999999) - 1))
    return sorted_values[rank]


def format_table(
    rows: Iterable[dict[str, Any]],
    columns: Sequence[tuple[str, str, int]],
    headings: dict[str, str] | None = None,
) -> list[str]:
    """Right-aligned columns (`name`, format, width); a missing value prints as "-"."""
    headings = headings or {}
    lines = [" ".join(f"{headings.get(name, name):>{width}}" for name, _, width in columns)]
    for row in rows:
        cells = []
        for name, fmt, width in columns:
            value = row.get(name)
            cells.append(f"{'-' if value is None else fmt.format(value):>{width}}")
        lines.append(" ".join(cells))
    return lines
