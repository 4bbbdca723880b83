"""Per-endpoint delivery statistics: counters per minute and hour, and what a window says.

Rules:
- Counters are kept per endpoint and period: attempts, failed attempts, deliveries
  that ended succeeded or failed, and a histogram of attempt durations over fixed
  buckets (LATENCY_BOUNDS_MS, plus one for anything slower). A period is a minute or an
  hour (`unit`, in seconds): period = Unix time // unit. Each attempt counts in both.
- A window is the last `count` periods of its unit, the current (partial) one included:
  the last hour rolls forward a minute at a time (60 minutes), the last 24 h an hour at a
  time (24 hours). Summing a window reads at most 60 or 24 rows per endpoint, however
  many attempts were made.
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
MINUTE, HOUR = 60, 3600
WINDOWS = {"last_hour": (MINUTE, 60), "last_24h": (HOUR, 24)}  # name -> (unit, periods)
UNITS = tuple(unit for unit, _ in WINDOWS.values())  # each attempt counts once per unit


def period_of(unix_seconds: float, unit: int) -> int:
    """The period of `unit` seconds that `unix_seconds` falls in."""
    return int(unix_seconds // unit)


def bucket_of(duration_ms: float) -> int:
    """The histogram bucket of an attempt that took `duration_ms`."""
    return bisect.bisect_left(LATENCY_BOUNDS_MS, duration_ms)


class PeriodCounts(msgspec.Struct, kw_only=True):
    """One endpoint's period, or the sum of several."""

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
    def from_row(cls, row: Sequence[int]) -> PeriodCounts:
        """Counters from `row()`'s column order."""
        attempts, attempts_failed, succeeded, failed, *latency = (int(v or 0) for v in row)
        return cls(
            attempts=attempts,
            attempts_failed=attempts_failed,
            succeeded=succeeded,
            failed=failed,
            latency=latency,
        )


def window_start(now: float, unit: int, count: int) -> int:
    """The first period of the window of `count` periods of `unit` ending at `now`."""
    return period_of(now, unit) - count + 1


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


def summarize(counts: PeriodCounts) -> WindowSummary:
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
        """The named parameters of `UPDATE_HEALTH` (db/stats.py)."""
        return {
            "reset": self.reset,
            "failures": self.failures,
            "first_failure": self.first_failure,
            "last_success": self.last_success,
        }
