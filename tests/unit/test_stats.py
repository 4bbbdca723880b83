"""hookd.domain.stats: minutes, windows, percentiles and runs of failures, without a clock."""

from __future__ import annotations

import pytest

from hookd.domain import stats


def test_periods_and_windows() -> None:
    assert stats.period_of(0, stats.MINUTE) == 0
    assert stats.period_of(59.999, stats.MINUTE) == 0
    assert stats.period_of(60, stats.MINUTE) == 1
    assert stats.period_of(7199, stats.HOUR) == 1
    hour = stats.WINDOWS["last_hour"]
    assert stats.window_start(3600, *hour) == 1  # minutes 1..60: the current one included
    assert stats.window_start(3659.9, *hour) == 1
    assert stats.window_start(3660, *hour) == 2  # rolled a minute forward
    day = stats.WINDOWS["last_24h"]
    assert stats.window_start(86400, *day) == 1  # hours 1..24
    assert stats.window_start(86400 + 3599, *day) == 1
    assert stats.window_start(86400 + 3600, *day) == 2  # rolled an hour forward


def test_bucket_bounds_are_upper_bounds() -> None:
    assert stats.bucket_of(0) == 0
    assert stats.bucket_of(2) == 0
    assert stats.bucket_of(2.01) == 1
    assert stats.bucket_of(6000) == len(stats.LATENCY_BOUNDS_MS) - 1
    assert stats.bucket_of(60_000) == len(stats.LATENCY_BOUNDS_MS)  # the overflow bucket
    assert stats.BUCKETS == 18  # the columns of the endpoint_minutes table


def test_percentiles_interpolate_within_a_bucket() -> None:
    counts = stats.PeriodCounts()
    for _ in range(100):
        counts.add_attempt(30, ok=True)  # bucket (20, 35]
    assert stats.percentile(counts.latency, 0.5) == pytest.approx(27.5)
    assert stats.percentile(counts.latency, 0.99) == pytest.approx(34.9)  # rounded to 0.1
    assert stats.percentile([0] * stats.BUCKETS, 0.5) is None


def test_percentiles_of_a_mix() -> None:
    counts = stats.PeriodCounts()
    for _ in range(90):
        counts.add_attempt(4, ok=True)  # (2, 5]
    for _ in range(10):
        counts.add_attempt(3000, ok=False)  # (2500, 4000]
    summary = stats.summarize(counts)
    assert summary.attempts == 100
    assert summary.attempts_failed == 10
    assert summary.latency_ms["p50"] is not None
    assert 2 < summary.latency_ms["p50"] <= 5
    assert summary.latency_ms["p95"] is not None
    assert 2500 < summary.latency_ms["p95"] <= 4000
    assert summary.success_rate is None  # no delivery finished


def test_success_rate_counts_finished_deliveries() -> None:
    counts = stats.PeriodCounts()
    for status in ("succeeded", "succeeded", "succeeded", "failed", "pending"):
        counts.add_finished(status)
    summary = stats.summarize(counts)
    assert (summary.deliveries_succeeded, summary.deliveries_failed) == (3, 1)
    assert summary.success_rate == 0.75


def test_row_round_trip() -> None:
    counts = stats.PeriodCounts()
    counts.add_attempt(12, ok=False)
    counts.add_finished("failed")
    assert stats.PeriodCounts.from_row(counts.row()) == counts
    assert len(counts.row()) == 4 + stats.BUCKETS


def test_health_delta_follows_the_order_of_attempts() -> None:
    delta = stats.HealthDelta()
    delta.add(ok=False, at=10)
    delta.add(ok=False, at=20)
    assert delta.params() == {
        "reset": False,
        "failures": 2,
        "first_failure": 10,
        "last_success": None,
    }
    delta.add(ok=True, at=30)
    delta.add(ok=False, at=40)
    assert delta.params() == {"reset": True, "failures": 1, "first_failure": 40, "last_success": 30}
    delta.add(ok=True, at=50)
    assert delta.params() == {
        "reset": True,
        "failures": 0,
        "first_failure": None,
        "last_success": 50,
    }


def test_counts_add_up() -> None:
    counts = stats.PeriodCounts()
    counts.add_attempt(1.0, ok=True)
    counts.add_attempt(1.5, ok=False)  # the same bucket twice
    counts.add_finished("failed")
    counts.add_finished("failed")
    counts.add_finished("succeeded")
    counts.add_finished("succeeded")
    counts.add_finished("cancelled")  # neither: not counted
    assert (counts.attempts, counts.attempts_failed) == (2, 1)
    assert (counts.succeeded, counts.failed) == (2, 2)
    assert counts.latency == [2] + [0] * (stats.BUCKETS - 1)


def test_a_row_reads_back_as_written() -> None:
    counts = stats.PeriodCounts(
        attempts=9, attempts_failed=4, succeeded=3, failed=2, latency=list(range(stats.BUCKETS))
    )
    assert stats.PeriodCounts.from_row(counts.row()) == counts


def histogram(**by_bucket: int) -> list[int]:
    """A latency histogram with `b<index>=count` entries."""
    latency = [0] * stats.BUCKETS
    for name, count in by_bucket.items():
        latency[int(name[1:])] = count
    return latency


@pytest.mark.parametrize(
    ("latency", "q", "expected"),
    [
        (histogram(b0=1), 0.5, 1.0),  # one attempt is enough; bucket 0 starts at 0 ms
        (histogram(b0=4), 0.1, 0.2),  # a rank below 1 interpolates from the bucket's start
        # a rank at the end of a bucket stays in it, not in the next non-empty one
        (histogram(b0=2, b2=2), 0.5, 2.0),
        # the overflow bucket runs from the last bound to twice it
        (histogram(b17=2), 0.5, 9000.0),
        (histogram(b17=1), 1.0, 12000.0),
    ],
)
def test_percentile_edges(latency: list[int], q: float, expected: float) -> None:
    assert stats.percentile(latency, q) == expected


def test_summary_names_its_percentiles_and_rounds_the_rate() -> None:
    counts = stats.PeriodCounts(succeeded=1, failed=2, latency=histogram(b0=100))
    summary = stats.summarize(counts)
    assert summary.success_rate == 0.3333
    assert summary.latency_ms == {"p50": 1.0, "p95": 1.9, "p99": 2.0}
