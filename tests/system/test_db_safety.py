"""The database's safety at start: one daemon per file, no start on a damaged file, the
files owner-only, and read failures reported as reads.

Real `hookd serve` processes on a real SQLite file; the damage is real bytes written
over pages of the file.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest
import trio

from tests.cli_runner import run_main
from tests.conftest import Running
from tests.daemon_process import DaemonProcess
from tests.system.test_api_events import create_endpoint, db_path

Factory = Callable[..., Awaitable[Running]]
PAGE = 8192


def _serve(config: Path) -> subprocess.CompletedProcess[str]:
    """Run `hookd serve` to its end (it should refuse at once); its exit and output."""
    command = [sys.executable, "-m", "hookd", "serve", "--config", str(config)]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def _overwrite_pages(path: Path, first: int, count: int | None = None) -> None:
    """Write junk over `count` pages of the file (default: all but the last) from page
    number `first` (1-based)."""
    if count is None:
        count = path.stat().st_size // PAGE - first
    with open(path, "r+b") as file:
        file.seek((first - 1) * PAGE)
        file.write(bytes(range(256)) * (PAGE * count // 256))


def _checkpoint(path: Path) -> None:
    """Move every page from the WAL into the file and empty the WAL (readers then
    drop their caches): what is read next comes from the file."""
    conn = apsw.Connection(str(path))
    try:
        conn.setbusytimeout(5000)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """A umask that leaves files world-readable, as many shells have."""
    saved = os.umask(0o022)
    yield
    os.umask(saved)


async def test_a_second_daemon_on_the_same_database_exits_naming_the_first(
    short_dir: Path,
) -> None:
    first = DaemonProcess(short_dir)
    async with trio.open_nursery() as nursery:
        client = await first.start(nursery)
        assert first.process is not None
        second = await trio.to_thread.run_sync(_serve, first.config)
        assert second.returncode == 1, second.stderr
        assert f"in use by another hookd (pid {first.process.pid}" in second.stderr
        # The first daemon still serves, on its socket, and the operator's tools still work.
        assert (await client.get("/v1/status")).status_code == 200
        argv = ["db", "check", "--config", str(first.config)]
        checked = await trio.to_thread.run_sync(run_main, argv)
        assert checked.code == 0, checked.err
        backup = short_dir / "copy.db"
        argv = ["db", "backup", str(backup), "--config", str(first.config)]
        backed_up = await trio.to_thread.run_sync(run_main, argv)
        assert backed_up.code == 0, backed_up.err
        await client.aclose()
        first.signal(signal.SIGTERM)
        assert await first.wait() == 0
    # Once the first has stopped, the database is free again.
    again = DaemonProcess(short_dir)
    async with trio.open_nursery() as nursery:
        client = await again.start(nursery)
        await client.aclose()
        again.signal(signal.SIGTERM)
        assert await again.wait() == 0


async def test_a_damaged_database_is_refused_at_start(short_dir: Path) -> None:
    daemon = DaemonProcess(short_dir)
    async with trio.open_nursery() as nursery:
        client = await daemon.start(nursery)
        await create_endpoint(client, ["*"])
        for n in range(40):
            data = [{"id": f"c{n}-{i}", "pad": "x" * 2000} for i in range(50)]
            batch = [{"event": "cliente.criado", "data": d} for d in data]
            assert (await client.post("/v1/events/batch", json=batch)).status_code == 202
        await client.aclose()
        daemon.signal(signal.SIGTERM)
        assert await daemon.wait() == 0
    database = daemon.database
    _overwrite_pages(database, 3, 200)

    refused = await trio.to_thread.run_sync(_serve, daemon.config)

    assert refused.returncode == 1
    [message] = [line for line in refused.stderr.splitlines() if line.startswith("hookd: ")]
    assert f"the database {database} is damaged (" in message
    assert "hookd will not start on it" in message
    assert "hookd db check" in message
    assert '"Backup and restore"' in message


async def test_a_read_that_fails_is_reported_as_a_read(hookd_factory: Factory) -> None:
    running = await hookd_factory()
    for n in range(60):
        data = [{"id": f"c{n}-{i}", "pad": "y" * 4000} for i in range(50)]
        batch = [{"event": "cliente.criado", "data": d} for d in data]
        assert (await running.client.post("/v1/events/batch", json=batch)).status_code == 202
    database = Path(db_path(running))
    await trio.to_thread.run_sync(_checkpoint, database)
    _overwrite_pages(database, 3)  # every page but the schema's and the last

    response = await running.client.get("/v1/events", params={"limit": 1000})

    assert response.status_code == 503
    assert response.json()["error"] == {
        "code": "storage_unavailable",
        "message": "the database cannot be read; see the log",
    }


async def test_the_database_its_files_and_backups_are_owner_only(
    hookd_factory: Factory, short_dir: Path, loose_umask: None
) -> None:
    running = await hookd_factory()
    await create_endpoint(running.client, ["*"])
    database = db_path(running)
    for name in (database, f"{database}-wal", f"{database}-shm", f"{database}.lock"):
        assert stat.S_IMODE(os.stat(name).st_mode) == 0o600, name
    assert stat.S_IMODE(os.stat(running.socket).st_mode) == 0o660  # server.socket_mode
    backup = short_dir / "backup.db"
    config = str(short_dir / "hookd.toml")
    ran = await trio.to_thread.run_sync(run_main, ["db", "backup", str(backup), "--config", config])
    assert ran.code == 0, ran.err
    assert stat.S_IMODE(os.stat(backup).st_mode) == 0o600


async def test_an_old_world_readable_database_is_made_owner_only(
    hookd_factory: Factory, short_dir: Path, loose_umask: None
) -> None:
    database = short_dir / "hookd.db"
    database.write_bytes(b"")
    database.chmod(0o644)
    await hookd_factory()
    assert stat.S_IMODE(database.stat().st_mode) == 0o600


async def test_what_hookd_creates_is_owner_only_under_an_open_umask(
    hookd_factory: Factory, short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under umask 000 the database's new directory is 0700, the subject index key 0600,
    and the socket exists only as 0600 until it gets `server.socket_mode`."""
    socket_modes: list[int] = []
    real_chmod = os.chmod

    def chmod(path: Any, mode: int, **kwargs: Any) -> None:
        if str(path).endswith(".sock"):
            socket_modes.append(stat.S_IMODE(os.stat(path).st_mode))
        real_chmod(path, mode, **kwargs)

    monkeypatch.setattr(os, "chmod", chmod)
    saved = os.umask(0)
    try:
        running = await hookd_factory(
            '[storage]\npath = "' + str(short_dir / "new" / "h.db") + '"\n'
        )
    finally:
        os.umask(saved)
    assert socket_modes == [0o600]
    assert stat.S_IMODE(os.stat(running.socket).st_mode) == 0o660
    assert stat.S_IMODE((short_dir / "new").stat().st_mode) == 0o700
    for name in ("h.db", "h.db-wal", "h.db-shm", "h.db.lock", "h.db.subject-key"):
        assert stat.S_IMODE((short_dir / "new" / name).stat().st_mode) == 0o600, name
