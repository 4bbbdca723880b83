"""hookd.cli.output: relative times, tables that stay aligned in colour, and when to colour."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from hookd.cli.output import Screen, Styled, colour_wanted, moment, relative

NOW = datetime(2024, 1, 1, 10, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "now"),  # no distance
        (0.9, "now"),  # under a second either way
        (-0.9, "now"),
        (55, "in 55s"),  # ahead
        (-55, "55s ago"),  # behind
        (-180, "3m ago"),  # whole minutes: no "0s"
        (-200, "3m 20s ago"),  # two units at most
        (3599, "in 59m 59s"),
        (3600, "in 1h"),
        (-5400, "1h 30m ago"),
        (-(2 * 86400 + 3 * 3600 + 59), "2d 3h ago"),  # seconds dropped beyond two units
    ],
)
def test_relative(seconds: float, text: str) -> None:
    assert relative(seconds) == text


@pytest.mark.parametrize(
    ("iso", "text"),
    [
        ("2024-01-01T09:57:00.000Z", "2024-01-01T09:57:00Z (3m ago)"),
        ("2024-01-01T10:00:55.250Z", "2024-01-01T10:00:55Z (in 55s)"),
        ("2024-01-01T11:00:00+01:00", "2024-01-01T10:00:00Z (now)"),  # shown in UTC
        (None, "-"),
    ],
)
def test_moment(iso: str | None, text: str) -> None:
    assert moment(iso, NOW) == text


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("stream", "environ", "wanted"),
    [
        (Terminal(), {}, True),  # a terminal
        (io.StringIO(), {}, False),  # a pipe or file
        (Terminal(), {"NO_COLOR": "1"}, False),  # NO_COLOR set
        (Terminal(), {"NO_COLOR": ""}, True),  # NO_COLOR empty counts as unset
    ],
)
def test_colour_wanted(stream: io.StringIO, environ: dict[str, str], wanted: bool) -> None:
    assert colour_wanted(stream, environ) is wanted


def test_table_aligns_on_the_text_not_the_colour_codes() -> None:
    plain, coloured = io.StringIO(), io.StringIO()
    rows: list[list[str | Styled]] = [
        ["1", Styled("succeeded", "green"), "a"],
        ["22", Styled("failed", "red"), "bb"],
    ]
    for out, colour in ((plain, False), (coloured, True)):
        Screen(out, io.StringIO(), colour, NOW).table(["id", "status", "x"], rows)
    assert plain.getvalue() == ("ID  STATUS     X\n1   succeeded  a\n22  failed     bb\n")
    assert "\x1b[32msucceeded\x1b[0m  a" in coloured.getvalue()
    assert "\x1b[31mfailed\x1b[0m     bb" in coloured.getvalue()
    stripped = coloured.getvalue()
    for code in ("\x1b[1m", "\x1b[31m", "\x1b[32m", "\x1b[0m"):
        stripped = stripped.replace(code, "")
    assert stripped == plain.getvalue()


def test_fields() -> None:
    out = io.StringIO()
    Screen(out, io.StringIO(), False, NOW).fields([("id", "ep_1"), ("description", "-")])
    assert out.getvalue() == "id           ep_1\ndescription  -\n"
