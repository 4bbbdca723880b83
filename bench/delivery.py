"""Delivery throughput: deliveries/s from the first ingest to the last receipt.

Starts a fast receiver in a separate process (a bare h11-on-trio HTTP server on 127.0.0.1
that answers every POST 200 with a tiny body, keep-alive, and records when each request
arrives), then for every combination of endpoints E and concurrency C:

- starts `hookd serve` on a throwaway config (socket and database in a fresh /tmp/hkdXXXX,
  durability "full", private networks allowed, `delivery.concurrency = C`);
- creates E endpoints subscribed to "*", each at its own path on the receiver;
- ingests N events as fast as it can with `POST /v1/events/batch`, 1000 per request, over
  the Unix socket from a few threads (so ingest is not the bottleneck);
- waits until the receiver has seen all E x N deliveries (or nothing arrives for `--stall`
  seconds), checks through the API that nothing is pending, stops hookd and counts rows
  by status in the database (nothing pending or failed, one attempt per delivery).

    python bench/delivery.py                                   # E in (1, 10), C in (10, 64, 200)
    python bench/delivery.py --events 5000 --endpoints 1 --concurrency 64 --per-endpoint 64

The receiver's and hookd's CPU use over the run are printed beside the rate: a receiver
near 100% of a core means the receiver, not hookd, is the limit. `delivery.per_endpoint_
concurrency` (hookd's default, 8, unless `--per-endpoint`) also caps attempts in flight:
with one endpoint, C above it changes nothing ("eff" is min(C, E x per-endpoint)).
"""

from __future__ import annotations

import argparse
import concurrent.futures
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
    was received) and `stats` (JSON: requests, distinct (path, X-Webhook-Id) pairs,
    monotonic times of the first and last arrival, connections open and most at once).
    """
    import h11
    import trio

    state: dict[str, Any] = {}
    seen: set[tuple[bytes, bytes]] = set()

    def reset() -> None:
        seen.clear()
        state.update(requests=0, first=None, last=None, non_post=0, conns_max=state["conns"])

    state["conns"] = 0
    reset()
    answer_body = b'{"ok":true}'
    answer_headers = [("Content-Type", "application/json"), ("Content-Length", "11")]

    async def handle(stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=65536)
        state["conns"] += 1
        state["conns_max"] = max(state["conns_max"], state["conns"])
        target = webhook_id = b""
        post = False
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(65536))
                elif isinstance(event, h11.Request):
                    target, webhook_id, post = event.target, b"", event.method == b"POST"
                    for name, value in event.headers:
                        if name == b"x-webhook-id":
                            webhook_id = value
                elif isinstance(event, h11.EndOfMessage):
                    now = time.monotonic()
                    if state["first"] is None:
                        state["first"] = now
                    state["last"] = now
                    state["requests"] += 1
                    if not post:
                        state["non_post"] += 1
                    seen.add((target, webhook_id))
                    data = conn.send(h11.Response(status_code=200, headers=answer_headers))
                    data += conn.send(h11.Data(data=answer_body)) + conn.send(h11.EndOfMessage())
                    await stream.send_all(data)
                    if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                        return
                    conn.start_next_cycle()
                elif isinstance(event, h11.ConnectionClosed):
                    return
        except (h11.ProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
            return
        finally:
            state["conns"] -= 1
            await trio.aclose_forcefully(stream)

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
                command = line.strip().decode()
                if command == "reset":
                    reset()
                    reply = "ok"
                else:
                    reply = json.dumps({**state, "distinct": len(seen)})
                sys.stdout.write(reply + "\n")
                sys.stdout.flush()

    async def main() -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1", backlog=4096)
        sys.stdout.write(f"{listeners[0].socket.getsockname()[1]}\n")
        sys.stdout.flush()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, handle, listeners)
            await control()

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver stops it
    trio.run(main)


class Receiver:
    """The driver's handle on the receiver process."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve-receiver"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            raise SystemExit("the receiver did not start")
        self.port = int(line)

    def command(self, text: str) -> str:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline()

    def reset(self) -> None:
        self.command("reset")

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.command("stats"))
        return result

    def close(self) -> None:
        stop(self.proc)


# --------------------------------------------------------------------------- client


def request(
    path: str, method: str, target: str, body: bytes = b"", timeout: float = 60.0
) -> tuple[int, bytes]:
    """One HTTP/1.1 request over the Unix socket at `path`, on its own connection."""
    head = f"{method} {target} HTTP/1.1\r\nHost: hookd\r\nConnection: close\r\n"
    if body or method == "POST":
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(head.encode() + b"\r\n" + body)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    raw = b"".join(chunks)
    head_bytes, _, content = raw.partition(b"\r\n\r\n")
    return int(head_bytes[9:12]), content


def wait_healthy(path: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"hookd exited with status {proc.returncode} before answering")
        try:
            if request(path, "GET", "/healthz", timeout=2.0)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise SystemExit(f"no healthy answer on {path} after {timeout:.0f}s")


def batches(events: int) -> list[bytes]:
    out = []
    for start in range(0, events, BATCH):
        items = [EVENT_TEMPLATE.format(n=n) for n in range(start, min(events, start + BATCH))]
        out.append(("[" + ",".join(items) + "]").encode())
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(proc: subprocess.Popen[Any] | None, timeout: float = 30.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --------------------------------------------------------------------------- one run


def run_one(
    args: argparse.Namespace, receiver: Receiver, workdir: str, endpoints: int, concurrency: int
) -> dict[str, Any]:
    os.makedirs(workdir)
    sock_path = os.path.join(workdir, "s.sock")
    db_path = os.path.join(workdir, "hookd.db")
    log_path = os.path.join(workdir, "stderr.log")
    config_path = os.path.join(workdir, "hookd.toml")
    per_endpoint = f"per_endpoint_concurrency = {args.per_endpoint}\n" if args.per_endpoint else ""
    with open(config_path, "w") as f:
        f.write(
            f'[server]\nsocket = "{sock_path}"\n\n'
            f'[storage]\npath = "{db_path}"\ndurability = "full"\n\n'
            f"[delivery]\nallow_private_networks = true\nconcurrency = {concurrency}\n"
            f"{per_endpoint}\n"
            '[log]\nlevel = "warning"\n'
        )
    expected = args.events * endpoints
    row: dict[str, Any] = {
        "E": endpoints,
        "C": concurrency,
        "eff": min(concurrency, endpoints * (args.per_endpoint or 8)),
        "events": args.events,
        "deliveries": expected,
    }
    bodies = batches(args.events)
    proc: subprocess.Popen[bytes] | None = None
    try:
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "hookd", "serve", "--config", config_path],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_healthy(sock_path, proc)
        for i in range(endpoints):
            doc = {"url": f"http://127.0.0.1:{receiver.port}/e{i}", "events": ["*"]}
            status, answer = request(sock_path, "POST", "/v1/endpoints", json.dumps(doc).encode())
            if status != 201:
                raise SystemExit(f"creating an endpoint answered {status}: {answer[:200]!r}")
        receiver.reset()

        hookd_cpu0, recv_cpu0 = cpu_seconds(proc.pid), cpu_seconds(receiver.proc.pid)
        t0 = time.monotonic()

        def ingest(body: bytes) -> int:
            status, answer = request(sock_path, "POST", "/v1/events/batch", body)
            if status != 202:
                raise RuntimeError(f"batch answered {status}: {answer[:200]!r}")
            created: int = json.loads(answer)["deliveries"]
            return created

        with concurrent.futures.ThreadPoolExecutor(args.ingest_threads) as pool:
            created = sum(pool.map(ingest, bodies))
        row["ingest_s"] = time.monotonic() - t0
        if created != expected:
            row["note"] = f"ingest created {created} deliveries, expected {expected}"

        seen, progress_at = 0, time.monotonic()
        stats = receiver.stats()
        while stats["requests"] < expected:
            if proc.poll() is not None:
                row["note"] = f"hookd exited with status {proc.returncode}"
                break
            if time.monotonic() - progress_at > args.stall:
                row["note"] = f"stalled: nothing received for {args.stall:g}s"
                break
            time.sleep(0.1)
            stats = receiver.stats()
            if stats["requests"] > seen:
                seen, progress_at = stats["requests"], time.monotonic()
        hookd_cpu1, recv_cpu1 = cpu_seconds(proc.pid), cpu_seconds(receiver.proc.pid)
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
        api_pending = -1
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            status, answer = request(sock_path, "GET", "/v1/deliveries?status=pending&limit=1")
            api_pending = len(json.loads(answer)["items"]) if status == 200 else -1
            if api_pending == 0:
                break
            time.sleep(0.2)
        row["api_pending"] = api_pending

        stop(proc)
        row["exit"] = proc.returncode
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
        stop(proc)
        with open(log_path, errors="replace") as f:
            row["stderr"] = [line.rstrip() for line in f if line.strip()]
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


def print_table(rows: list[dict[str, Any]]) -> None:
    print(" ".join(f"{HEADINGS.get(name, name):>{width}}" for name, _, width in COLUMNS))
    for row in rows:
        cells = []
        for name, fmt, width in COLUMNS:
            value = row.get(name)
            cells.append(f"{'-' if value is None else fmt.format(value):>{width}}")
        print(" ".join(cells))
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
    parser.add_argument("--serve-receiver", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_receiver:
        serve_receiver()
        return 0
    if args.events < 1 or args.ingest_threads < 1 or args.per_endpoint < 0:
        parser.error("--events and --ingest-threads must be >= 1, --per-endpoint >= 0")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    tmp = tempfile.mkdtemp(prefix="hkd", dir="/tmp")
    receiver: Receiver | None = None
    rows: list[dict[str, Any]] = []
    try:
        receiver = Receiver()
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
    finally:
        if receiver is not None:
            receiver.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print_table(rows)
    return 0 if all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
