"""Smoke check of the single-file binary: `python3 packaging/smoke.py dist/hookd`.

What `make dist-check` runs after `make dist`, and what a CI step can run on its own. It
needs only the system's python3 (standard library) and curl, never hookd's .venv/, and
runs the binary from a temporary directory outside the repository with an environment
holding nothing but PATH, as on a server with no Python environment of ours:

1. `hookd --version` prints `hookd <version>` and exits 0; `hookd version --verbose` names
   the bundled CPython, OpenSSL, SQLite, apsw, trio, httpx and msgspec and says `frozen: yes`;
2. `hookd serve` starts on a temporary config (socket, database, one endpoint: a receiver
   this script runs on 127.0.0.1) and answers `GET /healthz` on its socket;
3. `hookd status` (the CLI's client, httpx inside the binary) finds it up; an event
   POSTed through the socket with curl is accepted (202);
4. the receiver gets it, with an `X-Webhook-Signature: sha256=...` that is the HMAC-SHA256
   of the body keyed with the endpoint's secret;
5. SIGTERM to the binary (the PyInstaller bootloader) stops hookd gracefully: it logs
   `action=stopping signal=SIGTERM` and `action=stopped`, and the binary exits 0.

Any failure prints what went wrong, with the daemon's log, and exits 1.
"""

from __future__ import annotations

import argparse
import hmac
import http.server
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SECRET = "smoke-check-secret"
EVENT = '{"event":"cliente.criado","data":{"id":"1"}}'
ENV = {"PATH": "/usr/bin:/bin"}
START_TIMEOUT = 30.0
DELIVERY_TIMEOUT = 20.0
STOP_TIMEOUT = 30.0


class Failed(Exception):
    """The check failed; the message says how."""


class _Receiver(http.server.BaseHTTPRequestHandler):
    """Answers every POST with 204 and hands (path, headers, body) to the check."""

    received: queue.Queue[tuple[str, dict[str, str], bytes]] = queue.Queue()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.received.put((self.path, dict(self.headers.items()), body))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def _curl(socket_path: Path, *args: str) -> tuple[int, str]:
    """(HTTP status, body) of a curl request to hookd's socket; status 0 if none."""
    command = ["curl", "--silent", "--show-error", "--max-time", "5"]
    command += ["--unix-socket", str(socket_path), "--write-out", "\n%{http_code}", *args]
    done = subprocess.run(command, capture_output=True, text=True, env=ENV, check=False)
    body, _, status = done.stdout.rpartition("\n")
    return (int(status) if status.isdigit() else 0), body


def check_version(binary: Path, workdir: Path) -> str:
    done = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, env=ENV, cwd=workdir
    )
    line = done.stdout.strip()
    if done.returncode != 0 or not line.startswith("hookd "):
        raise Failed(
            f"`hookd --version` exited {done.returncode}, printed {line!r}, "
            f"stderr {done.stderr.strip()!r}"
        )
    return line


VERBOSE_FIELDS = ("python", "openssl", "sqlite", "apsw", "trio", "httpx", "msgspec", "frozen")


def check_verbose_version(binary: Path, workdir: Path, version_line: str) -> dict[str, str]:
    """`hookd version --verbose`: the version line, then each of VERBOSE_FIELDS once."""
    done = subprocess.run(
        [str(binary), "version", "--verbose"], capture_output=True, text=True, env=ENV, cwd=workdir
    )
    lines = done.stdout.splitlines()
    if done.returncode != 0 or lines[:1] != [version_line]:
        raise Failed(
            f"`hookd version --verbose` exited {done.returncode}, printed {done.stdout!r}, "
            f"stderr {done.stderr.strip()!r}"
        )
    fields = dict(line.partition(": ")[::2] for line in lines[1:])
    if tuple(fields) != VERBOSE_FIELDS or not all(fields.values()):
        raise Failed(f"`hookd version --verbose` names {list(fields)}, expected {VERBOSE_FIELDS}")
    if not fields["python"].startswith("CPython 3.") or not fields["openssl"].startswith("OpenSSL"):
        raise Failed(
            f"`hookd version --verbose`: python {fields['python']!r}, openssl {fields['openssl']!r}"
        )
    if not fields["frozen"].startswith("yes"):
        raise Failed(f"`hookd version --verbose` says frozen: {fields['frozen']!r}, expected yes")
    return fields


def check_status(binary: Path, workdir: Path, socket_path: Path, version_line: str) -> None:
    """`hookd status`, the CLI's HTTP client inside the binary, finds the daemon up."""
    done = subprocess.run(
        [str(binary), "status", "--socket", str(socket_path)],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=workdir,
    )
    if done.returncode != 0 or not done.stdout.startswith(f"{version_line} is up"):
        raise Failed(
            f"`hookd status` exited {done.returncode}, printed {done.stdout.strip()!r}, "
            f"stderr {done.stderr.strip()!r}"
        )


def write_config(workdir: Path, receiver_port: int) -> Path:
    config = workdir / "hookd.toml"
    config.write_text(
        f"""
[server]
socket = "{workdir / "hookd.sock"}"

[storage]
path = "{workdir / "hookd.db"}"

[delivery]
allow_private_networks = true   # the receiver is on 127.0.0.1
retry_schedule = ["0s", "1s", "2s"]

[log]
level = "info"

[[endpoint]]
url = "http://127.0.0.1:{receiver_port}/hook"
events = ["cliente.*"]
secret = "{SECRET}"
""",
        encoding="utf-8",
    )
    return config


def wait_healthy(daemon: subprocess.Popen[bytes], socket_path: Path) -> float:
    """Seconds from now until GET /healthz answers 200; fails if hookd exits first."""
    started = time.monotonic()
    while time.monotonic() - started < START_TIMEOUT:
        if daemon.poll() is not None:
            raise Failed(f"`hookd serve` exited with status {daemon.returncode} while starting")
        if socket_path.exists() and _curl(socket_path, "http://hookd/healthz")[0] == 200:
            return time.monotonic() - started
        time.sleep(0.05)
    raise Failed(f"`hookd serve` did not answer GET /healthz within {START_TIMEOUT:.0f}s")


def check_delivery(socket_path: Path) -> None:
    status, body = _curl(
        socket_path,
        "http://hookd/v1/events",
        "-H",
        "Content-Type: application/json",
        "-d",
        EVENT,
    )
    if status != 202:
        raise Failed(f"POST /v1/events answered {status}, expected 202: {body.strip()}")
    try:
        path, headers, delivered = _Receiver.received.get(timeout=DELIVERY_TIMEOUT)
    except queue.Empty:
        raise Failed(f"the receiver got no delivery within {DELIVERY_TIMEOUT:.0f}s") from None
    if path != "/hook":
        raise Failed(f"the delivery went to {path!r}, expected '/hook'")
    signature = {k.lower(): v for k, v in headers.items()}.get("x-webhook-signature", "")
    expected = "sha256=" + hmac.digest(SECRET.encode(), delivered, "sha256").hex()
    if not signature.startswith("sha256="):
        raise Failed(f"the delivery has no X-Webhook-Signature: sha256=... header: {headers}")
    if not hmac.compare_digest(signature, expected):
        raise Failed(f"X-Webhook-Signature {signature!r} does not sign the body {delivered!r}")
    try:
        envelope = json.loads(delivered)
    except ValueError:
        raise Failed(f"the delivered body is not JSON: {delivered!r}") from None
    if envelope.get("event") != "cliente.criado" or envelope.get("data") != {"id": "1"}:
        raise Failed(f"the delivered body is not the event sent: {delivered!r}")


def check_stop(daemon: subprocess.Popen[bytes], log: Path) -> None:
    daemon.send_signal(signal.SIGTERM)
    try:
        status = daemon.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise Failed(f"hookd did not stop within {STOP_TIMEOUT:.0f}s of SIGTERM") from None
    if status != 0:
        raise Failed(f"hookd exited with status {status} after SIGTERM, expected 0")
    text = log.read_text(errors="replace")
    for line in ("action=stopping signal=SIGTERM", "action=stopped"):
        if line not in text:
            raise Failed(f"hookd's log lacks {line!r}: SIGTERM did not reach it as a signal")


def run(binary: Path, workdir: Path) -> None:
    version_line = check_version(binary, workdir)
    print(f"smoke: {version_line}")
    fields = check_verbose_version(binary, workdir, version_line)
    print("smoke: " + ", ".join(f"{name} {value}" for name, value in fields.items()))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = write_config(workdir, server.server_address[1])
    socket_path = workdir / "hookd.sock"
    log = workdir / "hookd.log"
    with log.open("wb") as log_file:
        daemon = subprocess.Popen(
            [str(binary), "serve", "--config", str(config)],
            cwd=workdir,
            env=ENV,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so a failed check can end the whole group
        )
    try:
        print(f"smoke: serve answered GET /healthz after {wait_healthy(daemon, socket_path):.2f}s")
        check_status(binary, workdir, socket_path, version_line)
        print("smoke: `hookd status` finds it up")
        check_delivery(socket_path)
        print("smoke: event accepted (202) and delivered with a valid signature")
        check_stop(daemon, log)
        print("smoke: SIGTERM stopped hookd gracefully, exit status 0")
    except Failed:
        print(f"--- hookd's log ({log.name}) ---\n{log.read_text(errors='replace')}---")
        raise
    finally:
        if daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()
        server.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binary", nargs="?", default="dist/hookd", help="default: dist/hookd")
    binary = Path(parser.parse_args().binary).resolve()
    if not os.access(binary, os.X_OK):
        print(f"smoke: FAILED: {binary} is not an executable file", file=sys.stderr)
        return 1
    if shutil.which("curl", path=ENV["PATH"]) is None:
        print("smoke: FAILED: curl is needed (in /usr/bin or /bin)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="hookd-smoke-") as workdir:
        try:
            run(binary, Path(workdir))
        except Failed as exc:
            print(f"smoke: FAILED: {exc}", file=sys.stderr)
            return 1
    print("smoke: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
