"""Server-side SVG charts of the last hour, minute by minute.

Rules:
- Pure: numbers in, SVG text out (markup built by the templates' autoescaping is not
  needed: only numbers and the caller's title, escaped here, go in). No script, no
  style attribute (the Content-Security-Policy forbids inline style): presentation
  attributes and classes of the console's stylesheet only.
- 60 slots, one per minute, the current minute last; minutes without attempts are 0 (or
  a gap in the latency line).
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import NamedTuple

from hookd.domain import stats

WIDTH, HEIGHT, PAD = 600, 160, 28
SLOTS = 60


class Series(NamedTuple):
    """A value per minute of the last hour, oldest first."""

    attempts: list[float]
    latency_p95: list[float | None]


def series(rows: Sequence[tuple[int, stats.PeriodCounts]], now: float) -> Series:
    """The per-minute rows of `minute_series` spread over the hour's 60 slots."""
    start = stats.window_start(now, stats.MINUTE, SLOTS)
    attempts: list[float] = [0.0] * SLOTS
    latency: list[float | None] = [None] * SLOTS
    for period, counts in rows:
        slot = period - start
        if 0 <= slot < SLOTS:
            attempts[slot] = float(counts.attempts)
            latency[slot] = stats.percentile(counts.latency, 0.95)
    return Series(attempts, latency)


def bars(values: Sequence[float], title: str) -> str:
    """A bar chart of `values` (one bar per minute)."""
    top = max(values, default=0) or 1
    width = (WIDTH - 2 * PAD) / len(values)
    rects = []
    for index, value in enumerate(values):
        height = (HEIGHT - 2 * PAD) * value / top
        x = PAD + index * width
        y = HEIGHT - PAD - height
        rects.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{max(width - 1, 1):.1f}" '
            f'height="{height:.1f}"><title>{value:g}</title></rect>'
        )
    return _frame(title, top, "".join(rects))


def line(values: Sequence[float | None], title: str) -> str:
    """A line chart of `values`, broken where a minute has none."""
    known = [v for v in values if v is not None]
    top = max(known, default=0) or 1
    step = (WIDTH - 2 * PAD) / max(len(values) - 1, 1)
    paths: list[list[str]] = []
    current: list[str] = []
    for index, value in enumerate(values):
        if value is None:
            if current:
                paths.append(current)
            current = []
            continue
        y = HEIGHT - PAD - (HEIGHT - 2 * PAD) * value / top
        current.append(f"{PAD + index * step:.1f},{y:.1f}")
    if current:
        paths.append(current)
    drawn = "".join(
        f'<polyline class="line" fill="none" points="{" ".join(points)}"/>'
        if len(points) > 1
        else f'<circle class="dot" r="2" cx="{points[0].split(",")[0]}" '
        f'cy="{points[0].split(",")[1]}"/>'
        for points in paths
    )
    return _frame(title, top, drawn)


def _frame(title: str, top: float, body: str) -> str:
    label = escape(title)
    return (
        f'<svg class="chart" role="img" aria-label="{label}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{label}</title>'
        f'<line class="axis" x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" '
        f'y2="{HEIGHT - PAD}"/>'
        f'<text class="tick" x="2" y="{PAD}">{top:g}</text>'
        f'<text class="tick" x="2" y="{HEIGHT - PAD}">0</text>'
        f'<text class="tick" x="{PAD}" y="{HEIGHT - 6}">-60 min</text>'
        f'<text class="tick" x="{WIDTH - PAD - 30}" y="{HEIGHT - 6}">now</text>'
        f"{body}</svg>"
    )
