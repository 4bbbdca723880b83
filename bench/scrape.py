"""GET /metrics: what one scrape costs hookd's trio loop, with 100 endpoints.

Two measures of the loop's share (the target is under 5 ms):

- In process: `Metrics.set_backlog()` + `render()`, the part of the handler that runs on
  the loop, for the largest label set 100 endpoints give: every endpoint with every
  attempt outcome (8), both finished statuses and a duration histogram (12 buckets), 20
  event types, a backlog gauge pair per endpoint. The CPU time of the thread is what
  the loop spends (the wall time also counts other processes preempting it); the first
  render, which builds the text of every series' labels, is reported on its own.
- Over the socket: a real `hookd serve` (durability "full", `delivery.timeout` 500 ms,
  retry schedule 0/1/1 s) with 100 endpoints: 80 at the h11 receiver, answering 500,
  404, 302 and then 200 while events come in and are retried (so each endpoint has four
  outcomes and both statuses), 10 at a port that refuses (connect_error) and 10 at a
  listener that never answers (timeout). Once nothing is pending, GET /metrics is timed
  `--scrapes` times on one keep-alive connection. This latency is an upper bound of the
  loop's share: it includes the backlog read, which runs in a worker thread, and the
  round trip.

    python bench/scrape.py
    python bench/scrape.py --scrapes 500
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import tempfile
import time
from typing import Any

try:
    from bench import common, delivery
except ModuleNotFoundError:  # run as a script: python bench/scrape.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from bench import common, delivery

from hookd.domain.retry import AttemptResult
from hookd.runtime.metrics import Metrics

ENDPOINTS = 100
REFUSED = 10
SILENT = 10
PHASES = (500, 404, 302, 200)  # what the receiver answers, one phase after the other
PHASE_S = 1.0
EVENTS_PER_PHASE = 5
OUTCOMES = [
    AttemptResult(status_code=200),
    AttemptResult(status_code=302),
    AttemptResult(status_code=404),
    AttemptResult(status_code=500),
    AttemptResult(error_kind="timeout"),
    AttemptResult(error_kind="connect"),
    AttemptResult(error_kind="blocked"),
    AttemptResult(error_kind="network"),
]


def worst_case() -> Metrics:
    """Metrics with every series 100 endpoints can have."""
    figures = Metrics("bench")
    for n in range(20):
        figures.events_ingested.inc((f"evento.tipo{n}",))
    for e in range(ENDPOINTS):
        endpoint = f"ep_{e:016x}"
        for n, result in enumerate(OUTCOMES):
            figures.attempt_recorded(endpoint, result, 0.002 * 3**n, "succeeded")
        figures.attempt_recorded(endpoint, OUTCOMES[3], 20.0, "failed")
    for n in range(1000):
        figures.ingest_commit.observe((), n / 10_000)
    return figures


def time_render(renders: int) -> dict[str, Any]:
    """set_backlog() + render() of the worst case, in ms: the CPU time of this thread (what
    the loop spends), and the wall time (which counts other processes preempting it)."""
    figures = worst_case()
    backlog: dict[str, tuple[int, float | None]] = {
        f"ep_{e:016x}": (e * 10, time.time() - e) for e in range(ENDPOINTS)
    }
    cpu, wall = [], []
    for _ in range(renders + 1):  # the first builds the label text of every series
        began, began_cpu = time.perf_counter(), time.thread_time()
        figures.set_backlog(backlog, 123_456_789, time.time())
        text = figures.render()
        cpu.append((time.thread_time() - began_cpu) * 1000)
        wall.append((time.perf_counter() - began) * 1000)
    first, cpu, wall = cpu[0], sorted(cpu[1:]), sorted(wall[1:])
    return {
        "first_cpu_ms": first,
        "cpu_p50_ms": common.percentile(cpu, 0.5),
        "cpu_p99_ms": common.percentile(cpu, 0.99),
        "wall_p50_ms": common.percentile(wall, 0.5),
        "wall_p99_ms": common.percentile(wall, 0.99),
        "lines": text.count(b"\n"),
        "bytes": len(text),
    }


def time_scrapes(receiver: delivery.Receiver, workdir: str, scrapes: int) -> dict[str, Any]:
    """A real hookd with 100 endpoints and traffic; GET /metrics latency in ms."""
    sock_path = os.path.join(workdir, "s.sock")
    config_path = os.path.join(workdir, "hookd.toml")
    common.write_config(
        config_path,
        sock_path,
        os.path.join(workdir, "hookd.db"),
        delivery={"timeout": "500ms", "retry_schedule": ["0s", "1s", "1s"]},
        log_level="error",
    )
    silent = socket.socket()  # accepts connections (the kernel does) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(256)
    refused = common.free_port()
    hookd = common.Hookd(config_path)
    try:
        hookd.wait_healthy(sock_path)
        answered = ENDPOINTS - REFUSED - SILENT
        urls = [f"{receiver.url}/m{n}" for n in range(answered)]
        urls += [f"http://127.0.0.1:{refused}/m"] * REFUSED
        urls += [f"http://127.0.0.1:{silent.getsockname()[1]}/m"] * SILENT
        delivery.create_endpoints(sock_path, urls)
        for status in PHASES:
            receiver.set_status(status)
            delivery.ingest_batches(sock_path, delivery.batches(EVENTS_PER_PHASE))
            time.sleep(PHASE_S)
        if delivery.wait_nothing_pending(sock_path, hookd, 30) != 0:
            raise common.BenchError("deliveries still pending after 30 s")
        times = []
        with common.KeepAlive(sock_path, 10.0) as conn:
            for _ in range(scrapes):
                began = time.perf_counter()
                answer, text = conn.request("GET", "/metrics")
                times.append((time.perf_counter() - began) * 1000)
                if answer != 200:
                    raise common.BenchError(f"GET /metrics answered {answer}")
        hookd.stop()
    finally:
        hookd.stop()
        silent.close()
        receiver.set_status(200)
    times.sort()
    lines = text.decode().splitlines()
    return {
        "p50_ms": common.percentile(times, 0.5),
        "p99_ms": common.percentile(times, 0.99),
        "max_ms": times[-1],
        "lines": len(lines),
        "bytes": len(text),
        "attempt_series": sum(line.startswith("hookd_attempts_total{") for line in lines),
        "stderr": hookd.problems(("action=delivery.failed",)),
        "exit": hookd.returncode,
    }


def run(receiver: delivery.Receiver, workdir: str, scrapes: int, renders: int) -> dict[str, Any]:
    """Both measures; `ok` when each is under 5 ms."""
    render = time_render(renders)
    served = time_scrapes(receiver, workdir, scrapes)
    ok = (
        render["cpu_p99_ms"] < 5
        and render["first_cpu_ms"] < 5
        and served["p50_ms"] < 5
        and not served["stderr"]
        and served["exit"] == 0
    )
    return {"render": render, "socket": served, "ok": ok}


def summary(result: dict[str, Any]) -> str:
    """The figures in one line."""
    render, served = result["render"], result["socket"]
    return (
        f"render {render['lines']:,} lines: CPU p50 {render['cpu_p50_ms']:.2f} "
        f"p99 {render['cpu_p99_ms']:.2f} first {render['first_cpu_ms']:.2f} ms "
        f"(wall p99 {render['wall_p99_ms']:.2f}); GET over the socket p50 "
        f"{served['p50_ms']:.2f} p99 {served['p99_ms']:.2f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scrapes", type=int, default=200, help="GET /metrics over the socket")
    parser.add_argument("--renders", type=int, default=200, help="in-process renders")
    args = parser.parse_args(argv)
    receiver = delivery.Receiver()
    workdir = tempfile.mkdtemp(prefix="hkscrape", dir="/tmp")
    try:
        result = run(receiver, workdir, args.scrapes, args.renders)
    finally:
        receiver.close()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{summary(result)}\n{result['socket']['lines']} lines over the socket")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    common.script(main)
