"""Ingest over the Unix socket: events/s and ack latency, single events or batches.

Starts `hookd serve` on a throwaway config (socket and database in a fresh /tmp/hkbXXXX),
then drives it from separate load-generator processes, each running one selector loop
over many keep-alive connections with hand-built HTTP/1.1 requests. Every connection sends
`POST /v1/events` back to back (or, with `--batch N`, `POST /v1/events/batch` with N
events per request); after a warm-up, each ack's latency is recorded.

    python bench/ingest_socket.py --clients 50 --duration 10
    python bench/ingest_socket.py --ceiling      # same load against a bare trio+h11 server
    python bench/ingest_socket.py --ceiling framing   # ... a bare trio server, hookd's framing
    python bench/ingest_socket.py --batch 1000 --clients 4

`--ceiling` answers 202 without storing anything (it only frames the request and decodes
the JSON with msgspec), which shows how fast the client can push: hookd's figure should be
below the fastest ceiling, otherwise the client may be the bottleneck. Two ceilings:
`h11` frames with h11's state machine; `framing` with `hookd.protocol.http1` (its
`RequestReader` and `response_bytes`), as hookd's own server does.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import selectors
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
except ModuleNotFoundError:  # run as a script: python bench/ingest_socket.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from bench import common

from hookd.protocol import http1

PAYLOAD_PREFIX = '{"event":"cliente.criado","data":{"id":"cliente_'
PAYLOAD_SUFFIX = (
    '","nome":"João Silva","email":"joao@example.com","telefone":"(11) 99999-9999",'
    '"empresa":"Comércio Exemplo Ltda","cidade":"São Paulo","uf":"SP",'
    '"origem":"formulario_site","tags":["lead","newsletter"],'
    '"createdAt":"2024-01-01T10:00:00Z"}}'
)
COUNTER_DIGITS = 10


def payload_size() -> int:
    return len((PAYLOAD_PREFIX + "0" * COUNTER_DIGITS + PAYLOAD_SUFFIX).encode())


def batch_body(events: int) -> bytes:
    """A JSON array of `events` events (distinct data, no ids: each is a new event)."""
    items = [f"{PAYLOAD_PREFIX}{n:0{COUNTER_DIGITS}d}{PAYLOAD_SUFFIX}" for n in range(events)]
    return ("[" + ",".join(items) + "]").encode()


# --------------------------------------------------------------------------- client


class _Conn:
    __slots__ = ("out", "reader", "sent_at", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = common.response_reader()
        self.out = b""
        self.sent_at = 0.0


def _connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    sock.setblocking(False)
    return sock


def load_worker(
    index: int,
    path: str,
    nconns: int,
    warmup: float,
    duration: float,
    barrier: Any,
    results: Any,
    batch: int = 0,
) -> None:
    """One load-generator process: `nconns` connections in one selector loop.

    With `batch` > 0 every request is the same batch of that many events."""
    fixed = req_prefix = req_suffix = b""
    if batch:
        fixed = common.request_bytes("POST", "/v1/events/batch", batch_body(batch))
    else:
        # One request written whole; each sent copy puts its counter in the body.
        sample = (PAYLOAD_PREFIX + "0" * COUNTER_DIGITS + PAYLOAD_SUFFIX).encode()
        head = common.request_bytes("POST", "/v1/events", sample)[: -len(sample)]
        req_prefix = head + PAYLOAD_PREFIX.encode()
        req_suffix = PAYLOAD_SUFFIX.encode()
    counter = index * 10 ** (COUNTER_DIGITS - 1)
    sel = selectors.DefaultSelector()
    conns = [_Conn(_connect(path)) for _ in range(nconns)]

    latencies: list[float] = []
    measured_202 = measured_other = total_202 = total_other = errors = 0
    inflight = 0
    barrier.wait()
    start = time.perf_counter()
    measure_from = start + warmup
    stop = measure_from + duration
    cpu0 = time.process_time()
    cpu_measure_from = cpu_stop = cpu0

    def send(c: _Conn, now: float) -> None:
        nonlocal counter, inflight
        counter += 1
        data = fixed if batch else req_prefix + b"%010d" % counter + req_suffix
        c.sent_at = now
        inflight += 1
        try:
            n = c.sock.send(data)
        except BlockingIOError:
            n = 0
        if n < len(data):
            c.out = data[n:]
            sel.modify(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)

    def reconnect(c: _Conn) -> None:
        nonlocal errors, inflight
        errors += 1
        inflight -= 1
        sel.unregister(c.sock)
        c.sock.close()
        c.reader = common.response_reader()
        c.out = b""
        c.sock = _connect(path)
        sel.register(c.sock, selectors.EVENT_READ, c)

    for c in conns:
        sel.register(c.sock, selectors.EVENT_READ, c)
        send(c, start)

    while True:
        now = time.perf_counter()
        if now >= stop:
            if cpu_stop == cpu0:
                cpu_stop = time.process_time()
            if inflight == 0 or now >= stop + 5.0:
                break
        elif now >= measure_from and cpu_measure_from == cpu0:
            cpu_measure_from = time.process_time()
        for key, mask in sel.select(timeout=0.2):
            c = key.data
            if mask & selectors.EVENT_WRITE:
                try:
                    n = c.sock.send(c.out)
                except BlockingIOError:
                    n = 0
                except OSError:
                    reconnect(c)
                    continue
                c.out = c.out[n:]
                if not c.out:
                    sel.modify(c.sock, selectors.EVENT_READ, c)
            if not mask & selectors.EVENT_READ:
                continue
            try:
                chunk = c.sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                reconnect(c)
                now = time.perf_counter()
                if now < stop:
                    send(c, now)
                continue
            c.reader.feed(chunk)
            response = c.reader.next_event()
            if response is http1.NEED_DATA:
                continue
            status = response.head.status
            now = time.perf_counter()
            inflight -= 1
            if status == 202:
                total_202 += 1
            else:
                total_other += 1
            if measure_from <= now < stop:
                if status == 202:
                    measured_202 += 1
                else:
                    measured_other += 1
                latencies.append(now - c.sent_at)
            if now < stop:
                send(c, now)

    for c in conns:
        c.sock.close()
    results.put(
        {
            "latencies": latencies,
            "measured_202": measured_202,
            "measured_other": measured_other,
            "total_202": total_202,
            "total_other": total_other,
            "errors": errors,
            "unanswered": inflight,
            "cpu": (cpu_stop - cpu_measure_from) / duration,
        }
    )


# --------------------------------------------------------------------------- ceiling servers

CEILINGS = {
    "h11": "bare trio+h11, msgspec decode, no storage",
    "framing": "bare trio, hookd.protocol.http1 framing, msgspec decode, no storage",
}


def serve_ceiling(path: str, kind: str = "h11") -> None:
    """A bare trio server: frame each request (with h11, or with `kind` "framing" with
    `hookd.protocol.http1`), decode its JSON, answer 202, store nothing."""
    import msgspec
    import trio

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    decoder = msgspec.json.Decoder()
    encoder = msgspec.json.Encoder()
    seq = 0

    def answer(target: str, body: bytes | bytearray) -> tuple[int, bytes]:
        nonlocal seq
        if target == "/healthz":
            return 200, b'{"status":"ok"}'
        if target == "/v1/events/batch":
            docs = decoder.decode(body)
            ids = [f"evt_{seq + i}" for i in range(1, len(docs) + 1)]
            seq += len(docs)
            return 202, encoder.encode({"ids": ids, "deliveries": 0})
        doc = decoder.decode(body)
        seq += 1
        return 202, encoder.encode({"id": f"evt_{seq}", "event": doc["event"], "deliveries": 0})

    def respond(request: Any, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        status, out = answer(request.target.decode("ascii"), body)
        return (
            status,
            [("Content-Type", "application/json"), ("Content-Length", str(len(out)))],
            out,
        )

    async def handle_h11(stream: trio.SocketStream) -> None:
        await common.serve_h11(stream, respond)

    async def handle_framing(stream: trio.SocketStream) -> None:
        headers = [("Content-Type", "application/json")]
        reader = http1.RequestReader()
        try:
            while True:
                while (request := reader.next_event()) is http1.NEED_DATA:
                    reader.feed(await stream.receive_some(65536))
                if request is http1.CLOSED:
                    return
                status, out = answer(request.head.target, request.body)
                await stream.send_all(http1.response_bytes(status, headers, out))
                if not request.head.keep_alive:
                    return
        except (http1.ProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
            return

    handle = {"h11": handle_h11, "framing": handle_framing}[kind]

    async def main() -> None:
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        await sock.bind(path)
        sock.listen(socket.SOMAXCONN)
        await trio.serve_listeners(handle, [trio.SocketListener(sock)])

    trio.run(main)


# --------------------------------------------------------------------------- driver


def measure(
    *,
    ceiling: bool | str = False,
    clients: int = 50,
    duration: float = 10.0,
    warmup: float = 1.0,
    durability: str = "full",
    processes: int = 2,
    batch: int = 0,
    storage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One run against hookd, or a ceiling server (`ceiling` True or "h11": the h11 one,
    "framing": the one framing with hookd.protocol.http1); the figures as a dict."""
    kind = "h11" if ceiling is True else ceiling or None
    if kind is not None and kind not in CEILINGS:
        raise ValueError(f"unknown ceiling {kind!r}")
    tmp = tempfile.mkdtemp(prefix="hkb", dir="/tmp")
    sock_path = os.path.join(tmp, "s.sock")
    db_path = os.path.join(tmp, "hookd.db")
    log_path = os.path.join(tmp, "server.log")
    hookd: common.Hookd | None = None
    server: Any = None
    workers: list[Any] = []
    try:
        if kind is not None:
            with open(log_path, "wb") as log:
                server = common.spawn(
                    [
                        sys.executable,
                        os.path.abspath(__file__),
                        "--ceiling",
                        kind,
                        "--serve-ceiling",
                        sock_path,
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            common.wait_healthy(sock_path, server, 20.0)
            target = f"{kind} ceiling ({CEILINGS[kind]})"
        else:
            config_path = os.path.join(tmp, "hookd.toml")
            common.write_config(
                config_path, sock_path, db_path, durability=durability, storage=storage
            )
            hookd = common.Hookd(config_path)
            server = hookd.proc
            hookd.wait_healthy(sock_path)
            target = f"hookd (durability={durability})"

        nproc = max(1, min(processes, clients))
        shares = [clients // nproc + (i < clients % nproc) for i in range(nproc)]
        ctx = mp.get_context("fork") if sys.platform == "linux" else mp.get_context("spawn")
        barrier = ctx.Barrier(nproc + 1)
        results = ctx.Queue()
        workers = [
            ctx.Process(
                target=load_worker,
                args=(i, sock_path, n, warmup, duration, barrier, results, batch),
                daemon=True,
            )
            for i, n in enumerate(shares)
        ]
        for w in workers:
            w.start()
        barrier.wait(timeout=60)
        time.sleep(warmup)
        server_cpu0 = common.cpu_seconds(server.pid)
        time.sleep(duration)
        server_cpu1 = common.cpu_seconds(server.pid)
        parts = [results.get(timeout=duration + 60) for _ in workers]
        for w in workers:
            w.join()

        latencies = sorted(x for p in parts for x in p["latencies"])
        acked = sum(p["measured_202"] for p in parts)
        per_request = batch or 1
        row: dict[str, Any] = {
            "target": target,
            "ceiling": kind,
            "clients": clients,
            "processes": nproc,
            "duration": duration,
            "warmup": warmup,
            "batch": batch,
            "requests": acked,
            "requests_s": acked / duration,
            "events_s": acked * per_request / duration,
            "non_202": sum(p["measured_other"] for p in parts),
            "errors": sum(p["errors"] for p in parts),
            "unanswered": sum(p["unanswered"] for p in parts),
            "acked_total": sum(p["total_202"] for p in parts) * per_request,
            "server_cpu": (server_cpu1 - server_cpu0) / duration * 100,
            "client_cpu": [p["cpu"] * 100 for p in parts],
        }
        for name, q in (("p50_ms", 0.50), ("p90_ms", 0.90), ("p99_ms", 0.99), ("max_ms", 1.0)):
            row[name] = common.percentile(latencies, q) * 1000
        row["ok"] = row["non_202"] == 0 and row["errors"] == 0
        if hookd is not None:
            hookd.stop()
            row["exit"] = hookd.returncode
            row["stderr"] = hookd.problems()
            with sqlite3.connect(db_path) as db:
                row["stored"] = db.execute("SELECT count(*) FROM events").fetchone()[0]
            row["ok"] = (
                row["ok"]
                and row["stored"] >= row["acked_total"]
                and row["exit"] == 0
                and not row["stderr"]
            )
        return row
    finally:
        for w in workers:
            if w.is_alive():
                w.terminate()
                w.join(5)
        if hookd is not None:
            hookd.stop()
        else:
            common.stop(server, 15)
        shutil.rmtree(tmp, ignore_errors=True)


def print_report(row: dict[str, Any]) -> None:
    print(f"target            {row['target']}")
    print(f"clients           {row['clients']} over {row['processes']} load process(es)")
    print(f"duration          {row['duration']:g} s measured (+{row['warmup']:g} s warm-up)")
    if row["batch"]:
        print(f"request           {row['batch']} events, {len(batch_body(row['batch']))} bytes")
        print(f"requests acked    {row['requests']}")
        print(f"events/s          {row['events_s']:.1f}")
    else:
        print(f"payload           {payload_size()} bytes")
        print(f"events acked      {row['requests']}")
        print(f"events/s          {row['events_s']:.1f}")
    print(
        f"latency ms        p50 {row['p50_ms']:.2f}  p90 {row['p90_ms']:.2f}"
        f"  p99 {row['p99_ms']:.2f}  max {row['max_ms']:.2f}"
    )
    print(f"non-202           {row['non_202']}")
    print(f"conn errors       {row['errors']}  (unanswered at end: {row['unanswered']})")
    print(f"server cpu        {row['server_cpu']:.0f}% of one core")
    client_pct = ", ".join(f"{x:.0f}%" for x in row["client_cpu"])
    print(f"client cpu        {client_pct} of one core (per load process)")
    if "stored" in row:
        good = row["stored"] >= row["acked_total"]
        print(
            f"db events         {row['stored']} stored >= {row['acked_total']} acked in whole "
            f"run: {'OK' if good else 'MISSING EVENTS'}"
        )
    if row.get("exit") not in (None, 0):
        print(f"hookd exit        {row['exit']}")
    for line in row.get("stderr", [])[:20]:
        print(f"hookd stderr      {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50, help="keep-alive connections in all")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds not counted")
    parser.add_argument("--durability", choices=["full", "normal"], default="full")
    parser.add_argument("--processes", type=int, default=2, help="load-generator processes")
    parser.add_argument("--batch", type=int, default=0, help="events per batch request (0: single)")
    parser.add_argument(
        "--ceiling",
        nargs="?",
        const="h11",
        choices=list(CEILINGS),
        help="load a bare ceiling server instead: h11 (the default) or framing (hookd.protocol)",
    )
    parser.add_argument("--serve-ceiling", metavar="SOCKET", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_ceiling:
        serve_ceiling(args.serve_ceiling, args.ceiling or "h11")
        return 0
    if args.clients < 1 or args.processes < 1 or args.duration <= 0 or args.warmup < 0:
        parser.error("--clients and --processes must be >= 1, --duration > 0, --warmup >= 0")
    if not 0 <= args.batch <= 1000:
        parser.error("--batch must be between 0 and 1000")
    row = measure(
        ceiling=args.ceiling or False,
        clients=args.clients,
        duration=args.duration,
        warmup=args.warmup,
        durability=args.durability,
        processes=args.processes,
        batch=args.batch,
    )
    print_report(row)
    return 0 if row["ok"] else 1


if __name__ == "__main__":
    common.script(main)
