"""The subject index and erasure, against a real `hookd serve`.

1. Index cost: single-event ingest (50 clients) and batch ingest (1000 events a request,
   4 clients), each with `storage.subject_index` on and off in the same run, alternating
   for `--rounds` rounds; the cost is 1 - on/off of the summed rates. Every event is the
   bench's `cliente.criado` (a client id, an e-mail, a phone: three hashes).
2. Erasure: a database of `--events` events, `--subject` of them naming one e-mail
   address (`email.recebido`, spread evenly), the others each naming their own, built by
   batch ingest, and indexed (the time the indexer took after the build is printed).
   Then, under a paced single-event load (`--rate`/s, as bench/purge.py),
   `--idle` seconds with nothing else, then `POST /v1/subjects/erase` by that address:
   how long it took (client side), and the ingest p99 while it ran against the idle one.

    python bench/subjects.py
    python bench/subjects.py --events 100000 --subject 1000 --seconds 2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from typing import Any

try:
    from bench import common, ingest_socket, purge
except ModuleNotFoundError:  # run as a script: python bench/subjects.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from bench import common, ingest_socket, purge

SUBJECT = "titular@example.com"
BUILD_BATCH = 1000
WARMUP = 1.0


def index_cost(args: argparse.Namespace) -> dict[str, Any]:
    """Ingest rates with the index on and off, single events and batches."""
    out: dict[str, Any] = {}
    for name, clients, batch in (("single", 50, 0), ("batch", 4, BATCH_SIZE)):
        runs: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
        for _ in range(args.rounds):
            for setting in ("off", "on"):
                row = ingest_socket.measure(
                    clients=clients,
                    duration=args.seconds,
                    warmup=WARMUP,
                    batch=batch,
                    storage={"subject_index": setting == "on"},
                )
                if not row["ok"]:
                    raise common.BenchError(f"{name} ingest with the index {setting} failed")
                runs[setting].append(row)
        on = sum(r["events_s"] for r in runs["on"]) / len(runs["on"])
        off = sum(r["events_s"] for r in runs["off"]) / len(runs["off"])
        out[name] = {
            "on_events_s": on,
            "off_events_s": off,
            "cost": 1 - on / off,
            "on_p99_ms": max(r["p99_ms"] for r in runs["on"]),
            "off_p99_ms": max(r["p99_ms"] for r in runs["off"]),
            "rounds": [
                (r_off["events_s"], r_on["events_s"])
                for r_off, r_on in zip(runs["off"], runs["on"], strict=True)
            ],
        }
    return out


BATCH_SIZE = 1000


def _build(sock: str, events: int, subject: int) -> float:
    """Ingest `events` events, `subject` of them naming SUBJECT; the seconds it took."""
    began = time.monotonic()
    every = max(1, events // subject)
    with common.KeepAlive(sock, 120) as conn:
        for start in range(0, events, BUILD_BATCH):
            items = []
            for n in range(start, min(events, start + BUILD_BATCH)):
                mine = n % every == 0 and n // every < subject
                data = {
                    "contaId": "conta_1",
                    "mensagemId": f"m{n}",
                    "remetente": SUBJECT if mine else f"pessoa{n}@example.com",
                    "assunto": "Pedido de orçamento",
                    "conteudo": "Olá, gostaria de um orçamento para o serviço.",
                }
                items.append({"event": "email.recebido", "data": data})
            status, body = conn.request("POST", "/v1/events/batch", json.dumps(items).encode())
            if status != 202:
                raise common.BenchError(f"building: {status} {body[:200]!r}")
    return time.monotonic() - began


def _indexed(db: str, hookd: common.Hookd, timeout: float = 600.0) -> float:
    """Wait until the subject indexer has caught up with what was built (the erasure is
    measured on an indexed database, as one is once ingest eases); the seconds it took."""
    began = time.monotonic()
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        while True:
            [(done, last)] = conn.execute(
                "SELECT done_seq, (SELECT max(seq) FROM events) FROM subject_index"
            ).fetchall()
            if done >= last:
                return time.monotonic() - began
            if time.monotonic() - began > timeout or hookd.proc.poll() is not None:
                raise common.BenchError(f"the subject index is at {done} of {last} events")
            time.sleep(0.5)


def erasure(args: argparse.Namespace) -> dict[str, Any]:
    """Erase one subject among many while a paced ingest load runs."""
    tmp = tempfile.mkdtemp(prefix="hkbs", dir="/tmp")
    sock, db, config = (os.path.join(tmp, name) for name in ("s.sock", "hookd.db", "hookd.toml"))
    common.write_config(config, sock, db, log_level="info")
    hookd = common.Hookd(config)
    load = None
    try:
        hookd.wait_healthy(sock, 60)
        built_s = _build(sock, args.events, args.subject)
        indexed_s = _indexed(db, hookd)
        load = purge.Load(sock, args.rate, args.connections)
        time.sleep(WARMUP + args.idle)
        began = time.monotonic()
        status, body = common.request(
            sock, "POST", "/v1/subjects/erase", json.dumps({"email": SUBJECT}).encode()
        )
        ended = time.monotonic()
        time.sleep(1.0)
        result = load.finish()
        if status != 200:
            raise common.BenchError(f"erase answered {status}: {body[:200]!r}")
        answer = json.loads(body)
        idle = purge.figures(
            purge.window(result, load.began + WARMUP, began), began - load.began - WARMUP
        )
        during = purge.figures(purge.window(result, began, ended), ended - began)
        return {
            "events": args.events,
            "subject": args.subject,
            "built_s": built_s,
            "indexed_s": indexed_s,
            "erase_s": ended - began,
            "answer": answer,
            "idle": idle,
            "during": during,
            "p99_ratio": during["p99_ms"] / max(1e-9, idle["p99_ms"]),
            "non_202": result["non_202"],
            "db_mib": os.path.getsize(db) / 2**20,
            "ok": answer["events"] == args.subject and result["non_202"] == 0,
        }
    finally:
        if load is not None:
            load.close()
        hookd.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Both parts; their figures."""
    return {"index": index_cost(args), "erasure": erasure(args)}


def report(result: dict[str, Any]) -> None:
    for name, row in result["index"].items():
        print(
            f"{name} ingest: index on {row['on_events_s']:,.0f} ev/s, off "
            f"{row['off_events_s']:,.0f} ev/s: cost {row['cost'] * 100:.1f}% (target <= 5%)"
        )
    e = result["erasure"]
    print(
        f"built in {e['built_s']:.1f} s, indexed {e['indexed_s']:.1f} s later; "
        f"erasure of {e['subject']:,} events among {e['events']:,}: {e['erase_s']:.2f} s "
        f"(target <= 2 s); ingest p99 {e['during']['p99_ms']:.1f} ms during it "
        f"({e['during']['requests']} requests), {e['idle']['p99_ms']:.1f} ms idle: "
        f"{e['p99_ratio']:.2f}x (target <= 2x)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="on/off pairs per ingest kind")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds a run")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--subject", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--idle", type=float, default=5.0)
    parser.add_argument("--skip-index", action="store_true", help="only the erasure")
    args = parser.parse_args(argv)
    result = {"erasure": erasure(args)} if args.skip_index else run(args)
    result.setdefault("index", {})
    report(result)
    print(json.dumps(result, default=str)[:2000], file=sys.stderr)
    return 0


if __name__ == "__main__":
    common.script(main)
