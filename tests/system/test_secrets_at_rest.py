"""Endpoint secrets at rest, against real `hookd serve` processes and real files: sealed
with a key from `storage.key_file` or the `hookd-key` credential, nowhere in clear in the
database, its WAL or a backup; a database from before the key sealed at the next start;
a missing, wrong or loose key refused at start with one clear line; `hookd db
rotate-key` keeping every delivery verifiable with the same secret.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio

from tests.daemon_process import DaemonProcess
from tests.receiver import Receiver, serve_receiver

HOOKD = [sys.executable, "-m", "hookd"]
SECRET = "whsec_" + "S3cr3tEmClaro" * 3  # easy to grep for
NEXT = "whsec_" + "ProximoSegredo" * 3


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HOOKD, *argv], capture_output=True, text=True, check=False)


def _in_clear(directory: Path, *needles: str) -> dict[str, list[str]]:
    """Which files under `directory` hold which needles, byte for byte."""
    found: dict[str, list[str]] = {}
    for path in sorted(directory.iterdir()):
        if path.is_file():
            data = path.read_bytes()
            hits = [n for n in needles if n.encode() in data]
            if hits:
                found[path.name] = hits
    return found


def _signed_with(received: Any, secret: str) -> bool:
    expected = hmac.new(secret.encode(), received.body, hashlib.sha256).hexdigest()
    return bool(received.headers["x-webhook-signature"] == f"sha256={expected}")


async def _deliver_one(daemon: DaemonProcess, client: Any, receiver: Receiver, n: int) -> Any:
    event = {"event": "cliente.criado", "data": {"id": f"cliente_{n}"}}
    assert (await client.post("/v1/events", json=event)).status_code == 202
    with trio.fail_after(10):
        [*_, last] = await receiver.wait_for(n)
    return last


async def _stop(daemon: DaemonProcess, client: Any) -> None:
    await client.aclose()
    daemon.signal(signal.SIGTERM)
    assert await daemon.wait() == 0


def _key_config(key: Path) -> str:
    return f'[storage]\nkey_file = "{key}"\n'


async def test_sealed_in_the_database_its_wal_and_a_backup(short_dir: Path) -> None:
    key = short_dir / "hookd.key"
    made = _run("db", "init-key", str(key))
    assert made.returncode == 0, made.stderr
    assert os.stat(key).st_mode & 0o777 == 0o600
    assert _run("db", "init-key", str(key)).returncode == 1  # never over an existing key
    daemon = DaemonProcess(short_dir, _key_config(key))
    async with trio.open_nursery() as nursery, serve_receiver() as receiver:
        client = await daemon.start(nursery)
        spec = {"url": receiver.url, "events": ["*"], "secret": SECRET}
        answer = await client.post("/v1/endpoints", json=spec)
        assert answer.status_code == 201, answer.text
        created = answer.json()
        staged = await client.post(
            f"/v1/endpoints/{created['id']}/rotate-secret",
            json={"secret": NEXT, "activate_at": "2099-01-01T00:00:00Z"},
        )
        assert staged.status_code == 200, staged.text
        received = await _deliver_one(daemon, client, receiver, 1)
        assert _signed_with(received, SECRET)
        status = (await client.get("/v1/status")).json()
        assert status["secrets_key"]
        assert status["secrets_key"] in made.stderr
        backup = short_dir / "backup.db"
        ran = await trio.to_thread.run_sync(
            _run, "db", "backup", str(backup), "--config", str(daemon.config)
        )
        assert ran.returncode == 0, ran.stderr
        assert _in_clear(short_dir, SECRET, NEXT) == {}, "a secret in clear while hookd runs"
        await _stop(daemon, client)
    assert _in_clear(short_dir, SECRET, NEXT) == {}


async def test_a_database_from_before_the_key_is_sealed_at_the_next_start(
    short_dir: Path,
) -> None:
    daemon = DaemonProcess(short_dir)
    async with trio.open_nursery() as nursery, serve_receiver() as receiver:
        client = await daemon.start(nursery)
        assert (await client.get("/v1/status")).json()["secrets_key"] is None
        spec = {"url": receiver.url, "events": ["*"], "secret": SECRET}
        assert (await client.post("/v1/endpoints", json=spec)).status_code == 201
        await _stop(daemon, client)
        assert "hookd.db" in _in_clear(short_dir, SECRET)  # no key: in clear, as said
        assert daemon.lines("action=secrets.in_clear")

        key = short_dir / "hookd.key"
        assert _run("db", "init-key", str(key)).returncode == 0
        daemon.rewrite(_key_config(key))
        client = await daemon.start(nursery)
        assert _in_clear(short_dir, SECRET) == {}
        received = await _deliver_one(daemon, client, receiver, 1)
        assert _signed_with(received, SECRET)
        await _stop(daemon, client)


def _refused(config: Path) -> str:
    """`hookd serve` refusing to start: its one `hookd: ` line."""
    ran = subprocess.run(
        [*HOOKD, "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert ran.returncode == 1, ran.stderr
    assert "Traceback" not in ran.stderr
    [line] = [line for line in ran.stderr.splitlines() if line.startswith("hookd: ")]
    return line


async def test_a_missing_wrong_or_loose_key_stops_the_start_with_one_line(
    short_dir: Path,
) -> None:
    key = short_dir / "hookd.key"
    assert _run("db", "init-key", str(key)).returncode == 0
    daemon = DaemonProcess(short_dir, _key_config(key))
    async with trio.open_nursery() as nursery:
        client = await daemon.start(nursery)
        spec = {"url": "http://127.0.0.1:9/x", "events": ["*"], "secret": SECRET}
        assert (await client.post("/v1/endpoints", json=spec)).status_code == 201
        await _stop(daemon, client)

    daemon.rewrite()  # no key at all
    assert "encrypted" in _refused(daemon.config)
    assert "storage.key_file" in _refused(daemon.config)

    other = short_dir / "other.key"
    assert _run("db", "init-key", str(other)).returncode == 0
    daemon.rewrite(_key_config(other))
    assert "the key given is" in _refused(daemon.config)

    daemon.rewrite(_key_config(key))
    os.chmod(key, 0o644)
    assert "chmod 600" in _refused(daemon.config)
    os.chmod(key, 0o600)

    key.write_text("not a key\n")
    assert "line 1 of the key file" in _refused(daemon.config)


async def test_the_credential_comes_first(short_dir: Path) -> None:
    credentials = short_dir / "credentials"
    credentials.mkdir()
    assert _run("db", "init-key", str(credentials / "hookd-key")).returncode == 0
    daemon = DaemonProcess(short_dir, _key_config(short_dir / "absent.key"))
    env = {"CREDENTIALS_DIRECTORY": str(credentials)}
    async with trio.open_nursery() as nursery:
        client = await daemon.start(nursery, env)
        spec = {"url": "http://127.0.0.1:9/x", "events": ["*"], "secret": SECRET}
        assert (await client.post("/v1/endpoints", json=spec)).status_code == 201
        assert (await client.get("/v1/status")).json()["secrets_key"]
        assert _in_clear(short_dir, SECRET) == {}
        await _stop(daemon, client)
    assert daemon.lines(f"from={credentials / 'hookd-key'}")


async def test_rotate_key_keeps_deliveries_verifiable(short_dir: Path) -> None:
    key = short_dir / "hookd.key"
    assert _run("db", "init-key", str(key)).returncode == 0
    daemon = DaemonProcess(short_dir, _key_config(key))
    async with trio.open_nursery() as nursery, serve_receiver() as receiver:
        client = await daemon.start(nursery)
        spec = {"url": receiver.url, "events": ["*"], "secret": SECRET}
        assert (await client.post("/v1/endpoints", json=spec)).status_code == 201
        before = (await client.get("/v1/status")).json()["secrets_key"]
        assert _signed_with(await _deliver_one(daemon, client, receiver, 1), SECRET)

        busy = await trio.to_thread.run_sync(
            _run, "db", "rotate-key", "--config", str(daemon.config)
        )
        assert busy.returncode == 1, busy.stderr
        assert "stop it first" in busy.stderr
        assert len(key.read_text().split()) == 1  # the old key alone again
        await _stop(daemon, client)

        old_key = key.read_bytes()
        rotated = _run("db", "rotate-key", "--config", str(daemon.config))
        assert rotated.returncode == 0, rotated.stderr
        assert before in rotated.stderr
        assert key.read_bytes() != old_key
        assert len(key.read_text().split()) == 1
        client = await daemon.start(nursery)
        after = (await client.get("/v1/status")).json()["secrets_key"]
        assert after != before
        assert after in rotated.stderr
        assert _signed_with(await _deliver_one(daemon, client, receiver, 2), SECRET)
        assert _in_clear(short_dir, SECRET) == {}
        await _stop(daemon, client)
