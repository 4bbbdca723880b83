"""The web console with real volumes: server time of its pages over a large database.

Builds a database with `--deliveries` deliveries (4 per event, over 20 days, 15 event
types at random; at random too, 93% succeeded, 5% failed, 2% pending and due tomorrow,
so nothing is sent during the run) and `--endpoints` endpoints with an hour of
per-minute statistics each: hookd creates the schema (started once on the empty file
and stopped), the rows are then bulk-inserted with stdlib sqlite3. Then `hookd serve`
with a TCP listener, a sign-in,
and each page asked `--repeat` times over one keep-alive connection on loopback; the
time is from the request's first byte sent to the answer's last byte read (the server's
time, plus loopback's microseconds).

Targets (issue #17): the deliveries page with a filter <= 300 ms, the overview with 100
endpoints <= 100 ms (both at p95 of the repeats).

    python bench/ui.py
    python bench/ui.py --deliveries 100000 --repeat 5
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from typing import Any
from urllib.parse import urlencode

try:
    from bench import backlog, common
except ModuleNotFoundError:  # run as a script: python bench/ui.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from bench import backlog, common

TOKEN = "bench-" + "0" * 40
TYPES = [
    "cliente.criado", "cliente.atualizado", "cliente.excluido", "tarefa.criada",
    "tarefa.atualizada", "tarefa.concluida", "chamado.criado", "chamado.atualizado",
    "chamado.resolvido", "whatsapp.mensagem.recebida", "whatsapp.mensagem.enviada",
    "email.recebido", "email.enviado", "cliente.mesclado", "tarefa.excluida",
]  # fmt: skip
PER_EVENT = 4  # deliveries per event
SPAN = 20 * 86400  # creation times spread over this many seconds (within retention's 30 d)
DELIVERIES_TARGET_MS = 300.0
OVERVIEW_TARGET_MS = 100.0


def fill(db_path: str, deliveries: int, endpoints: int) -> dict[str, Any]:
    """Endpoints with an hour of statistics; events, each with PER_EVENT deliveries."""
    began = time.monotonic()
    now = time.time()
    rng = random.Random(17)
    db = sqlite3.connect(db_path, isolation_level=None)
    try:
        db.execute("PRAGMA synchronous = OFF")
        db.execute("PRAGMA cache_size = -1000000")
        ids = [f"ep_ui{i:013d}" for i in range(endpoints)]
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO endpoints (id, url, events, secret, origin, created_at, updated_at)"
            " VALUES (?, ?, '[\"*\"]', ?, 'api', ?, ?)",
            [
                (i, f"http://127.0.0.1:9/{i}", "whsec_" + "A" * 43 + "=", now - SPAN, now)
                for i in ids
            ],
        )
        minute, hour = int(now // 60), int(now // 3600)
        stats = [
            (i, 60, period, 50, 2, 48, 0, *([0] * 5), 30, 15, 5, *([0] * 10))
            for i in ids
            for period in range(minute - 59, minute + 1)
        ] + [
            (i, 3600, period, 3000, 100, 2900, 5, *([0] * 5), 1800, 900, 300, *([0] * 10))
            for i in ids
            for period in range(hour - 23, hour + 1)
        ]
        columns = ", ".join(f"b{i}" for i in range(18))
        db.executemany(
            "INSERT INTO endpoint_stats (endpoint_id, unit, period, attempts, attempts_failed,"
            f" succeeded, failed, {columns}) VALUES ({', '.join(['?'] * 25)})",
            stats,
        )
        db.execute("COMMIT")
        events = deliveries // PER_EVENT
        for part in backlog.chunks(events, backlog.CHUNK // PER_EVENT):
            db.execute("BEGIN")
            at = {n: now - SPAN + SPAN * n / events for n in part}
            db.executemany(
                "INSERT INTO events (seq, id, type, timestamp, received_at, body, delivery_count)"
                " VALUES (?, ?, ?, '2024-01-01T10:00:00Z', ?, ?, ?)",
                [
                    (
                        n + 1,
                        f"evt_ui{n:026d}",
                        rng.choice(TYPES),
                        at[n],
                        backlog.EVENT_BODY.format(n=n).encode(),
                        PER_EVENT,
                    )
                    for n in part
                ],
            )
            rows = []
            for n in part:
                for k in range(PER_EVENT):
                    ident = n * PER_EVENT + k + 1
                    bucket = rng.random()
                    status = (
                        "failed" if bucket < 0.05 else "pending" if bucket < 0.07 else "succeeded"
                    )
                    due = now + 86400 if status == "pending" else None
                    code = {"failed": 500, "pending": 503, "succeeded": 200}[status]
                    endpoint = ids[(n + k * endpoints // PER_EVENT) % endpoints]
                    rows.append((ident, n + 1, endpoint, status, due, at[n], at[n] + 1, code))
            db.executemany(
                "INSERT INTO deliveries (id, event_seq, endpoint_id, status, attempts,"
                " next_attempt_at, created_at, updated_at, last_status_code)"
                " VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?)",
                rows,
            )
            db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    return {"build_s": time.monotonic() - began, "db_mib": os.path.getsize(db_path) / 2**20}


def write_config(path: str, sock: str, db_path: str, port: int) -> None:
    common.write_config(path, sock, db_path, log_level="warning")
    with open(path) as f:
        text = f.read()
    server = f'[server]\nsocket = "{sock}"\nlisten = "127.0.0.1:{port}"\napi_token = "{TOKEN}"\n'
    with open(path, "w") as f:
        f.write(text.replace(f'[server]\nsocket = "{sock}"\n', server))


def pages(endpoint: str, now: float) -> list[tuple[str, str, float]]:
    """(name, path, target ms) of each page measured."""
    day = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(now - 86400))
    week = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(now - 7 * 86400))
    target = DELIVERIES_TARGET_MS

    def deliveries(**query: str) -> str:
        return "/ui/deliveries?" + urlencode(query)

    return [
        ("overview, 100 endpoints", "/ui/", OVERVIEW_TARGET_MS),
        ("deliveries, no filter", "/ui/deliveries", target),
        ("deliveries, status=failed", deliveries(status="failed"), target),
        ("deliveries, endpoint", deliveries(endpoint=endpoint), target),
        ("deliveries, type", deliveries(type="chamado.resolvido"), target),
        ("deliveries, since 24 h", deliveries(since=day), target),
        ("deliveries, until 7 days ago", deliveries(until=week), target),
        ("deliveries, failed + endpoint + type",
         deliveries(status="failed", endpoint=endpoint, type="cliente.criado"), target),
        ("deliveries, pending + until 7 days ago",
         deliveries(status="pending", until=week), target),
    ]  # fmt: skip


def measure(port: int, repeat: int, endpoint: str) -> list[dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    host = {"Host": f"127.0.0.1:{port}"}
    conn.request(
        "POST",
        "/ui/signin",
        body=urlencode({"token": TOKEN}),
        headers={**host, "Content-Type": "application/x-www-form-urlencoded"},
    )
    answer = conn.getresponse()
    answer.read()
    cookie = (answer.getheader("Set-Cookie") or "").split(";")[0]
    if answer.status != 303 or not cookie:
        raise common.BenchError(f"sign-in answered {answer.status}")
    results = []
    for name, path, target in pages(endpoint, time.time()):
        times = []
        for _ in range(repeat + 1):  # the first warms the page cache, not counted
            began = time.perf_counter()
            conn.request("GET", path, headers={**host, "Cookie": cookie})
            answer = conn.getresponse()
            body = answer.read()
            times.append((time.perf_counter() - began) * 1000)
            if answer.status != 200:
                raise common.BenchError(f"{path} answered {answer.status}: {body[:200]!r}")
        ordered = sorted(times[1:])
        p95 = common.percentile(ordered, 0.95)
        results.append(
            {
                "page": name,
                "path": path,
                "p50_ms": common.percentile(ordered, 0.5),
                "p95_ms": p95,
                "max_ms": ordered[-1],
                "rows": body.count(b"<tr data-id="),
                "target_ms": target,
                "ok": p95 <= target,
            }
        )
    conn.close()
    return results


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build, serve, measure; everything under a temporary directory removed at the end."""
    workdir = tempfile.mkdtemp(prefix="hkui", dir="/tmp")
    try:
        sock, db_path = os.path.join(workdir, "s"), os.path.join(workdir, "hookd.db")
        config = os.path.join(workdir, "hookd.toml")
        port = common.free_port()
        write_config(config, sock, db_path, port)
        hookd = common.Hookd(config)  # the schema, on the empty file
        hookd.wait_healthy(sock)
        hookd.stop()
        built = fill(db_path, args.deliveries, args.endpoints)
        hookd = common.Hookd(config)
        try:
            hookd.wait_healthy(sock, 120)
            pages_measured = measure(port, args.repeat, "ep_ui" + "0" * 12 + "7")
        finally:
            hookd.stop()
        return {
            "built": built,
            "deliveries": args.deliveries,
            "endpoints": args.endpoints,
            "pages": pages_measured,
            "ok": all(page["ok"] for page in pages_measured),
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def summary(result: dict[str, Any]) -> str:
    """One line per page."""
    return "\n".join(
        f"{page['page']}: p50 {page['p50_ms']:.1f} ms, p95 {page['p95_ms']:.1f} ms, "
        f"max {page['max_ms']:.1f} ms ({page['rows']} rows) "
        f"[{'PASS' if page['ok'] else 'FAIL'} <= {page['target_ms']:.0f} ms]"
        for page in result["pages"]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=1_000_000)
    parser.add_argument("--endpoints", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    result = run(args)
    print(
        f"{result['deliveries']:,} deliveries, {result['endpoints']} endpoints, built in "
        f"{result['built']['build_s']:.0f} s ({result['built']['db_mib']:.0f} MiB)"
    )
    print(summary(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    common.script(main)
