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
