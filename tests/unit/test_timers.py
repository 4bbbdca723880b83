"""hookd.domain.timers: checked against a sorted list of (deadline, order, key)."""

from __future__ import annotations

import bisect
import itertools

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from hookd.domain.timers import Timers

KEYS = st.integers(min_value=0, max_value=7)  # few keys: re-adds and cancels are common
TIMES = st.integers(min_value=0, max_value=20).map(float)  # few times: ties are common


class Model:
    """The obvious implementation: a list kept sorted by (deadline, insertion order)."""

    def __init__(self) -> None:
        self.entries: list[tuple[float, int, int]] = []
        self.order = itertools.count()

    def add(self, key: int, deadline: float) -> None:
        self.cancel(key)
        bisect.insort(self.entries, (deadline, next(self.order), key))

    def cancel(self, key: int) -> bool:
        for index, entry in enumerate(self.entries):
            if entry[2] == key:
                del self.entries[index]
                return True
        return False

    def pop_due(self, now: float, limit: int | None) -> list[int]:
        due = [e for e in self.entries if e[0] <= now]
        if limit is not None:
            due = due[:limit]
        del self.entries[: len(due)]
        return [key for _, _, key in due]

    def next_deadline(self) -> float | None:
        return self.entries[0][0] if self.entries else None


class TimersMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.timers: Timers[int] = Timers()
        self.model = Model()

    @rule(key=KEYS, deadline=TIMES)
    def add(self, key: int, deadline: float) -> None:
        self.timers.add(key, deadline)
        self.model.add(key, deadline)

    @precondition(lambda self: len(self.model.entries) < 8)
    @rule(key=KEYS, deadline=TIMES)
    def add_again(self, key: int, deadline: float) -> None:
        # a second add rule makes churn (and heap compaction) more likely
        self.add(key, deadline)

    @rule(key=KEYS)
    def cancel(self, key: int) -> None:
        assert self.timers.cancel(key) == self.model.cancel(key)

    @rule(now=TIMES, limit=st.none() | st.integers(min_value=0, max_value=4))
    def pop_due(self, now: float, limit: int | None) -> None:
        assert self.timers.pop_due(now, limit) == self.model.pop_due(now, limit)

    @invariant()
    def agrees_with_model(self) -> None:
        assert len(self.timers) == len(self.model.entries)
        assert self.timers.next_deadline() == self.model.next_deadline()
        held = {key for _, _, key in self.model.entries}
        assert {key for key in range(8) if key in self.timers} == held


TimersMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=100, deadline=None, database=None
)
TestTimersAgainstModel = TimersMachine.TestCase


def test_empty() -> None:
    timers: Timers[str] = Timers()
    assert len(timers) == 0
    assert timers.next_deadline() is None
    assert timers.pop_due(1e18) == []
    assert timers.cancel("a") is False


def test_pop_due_returns_due_keys_earliest_first_ties_in_insertion_order() -> None:
    timers: Timers[str] = Timers()
    timers.add("a", 5.0)
    timers.add("b", 3.0)
    timers.add("c", 5.0)
    timers.add("d", 9.0)
    assert timers.next_deadline() == 3.0
    assert timers.pop_due(2.9) == []
    assert timers.pop_due(5.0) == ["b", "a", "c"]
    assert len(timers) == 1
    assert timers.next_deadline() == 9.0


def test_add_again_moves_the_key() -> None:
    timers: Timers[str] = Timers()
    timers.add("a", 10.0)
    timers.add("a", 1.0)  # earlier
    assert len(timers) == 1
    assert timers.next_deadline() == 1.0
    assert timers.pop_due(1.0) == ["a"]
    assert timers.pop_due(100.0) == []  # the old deadline is gone with it
    timers.add("b", 1.0)
    timers.add("b", 10.0)  # later
    assert timers.pop_due(5.0) == []
    assert timers.next_deadline() == 10.0


def test_add_again_at_the_same_time_goes_behind_equal_deadlines() -> None:
    timers: Timers[str] = Timers()
    timers.add("a", 5.0)
    timers.add("b", 5.0)
    timers.add("a", 5.0)
    assert timers.pop_due(5.0) == ["b", "a"]


def test_cancel() -> None:
    timers: Timers[str] = Timers()
    timers.add("a", 1.0)
    timers.add("b", 2.0)
    assert timers.cancel("a") is True
    assert timers.cancel("a") is False
    assert "a" not in timers
    assert timers.next_deadline() == 2.0
    assert timers.pop_due(10.0) == ["b"]


def test_pop_due_limit() -> None:
    timers: Timers[int] = Timers()
    for key in range(5):
        timers.add(key, float(key))
    assert timers.pop_due(10.0, limit=0) == []
    assert timers.pop_due(10.0, limit=2) == [0, 1]
    assert timers.pop_due(10.0, limit=2) == [2, 3]
    assert len(timers) == 1
    assert timers.pop_due(10.0, limit=2) == [4]


def test_heavy_churn_keeps_only_live_keys() -> None:
    timers: Timers[int] = Timers()
    for step in range(10_000):
        timers.add(step % 10, float(10_000 - step))  # every key moves earlier, 1000 times
        if step % 7 == 0:
            timers.cancel((step + 3) % 10)
    expected = sorted((float(10_000 - s), s % 10) for s in range(9_990, 10_000))
    assert len(timers) == 10
    assert timers.next_deadline() == 1.0
    assert timers.pop_due(float("inf")) == [key for _, key in expected]
    assert len(timers) == 0


def heap_size(timers: Timers[int]) -> int:
    """Entries in the heap, stale ones included: what the compaction rule bounds."""
    return len(timers._heap)


def test_the_heap_is_rebuilt_when_stale_entries_outnumber_live_ones() -> None:
    # one key moved again and again: the heap keeps its stale entries up to 64 ...
    timers: Timers[int] = Timers()
    for step in range(64):
        timers.add(0, float(step))
    assert heap_size(timers) == 64
    timers.add(0, 99.0)  # ... and is rebuilt past that, down to the live key
    assert heap_size(timers) == 1
    assert timers.pop_due(100.0) == [0]


def test_the_heap_is_rebuilt_only_past_twice_the_live_keys() -> None:
    timers: Timers[int] = Timers()
    for key in range(40):
        timers.add(key, float(key))
    for key in range(40):
        timers.add(key, float(key) + 0.5)  # every key moved once: 80 entries for 40 keys
    assert heap_size(timers) == 80  # exactly twice the live keys: kept
    timers.add(0, 100.0)  # 81 > 2 x 40: rebuilt
    assert heap_size(timers) == 40
    assert timers.pop_due(100.0) == [*range(1, 40), 0]


def test_cancel_rebuilds_the_heap_too() -> None:
    timers: Timers[int] = Timers()
    for key in range(65):
        timers.add(key, float(key))
    for key in range(32):
        assert timers.cancel(key)
    assert heap_size(timers) == 65  # 33 live keys: 65 entries are not yet twice as many
    assert timers.cancel(32)
    assert heap_size(timers) == 32  # 32 live keys: rebuilt
    assert timers.pop_due(100.0) == list(range(33, 65))
