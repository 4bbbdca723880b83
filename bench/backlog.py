"""A large backlog: start-up time, memory and idle CPU with 1,000,000 pending deliveries.

Builds a database with `--deliveries` pending deliveries due in the future (spread over
the next 1-24 h) across `--endpoints` endpoints, each delivery with its own ~300-byte
event by default (`--events` fewer makes each event serve several deliveries). hookd
creates the schema itself (it is started once on the empty database and stopped with
SIGTERM); the rows are then bulk-inserted with stdlib sqlite3 in big transactions and
the WAL is checkpointed. The endpoints point at 127.0.0.1 on a port nothing listens on,
but nothing is due during the run anyway.

Then `hookd serve` is started on that database and measured: seconds from process start
until `/healthz` answers over the socket and until it logs `action=ready`; its RSS (VmRSS
and VmHWM from /proc) after ready and after `--idle` seconds of idling; its CPU over those
idle seconds; and how long SIGTERM takes to stop it. The same figures for an empty
database (schema only) come first, as a baseline.

    python bench/backlog.py
    python bench/backlog.py --deliveries 100000 --idle 5

The database was just written, so it is in the page cache: these are warm-start figures.
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

try:
    from bench import common
except ModuleNotFoundError:  # run as a script: python bench/backlog.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from bench import common

CHUNK = 100_000  # rows per transaction while building
EVENT_BODY = (
    '{{"event":"cliente.criado","timestamp":"2024-01-01T10:00:00Z","data":{{'
    '"id":"cliente_{n:08d}","nome":"João Silva","email":"joao@example.com",'
    '"telefone":"(11) 99999-9999","empresa":"Comércio Exemplo Ltda","cidade":"São Paulo",'
    '"uf":"SP","origem":"formulario_site","tags":["lead","newsletter"],'
    '"createdAt":"2024-01-01T10:00:00Z"}}}}'
)


# --------------------------------------------------------------------------- building


def write_config(path: str, sock_path: str, db_path: str) -> None:
    common.write_config(path, sock_path, db_path, log_level="info")


def create_schema(config_path: str, sock_path: str) -> None:
    """Let hookd create and migrate the database, then stop it."""
    hookd = common.Hookd(config_path)
    try:
        hookd.wait_ready(sock_path, 60)
    finally:
        hookd.stop()
    if hookd.returncode != 0:
        raise common.BenchError(f"hookd exited with status {hookd.returncode} creating the schema")


def chunks(total: int, size: int) -> Iterator[range]:
    for start in range(0, total, size):
        yield range(start, min(total, start + size))


def fill(db_path: str, args: argparse.Namespace, url: str) -> dict[str, Any]:
    """Insert endpoints, events and pending deliveries; return what was built."""
    began = time.monotonic()
    now = time.time()
    rng = random.Random(1)
    db = sqlite3.connect(db_path, isolation_level=None)
    try:
        db.execute("PRAGMA synchronous = OFF")
        db.execute("PRAGMA cache_size = -1000000")  # 1 GB: the indexes stay in memory
        endpoint_ids = [f"ep_bench{i:012d}" for i in range(args.endpoints)]
        db.execute("BEGIN")
        for i, ident in enumerate(endpoint_ids):
            secret = "whsec_" + base64.b64encode(rng.randbytes(32)).decode()
            db.execute(
                "INSERT INTO endpoints (id, url, events, secret, description, enabled, origin,"
                " created_at, updated_at) VALUES (?, ?, '[\"*\"]', ?, ?, 1, 'api', ?, ?)",
                (ident, f"{url}/e{i}", secret, f"backlog {i}", now - 86400, now - 86400),
            )
        db.execute("COMMIT")

        per_event = -(-args.deliveries // args.events)
        first_seq = 1 + (db.execute("SELECT max(seq) FROM events").fetchone()[0] or 0)
        body_bytes = 0
        for part in chunks(args.events, CHUNK):
            event_rows: list[tuple[int, str, str, str, float, bytes, int]] = []
            for n in part:
                body = EVENT_BODY.format(n=n).encode()
                body_bytes += len(body)
                received = now - 3600 + n * 3600 / args.events
                event_rows.append(
                    (
                        first_seq + n,
                        f"evt_bench{n:021d}",
                        "cliente.criado",
                        "2024-01-01T10:00:00Z",
                        received,
                        body,
                        min(per_event, args.endpoints),
                    )
                )
            db.execute("BEGIN")
            db.executemany(
                "INSERT INTO events (seq, id, type, timestamp, received_at, body,"
                " delivery_count) VALUES (?, ?, ?, ?, ?, ?, ?)",
                event_rows,
            )
            db.execute("COMMIT")
        events_s = time.monotonic() - began

        for part in chunks(args.deliveries, CHUNK):
            delivery_rows: list[tuple[int, str, float, float, float]] = []
            for n in part:
                event = n // per_event
                created = now - 3600 + event * 3600 / args.events
                due = now + 3600 + rng.random() * 23 * 3600
                endpoint = endpoint_ids[(event + n % per_event) % args.endpoints]
                delivery_rows.append((first_seq + event, endpoint, due, created, created))
            db.execute("BEGIN")
            db.executemany(
                "INSERT INTO deliveries (event_seq, endpoint_id, status, next_attempt_at,"
                " created_at, updated_at) VALUES (?, ?, 'pending', ?, ?, ?)",
                delivery_rows,
            )
            db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
        vacuum = db.execute("PRAGMA auto_vacuum").fetchone()[0]
        pending = db.execute("SELECT count(*) FROM deliveries WHERE status = 'pending'").fetchone()
    finally:
        db.close()
    return {
        "build_s": time.monotonic() - began,
        "events_s": events_s,
        "avg_body": body_bytes / max(1, args.events),
        "journal_mode": mode,
        "auto_vacuum": vacuum,
        "pending": pending[0],
        "db_mib": os.path.getsize(db_path) / 2**20,
    }


# --------------------------------------------------------------------------- measuring


def measure(label: str, config_path: str, sock_path: str, idle: float) -> dict[str, Any]:
    hookd = common.Hookd(config_path)
    row: dict[str, Any] = {"db": label}
    try:
        row["health_s"], row["ready_s"] = hookd.wait_ready(sock_path, 300)
        pid = hookd.pid
        row["start_cpu"] = common.cpu_seconds(pid)
        row["rss_ready"], row["hwm_ready"] = common.memory_mib(pid)
        cpu0, t0 = common.cpu_seconds(pid), time.monotonic()
        time.sleep(idle)
        cpu1, t1 = common.cpu_seconds(pid), time.monotonic()
        row["rss_idle"], row["hwm_idle"] = common.memory_mib(pid)
        row["idle_cpu"] = (cpu1 - cpu0) / (t1 - t0) * 100
        row["alive"] = common.healthy(sock_path)
    finally:
        row["stop_s"] = hookd.stop()
        row["exit"] = hookd.returncode
    row["stderr"] = hookd.problems(("action=ready", "action=stopping", "action=stopped"))
    return row


COLUMNS = [
    ("db", "{}", 24),
    ("health_s", "{:.2f}", 8),
    ("ready_s", "{:.2f}", 7),
    ("start_cpu", "{:.2f}", 9),
    ("rss_ready", "{:.1f}", 9),
    ("hwm_ready", "{:.1f}", 9),
    ("rss_idle", "{:.1f}", 8),
    ("hwm_idle", "{:.1f}", 8),
    ("idle_cpu", "{:.2f}%", 8),
    ("stop_s", "{:.2f}", 6),
    ("exit", "{}", 4),
]


def print_table(rows: list[dict[str, Any]], idle: float) -> None:
    print("\n".join(common.format_table(rows, COLUMNS)))
    print(
        "health_s/ready_s: seconds from process start to /healthz answering / action=ready "
        "logged; start_cpu: CPU seconds used by then; rss/hwm in MiB (VmRSS/VmHWM) at ready "
        f"and after {idle:g} s idle; idle_cpu: % of one core over those {idle:g} s; "
        "stop_s: SIGTERM to exit"
    )
    for row in rows:
        if row.get("stderr"):
            print(f"{row['db']}: hookd stderr ({len(row['stderr'])} lines):")
            for line in row["stderr"][:20]:
                print(f"    {line}")
        if not row.get("alive", True):
            print(f"{row['db']}: /healthz did not answer after the idle period")


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The empty-database baseline, then the backlog (`args`: deliveries, events,
    endpoints, idle, keep); one row of figures each."""
    tmp = tempfile.mkdtemp(prefix="hkd", dir="/tmp")
    rows = []
    try:
        url = f"http://127.0.0.1:{common.free_port()}"
        for label, size in (("empty", 0), ("backlog", args.deliveries)):
            workdir = os.path.join(tmp, label)
            os.makedirs(workdir)
            sock_path = os.path.join(workdir, "s.sock")
            db_path = os.path.join(workdir, "hookd.db")
            config_path = os.path.join(workdir, "hookd.toml")
            write_config(config_path, sock_path, db_path)
            create_schema(config_path, sock_path)
            built = None
            if size:
                built = fill(db_path, args, url)
                print(
                    f"built {built['pending']} pending deliveries, {args.events} events "
                    f"(~{built['avg_body']:.0f}-byte bodies), {args.endpoints} endpoints in "
                    f"{built['build_s']:.1f} s (events {built['events_s']:.1f} s); "
                    f"db {built['db_mib']:.0f} MiB, journal_mode={built['journal_mode']}, "
                    f"auto_vacuum={built['auto_vacuum']}",
                    file=sys.stderr,
                )
                label = f"{built['pending']:,} pending"
            row = measure(label, config_path, sock_path, args.idle)
            row["built"] = built
            rows.append(row)
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=1_000_000, help="pending deliveries")
    parser.add_argument("--events", type=int, default=0, help="events (0: one per delivery)")
    parser.add_argument("--endpoints", type=int, default=10, help="endpoints sharing them")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds idle after ready")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (prints it)")
    args = parser.parse_args(argv)
    args.events = args.events or args.deliveries
    if args.deliveries < 1 or args.endpoints < 1 or args.idle <= 0:
        parser.error("--deliveries and --endpoints must be >= 1, --idle > 0")
    if not 1 <= args.events <= args.deliveries:
        parser.error("--events must be between 1 and --deliveries")

    rows = run(args)
    print_table(rows, args.idle)
    bad = any(row["stderr"] or row["exit"] != 0 or not row["alive"] for row in rows)
    return 1 if bad else 0


if __name__ == "__main__":
    common.script(main)
