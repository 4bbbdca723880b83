"""What the command line prints: aligned tables, field lists, times, colour.

Rules:
- Colour only when the stream is a terminal and `NO_COLOR` is unset or empty
  (no-color.org). Widths are measured on the plain text, so colour never breaks the
  alignment of a table.
- Times from the API are shown in ISO 8601 UTC to the second, with their distance from
  `now`: "2024-01-01T10:00:00Z (3m 20s ago)", "... (in 55s)". `now` is an argument:
  nothing here reads the clock.
- Tables: upper-case headers, columns two spaces apart, no trailing spaces.
- Results go to `out`; notes, warnings and errors to `err`.
- Every string printed goes through `printable`, the one escaping function: what the
  daemon returns (a receiver's answer, a description, event data, an error message)
  can never drive the terminal. Control characters (C0, DEL, C1) and bidirectional
  controls are shown as JSON-style escapes (`\u001b`); multi-line text (`raw`, `note`)
  keeps its newlines and tabs. The only escape sequences written are our own colours.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import NamedTuple, TextIO

from hookd.domain.durations import span

_CODES = {"green": "32", "red": "31", "yellow": "33", "dim": "2", "bold": "1"}
STATUS_COLOURS = {
    "succeeded": "green",
    "failed": "red",
    "pending": "yellow",
    "cancelled": "dim",
    "erased": "dim",
}


_BIDI = "\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}]")
_UNSAFE_IN_LINES = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}]")  # keeps \t and \n


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def printable(text: str, *, lines: bool = False) -> str:
    """`text` safe to print on a terminal: control and bidirectional-control characters
    shown as escapes like `\\u001b`; with `lines`, newlines and tabs are kept.

    The escapes are JSON's, and such characters can stand only inside JSON strings, so
    JSON text stays valid and decodes to the same value.
    """
    pattern = _UNSAFE_IN_LINES if lines else _UNSAFE
    return pattern.sub(_escape, text) if pattern.search(text) else text


class Styled(NamedTuple):
    """Text shown in a colour (one of green, red, yellow, dim, bold) when colour is on."""

    text: str
    colour: str


Cell = str | Styled


def colour_wanted(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """True when `stream` is a terminal and NO_COLOR is not set."""
    return not environ.get("NO_COLOR") and stream.isatty()


def relative(seconds: float) -> str:
    """A distance in time: positive is ahead ("in 55s"), negative behind ("3m 20s ago")."""
    if abs(seconds) < 1:
        return "now"
    text = span(abs(seconds))
    return f"in {text}" if seconds > 0 else f"{text} ago"


def moment(text: str | None, now: float) -> str:
    """An API time as "2024-01-01T10:00:00Z (3m ago)"; "-" for None."""
    if not text:
        return "-"
    when = datetime.fromisoformat(text).astimezone(UTC)
    return f"{when.strftime('%Y-%m-%dT%H:%M:%SZ')} ({relative(when.timestamp() - now)})"


def status_cell(status: str) -> Styled:
    """A delivery status in its colour."""
    return Styled(status, STATUS_COLOURS.get(status, "bold"))


def code_cell(code: int | None) -> Cell:
    """An HTTP status code: green when 2xx, red otherwise; "-" when there was none."""
    if code is None:
        return "-"
    return Styled(str(code), "green" if 200 <= code < 300 else "red")


class Screen:
    """Prints a command's results on `out` and its notes on `err`."""

    def __init__(self, out: TextIO, err: TextIO, colour: bool, now: float) -> None:
        self.out = out
        self.err = err
        self.colour = colour
        self.now = now

    def paint(self, cell: Cell) -> str:
        """`cell` as printable text, coloured when colour is on."""
        text = _text(cell)
        if isinstance(cell, str) or not self.colour:
            return text
        return f"\x1b[{_CODES[cell.colour]}m{text}\x1b[0m"

    def line(self, *cells: Cell, sep: str = " ") -> None:
        """One line of cells separated by `sep`."""
        print(sep.join(self.paint(c) for c in cells), file=self.out, flush=True)

    def raw(self, text: str) -> None:
        """`text` as it is (JSON, TOML), but for escapes; ending with one newline."""
        text = printable(text, lines=True)
        self.out.write(text if text.endswith("\n") else text + "\n")
        self.out.flush()

    def note(self, text: str) -> None:
        """A remark for the person at the terminal, on `err`."""
        print(printable(text, lines=True), file=self.err, flush=True)

    def when(self, text: str | None) -> str:
        return moment(text, self.now)

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Cell]]) -> None:
        """Rows under upper-case headers, in aligned columns."""
        heads: list[Cell] = [Styled(h.upper(), "bold") for h in headers]
        every = [heads, *rows]
        widths = [max(len(_text(row[i])) for row in every) for i in range(len(headers))]
        for row in every:
            cells = [
                self.paint(cell) + " " * (width - len(_text(cell)))
                for cell, width in zip(row, widths, strict=True)
            ]
            print("  ".join(cells).rstrip(), file=self.out)
        self.out.flush()

    def fields(self, pairs: Sequence[tuple[str, Cell]]) -> None:
        """`name  value` lines with the values aligned."""
        width = max(len(name) for name, _ in pairs)
        for name, value in pairs:
            print(f"{name.ljust(width)}  {self.paint(value)}", file=self.out)
        self.out.flush()


def _text(cell: Cell) -> str:
    """The printable text of a cell, as shown (widths are measured on it)."""
    return printable(cell if isinstance(cell, str) else cell.text)
