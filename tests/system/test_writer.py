"""The SQLite engine's writer: background jobs in steps between the groups of the others.

A real database file, the real writer and checkpointer threads; the writes are plain
functions, as the query modules bring them.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import apsw
import pytest
import trio

from hookd.db.engine import Engine
from hookd.db.errors import StorageError


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


async def test_a_background_job_takes_one_step_after_each_group_of_the_others(
    engine: Engine,
) -> None:
    order: list[str] = []
    running, go_on = threading.Event(), threading.Event()

    def step(conn: apsw.Connection) -> str | None:
        order.append(f"step{len([o for o in order if o.startswith('step')]) + 1}")
        conn.execute("INSERT INTO t (n) VALUES (?)", (len(order),))
        if order[-1] == "step1":
            running.set()
            go_on.wait(10)
        return "done" if order[-1] == "step3" else None

    async with trio.open_nursery() as nursery:
        release = await _held_writer(engine, nursery)
        finished: list[str] = []
        nursery.start_soon(lambda: _keep(finished, engine.in_steps(step)))
        await _queued(engine, 2)
        nursery.start_soon(engine.write, _insert(order, "fg1"))
        await _queued(engine, 3)
        commits = engine.commits
        release.set()
        await trio.to_thread.run_sync(running.wait, 10)
        nursery.start_soon(engine.write, _insert(order, "fg2"))  # while step 1 runs
        await _queued(engine, 2)
        go_on.set()
    # The foreground write queued behind the held one goes first; then one step; the
    # write that came meanwhile; then the steps left, one after the other, each its own
    # transaction; the job's answer is its last step's.
    assert order == ["fg1", "step1", "fg2", "step2", "step3"]
    assert engine.commits - commits == 1 + 1 + 1 + 1 + 2
    assert finished == ["done"]
    assert await engine.read(lambda c: c.execute("SELECT count(*) FROM t").fetchone()) == (5,)


async def _keep(into: list[str], job: Awaitable[str]) -> None:
    into.append(await job)


async def test_a_background_step_sees_the_writes_waiting_behind_it(engine: Engine) -> None:
    seen: list[bool] = []
    running, go_on = threading.Event(), threading.Event()

    def look(_: apsw.Connection) -> bool:
        running.set()
        go_on.wait(10)
        seen.append(engine.others_waiting())
        return True

    async with trio.open_nursery() as nursery:
        nursery.start_soon(engine.in_steps, look)
        await trio.to_thread.run_sync(running.wait, 10)
        nursery.start_soon(engine.write, _nothing)
        await _queued(engine, 2)
        go_on.set()
    assert await engine.in_steps(look)  # alone: nothing waits
    assert seen == [True, False]


async def test_a_failing_step_ends_its_job_and_rolls_back_only_itself(engine: Engine) -> None:
    def fail(conn: apsw.Connection) -> None:
        conn.execute("INSERT INTO t (n) VALUES (1)")
        conn.execute("INSERT INTO nowhere VALUES (1)")

    with pytest.raises(StorageError, match="nowhere"):
        await engine.in_steps(fail)
    await engine.write(_insert([], "after"))
    assert await engine.read(lambda c: c.execute("SELECT n FROM t").fetchall()) == [(1,)]
