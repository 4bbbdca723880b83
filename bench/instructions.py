"""Instructions hookd executes per event, counted by valgrind's callgrind: a figure that
does not move with the machine's load, for comparing two revisions where throughput is
too noisy to (on a shared 2-core VM the same run varies by 10-40%; these counts by ~1%).

    python bench/instructions.py                           # this checkout
    python bench/instructions.py --tree ../old --tree .    # two revisions, ratio to the first
    python bench/instructions.py --events 500              # smaller (default 2,000)
    python bench/instructions.py --storage subject_index=false  # a [storage] setting

Each tree's `hookd serve` runs from that tree (its directory first on PYTHONPATH) under
callgrind, with `durability = "full"`; this checkout's bench code drives a fixed workload
in phases, zeroing the counters before each phase and dumping them after it:

  ingest-1    N events, one at a time, on one keep-alive connection
  ingest-10   N events over 10 connections at once (several per group commit)
  batch       5 x N events in requests of 1,000
  deliver     N events in requests of 1,000 with one endpoint subscribed (a local receiver
              outside callgrind answering 200), until every delivery is recorded; per
              delivery: (this phase - N x the batch phase's figure) / N

A figure is every instruction the process ran in the phase (the writer thread and the
scheduler included) divided by its events. Each phase starts after a warm-up of the same
kind, so lazy imports and first connections are not counted. Callgrind runs the program
about 50 times slower and one thread at a time: it counts work, not speed. Needs valgrind
(`apt-get install valgrind`).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

try:
    from bench import common, delivery
except ModuleNotFoundError:  # run as a script: python bench/instructions.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from bench import common, delivery

PHASES = ("ingest-1", "ingest-10", "batch", "deliver")
CONNECTIONS = 10
START_TIMEOUT = 300.0  # a daemon under callgrind takes a while to import everything


def single_events(sock_path: str, first: int, count: int, connections: int) -> None:
    """POST /v1/events `count` times, spread over `connections` keep-alive connections."""

    def send(start: int) -> None:
        with common.KeepAlive(sock_path, START_TIMEOUT) as conn:
            for n in range(start, first + count, connections):
                body = delivery.EVENT_TEMPLATE.format(n=n).encode()
                status, answer = conn.request("POST", "/v1/events", body)
                if status != 202:
                    raise common.BenchError(f"an event answered {status}: {answer[:200]!r}")

    with concurrent.futures.ThreadPoolExecutor(connections) as pool:
        list(pool.map(send, range(first, first + connections)))


class Counted:
    """One tree's `hookd serve` under callgrind, in a throwaway directory."""

    def __init__(self, tree: str, workdir: str, storage: dict[str, Any]) -> None:
        self.workdir = workdir
        self.sock_path = os.path.join(workdir, "s.sock")
        self.out = os.path.join(workdir, "callgrind.out")
        config = os.path.join(workdir, "hookd.toml")
        common.write_config(
            config, self.sock_path, os.path.join(workdir, "hookd.db"), storage=storage
        )
        env = {**os.environ, "PYTHONPATH": os.path.abspath(tree)}
        self.proc = common.spawn(
            [
                "valgrind",
                "--tool=callgrind",
                "--quiet",
                f"--callgrind-out-file={self.out}",
                sys.executable,
                "-m",
                "hookd",
                "serve",
                "--config",
                config,
            ],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        common.wait_healthy(self.sock_path, self.proc, START_TIMEOUT)

    def _control(self, *args: str) -> None:
        subprocess.run(
            ["callgrind_control", *args, str(self.proc.pid)], check=True, capture_output=True
        )

    def measure(self, name: str, work: Any) -> int:
        """Instructions the daemon ran while `work()` ran."""
        self._control("--zero")
        work()
        self._control(f"--dump={name}")
        for path in glob.glob(f"{self.out}.*"):
            with open(path) as f:
                text = f.read()
            if f"Trigger: dump {name}\n" in text:
                return next(
                    int(line.split()[1]) for line in text.splitlines() if line.startswith("totals:")
                )
        raise common.BenchError(f"callgrind wrote no dump for {name}")

    def close(self) -> None:
        common.stop(self.proc, timeout=120)


def count(
    tree: str, events: int, receiver: delivery.Receiver, storage: dict[str, Any]
) -> dict[str, float]:
    """Instructions per event of each phase, for the daemon in `tree`."""
    workdir = tempfile.mkdtemp(prefix="hkdir")
    daemon = Counted(tree, workdir, storage)
    try:
        sock = daemon.sock_path
        figures: dict[str, float] = {}
        taken = [0]  # events numbered so far: every event its own id, no repeats

        def numbers(total: int) -> range:
            taken[0] += total
            return range(taken[0] - total, taken[0])

        def batches(total: int) -> list[bytes]:
            items = [delivery.EVENT_TEMPLATE.format(n=n) for n in numbers(total)]
            return [
                ("[" + ",".join(items[i : i + delivery.BATCH]) + "]").encode()
                for i in range(0, total, delivery.BATCH)
            ]

        for name, connections in (("ingest-1", 1), ("ingest-10", CONNECTIONS)):
            single_events(sock, numbers(100).start, 100, connections)  # warm-up
            first = numbers(events).start
            ir = daemon.measure(
                name, functools.partial(single_events, sock, first, events, connections)
            )
            figures[name] = ir / events
        delivery.ingest_batches(sock, batches(2 * delivery.BATCH), threads=1)
        bodies = batches(5 * events)
        ir = daemon.measure("batch", lambda: delivery.ingest_batches(sock, bodies, threads=1))
        figures["batch"] = ir / (5 * events)

        delivery.create_endpoints(sock, [f"{receiver.url}/instructions"])

        def deliver(bodies: list[bytes], expected: int) -> None:
            receiver.reset()
            delivery.ingest_batches(sock, bodies, threads=1)
            deadline = time.monotonic() + 30 + expected
            while receiver.stats()["requests"] < expected:
                if time.monotonic() > deadline or daemon.proc.poll() is not None:
                    raise common.BenchError(f"not all {expected} deliveries arrived")
                time.sleep(0.2)
            pending = -1
            while pending != 0:
                if time.monotonic() > deadline or daemon.proc.poll() is not None:
                    raise common.BenchError("deliveries still pending after they arrived")
                status, answer = common.request(
                    sock, "GET", "/v1/deliveries?status=pending&limit=1"
                )
                pending = len(json.loads(answer)["items"]) if status == 200 else -1
                time.sleep(0.2)

        deliver(batches(200), 200)  # warm-up: the sender's first connection
        bodies = batches(events)
        ir = daemon.measure("deliver", lambda: deliver(bodies, events))
        figures["deliver"] = (ir - figures["batch"] * events) / events
        return figures
    finally:
        daemon.close()
        shutil.rmtree(workdir, ignore_errors=True)


def revision(tree: str) -> str:
    """`tree`'s commit (short), or its path when it is not a git checkout."""
    answer = subprocess.run(
        ["git", "-C", tree, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return answer.stdout.strip() or tree


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", help="a hookd checkout (repeatable)")
    parser.add_argument("--events", type=int, default=2000, help="events per phase")
    parser.add_argument(
        "--storage",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help='a [storage] setting for every tree (VALUE in JSON: false, 5, "text")',
    )
    args = parser.parse_args()
    storage = {}
    for setting in args.storage:
        key, _, value = setting.partition("=")
        storage[key] = json.loads(value)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise common.BenchError("valgrind is not installed (apt-get install valgrind)")
    trees = args.tree or [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
    receiver = delivery.Receiver()
    try:
        results = []
        for tree in trees:
            print(f"counting {revision(tree)} ({tree}) ...", flush=True)
            results.append(count(tree, args.events, receiver, storage))
    finally:
        receiver.close()
    labels = [revision(t) for t in trees]
    rows = []
    for phase in PHASES:
        row = {"phase": phase, labels[0]: f"{results[0][phase] / 1000:,.0f}k"}
        for label, figures in zip(labels[1:], results[1:], strict=True):
            change = (figures[phase] / results[0][phase] - 1) * 100
            row[label] = f"{figures[phase] / 1000:,.0f}k ({change:+.1f}%)"
        rows.append(row)
    columns = [("phase", "{}", 10)] + [(label, "{}", 18) for label in labels]
    settings = "".join(f", storage.{k} = {json.dumps(v)}" for k, v in storage.items())
    print(
        f"\ninstructions per event (deliver: per delivery), {args.events:,} events a phase", end=""
    )
    print(settings)
    print("\n".join(common.format_table(rows, columns)))
    return 0


if __name__ == "__main__":
    common.script(main)
