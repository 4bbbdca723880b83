"""Delivery throughput: deliveries/s from the first ingest to the last receipt.

Starts a fast receiver in a separate process (nginx answering `return 200` when it is
installed, else a bare h11-on-trio HTTP server on 127.0.0.1 that answers every POST 200
with a tiny body, keep-alive; both record when each request arrives; the bench never
installs nginx), then for every combination of endpoints E and concurrency C:

- starts `hookd serve` on a throwaway config (socket and database in a fresh /tmp/hkdXXXX,
  durability "full", private networks allowed, `delivery.concurrency = C`);
- creates E endpoints subscribed to "*", each at its own path on the receiver;
- ingests N events as fast as it can with `POST /v1/events/batch`, 1000 per request, over
  the Unix socket from a few threads (so ingest is not the bottleneck);
- waits until the receiver has seen all E x N deliveries (or nothing arrives for `--stall`
  seconds), checks through the API that nothing is pending, stops hookd and counts rows
  by status in the database (nothing pending or failed, one attempt per delivery).

    python bench/delivery.py                                   # E in (1, 10), C in (10, 64, 200)
    python bench/delivery.py --ceilings --receiver h11         # and the client ceilings
    python bench/delivery.py --events 5000 --endpoints 1 --concurrency 64 --per-endpoint 64

The receiver's and hookd's CPU use over the run are printed beside the rate: a receiver
near 100% of a core means the receiver, not hookd, is the limit. `delivery.per_endpoint_
concurrency` (hookd's default, 8, unless `--per-endpoint`) also caps attempts in flight:
one endpoint never gets more than 8 connections whatever C is, so with one endpoint C
above it changes nothing ("eff" is min(C, E x per-endpoint)).

`--ceilings` adds, at each C, the clients hookd's sender is measured against, posting the
same body to the same receiver with nothing stored: a bare h11-on-trio client with one
keep-alive connection per task, httpx on trio with one single-connection AsyncClient per
task, and httpx with one AsyncClient shared by all tasks.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from typing import Any

try:
    from bench import common
except ModuleNotFoundError:  # run as a script: python bench/delivery.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from bench import common

BATCH = 1000
EVENT_TEMPLATE = (
    '{{"event":"cliente.criado","data":{{"id":"cliente_{n:08d}","nome":"João Silva",'
    '"email":"joao@example.com","telefone":"(11) 99999-9999",'
    '"empresa":"Comércio Exemplo Ltda","cidade":"São Paulo","uf":"SP",'
    '"origem":"formulario_site","tags":["lead","newsletter"],'
    '"createdAt":"2024-01-01T10:00:00Z"}}}}'
)


# --------------------------------------------------------------------------- receiver


def serve_receiver() -> None:
    """The receiver process: HTTP on 127.0.0.1 (port printed first), control on stdin.

    Commands, one per line, each answered with one line on stdout: `reset` (forget what
    was received), `status N` (answer N from now on; 200 at first), `stats` (JSON:
    requests, distinct (path, X-Webhook-Id) pairs, monotonic times of the first and last
    arrival, connections open and most at once) and `arrivals` (JSON: each X-Webhook-Id
    with the monotonic time its first request arrived whole).
    """
    import trio

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver stops it
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    state: dict[str, Any] = {}
    seen: dict[tuple[bytes, bytes], float] = {}

    def reset() -> None:
        seen.clear()
        state.update(requests=0, first=None, last=None, non_post=0, conns_max=state["conns"])

    state["conns"] = 0
    reset()
    answer_body = b'{"ok":true}'
    answer_headers = [("Content-Type", "application/json"), ("Content-Length", "11")]
    answer = {"status": 200}

    def respond(request: Any, _body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        now = time.monotonic()
        if state["first"] is None:
            state["first"] = now
        state["last"] = now
        state["requests"] += 1
        if request.method != b"POST":
            state["non_post"] += 1
        webhook_id = next((v for n, v in request.headers if n == b"x-webhook-id"), b"")
        seen.setdefault((request.target, webhook_id), now)
        return answer["status"], answer_headers, answer_body

    async def handle(stream: trio.SocketStream) -> None:
        state["conns"] += 1
        state["conns_max"] = max(state["conns_max"], state["conns"])
        try:
            await common.serve_h11(stream, respond, max_incomplete_event_size=65536)
        finally:
            state["conns"] -= 1
            await trio.aclose_forcefully(stream)

    def run_command(command: str) -> str:
        if command == "reset":
            reset()
            return "ok"
        if command.startswith("status "):
            answer["status"] = int(command.split()[1])
            return "ok"
        if command == "arrivals":
            first: dict[str, float] = {}
            for (_, ident), at in seen.items():
                key = ident.decode()
                first[key] = min(at, first.get(key, at))
            return json.dumps(first)
        return json.dumps({**state, "distinct": len(seen)})

    async def control() -> None:
        stdin = trio.lowlevel.FdStream(os.dup(0))
        buf = b""
        while True:
            chunk = await stdin.receive_some(4096)
            if not chunk:
                raise SystemExit(0)
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                sys.stdout.write(run_command(line.strip().decode()) + "\n")
                sys.stdout.flush()

    async def main() -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1", backlog=4096)
        sys.stdout.write(f"{listeners[0].socket.getsockname()[1]}\n")
        sys.stdout.flush()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, handle, listeners)
            await control()

    trio.run(main)


class Receiver:
    """The driver's handle on the receiver process (a bare h11-on-trio server)."""

    kind = "h11"

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] = common.spawn(
            [sys.executable, os.path.abspath(__file__), "--serve-receiver"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.close()
            raise common.BenchError("the receiver did not start")
        self.port = int(line)
        self.url = f"http://127.0.0.1:{self.port}"

    def command(self, text: str) -> str:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline()

    def reset(self) -> None:
        self.command("reset")

    def set_status(self, status: int) -> None:
        self.command(f"status {status}")

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.command("stats"))
        return result

    def arrivals(self) -> dict[str, float]:
        """Each X-Webhook-Id received since the last reset: its first arrival (monotonic)."""
        result: dict[str, float] = json.loads(self.command("arrivals"))
        return result

    def cpu_seconds(self) -> float:
        return common.cpu_seconds(self.proc.pid)

    def close(self) -> None:
        common.stop(self.proc)


NGINX_CONF = """
daemon off;
master_process on;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    log_format bench '$msec $request_uri $http_x_webhook_id';
    access_log {dir}/access.log bench;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        default_type application/json;
        location / {{ return 200 '{{"ok":true}}'; }}
        location /fail/ {{ return 500 '{{"ok":false}}'; }}
    }}
}}
"""


class NginxReceiver:
    """nginx answering `return 200` as the receiver, arrivals read from its access log
    ($msec: wall-clock milliseconds, turned into monotonic time). Only for throughput:
    it cannot answer anything but 200 and does not count connections.

    A foreground master (`daemon off`) with its own config, pid file, logs and temp
    directories in a fresh /tmp/hknXXXX: no system service, nothing of /etc/nginx or
    /var/log/nginx; it runs as whoever runs the bench (as root, its workers run as
    nginx's default unprivileged user, so the directory is made traversable)."""

    kind = "nginx"

    def __init__(self, binary: str) -> None:
        self.dir = tempfile.mkdtemp(prefix="hkn", dir="/tmp")
        os.chmod(self.dir, 0o711)
        self.port = common.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(dir=self.dir, port=self.port))
        self.log_path = os.path.join(self.dir, "access.log")
        cmd = [binary, "-p", self.dir + "/", "-c", conf]
        if _nginx_has_e(binary):  # the error log before the config is read (nginx >= 1.19.5)
            cmd += ["-e", os.path.join(self.dir, "error.log")]
        with open(os.path.join(self.dir, "stderr.log"), "wb") as err:
            self.proc = common.spawn(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err
            )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    why = self._errors()
                    self.close()
                    raise common.BenchError(f"nginx did not start: {why}") from None
                time.sleep(0.02)
        self.reset()

    def _errors(self) -> str:
        lines = []
        for name in ("stderr.log", "error.log"):
            with contextlib.suppress(OSError), open(os.path.join(self.dir, name)) as f:
                lines += [line.strip() for line in f if line.strip()]
        return " | ".join(lines[-3:]) or "no error logged"

    def reset(self) -> None:
        self._offset = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        self._rest = b""
        self._seen: dict[tuple[bytes, bytes], float] = {}
        self._requests = 0
        self._first: float | None = None
        self._last: float | None = None

    def _read(self) -> None:
        if not os.path.exists(self.log_path):
            return
        with open(self.log_path, "rb") as f:
            f.seek(self._offset)
            data = self._rest + f.read()
        self._offset += len(data) - len(self._rest)
        *lines, self._rest = data.split(b"\n")
        offset = time.time() - time.monotonic()
        for line in lines:
            msec, uri, ident = ([*line.split(b" ", 2), b"", b""])[:3]
            at = float(msec) - offset
            self._requests += 1
            self._first = at if self._first is None else min(self._first, at)
            self._last = at if self._last is None else max(self._last, at)
            self._seen.setdefault((uri, ident), at)

    def set_status(self, status: int) -> None:
        if status != 200:
            raise common.BenchError("the nginx receiver only answers 200")

    def stats(self) -> dict[str, Any]:
        self._read()
        return {
            "requests": self._requests,
            "distinct": len(self._seen),
            "first": self._first,
            "last": self._last,
            "conns_max": None,
        }

    def arrivals(self) -> dict[str, float]:
        self._read()
        first: dict[str, float] = {}
        for (_, ident), at in self._seen.items():
            key = ident.decode()
            first[key] = min(at, first.get(key, at))
        return first

    def cpu_seconds(self) -> float:
        """The master's and its workers' CPU."""
        pids = [self.proc.pid]
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                pids += [int(p) for p in f.read().split()]
        except OSError:
            pass
        return sum(common.cpu_seconds(pid) for pid in pids)

    def close(self) -> None:
        common.stop(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


def _nginx_has_e(binary: str) -> bool:
    """Whether this nginx takes `-e FILE` (its usage, from `nginx -h`, lists it)."""
    try:
        done = subprocess.run(
            [binary, "-h"], stdin=subprocess.DEVNULL, capture_output=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return b"[-e filename]" in done.stdout + done.stderr


AnyReceiver = Receiver | NginxReceiver

# Where packages put nginx; sbin directories are often missing from a user's PATH.
NGINX_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin", "/opt/nginx/sbin")


def find_nginx() -> str | None:
    """The nginx binary: on PATH, else in one of NGINX_DIRS; None if not installed."""
    return shutil.which("nginx") or shutil.which("nginx", path=os.pathsep.join(NGINX_DIRS))


def start_receiver(kind: str = "auto", nginx: str | None = None) -> AnyReceiver:
    """nginx when asked for or (`auto`) when installed, else the bare h11 receiver."""
    binary = nginx or find_nginx()
    if kind == "h11" or (kind == "auto" and not binary):
        return Receiver()
    if not binary:
        raise common.BenchError("nginx is not installed (the bench never installs it)")
    return NginxReceiver(binary)


# --------------------------------------------------------------------------- client ceilings

CEILING_KINDS = {
    "h11": "bare h11-on-trio client, one keep-alive connection per task",
    "httpx": "httpx on trio, one single-connection AsyncClient per task",
    "httpx-shared": "httpx on trio, one AsyncClient shared by all tasks",
}


def delivered_body(n: int = 0) -> bytes:
    """The body hookd POSTs for event `n` of `batches` (same shape and size)."""
    event = EVENT_TEMPLATE.format(n=n)
    return event.replace('"data":', '"timestamp":"2024-01-01T10:00:00Z","data":', 1).encode()


def delivered_headers(body: bytes) -> list[tuple[str, str]]:
    """Headers like hookd's (signatures as fixed strings of the same length), no Host."""
    return [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        ("User-Agent", "hookd/0.1.0"),
        ("Accept-Encoding", "identity"),
        ("X-Webhook-Id", "evt_" + "0" * 26),
        ("X-Webhook-Event", "cliente.criado"),
        ("X-Webhook-Timestamp", "1700000000"),
        ("X-Webhook-Attempt", "1"),
        ("X-Webhook-Signature", "sha256=" + "0" * 64),
        ("webhook-id", "evt_" + "0" * 26),
        ("webhook-timestamp", "1700000000"),
        ("webhook-signature", "v1," + "A" * 43 + "="),
    ]


def client_ceiling(
    kind: str, port: int, concurrency: int, posts: int, max_seconds: float
) -> dict[str, Any]:
    """`concurrency` trio tasks POST the same body to 127.0.0.1:`port` until `posts` are
    answered or `max_seconds` pass; nothing is stored. Runs in its own process."""
    import h11
    import httpx
    import trio

    body = delivered_body()
    headers = delivered_headers(body)
    url = f"http://127.0.0.1:{port}/ceiling"
    counts = {"left": posts, "done": 0, "non_2xx": 0, "errors": 0}
    deadline = 0.0

    def take() -> bool:
        if counts["left"] <= 0 or trio.current_time() >= deadline:
            return False
        counts["left"] -= 1
        return True

    def answered(status: int) -> None:
        counts["done"] += 1
        if not 200 <= status < 300:
            counts["non_2xx"] += 1

    async def h11_task() -> None:
        request_headers = [("Host", f"127.0.0.1:{port}"), *headers]
        stream: trio.SocketStream | None = None
        conn = h11.Connection(h11.CLIENT)
        while take():
            try:
                if stream is None:
                    stream = await trio.open_tcp_stream("127.0.0.1", port)
                    conn = h11.Connection(h11.CLIENT)
                request = h11.Request(method="POST", target="/ceiling", headers=request_headers)
                data = conn.send(request) + conn.send(h11.Data(data=body))
                await stream.send_all(data + conn.send(h11.EndOfMessage()))
                status = 0
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        conn.receive_data(await stream.receive_some(65536))
                    elif isinstance(event, h11.Response):
                        status = event.status_code
                    elif isinstance(event, h11.EndOfMessage):
                        break
                    elif isinstance(event, h11.ConnectionClosed):
                        raise trio.BrokenResourceError
                answered(status)
                conn.start_next_cycle()
            except (OSError, h11.ProtocolError, trio.BrokenResourceError):
                counts["errors"] += 1
                if stream is not None:
                    await trio.aclose_forcefully(stream)
                stream = None
        if stream is not None:
            await stream.aclose()

    def new_client(connections: int) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        return httpx.AsyncClient(
            limits=limits, trust_env=False, follow_redirects=False, timeout=30.0
        )

    httpx_headers = [(k, v) for k, v in headers if k != "Content-Length"]

    async def httpx_task(client: httpx.AsyncClient) -> None:
        while take():
            try:
                response = await client.post(url, content=body, headers=httpx_headers)
                answered(response.status_code)
            except httpx.HTTPError:
                counts["errors"] += 1

    async def main() -> float:
        nonlocal deadline
        # Clients are made before the clock starts, as a sender makes them once.
        if kind == "httpx":
            clients = [new_client(1) for _ in range(concurrency)]
        elif kind == "httpx-shared":
            clients = [new_client(concurrency)] * concurrency
        cpu["start"] = time.process_time()
        start = trio.current_time()
        deadline = start + max_seconds
        async with trio.open_nursery() as nursery:
            for i in range(concurrency):
                if kind == "h11":
                    nursery.start_soon(h11_task)
                else:
                    nursery.start_soon(httpx_task, clients[i])
        elapsed = trio.current_time() - start
        cpu["used"] = time.process_time() - cpu["start"]
        if kind != "h11":
            for client in set(clients):
                await client.aclose()
        return elapsed

    cpu = {"start": 0.0, "used": 0.0}
    elapsed = trio.run(main)
    return {
        "kind": kind,
        "concurrency": concurrency,
        "posts": counts["done"],
        "non_2xx": counts["non_2xx"],
        "errors": counts["errors"],
        "seconds": elapsed,
        "rate": counts["done"] / elapsed if elapsed > 0 else float("nan"),
        "cpu": cpu["used"] / elapsed * 100 if elapsed > 0 else float("nan"),
        "capped": counts["left"] > 0,
    }


def run_client_ceiling(
    kind: str, receiver: AnyReceiver, concurrency: int, posts: int, max_seconds: float
) -> dict[str, Any]:
    """`client_ceiling` in a separate process against `receiver`."""
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--client-ceiling",
        f"{kind},{receiver.port},{concurrency},{posts},{max_seconds}",
    ]
    proc = common.spawn(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    receiver.reset()
    try:
        recv_cpu0, t0 = receiver.cpu_seconds(), time.monotonic()
        out, _ = proc.communicate(timeout=max_seconds + 60)
        recv_cpu1, t1 = receiver.cpu_seconds(), time.monotonic()
    finally:
        common.stop(proc, 5)
    if proc.returncode != 0:
        raise common.BenchError(f"the {kind} ceiling client exited with {proc.returncode}")
    result: dict[str, Any] = json.loads(out)
    # The process's start-up is in t1 - t0; the receiver is idle then, so this is a floor.
    result["recv_cpu"] = (recv_cpu1 - recv_cpu0) / (t1 - t0) * 100
    stats = receiver.stats()
    result["received"] = stats["requests"]
    return result


# --------------------------------------------------------------------------- client


def batches(events: int) -> list[bytes]:
    out = []
    for start in range(0, events, BATCH):
        items = [EVENT_TEMPLATE.format(n=n) for n in range(start, min(events, start + BATCH))]
        out.append(("[" + ",".join(items) + "]").encode())
    return out


def create_endpoints(sock_path: str, urls: list[str]) -> list[str]:
    """One endpoint subscribed to "*" per URL; their ids."""
    ids = []
    for url in urls:
        doc = {"url": url, "events": ["*"]}
        status, answer = common.request(
            sock_path, "POST", "/v1/endpoints", json.dumps(doc).encode()
        )
        if status != 201:
            raise common.BenchError(f"creating an endpoint answered {status}: {answer[:200]!r}")
        ids.append(json.loads(answer)["id"])
    return ids


def ingest_batches(sock_path: str, bodies: list[bytes], threads: int = 4) -> int:
    """POST every body to /v1/events/batch, `threads` at a time; deliveries created."""

    def ingest(body: bytes) -> int:
        status, answer = common.request(sock_path, "POST", "/v1/events/batch", body)
        if status != 202:
            raise common.BenchError(f"batch answered {status}: {answer[:200]!r}")
        created: int = json.loads(answer)["deliveries"]
        return created

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(ingest, bodies))


def wait_nothing_pending(sock_path: str, hookd: common.Hookd, timeout: float = 10.0) -> int:
    """Poll the API until no delivery is pending; how many the last answer listed."""
    pending = -1
    deadline = time.monotonic() + timeout
    while hookd.proc.poll() is None and time.monotonic() < deadline:
        status, answer = common.request(sock_path, "GET", "/v1/deliveries?status=pending&limit=1")
        pending = len(json.loads(answer)["items"]) if status == 200 else -1
        if pending == 0:
            break
        time.sleep(0.2)
    return pending


# --------------------------------------------------------------------------- one run


def per_endpoint_limit(value: int = 0) -> int:
    """`delivery.per_endpoint_concurrency` for the runs: `value`, or hookd's default (0)."""
    if value:
        return value
    from hookd.runtime.config import DeliveryConfig

    return DeliveryConfig().per_endpoint_concurrency


def run_one(
    args: argparse.Namespace, receiver: AnyReceiver, workdir: str, endpoints: int, concurrency: int
) -> dict[str, Any]:
    """`args.events` events to `endpoints` endpoints at `delivery.concurrency` =
    `concurrency`; the figures as a dict (`ok` when every delivery arrived once)."""
    os.makedirs(workdir, exist_ok=True)
    sock_path = os.path.join(workdir, "s.sock")
    db_path = os.path.join(workdir, "hookd.db")
    config_path = os.path.join(workdir, "hookd.toml")
    delivery: dict[str, Any] = {"concurrency": concurrency}
    if args.per_endpoint:
        delivery["per_endpoint_concurrency"] = args.per_endpoint
    common.write_config(config_path, sock_path, db_path, delivery=delivery)
    expected = args.events * endpoints
    row: dict[str, Any] = {
        "E": endpoints,
        "C": concurrency,
        "eff": min(concurrency, endpoints * per_endpoint_limit(args.per_endpoint)),
        "events": args.events,
        "deliveries": expected,
    }
    bodies = batches(args.events)
    hookd: common.Hookd | None = None
    try:
        hookd = common.Hookd(config_path)
        hookd.wait_healthy(sock_path)
        urls = [f"{receiver.url}/e{i}" for i in range(endpoints)]
        create_endpoints(sock_path, urls)
        receiver.reset()

        hookd_cpu0, recv_cpu0 = common.cpu_seconds(hookd.pid), receiver.cpu_seconds()
        t0 = time.monotonic()
        created = ingest_batches(sock_path, bodies, args.ingest_threads)
        row["ingest_s"] = time.monotonic() - t0
        if created != expected:
            row["note"] = f"ingest created {created} deliveries, expected {expected}"

        seen, progress_at = 0, time.monotonic()
        stats = receiver.stats()
        while stats["requests"] < expected:
            if hookd.proc.poll() is not None:
                row["note"] = f"hookd exited with status {hookd.returncode}"
                break
            if time.monotonic() - progress_at > args.stall:
                row["note"] = f"stalled: nothing received for {args.stall:g}s"
                break
            time.sleep(0.05)
            stats = receiver.stats()
            if stats["requests"] > seen:
                seen, progress_at = stats["requests"], time.monotonic()
        hookd_cpu1, recv_cpu1 = common.cpu_seconds(hookd.pid), receiver.cpu_seconds()
        last = stats["last"] or time.monotonic()
        elapsed = last - t0
        row.update(
            received=stats["requests"],
            dupes=stats["requests"] - stats["distinct"],
            run_s=elapsed,
            rate=stats["requests"] / elapsed if elapsed > 0 else float("nan"),
            first_ms=((stats["first"] - t0) * 1000) if stats["first"] else float("nan"),
            hookd_cpu=(hookd_cpu1 - hookd_cpu0) / elapsed * 100,
            recv_cpu=(recv_cpu1 - recv_cpu0) / elapsed * 100,
            conns=stats["conns_max"],
        )

        # hookd records an attempt after its answer: give the last records a moment.
        row["api_pending"] = wait_nothing_pending(sock_path, hookd)
        hookd.stop()
        row["exit"] = hookd.returncode
        with sqlite3.connect(db_path) as db:
            by_status = dict(db.execute("SELECT status, count(*) FROM deliveries GROUP BY 1"))
            attempts, not_200 = db.execute(
                "SELECT count(*), coalesce(sum(status_code IS NOT 200), 0) FROM attempts"
            ).fetchone()
            errors = list(
                db.execute(
                    "SELECT coalesce(error_kind, status_code), error, count(*) FROM attempts "
                    "WHERE status_code IS NOT 200 GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 5"
                )
            )
        row.update(
            pending=by_status.get("pending", 0),
            failed=by_status.get("failed", 0),
            succeeded=by_status.get("succeeded", 0),
            attempts=attempts,
            not_200=not_200,
            errors=errors,
        )
    finally:
        if hookd is not None:
            hookd.stop()
            row["stderr"] = hookd.problems()
    row["ok"] = (
        "note" not in row
        and row["received"] == expected
        and row["dupes"] == 0
        and row["pending"] == 0
        and row["failed"] == 0
        and row["succeeded"] == expected
        and row["attempts"] == expected
        and not row["stderr"]
        and row["exit"] == 0
    )
    return row


# --------------------------------------------------------------------------- driver


COLUMNS = [
    ("E", "{}", 3),
    ("C", "{}", 4),
    ("eff", "{}", 4),
    ("events", "{}", 7),
    ("deliveries", "{}", 10),
    ("ingest_s", "{:.2f}", 8),
    ("first_ms", "{:.0f}", 8),
    ("run_s", "{:.2f}", 7),
    ("rate", "{:.0f}", 8),
    ("hookd_cpu", "{:.0f}%", 9),
    ("recv_cpu", "{:.0f}%", 8),
    ("conns", "{}", 5),
    ("pending", "{}", 7),
    ("failed", "{}", 6),
    ("attempts", "{}", 8),
    ("dupes", "{}", 5),
    ("ok", "{}", 5),
]
HEADINGS = {"rate": "deliv/s", "hookd_cpu": "hookd cpu", "recv_cpu": "recv cpu"}


CEILING_COLUMNS = [
    ("kind", "{}", 12),
    ("concurrency", "{}", 11),
    ("posts", "{}", 7),
    ("seconds", "{:.2f}", 7),
    ("rate", "{:.0f}", 8),
    ("cpu", "{:.0f}%", 5),
    ("recv_cpu", "{:.0f}%", 8),
    ("non_2xx", "{}", 7),
    ("errors", "{}", 6),
]


def print_table(rows: list[dict[str, Any]], ceilings: list[dict[str, Any]]) -> None:
    print("\n".join(common.format_table(rows, COLUMNS, HEADINGS)))
    print(
        "E endpoints, C delivery.concurrency, eff = min(C, E x per-endpoint), first_ms = first "
        "receipt after the first ingest request, run_s/deliv/s = first ingest request to last "
        "receipt, conns = most receiver connections at once, cpu = % of one core over run_s"
    )
    for row in rows:
        problems = []
        if row.get("note"):
            problems.append(row["note"])
        if row.get("api_pending", 0):
            problems.append(f"GET /v1/deliveries?status=pending still listed {row['api_pending']}")
        if row.get("not_200"):
            problems.append(f"{row['not_200']} attempts not 200: {row['errors']}")
        if row.get("succeeded") not in (None, row["deliveries"]):
            problems.append(f"{row['succeeded']} succeeded of {row['deliveries']}")
        if row.get("exit") not in (None, 0):
            problems.append(f"hookd exit status {row['exit']}")
        if row.get("stderr"):
            lines = row["stderr"]
            problems.append(f"hookd stderr ({len(lines)} lines):\n    " + "\n    ".join(lines[:20]))
        if problems:
            print(f"E={row['E']} C={row['C']}: " + "; ".join(problems))
    if ceilings:
        print()
        headings = {"rate": "posts/s", "cpu": "cpu", "recv_cpu": "recv cpu"}
        print("\n".join(common.format_table(ceilings, CEILING_COLUMNS, headings)))
        for kind, text in CEILING_KINDS.items():
            print(f"{kind}: {text}")
        print("ceilings post the same body to the same receiver, nothing stored; cpu = client's")


def int_list(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of integers >= 1")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20000, help="events ingested per run")
    parser.add_argument("--endpoints", type=int_list, default=[1, 10], help="e.g. 1,10")
    parser.add_argument("--concurrency", type=int_list, default=[10, 64, 200], help="e.g. 10,64")
    parser.add_argument(
        "--per-endpoint", type=int, default=0, help="delivery.per_endpoint_concurrency (0: hookd's)"
    )
    parser.add_argument("--ingest-threads", type=int, default=4, help="batches sent at once")
    parser.add_argument("--stall", type=float, default=30.0, help="give up after s with no receipt")
    parser.add_argument(
        "--receiver", choices=["auto", "h11", "nginx"], default="auto", help="auto: nginx if found"
    )
    parser.add_argument(
        "--nginx", metavar="PATH", help="the nginx binary (default: on PATH, else in /usr/sbin..)"
    )
    parser.add_argument(
        "--ceilings", action="store_true", help="also run the client ceilings at each C"
    )
    parser.add_argument("--ceiling-seconds", type=float, default=8.0, help="cap per ceiling run")
    parser.add_argument("--serve-receiver", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client-ceiling", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_receiver:
        serve_receiver()
        return 0
    if args.client_ceiling:
        kind, port, concurrency, posts, seconds = args.client_ceiling.split(",")
        result = client_ceiling(kind, int(port), int(concurrency), int(posts), float(seconds))
        print(json.dumps(result))
        return 0
    if args.events < 1 or args.ingest_threads < 1 or args.per_endpoint < 0:
        parser.error("--events and --ingest-threads must be >= 1, --per-endpoint >= 0")

    tmp = tempfile.mkdtemp(prefix="hkd", dir="/tmp")
    receiver: AnyReceiver | None = None
    rows: list[dict[str, Any]] = []
    ceilings: list[dict[str, Any]] = []
    try:
        receiver = start_receiver(args.receiver, args.nginx)
        print(f"receiver: {receiver.kind} on port {receiver.port}", file=sys.stderr)
        for endpoints in args.endpoints:
            for concurrency in args.concurrency:
                workdir = os.path.join(tmp, str(len(rows)))
                row = run_one(args, receiver, workdir, endpoints, concurrency)
                rows.append(row)
                print(
                    f"E={endpoints} C={concurrency}: {row.get('rate', 0):.0f} deliveries/s "
                    f"({'ok' if row['ok'] else 'PROBLEM'})",
                    file=sys.stderr,
                )
                shutil.rmtree(workdir, ignore_errors=True)
        if args.ceilings:
            for concurrency in args.concurrency:
                for kind in CEILING_KINDS:
                    result = run_client_ceiling(
                        kind, receiver, concurrency, args.events, args.ceiling_seconds
                    )
                    ceilings.append(result)
                    print(f"{kind} C={concurrency}: {result['rate']:.0f} posts/s", file=sys.stderr)
    finally:
        if receiver is not None:
            receiver.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print_table(rows, ceilings)
    return 0 if all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    common.script(main)
