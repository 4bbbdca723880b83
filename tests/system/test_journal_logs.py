"""Logs under systemd: syslog priority prefixes when stderr is the journal, plain lines
otherwise, sensible levels, and never a secret or a signature.

`hookd serve` runs as a real process whose stderr is a file; JOURNAL_STREAM names that
file's device and inode, as systemd does for the journal's stream.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import write_config

SECRET = "whsec_c2VncmVkby1kby1ob29rZC10ZXN0ZS0xMjM0NTY3OA=="


def _serve(directory: Path, journal: bool) -> tuple[str, list[str]]:
    """Run hookd through one failed delivery (retried) and one that ends failed."""
    config = write_config(
        directory, '[delivery]\nretry_schedule = ["0s", "100ms"]\n[log]\nlevel = "info"'
    )
    log_path = directory / "stderr.log"
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    with open(log_path, "wb") as log:
        if journal:
            info = os.fstat(log.fileno())
            env["JOURNAL_STREAM"] = f"{info.st_dev}:{info.st_ino}"
        process = subprocess.Popen(
            [sys.executable, "-m", "hookd", "serve", "--config", str(config)],
            stderr=log,
            env=env,
        )
        socket_path = str(directory / "hookd.sock")
        try:
            for _ in range(200):
                if os.path.exists(socket_path):
                    break
                time.sleep(0.05)
            transport = httpx.HTTPTransport(uds=socket_path)
            with httpx.Client(transport=transport, base_url="http://hookd") as client:
                endpoint = {"url": "http://127.0.0.1:9/refused", "events": ["*"], "secret": SECRET}
                assert client.post("/v1/endpoints", json=endpoint).status_code == 201
                event = {"event": "cliente.criado", "data": {"id": "c1"}}
                assert client.post("/v1/events", json=event).status_code == 202
                for _ in range(100):
                    items = client.get("/v1/deliveries").json()["items"]
                    if items and items[0]["status"] == "failed":
                        break
                    time.sleep(0.05)
                assert items[0]["status"] == "failed"
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=15)
    text = log_path.read_text()
    return text, text.splitlines()


def test_journal_lines_carry_priorities_and_no_secrets(short_dir: Path) -> None:
    text, lines = _serve(short_dir, journal=True)
    assert all(line[:3] in {"<3>", "<4>", "<6>", "<7>"} for line in lines), lines
    # Failed attempts are summed up per endpoint: the first at once (info), the rest when
    # the period ends or at the stop (a warning, since a delivery ended failed).
    first, rest = [line for line in lines if "action=attempts.failed" in line]
    assert first.startswith("<6>")
    assert "attempts=1 ended_failed=0" in first
    assert rest.startswith("<4>")
    assert "attempts=1 ended_failed=1" in rest
    assert "endpoint=ep_" in rest
    assert "last='connect: 127.0.0.1:9: " in rest
    assert not any("action=attempt.failed" in line for line in lines)  # per attempt: debug
    assert not any("action=delivery.failed" in line for line in lines)
    assert any(line.startswith("<6>") and "action=ready" in line for line in lines)
    assert SECRET not in text
    assert SECRET.removeprefix("whsec_") not in text
    assert "sha256=" not in text
    assert "v1," not in text


def test_plain_lines_without_the_journal(short_dir: Path) -> None:
    text, lines = _serve(short_dir, journal=False)
    assert not any(line.startswith("<") for line in lines)
    assert any(" WARNING hookd.delivery action=attempts.failed" in line for line in lines)
    assert SECRET not in text
