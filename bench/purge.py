"""Retention under load: ingest latency while hookd purges a large backlog of old rows.

Builds a database with `--deliveries` finished deliveries last changed 40 days ago, each
with its own ~300-byte event and one attempt (so three rows each), across 10 endpoints
subscribed to `chamado.*` (the load's `cliente.criado` events make no deliveries):
hookd creates the schema (started once on the empty file and stopped), the rows are then
bulk-inserted with stdlib sqlite3 and the WAL is checkpointed. Then, on that file, with
`durability = "full"`:

1. idle: `hookd serve` with `storage.retention = "365d"` (nothing is old enough) under a
   paced ingest load for `--idle` seconds;
2. purge: `hookd serve` again with `retention = "30d"`: the start-up round deletes the
   whole backlog and gives the space back while the same load runs; latency is taken
   from the first request until the round logs `action=retention.purged` (its counts and
   seconds give the rows purged per second), then, idle again, for as long again.

The idle figures pool the seconds before and after the purge (each is printed too): the
seconds after are as many as the purge took, so a burst of unrelated work on the machine
is about as likely to fall in the idle figures as in the purge's. The target is a purge
p99 under twice the idle p99.

The load is paced, not closed-loop: one process sends `POST /v1/events` at `--rate`
events/s over `--connections` keep-alive connections on the Unix socket, and each
latency counts from when the request was due, so a stall shows in full even when the
connections are all busy (no coordinated omission).

    python bench/purge.py
    python bench/purge.py --deliveries 100000 --idle 5
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import multiprocessing as mp
import os
import re
import selectors
import shutil
import socket
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

try:
    from bench import backlog, common, ingest_socket
except ModuleNotFoundError:  # run as a script: python bench/purge.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from bench import backlog, common, ingest_socket

from hookd.protocol import http1

AGE = 40 * 86400  # how old the backlog is
WARMUP = 1.0  # seconds of load not counted, at the start of each phase
PURGED = re.compile(
    r"action=retention\.purged deliveries=(\d+) attempts=(\d+) events=(\d+) "
    r"pages_freed=(\d+) seconds=([0-9.]+)"
)


# --------------------------------------------------------------------------- building


def fill(db_path: str, deliveries: int, endpoints: int = 10) -> dict[str, Any]:
    """Insert endpoints, and finished deliveries with one event and one attempt each."""
    began = time.monotonic()
    old = time.time() - AGE
    db = sqlite3.connect(db_path, isolation_level=None)
    try:
        db.execute("PRAGMA synchronous = OFF")
        db.execute("PRAGMA cache_size = -1000000")
        ids = [f"ep_purge{i:012d}" for i in range(endpoints)]
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO endpoints (id, url, events, secret, origin, created_at, updated_at)"
            " VALUES (?, ?, '[\"chamado.*\"]', ?, 'api', ?, ?)",
            [
                (ident, f"http://127.0.0.1:9/{ident}", "whsec_" + "A" * 43 + "=", old, old)
                for ident in ids
            ],
        )
        db.execute("COMMIT")
        for part in backlog.chunks(deliveries, backlog.CHUNK):
            at = [old + n * 0.001 for n in part]
            db.execute("BEGIN")
            db.executemany(
                "INSERT INTO events (seq, id, type, timestamp, received_at, body,"
                " delivery_count) VALUES (?, ?, 'cliente.criado', '2024-01-01T10:00:00Z', ?, ?, 1)",
                [
                    (n + 1, f"evt_purge{n:023d}", t, backlog.EVENT_BODY.format(n=n).encode())
                    for n, t in zip(part, at, strict=True)
                ],
            )
            db.executemany(
                "INSERT INTO deliveries (id, event_seq, endpoint_id, status, attempts,"
                " created_at, updated_at, last_status_code)"
                " VALUES (?, ?, ?, 'succeeded', 1, ?, ?, 200)",
                [
                    (n + 1, n + 1, ids[n % endpoints], t, t + 0.05)
                    for n, t in zip(part, at, strict=True)
                ],
            )
            db.executemany(
                "INSERT INTO attempts (delivery_id, number, started_at, duration_ms,"
                " status_code, response_excerpt) VALUES (?, 1, ?, 3.2, 200, ?)",
                [(n + 1, t, b'{"success":true}') for n, t in zip(part, at, strict=True)],
            )
            db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = db.execute("PRAGMA page_count").fetchone()[0]
    finally:
        db.close()
    return {
        "build_s": time.monotonic() - began,
        "rows": 3 * deliveries,
        "db_mib": os.path.getsize(db_path) / 2**20,
        "pages": pages,
    }


# --------------------------------------------------------------------------- paced load


def paced_load(
    path: str, rate: float, connections: int, stop: Any, started: Any, results: Any
) -> None:
    """Send POST /v1/events at `rate`/s until `stop` is set; put (due, latency) pairs.

    Request i is due at t0 + i / rate and goes out on the first free connection; its
    latency is counted from when it was due."""
    sel = selectors.DefaultSelector()
    free: collections.deque[socket.socket] = collections.deque()
    due_of: dict[socket.socket, float] = {}
    readers: dict[socket.socket, http1.ResponseReader] = {}
    for _ in range(connections):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ)
        free.append(sock)
        readers[sock] = common.response_reader()
    body = (
        ingest_socket.PAYLOAD_PREFIX + "0" * ingest_socket.COUNTER_DIGITS
    ) + ingest_socket.PAYLOAD_SUFFIX
    request = common.request_bytes("POST", "/v1/events", body.encode())
    samples: list[tuple[float, float]] = []
    other = 0
    t0 = time.monotonic()
    started.set()
    sent = 0
    while not stop.is_set():
        now = time.monotonic()
        while free and t0 + sent / rate <= now:
            sock = free.popleft()
            due_of[sock] = t0 + sent / rate
            sock.sendall(request)  # small: fits the socket buffer
            sent += 1
        wait = max(0.0, t0 + sent / rate - now) if free else 0.05
        for key, _ in sel.select(min(wait, 0.05)):
            sock = key.fileobj  # type: ignore[assignment]
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("hookd closed a connection")
            readers[sock].feed(chunk)
            response = readers[sock].next_event()
            if response is http1.NEED_DATA:
                continue
            if response.head.status != 202:
                other += 1
            due = due_of.pop(sock)
            samples.append((due, time.monotonic() - due))
            free.append(sock)
    for sock in readers:
        sock.close()
    results.put({"samples": samples, "non_202": other, "unanswered": len(due_of)})


class Load:
    """`paced_load` in a child process."""

    def __init__(self, path: str, rate: float, connections: int) -> None:
        ctx = mp.get_context("fork") if sys.platform == "linux" else mp.get_context("spawn")
        self.stop_event = ctx.Event()
        started = ctx.Event()
        self.results = ctx.Queue()
        self.proc = ctx.Process(
            target=paced_load,
            args=(path, rate, connections, self.stop_event, started, self.results),
            daemon=True,
        )
        self.proc.start()
        if not started.wait(30):
            raise common.BenchError("the load process did not start")
        self.began = time.monotonic()

    def finish(self) -> dict[str, Any]:
        self.stop_event.set()
        result: dict[str, Any] = self.results.get(timeout=30)
        self.proc.join(10)
        return result

    def close(self) -> None:
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)


def window(result: dict[str, Any], start: float, end: float) -> list[float]:
    """The latencies of the requests due between `start` and `end`."""
    return [lat for due, lat in result["samples"] if start <= due < end]


def figures(latencies: list[float], seconds: float) -> dict[str, Any]:
    """Latency percentiles (ms) and the rate of `latencies` over `seconds`."""
    ordered = sorted(latencies)
    row: dict[str, Any] = {"requests": len(ordered), "rate": len(ordered) / max(1e-9, seconds)}
    for name, q in (("p50_ms", 0.5), ("p90_ms", 0.9), ("p99_ms", 0.99), ("max_ms", 1.0)):
        row[name] = common.percentile(ordered, q) * 1000
    return row


# --------------------------------------------------------------------------- phases


def write_config(path: str, sock_path: str, db_path: str, retention: str) -> None:
    common.write_config(
        path, sock_path, db_path, log_level="info", storage={"retention": retention}
    )


@contextlib.contextmanager
def loaded(args: argparse.Namespace, config: str, sock: str) -> Iterator[tuple[common.Hookd, Load]]:
    """`hookd serve` with `config`, under the paced load; both stopped at the end."""
    hookd = common.Hookd(config)
    load = None
    try:
        hookd.wait_healthy(sock, 60)
        load = Load(sock, args.rate, args.connections)
        yield hookd, load
    finally:
        if load is not None:
            load.close()
        hookd.stop()


def idle_phase(args: argparse.Namespace, config: str, sock: str) -> dict[str, Any]:
    """The load on a hookd with nothing to purge: its latencies and stderr."""
    with loaded(args, config, sock) as (hookd, load):
        time.sleep(WARMUP + args.idle)
        result = load.finish()
    start = load.began + WARMUP
    return {
        "latencies": window(result, start, start + args.idle),
        "non_202": result["non_202"],
        "stderr": hookd.problems(("action=ready", "action=stopping", "action=stopped")),
    }


def purge_phase(args: argparse.Namespace, config: str, sock: str) -> dict[str, Any]:
    """The load while hookd purges, from the start to the round's log line, and for as
    long again after it (idle again)."""
    with loaded(args, config, sock) as (hookd, load):
        deadline = time.monotonic() + args.timeout
        while (line := _purged_line(hookd)) is None:
            if hookd.proc.poll() is not None:
                raise common.BenchError(f"hookd exited with {hookd.returncode}:\n{hookd.tail()}")
            if time.monotonic() > deadline:
                raise common.BenchError(f"the purge did not end within {args.timeout:.0f} s")
            time.sleep(0.05)
        logged_at, match = line
        start = load.began + WARMUP
        time.sleep(max(0.0, 2 * logged_at - start - time.monotonic()))
        result = load.finish()
    deliveries, attempts, events, pages, seconds = match.groups()
    row = figures(window(result, start, logged_at), logged_at - start)
    rows = int(deliveries) + int(attempts) + int(events)
    row.update(
        after=window(result, logged_at, 2 * logged_at - start),
        after_s=logged_at - start,
        non_202=result["non_202"],
        deliveries=int(deliveries),
        attempts=int(attempts),
        events=int(events),
        rows_purged=rows,
        pages_freed=int(pages),
        purge_s=float(seconds),
        rows_per_s=rows / max(1e-9, float(seconds)),
        stderr=hookd.problems(
            ("action=ready", "action=stopping", "action=stopped", "action=retention.purged")
        ),
    )
    return row


def _purged_line(hookd: common.Hookd) -> tuple[float, re.Match[str]] | None:
    for at, text in list(hookd.lines):
        match = PURGED.search(text)
        if match:
            return at, match
    return None


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build the backlog, then the idle and the purge phases; their figures."""
    tmp = tempfile.mkdtemp(prefix="hkp", dir="/tmp")
    try:
        sock = os.path.join(tmp, "s.sock")
        db_path = os.path.join(tmp, "hookd.db")
        config = os.path.join(tmp, "hookd.toml")
        write_config(config, sock, db_path, "365d")
        backlog.create_schema(config, sock)
        built = fill(db_path, args.deliveries)
        print(
            f"built {args.deliveries:,} finished deliveries with their events and attempts "
            f"({built['rows']:,} rows) in {built['build_s']:.1f} s; db {built['db_mib']:.0f} MiB",
            file=sys.stderr,
        )
        before = idle_phase(args, config, sock)
        write_config(config, sock, db_path, "30d")
        purge = purge_phase(args, config, sock)
        purge["db_mib_after"] = os.path.getsize(db_path) / 2**20
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    after = purge.pop("after")
    idle = figures(before["latencies"] + after, args.idle + purge["after_s"])
    idle["before_p99_ms"] = figures(before["latencies"], args.idle)["p99_ms"]
    idle["after_p99_ms"] = figures(after, purge["after_s"])["p99_ms"]
    ratio = purge["p99_ms"] / idle["p99_ms"] if idle["p99_ms"] else float("nan")
    ok = (
        ratio < 2
        and purge["rows_purged"] == built["rows"]
        and not before["stderr"]
        and not purge["stderr"]
        and before["non_202"] == purge["non_202"] == 0
    )
    return {
        "rate": args.rate,
        "connections": args.connections,
        "built": built,
        "idle": idle,
        "purge": purge,
        "p99_ratio": ratio,
        "ok": ok,
    }


def report(result: dict[str, Any]) -> None:
    idle, purge = result["idle"], result["purge"]
    print(f"load              {result['rate']:g} events/s over {result['connections']} conns")
    for name, row in (("idle", idle), ("during purge", purge)):
        print(
            f"{name:<17} ack p50 {row['p50_ms']:.2f}  p90 {row['p90_ms']:.2f}  "
            f"p99 {row['p99_ms']:.2f}  max {row['max_ms']:.2f} ms  "
            f"({row['requests']:,} requests, {row['rate']:.0f}/s)"
        )
    print(
        f"p99 ratio         {result['p99_ratio']:.2f}x (target < 2x); idle p99 "
        f"{idle['before_p99_ms']:.2f} ms before the purge, {idle['after_p99_ms']:.2f} after"
    )
    print(
        f"purged            {purge['rows_purged']:,} rows ({purge['deliveries']:,} deliveries, "
        f"{purge['attempts']:,} attempts, {purge['events']:,} events) in "
        f"{purge['purge_s']:.1f} s: {purge['rows_per_s']:,.0f} rows/s"
    )
    print(
        f"file              {result['built']['db_mib']:.0f} MiB before, "
        f"{purge['db_mib_after']:.0f} MiB after ({purge['pages_freed']:,} pages given back)"
    )
    for line in purge["stderr"][:20]:
        print(f"hookd stderr      {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=1_000_000, help="finished deliveries")
    parser.add_argument("--rate", type=float, default=1000.0, help="ingest events/s")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds measured idle")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds for the purge")
    args = parser.parse_args(argv)
    if args.deliveries < 1 or args.rate <= 0 or args.connections < 1 or args.idle <= 0:
        parser.error("--deliveries, --rate, --connections and --idle must be positive")
    result = run(args)
    report(result)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    common.script(main)
