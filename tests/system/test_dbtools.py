"""hookd.cli.dbtools: an online backup taken while the daemon ingests, and the integrity check.

The daemon runs in this process on a real SQLite file; the backup opens its own
read-only connection to it, as `hookd db backup` does from another process.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import apsw
import pytest
import trio

from hookd.cli import dbtools
from hookd.runtime import config
from hookd.runtime.daemon import Daemon
from tests.conftest import Running, write_config
from tests.system.test_api_events import create_endpoint, db_path

Factory = Callable[..., Awaitable[Running]]


def _rows(path: Path, query: str) -> list[tuple[Any, ...]]:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return list(conn.execute(query))
    finally:
        conn.close()


async def test_backup_while_ingesting_is_one_consistent_snapshot(
    hookd_factory: Factory, tmp_path: Path
) -> None:
    running = await hookd_factory()
    await create_endpoint(running.client, ["*"])
    await create_endpoint(running.client, ["cliente.*"])
    target = tmp_path / "backup.db"
    acknowledged: list[str] = []

    async def ingest_until(done: Callable[[], bool]) -> None:
        """Ingest batches of 50 until `done()`; never cut off in the middle of one."""
        while not done():
            n = len(acknowledged)
            batch = [{"event": "cliente.criado", "data": {"id": f"c{n + i}"}} for i in range(50)]
            response = await running.client.post("/v1/events/batch", json=batch)
            assert response.status_code == 202
            acknowledged.extend(response.json()["ids"])

    await ingest_until(lambda: len(acknowledged) >= 500)
    backed_up = trio.Event()
    async with trio.open_nursery() as nursery:  # the daemon ingests during the backup
        nursery.start_soon(ingest_until, backed_up.is_set)
        size = await trio.to_thread.run_sync(dbtools.backup, db_path(running), str(target))
        backed_up.set()

    _assert_one_snapshot(target, size, len(acknowledged))


def _assert_one_snapshot(target: Path, size: int, acknowledged: int) -> None:
    assert size == os.path.getsize(target) > 0
    assert dbtools.check(str(target)) == []
    assert not list(target.parent.glob(".backup.db.partial-*"))
    [(events,)] = _rows(target, "SELECT count(*) FROM events")
    assert 500 <= events <= acknowledged
    # A snapshot: every event in it has all its deliveries, and nothing is half there.
    unmatched = _rows(
        target,
        "SELECT e.id FROM events e LEFT JOIN deliveries d ON d.event_seq = e.seq"
        " GROUP BY e.seq HAVING count(d.id) != e.delivery_count",
    )
    assert unmatched == []
    [(mode,)] = _rows(target, "PRAGMA journal_mode")
    assert mode == "delete"  # one self-contained file
    assert not os.path.exists(f"{target}-wal")


async def test_a_restored_backup_serves_its_events(hookd_factory: Factory, tmp_path: Path) -> None:
    running = await hookd_factory()
    await create_endpoint(running.client, ["*"])
    response = await running.client.post(
        "/v1/events", json={"event": "tarefa.criada", "data": {"id": "t1"}}
    )
    event_id = response.json()["id"]
    await trio.to_thread.run_sync(dbtools.backup, db_path(running), str(tmp_path / "b.db"))

    restored_dir = tmp_path / "restored"
    await trio.Path(restored_dir).mkdir()
    await trio.to_thread.run_sync(shutil.copy, tmp_path / "b.db", restored_dir / "hookd.db")
    restored = await hookd_factory(directory=restored_dir)
    response = await restored.client.get(f"/v1/events/{event_id}")
    assert response.status_code == 200
    assert response.json()["event"] == "tarefa.criada"


async def test_backup_never_overwrites(hookd: Running, tmp_path: Path) -> None:
    target = trio.Path(tmp_path / "exists.db")
    await target.write_bytes(b"precious")
    with pytest.raises(dbtools.DatabaseToolError, match="already exists"):
        await trio.to_thread.run_sync(dbtools.backup, db_path(hookd), str(target))
    assert await target.read_bytes() == b"precious"


def test_backup_of_a_missing_database_says_so(tmp_path: Path) -> None:
    with pytest.raises(dbtools.DatabaseToolError, match="no database at"):
        dbtools.backup(str(tmp_path / "none.db"), str(tmp_path / "b.db"))
    assert not (tmp_path / "b.db").exists()


def test_backup_into_a_missing_directory_says_so(hookd_db: Path, tmp_path: Path) -> None:
    with pytest.raises(dbtools.DatabaseToolError, match="cannot"):
        dbtools.backup(str(hookd_db), str(tmp_path / "no" / "such" / "b.db"))


@pytest.fixture
def hookd_db(tmp_path: Path) -> Path:
    """A database as hookd leaves it after a clean stop, with an endpoint in it."""
    settings = config.load(
        str(
            write_config(
                tmp_path,
                '[[endpoint]]\nurl = "https://example.com/h"\nevents = ["*"]\nsecret = "s3cret"',
            )
        )
    )

    async def start_and_stop() -> None:
        async with trio.open_nursery() as nursery:
            daemon = await nursery.start(Daemon(settings, handle_signals=False).run)
            daemon.stop()

    trio.run(start_and_stop)
    return Path(settings.storage.path)


def test_check_finds_a_sound_database_sound(hookd_db: Path) -> None:
    assert dbtools.check(str(hookd_db)) == []


def test_check_finds_damage(hookd_db: Path) -> None:
    [(root,)] = _rows(hookd_db, "SELECT rootpage FROM sqlite_master WHERE name = 'endpoints'")
    data = bytearray(hookd_db.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    start = (int(root) - 1) * page_size
    data[start : start + 64] = b"\xff" * 64  # the endpoints table's page header, garbled
    hookd_db.write_bytes(bytes(data))
    problems = dbtools.check(str(hookd_db))
    assert problems != []
    assert all(isinstance(p, str) and p for p in problems)


def test_check_of_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "not.db"
    path.write_bytes(b"this is not an SQLite database, just text" * 200)
    assert dbtools.check(str(path)) != []


def test_check_and_backup_of_a_stopped_database_leave_no_wal_files(
    hookd_db: Path, tmp_path: Path
) -> None:
    # Left behind (owned by root when an operator runs them), they would keep the
    # service's user from opening its database.
    assert dbtools.check(str(hookd_db)) == []
    dbtools.backup(str(hookd_db), str(tmp_path / "copy.db"))
    assert not os.path.exists(f"{hookd_db}-wal")
    assert not os.path.exists(f"{hookd_db}-shm")
