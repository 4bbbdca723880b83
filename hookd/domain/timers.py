"""The timer set: which deliveries are due, and when the next one is.

Rules:
- Keys are unique: `add` of a key already present moves it to the new deadline.
- `pop_due(now, limit)` removes and returns the keys whose deadline is <= `now`, earliest
  first (ties by insertion order), at most `limit` of them.
- `next_deadline()` is the earliest deadline held, or None when empty.
- It is a cache of what is due soon; the database stays the source of truth. It is a
  binary heap with lazy deletion: cancelled and moved entries are skipped when they
  surface, and the heap is rebuilt when stale entries outnumber live ones.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable
from itertools import count
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Timers(Generic[K]):
    """Deadlines keyed by K, with O(log n) add, cancel and pop."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, K]] = []
        self._live: dict[K, tuple[float, int]] = {}
        self._seq = count()

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, key: object) -> bool:
        return key in self._live

    def add(self, key: K, deadline: float) -> None:
        """Hold `key` until `deadline` (replacing any earlier deadline of the same key)."""
        entry = (deadline, next(self._seq))
        self._live[key] = entry
        heapq.heappush(self._heap, (*entry, key))
        self._compact()

    def cancel(self, key: K) -> bool:
        """Forget `key`; False when it was not held."""
        found = self._live.pop(key, None) is not None
        if found:
            self._compact()
        return found

    def next_deadline(self) -> float | None:
        """The earliest deadline held, or None."""
        self._drop_stale_head()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float, limit: int | None = None) -> list[K]:
        """Remove and return the keys due at `now`, earliest first."""
        due: list[K] = []
        while limit is None or len(due) < limit:
            self._drop_stale_head()
            if not self._heap or self._heap[0][0] > now:
                break
            key = heapq.heappop(self._heap)[2]
            del self._live[key]
            due.append(key)
        return due

    def _drop_stale_head(self) -> None:
        heap = self._heap
        while heap and self._live.get(heap[0][2]) != heap[0][:2]:
            heapq.heappop(heap)

    def _compact(self) -> None:
        if len(self._heap) > 64 and len(self._heap) > 2 * len(self._live):
            self._heap = [(d, s, k) for k, (d, s) in self._live.items()]
            heapq.heapify(self._heap)
