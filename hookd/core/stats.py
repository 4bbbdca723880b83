"""Per-endpoint delivery statistics: per-minute counters, and what a window of them says.

Rules:
- The unit is one endpoint's minute: attempts, failed attempts, deliveries that ended
  succeeded or failed, and a histogram of attempt durations over fixed buckets
  (LATENCY_BOUNDS_MS, plus one for anything slower). Minutes are Unix time // 60.
- A window ("the last hour") is the minutes after `now`'s minute minus its length, the
  current (partial) minute included: it rolls forward a minute at a time.
- Percentiles come from the histogram: linear within the bucket that holds the rank, so
  they are exact to a bucket's width. The clock is an argument: nothing here reads it.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import msgspec

# Attempt durations, in ms: the upper bound of each bucket; a last bucket holds the rest.
LATENCY_BOUNDS_MS: tuple[float, ...] = (
    2, 5, 10, 20, 35, 50, 75, 100, 150, 250, 400, 600, 1000, 1500, 2500, 4000, 6000,
)  # fmt: skip
BUCKETS = len(LATENCY_BOUNDS_MS) + 1
WINDOWS = {"last_hour": 60, "last_24h": 1440}  # window name -> minutes
KEEP_MINUTES = max(WINDOWS.values())  # older minutes are dropped


def minute_of(unix_seconds: float) -> int:
    """The minute `unix_seconds` falls in."""
    return int(unix_seconds // 60)


def bucket_of(duration_ms: float) -> int:
    """The histogram bucket of an attempt that took `duration_ms`."""
    return bisect.bisect_left(LATENCY_BOUNDS_MS, duration_ms)


class MinuteCounts(msgspec.Struct, kw_only=True):
    """One endpoint's minute, or the sum of several."""

    attempts: int = 0
    attempts_failed: int = 0
    succeeded: int = 0
    failed: int = 0
    latency: list[int] = msgspec.field(default_factory=lambda: [0] * BUCKETS)

    def add_attempt(self, duration_ms: float, ok: bool) -> None:
        """Count one attempt."""
        self.attempts += 1
        self.attempts_failed += 0 if ok else 1
        self.latency[bucket_of(duration_ms)] += 1

    def add_finished(self, status: str) -> None:
        """Count a delivery that ended with `status` (succeeded or failed)."""
        if status == "succeeded":
            self.succeeded += 1
        elif status == "failed":
            self.failed += 1

    def row(self) -> tuple[int, ...]:
        """The counters in column order (see `from_row`)."""
        return (self.attempts, self.attempts_failed, self.succeeded, self.failed, *self.latency)

    @classmethod
    def from_row(cls, row: Sequence[int]) -> MinuteCounts:
        """Counters from `row()`'s column order."""
        attempts, attempts_failed, succeeded, failed, *latency = (int(v or 0) for v in row)
        return cls(
            attempts=attempts,
            attempts_failed=attempts_failed,
            succeeded=succeeded,
            failed=failed,
            latency=latency,
        )


def window_start(now: float, minutes: int) -> int:
    """The first minute of the `minutes`-long window ending at `now`."""
    return minute_of(now) - minutes + 1


def percentile(latency: Sequence[int], q: float) -> float | None:
    """The `q` quantile (0..1) of a duration histogram, in ms; None when it is empty."""
    total = sum(latency)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(latency):
        if count and seen + count >= rank:
            low = LATENCY_BOUNDS_MS[index - 1] if index else 0.0
            high = (
                LATENCY_BOUNDS_MS[index]
                if index < len(LATENCY_BOUNDS_MS)
                else LATENCY_BOUNDS_MS[-1] * 2
            )
            return round(low + (high - low) * max(0.0, rank - seen) / count, 1)
        seen += count
    return None  # unreachable: rank <= total


class WindowSummary(msgspec.Struct, kw_only=True):
    """What one window says about an endpoint."""

    deliveries_succeeded: int
    deliveries_failed: int
    success_rate: float | None  # of deliveries that finished; None when none did
    attempts: int
    attempts_failed: int
    latency_ms: dict[str, float | None]  # p50, p95, p99 of attempt durations


def summarize(counts: MinuteCounts) -> WindowSummary:
    """The summary of a window's summed counters."""
    finished = counts.succeeded + counts.failed
    return WindowSummary(
        deliveries_succeeded=counts.succeeded,
        deliveries_failed=counts.failed,
        success_rate=round(counts.succeeded / finished, 4) if finished else None,
        attempts=counts.attempts,
        attempts_failed=counts.attempts_failed,
        latency_ms={
            name: percentile(counts.latency, q)
            for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
        },
    )


class HealthDelta(msgspec.Struct, kw_only=True):
    """What a batch of attempts, in order, does to an endpoint's run of failures."""

    reset: bool = False  # a success: the run of failures starts again after it
    failures: int = 0  # failed attempts after the last success (or all, without one)
    first_failure: float | None = None  # when the first of those started
    last_success: float | None = None

    def add(self, ok: bool, at: float) -> None:
        """Count one attempt that started at `at`."""
        if ok:
            self.reset, self.failures, self.first_failure, self.last_success = True, 0, None, at
        else:
            self.failures += 1
            if self.first_failure is None:
                self.first_failure = at

    def params(self) -> dict[str, object]:
        """The named parameters of sql.UPDATE_HEALTH."""
        return {
            "reset": self.reset,
            "failures": self.failures,
            "first_failure": self.first_failure,
            "last_success": self.last_success,
        }
