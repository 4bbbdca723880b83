"""hookd.domain.durations: durations as operators write them, and back."""

from __future__ import annotations

import pytest

from hookd.domain.durations import format_duration, parse_duration, span


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("500ms", 0.5),  # milliseconds
        ("5s", 5.0),  # the spec's timeout
        ("1m", 60.0),  # retry delays
        ("15m", 900.0),
        ("1h", 3600.0),
        ("30d", 2_592_000.0),  # the default retention
        ("1.5h", 5400.0),  # a fraction with a unit
        ("0s", 0.0),  # the first attempt's delay
        ("0", 0.0),  # a numeric string is seconds
        ("10", 10.0),
        (" 5 s ", 5.0),  # spaces around and before the unit
        (5, 5.0),  # an int is seconds
        (2.5, 2.5),  # a float is seconds
        (0, 0.0),  # zero
    ],
)
def test_parse_duration(value: str | int | float, seconds: float) -> None:
    assert parse_duration(value) == seconds
    assert isinstance(parse_duration(value), float)


@pytest.mark.parametrize(
    "value",
    [
        "",  # empty
        "s",  # a unit without a number
        "5x",  # unknown unit
        "5 y",  # unknown unit after a space
        "1m30s",  # one unit per value
        "5S",  # units are lowercase
        "-1s",  # negative string
        "1e3",  # no exponent form
        ".5s",  # a leading digit is required
        "nan",  # not a number
        -1,  # negative int
        -0.5,  # negative float
        True,  # a bool is not a number of seconds
        False,
        float("nan"),  # NaN is no duration (TOML can write `nan`)
        float("inf"),  # nor is infinity (TOML's `inf`): a retry never due
    ],
)
def test_parse_duration_refuses(value: str | int | float) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0s"),  # the first attempt's delay
        (0.5, "500ms"),  # below a second
        (1.5, "1500ms"),  # not whole seconds: milliseconds
        (5.0, "5s"),
        (60.0, "1m"),  # the largest unit that holds it whole
        (90.0, "90s"),
        (5400.0, "90m"),
        (3600.0, "1h"),
        (2_592_000.0, "30d"),
        (0.0001, "0.0001s"),  # below a millisecond: a decimal number of seconds
    ],
)
def test_format_duration_reads_back_the_same(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0s"),
        (59.9, "59s"),  # whole seconds, rounded down
        (60, "1m"),  # no "0s" after a whole unit
        (200, "3m 20s"),
        (3599, "59m 59s"),
        (3600, "1h"),
        (3900, "1h 5m"),
        (3959, "1h 5m"),  # two units at most: the seconds go
        (86399, "23h 59m"),
        (86400, "1d"),
        (183600, "2d 3h"),
        (90061, "1d 1h"),
    ],
)
def test_span_shows_two_units_at_most(seconds: float, shown: str) -> None:
    assert span(seconds) == shown
