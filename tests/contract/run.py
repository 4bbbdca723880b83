"""Run schemathesis against a real `hookd serve`, inside a network namespace of its own.

    unshare --user --map-root-user --net python tests/contract/run.py OUT MAX_EXAMPLES SEED

The daemon listens on loopback TCP with an API token; schemathesis fetches its
`/v1/openapi.json` and exercises every operation with every check. Endpoints that
schemathesis creates get deliveries to the URLs it made up: in a namespace with nothing
but loopback, none of them leaves the machine (no DNS, no route). Afterwards the daemon
must still answer `/healthz` and `/v1/status`, and stop cleanly on SIGTERM. One JSON line
on stdout says how it went; the details are in OUT (schemathesis.txt, report.json,
hookd.log).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).parent
ADDRESS = "127.0.0.1:8787"  # nothing else listens in a fresh namespace
TOKEN = "contract-token-0123456789abcdef0123"  # an API token has 32 characters or more
CONFIG = """
[server]
socket = "{out}/hookd.sock"
listen = "{address}"
api_token = "{token}"

[storage]
path = "{out}/hookd.db"
durability = "normal"

[delivery]
allow_private_networks = true
timeout = "1s"
shutdown_grace = "2s"

[[event_type]]
name = "pedido.criado"
description = "Disparado quando um pedido é criado."
required = ["pedidoId"]
example = {{ pedidoId = "pedido_1", valor = 10.5 }}
"""


def get(path: str) -> int:
    request = urllib.request.Request(
        f"http://{ADDRESS}{path}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def main(out: Path, max_examples: str, seed: str) -> dict[str, object]:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    config = out / "hookd.toml"
    config.write_text(CONFIG.format(out=out, address=ADDRESS, token=TOKEN))
    with open(out / "hookd.log", "wb") as log:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "hookd", "serve", "--config", str(config)], stderr=log
        )
    try:
        deadline = time.monotonic() + 20
        while get("/healthz") != 200:
            if time.monotonic() > deadline or daemon.poll() is not None:
                raise RuntimeError("hookd did not start; see hookd.log")
            time.sleep(0.05)
        command = [
            str(Path(sys.executable).parent / "schemathesis"),
            "--config-file",
            str(HERE / "schemathesis.toml"),
            "--no-color",
            "run",
            f"http://{ADDRESS}/v1/openapi.json",
            "--header",
            f"Authorization: Bearer {TOKEN}",
            "--checks",
            "all",
            "--max-examples",
            max_examples,
            "--seed",
            seed,
            "--report",
            "json",
            "--report-json-path",
            str(out / "report.json"),
        ]
        with open(out / "schemathesis.txt", "wb") as text:
            tested = subprocess.run(command, stdout=text, stderr=subprocess.STDOUT, check=False)
        health, status = get("/healthz"), get("/v1/status")
        alive = daemon.poll() is None
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
        try:
            stopped = daemon.wait(timeout=15)
        except subprocess.TimeoutExpired:
            daemon.kill()
            stopped = daemon.wait()
    crashes = (out / "hookd.log").read_text(errors="replace").count("action=request.crashed")
    return {
        "schemathesis_exit": tested.returncode,
        "alive_after": alive,
        "healthz": health,
        "status": status,
        "daemon_exit": stopped,
        "crashes": crashes,
    }


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3])))
