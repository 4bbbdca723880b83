"""The SQLite engine's writer: background writes between the groups of the others.

A real database file, the real writer and checkpointer threads; the writes are plain
functions, as the query modules bring them.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import apsw
import pytest
import trio

from hookd.db.engine import Engine


def _schema(conn: apsw.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER, blob BLOB)")


def _nothing(_: apsw.Connection) -> None:
    pass


@pytest.fixture
async def engine(short_dir: Path) -> AsyncIterator[Engine]:
    opened = await Engine.open(str(short_dir / "w.db"), "full", _schema, _nothing)
    try:
        yield opened
    finally:
        await opened.aclose()


def _insert(order: list[str], name: str) -> Callable[[apsw.Connection], None]:
    def fn(conn: apsw.Connection) -> None:
        order.append(name)
        conn.execute("INSERT INTO t (n) VALUES (?)", (len(order),))

    return fn


async def _held_writer(engine: Engine, nursery: trio.Nursery) -> threading.Event:
    """Start a write that holds the writer until the returned event is set, and wait
    until it runs (the writes submitted next queue up behind it)."""
    release, running = threading.Event(), threading.Event()

    def hold(_: apsw.Connection) -> None:
        running.set()
        release.wait(10)

    nursery.start_soon(engine.write, hold)
    await trio.to_thread.run_sync(running.wait, 10)
    return release


async def _queued(engine: Engine, count: int) -> None:
    """Wait until `count` writes are pending (submitted, not committed): the tasks just
    started submit theirs at their first step."""
    for _ in range(100):
        await trio.lowlevel.checkpoint()
    assert engine.pending == count


async def test_background_writes_go_one_after_each_group_of_the_others(engine: Engine) -> None:
    order: list[str] = []
    async with trio.open_nursery() as nursery:
        release = await _held_writer(engine, nursery)
        nursery.start_soon(lambda: engine.write(_insert(order, "bg1"), background=True))
        await _queued(engine, 2)
        nursery.start_soon(lambda: engine.write(_insert(order, "bg2"), background=True))
        await _queued(engine, 3)
        nursery.start_soon(engine.write, _insert(order, "fg1"))
        await _queued(engine, 4)
        nursery.start_soon(engine.write, _insert(order, "fg2"))
        await _queued(engine, 5)
        commits = engine.commits
        release.set()
    # The foreground writes queued after the background ones go first, together; then
    # one background write; then the next (no foreground left): three transactions.
    assert order == ["fg1", "fg2", "bg1", "bg2"]
    assert engine.commits - commits == 1 + 3


async def test_a_background_write_sees_the_writes_waiting_behind_it(engine: Engine) -> None:
    seen: list[bool] = []
    running, go_on = threading.Event(), threading.Event()

    def look(_: apsw.Connection) -> None:
        running.set()
        go_on.wait(10)
        seen.append(engine.others_waiting())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: engine.write(look, background=True))
        await trio.to_thread.run_sync(running.wait, 10)
        nursery.start_soon(engine.write, _nothing)
        await _queued(engine, 2)
        go_on.set()
    await engine.write(look, background=True)  # alone: nothing waits
    assert seen == [True, False]
