"""Single-event ingest over the Unix socket: events/s and ack latency.

Starts `hookd serve` on a throwaway config (socket and database in a fresh /tmp/hkbXXXX),
then drives it from separate load-generator processes, each running one selector loop
over many keep-alive connections with hand-built HTTP/1.1 requests. Every connection sends
`POST /v1/events` back to back; after a warm-up, each ack's latency is recorded.

    python bench/ingest_socket.py --clients 50 --duration 10
    python bench/ingest_socket.py --ceiling      # same load against a bare trio+h11 server

`--ceiling` answers 202 without storing anything (it only parses the request and decodes
the JSON with msgspec), which shows how fast the client can push: hookd's figure should be
well below it, otherwise the client is the bottleneck.
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


# --------------------------------------------------------------------------- client


class _Conn:
    __slots__ = ("buf", "out", "sent_at", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.out = b""
        self.sent_at = 0.0


def _connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    sock.setblocking(False)
    return sock


def _parse_response(buf: bytearray) -> tuple[int, int] | None:
    """(status, total length) of the first whole response in `buf`, or None if incomplete."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buf[:end]).lower()
    status = int(head[9:12])
    length = 0
    at = head.find(b"\r\ncontent-length:")
    if at >= 0:
        stop = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : stop if stop >= 0 else len(head)])
    total = end + 4 + length
    return (status, total) if len(buf) >= total else None


def load_worker(
    index: int,
    path: str,
    nconns: int,
    warmup: float,
    duration: float,
    barrier: Any,
    results: Any,
) -> None:
    """One load-generator process: `nconns` connections in one selector loop."""
    head_tmpl = (
        "POST /v1/events HTTP/1.1\r\nHost: hookd\r\nContent-Type: application/json\r\n"
        f"Content-Length: {payload_size()}\r\n\r\n"
    )
    req_prefix = (head_tmpl + PAYLOAD_PREFIX).encode()
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
        data = req_prefix + b"%010d" % counter + req_suffix
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
        c.buf.clear()
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
            c.buf += chunk
            parsed = _parse_response(c.buf)
            if parsed is None:
                continue
            status, total = parsed
            del c.buf[:total]
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


# --------------------------------------------------------------------------- ceiling server


def serve_ceiling(path: str) -> None:
    """A bare trio+h11 server: parse each request, decode its JSON, answer 202, store nothing."""
    import h11
    import msgspec
    import trio

    decoder = msgspec.json.Decoder()
    encoder = msgspec.json.Encoder()

    async def handle(stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        body = bytearray()
        target = b""
        seq = 0
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(65536))
                elif isinstance(event, h11.Request):
                    target = event.target
                    body.clear()
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    if target == b"/healthz":
                        status, out = 200, b'{"status":"ok"}'
                    else:
                        doc = decoder.decode(body)
                        seq += 1
                        answer = {"id": f"evt_{seq}", "event": doc["event"], "deliveries": 0}
                        status, out = 202, encoder.encode(answer)
                    headers = [
                        ("Content-Type", "application/json"),
                        ("Content-Length", str(len(out))),
                    ]
                    data = conn.send(h11.Response(status_code=status, headers=headers))
                    data += conn.send(h11.Data(data=out)) + conn.send(h11.EndOfMessage())
                    await stream.send_all(data)
                    conn.start_next_cycle()
                else:
                    return
        except (h11.ProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
            return

    async def main() -> None:
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        await sock.bind(path)
        sock.listen(socket.SOMAXCONN)
        await trio.serve_listeners(handle, [trio.SocketListener(sock)])

    trio.run(main)


# --------------------------------------------------------------------------- driver


def wait_healthy(path: str, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with status {proc.returncode} before answering")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(2.0)
                s.connect(path)
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: hookd\r\nConnection: close\r\n\r\n")
                if s.recv(4096).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"no healthy answer on {path} after {timeout:.0f}s")


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (all its threads), from /proc; None where unavailable."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, int(q * len(sorted_values) + 0.999999) - 1))
    return sorted_values[rank]


def run(args: argparse.Namespace) -> int:
    tmp = tempfile.mkdtemp(prefix="hkb", dir="/tmp")
    sock_path = os.path.join(tmp, "s.sock")
    db_path = os.path.join(tmp, "hookd.db")
    log_path = os.path.join(tmp, "server.log")
    proc: subprocess.Popen[bytes] | None = None
    try:
        if args.ceiling:
            cmd = [sys.executable, os.path.abspath(__file__), "--serve-ceiling", sock_path]
            target = "ceiling (bare trio+h11, msgspec decode, no storage)"
        else:
            config_path = os.path.join(tmp, "hookd.toml")
            with open(config_path, "w") as f:
                f.write(
                    f'[server]\nsocket = "{sock_path}"\n\n'
                    f'[storage]\npath = "{db_path}"\ndurability = "{args.durability}"\n\n'
                    '[log]\nlevel = "warning"\n'
                )
            cmd = [sys.executable, "-m", "hookd", "serve", "--config", config_path]
            target = f"hookd (durability={args.durability})"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        wait_healthy(sock_path, proc)

        nproc = max(1, min(args.processes, args.clients))
        shares = [args.clients // nproc + (i < args.clients % nproc) for i in range(nproc)]
        ctx = mp.get_context("fork" if sys.platform == "linux" else "spawn")
        barrier = ctx.Barrier(nproc + 1)
        results = ctx.Queue()
        workers = [
            ctx.Process(
                target=load_worker,
                args=(i, sock_path, n, args.warmup, args.duration, barrier, results),
            )
            for i, n in enumerate(shares)
        ]
        for w in workers:
            w.start()
        barrier.wait(timeout=60)
        time.sleep(args.warmup)
        server_cpu0 = cpu_seconds(proc.pid)
        time.sleep(args.duration)
        server_cpu1 = cpu_seconds(proc.pid)
        parts = [results.get(timeout=args.duration + 60) for _ in workers]
        for w in workers:
            w.join()

        latencies = sorted(x for p in parts for x in p["latencies"])
        acked = sum(p["measured_202"] for p in parts)
        non_202 = sum(p["measured_other"] for p in parts)
        total_202 = sum(p["total_202"] for p in parts)
        errors = sum(p["errors"] for p in parts)
        unanswered = sum(p["unanswered"] for p in parts)

        stored: int | None = None
        if not args.ceiling:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            with sqlite3.connect(db_path) as db:
                stored = db.execute("SELECT count(*) FROM events").fetchone()[0]

        ms = [percentile(latencies, q) * 1000 for q in (0.50, 0.90, 0.99)]
        print(f"target            {target}")
        print(f"clients           {args.clients} over {nproc} load process(es)")
        print(f"duration          {args.duration:g} s measured (+{args.warmup:g} s warm-up)")
        print(f"payload           {payload_size()} bytes")
        print(f"events acked      {acked}")
        print(f"events/s          {acked / args.duration:.1f}")
        print(
            f"latency ms        p50 {ms[0]:.2f}  p90 {ms[1]:.2f}  p99 {ms[2]:.2f}"
            f"  max {(latencies[-1] * 1000 if latencies else float('nan')):.2f}"
        )
        print(f"non-202           {non_202}")
        print(f"conn errors       {errors}  (unanswered at end: {unanswered})")
        if server_cpu0 is not None and server_cpu1 is not None:
            server_pct = (server_cpu1 - server_cpu0) / args.duration * 100
            print(f"server cpu        {server_pct:.0f}% of one core")
        client_pct = ", ".join(f"{p['cpu'] * 100:.0f}%" for p in parts)
        print(f"client cpu        {client_pct} of one core (per load process)")
        ok = non_202 == 0 and errors == 0
        if stored is not None:
            good = stored >= total_202
            ok = ok and good
            print(
                f"db events         {stored} stored >= {total_202} acked in whole run: "
                f"{'OK' if good else 'MISSING EVENTS'}"
            )
        return 0 if ok else 1
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc is not None and proc.returncode not in (0, None, -signal.SIGTERM):
            with open(log_path, errors="replace") as f:
                tail = f.read()[-2000:]
            if tail:
                print(f"server log (exit {proc.returncode}):\n{tail}", file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50, help="keep-alive connections in all")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds not counted")
    parser.add_argument("--durability", choices=["full", "normal"], default="full")
    parser.add_argument("--processes", type=int, default=2, help="load-generator processes")
    parser.add_argument("--ceiling", action="store_true", help="load a bare trio+h11 server")
    parser.add_argument("--serve-ceiling", metavar="SOCKET", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_ceiling:
        serve_ceiling(args.serve_ceiling)
        return 0
    if args.clients < 1 or args.processes < 1 or args.duration <= 0 or args.warmup < 0:
        parser.error("--clients and --processes must be >= 1, --duration > 0, --warmup >= 0")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
