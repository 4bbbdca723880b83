"""Statistics latency: GET /v1/stats with a million attempts and a full day of figures.

Builds a database with `--endpoints` endpoints, `--pending` pending deliveries (as
bench/backlog.py does), `--attempts` rows in the attempts table, and a full day of
statistics for every endpoint (what a day of steady traffic leaves: a row per endpoint
for each of the last 60 minutes and the last 24 hours). Then starts `hookd serve` on it
and times `--requests` requests each of `GET /v1/stats` (every endpoint) and
`GET /v1/endpoints/{id}/stats` over one keep-alive connection on the Unix socket.

    python bench/stats.py
    python bench/stats.py --attempts 100000 --endpoints 10
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from typing import Any

try:
    from bench import backlog, common
except ModuleNotFoundError:  # run as a script: python bench/stats.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from bench import backlog, common

BUCKETS = 18


def add_history(db_path: str, attempts: int, endpoint_ids: list[str]) -> None:
    """`attempts` attempt rows, and a full hour and day of statistics per endpoint."""
    now = time.time()
    rng = random.Random(2)
    db = sqlite3.connect(db_path, isolation_level=None)
    try:
        db.execute("PRAGMA synchronous = OFF")
        for part in backlog.chunks(attempts, backlog.CHUNK):
            attempt_rows = [
                (n + 1, 1, now - 86400 + n * 86400 / attempts, rng.uniform(2, 80), 200)
                for n in part
            ]
            db.execute("BEGIN")
            db.executemany(
                "INSERT INTO attempts (delivery_id, number, started_at, duration_ms,"
                " status_code) VALUES (?, ?, ?, ?, ?)",
                attempt_rows,
            )
            db.execute("COMMIT")
        columns = ", ".join(f"b{i}" for i in range(BUCKETS))
        db.execute("BEGIN")
        for ident in endpoint_ids:
            rows = []
            for unit, count in ((60, 60), (3600, 24)):  # a full last hour and last day
                current = int(now // unit)
                for period in range(current - count + 1, current + 1):
                    latency = [rng.randrange(0, 20 * unit // 60) for _ in range(BUCKETS)]
                    total = sum(latency)
                    rows.append((ident, unit, period, total, total // 10, total - total // 10,
                                 total // 20, *latency))  # fmt: skip
            db.executemany(
                "INSERT INTO endpoint_stats (endpoint_id, unit, period, attempts,"
                f" attempts_failed, succeeded, failed, {columns})"
                f" VALUES ({', '.join('?' * (7 + BUCKETS))})",
                rows,
            )
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()


def timed(conn: common.KeepAlive, target: str, count: int) -> list[float]:
    """Milliseconds per request, sorted."""
    times = []
    for _ in range(count):
        began = time.perf_counter()
        status, body = conn.request("GET", target)
        times.append((time.perf_counter() - began) * 1000)
        if status != 200:
            raise common.BenchError(f"GET {target} answered {status}: {body[:200]!r}")
    return sorted(times)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build, serve, time; the figures."""
    tmp = tempfile.mkdtemp(prefix="hks", dir="/tmp")
    try:
        sock_path = os.path.join(tmp, "s.sock")
        db_path = os.path.join(tmp, "hookd.db")
        config_path = os.path.join(tmp, "hookd.toml")
        backlog.write_config(config_path, sock_path, db_path)
        backlog.create_schema(config_path, sock_path)
        url = f"http://127.0.0.1:{common.free_port()}"
        fill_args = argparse.Namespace(
            deliveries=args.pending, events=args.pending, endpoints=args.endpoints
        )
        backlog.fill(db_path, fill_args, url)
        endpoint_ids = [f"ep_bench{i:012d}" for i in range(args.endpoints)]
        add_history(db_path, args.attempts, endpoint_ids)
        hookd = common.Hookd(config_path)
        try:
            hookd.wait_healthy(sock_path, 60)
            with common.KeepAlive(sock_path) as conn:
                timed(conn, "/v1/stats", 2)  # warm the page cache
                every = timed(conn, "/v1/stats", args.requests)
                one = timed(conn, f"/v1/endpoints/{endpoint_ids[0]}/stats", args.requests)
        finally:
            hookd.stop()
        return {
            "endpoints": args.endpoints,
            "attempts": args.attempts,
            "stats_rows": args.endpoints * (60 + 24),
            "pending": args.pending,
            "all_p50_ms": common.percentile(every, 0.5),
            "all_p99_ms": common.percentile(every, 0.99),
            "one_p50_ms": common.percentile(one, 0.5),
            "one_p99_ms": common.percentile(one, 0.99),
            "exit": hookd.returncode,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attempts", type=int, default=1_000_000)
    parser.add_argument("--endpoints", type=int, default=100)
    parser.add_argument("--pending", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=30)
    result = run(parser.parse_args(argv))
    for key, value in result.items():
        print(f"{key}: {value:.1f}" if isinstance(value, float) else f"{key}: {value}")
    return 0


if __name__ == "__main__":
    common.script(main)
