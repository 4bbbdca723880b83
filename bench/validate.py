"""What checking events against the catalog adds to ingest, per event, in microseconds.

Times, in this process, the ingest path's CPU work on the loop for the ingest bench's
payload (`ingest_socket.PAYLOAD_*`, a `cliente.criado` with ten fields): decoding the
request and building its body (`envelope.decode_*` + `prepare`), with and without
`Catalog.check`, for single events and for a 1000-event batch; and the check alone, for
that payload and for the spec's largest example (`tarefa.criada`, two times to check).
Best of `--repeat` rounds, so the figures are the work's, not the machine's noise.

    python bench/validate.py
    python bench/validate.py --rounds 20000 --repeat 9
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable

try:
    from bench import ingest_socket
except ModuleNotFoundError:  # run as a script: python bench/validate.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from bench import ingest_socket

from hookd.domain import envelope
from hookd.domain.catalog import Catalog

RECEIVED = "2024-01-01T10:00:00Z"


def best_us(work: Callable[[], object], rounds: int, repeat: int, per: int = 1) -> float:
    """The fastest of `repeat` timings of `rounds` calls, in µs per item (`per` per call)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(rounds):
            work()
        best = min(best, time.perf_counter() - start)
    return best / (rounds * per) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20_000, help="single events per timing")
    parser.add_argument("--repeat", type=int, default=7, help="timings; the best is kept")
    args = parser.parse_args()
    catalog = Catalog()
    single = (ingest_socket.PAYLOAD_PREFIX + "0000000001" + ingest_socket.PAYLOAD_SUFFIX).encode()
    batch = ingest_socket.batch_body(1000)
    batch_rounds = max(1, args.rounds // 1000)

    def one(check: bool) -> Callable[[], object]:
        def work() -> object:
            [request] = envelope.decode_event(single).requests
            event = envelope.prepare(request, RECEIVED)
            if check:
                catalog.check(request.event, request.data)
            return event

        return work

    def many(check: bool) -> Callable[[], object]:
        def work() -> object:
            events = []
            for index, request in enumerate(envelope.decode_batch(batch, ndjson=False).requests):
                events.append(envelope.prepare(request, RECEIVED, index))
                if check:
                    catalog.check(request.event, request.data, index)
            return events

        return work

    [request] = envelope.decode_event(single).requests
    tarefa = catalog.get("tarefa.criada")
    assert tarefa is not None
    example = tarefa.example
    assert example is not None
    results = {
        "single_without_us": best_us(one(False), args.rounds, args.repeat),
        "single_with_us": best_us(one(True), args.rounds, args.repeat),
        "batch_without_us": best_us(many(False), batch_rounds, args.repeat, 1000),
        "batch_with_us": best_us(many(True), batch_rounds, args.repeat, 1000),
        "check_cliente_criado_us": best_us(
            lambda: catalog.check(request.event, request.data), args.rounds, args.repeat
        ),
        "check_tarefa_criada_us": best_us(
            lambda: catalog.check("tarefa.criada", example["data"]),
            args.rounds,
            args.repeat,
        ),
        "check_unknown_type_us": best_us(
            lambda: catalog.check("pedido.criado", request.data), args.rounds, args.repeat
        ),
    }
    for kind in ("single", "batch"):
        added = results[f"{kind}_with_us"] - results[f"{kind}_without_us"]
        results[f"{kind}_added_us"] = added
        results[f"{kind}_added_pct"] = 100 * added / results[f"{kind}_without_us"]
    print(json.dumps({k: round(v, 3) for k, v in results.items()}, indent=2))


if __name__ == "__main__":
    main()
