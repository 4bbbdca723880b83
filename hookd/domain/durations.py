"""Durations as operators write them: "500ms", "5s", "1m", "15m", "1h", "30d", or seconds.

Rules: a bare number (int or float, or a numeric string) is seconds; one unit suffix per
value; negative, infinite and NaN durations are refused. `parse_duration` raises
ValueError with a message fit to show a user. `format_duration` writes seconds back in
the largest unit that holds them whole, so that `parse_duration` reads the same value.
"""

from __future__ import annotations

import math
import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PATTERN = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)?\s*")


def parse_duration(value: str | int | float) -> float:
    """Seconds in `value`, e.g. "1m" -> 60.0, 5 -> 5.0."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like '5s' or a number of seconds, got {value!r}")
    if isinstance(value, int | float):
        if not 0 <= value < math.inf:
            raise ValueError(f"a duration must be a finite number of seconds >= 0, got {value!r}")
        return float(value)
    match = _PATTERN.fullmatch(value)
    if match is None:
        raise ValueError(
            f"expected a duration like '500ms', '5s', '1m', '1h', '30d' or seconds, got {value!r}"
        )
    number, unit = match.groups()
    return float(number) * _UNITS[unit or "s"]


def format_duration(seconds: float) -> str:
    """`seconds` as an operator writes it: 60.0 -> "1m", 0.5 -> "500ms", 90.0 -> "90s"."""
    for unit, length in sorted(_UNITS.items(), key=lambda item: -item[1]):
        count = seconds / length
        if count >= 1 and count == int(count):
            return f"{int(count)}{unit}"
    return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"


def span(seconds: float) -> str:
    """A length of time in at most two units: "55s", "3m 20s", "1h 5m", "2d 3h"."""
    size = int(seconds)
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    for index, (name, length) in enumerate(units[:-1]):
        if size >= length:
            smaller, small_length = units[index + 1]
            rest = size % length // small_length
            return f"{size // length}{name}" + (f" {rest}{smaller}" if rest else "")
    return f"{size}s"
