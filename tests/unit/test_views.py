"""hookd.domain.views: times as the API shows them."""

from __future__ import annotations

import time

import pytest

from hookd.domain.views import DELIVERY_STATUSES, iso


@pytest.mark.parametrize(
    ("unix", "shown"),
    [
        (None, None),
        (0, "1970-01-01T00:00:00.000Z"),
        (1.2345, "1970-01-01T00:00:01.234Z"),  # milliseconds, cut, not rounded
        (1_704_103_200.5, "2024-01-01T10:00:00.500Z"),
        (1_704_103_200.999, "2024-01-01T10:00:00.999Z"),
    ],
)
def test_iso_is_utc_with_milliseconds(unix: float | None, shown: str | None) -> None:
    assert iso(unix) == shown


def test_the_delivery_statuses() -> None:
    assert DELIVERY_STATUSES == ("pending", "succeeded", "failed", "cancelled", "erased")


def test_iso_is_utc_whatever_the_machines_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/Sao_Paulo")  # UTC-3: a local time would show 21:00
    time.tzset()
    try:
        assert iso(0) == "1970-01-01T00:00:00.000Z"
    finally:
        monkeypatch.undo()
        time.tzset()
