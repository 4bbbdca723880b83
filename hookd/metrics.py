"""Prometheus metrics: counter, gauge and histogram families with labels, and the text
exposition format 0.0.4 that `GET /metrics` answers with.

Rules:
- A family keeps its series in a dict keyed by the tuple of its label values (in the
  order of its label names). Recording is a dict lookup and an add; the text of a
  series' labels is built once, when the series first appears (a gauge's: at the first
  scrape that writes it), so a scrape only formats numbers.
- Counters count from the start of the process (Prometheus expects the reset at a
  restart). The gauges that describe the database are set by the scrape itself.
- Everything is updated on the trio thread but `ingest_commit`, which only the store's
  writer thread observes. A scrape copies each of its series before writing it, and
  writes `_count` as the sum of the buckets, so the two always agree (`_sum` may lag by
  the one commit being observed).
- Text follows the format: label values escape `\\`, `"` and newline; HELP text escapes
  `\\` and newline; a histogram writes cumulative `_bucket{le=...}` lines ending with
  `le="+Inf"`, then `_sum` and `_count`.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from typing import ClassVar

from hookd.core.retry import AttemptResult

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

ATTEMPT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

Key = tuple[str, ...]


class _Family:
    """A metric family: a name, its HELP text, label names, and a series per key."""

    kind: ClassVar[str]

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.labels = tuple(labels)
        self.header = f"# HELP {name} {_escape_help(help_text)}\n# TYPE {name} {self.kind}\n"
        self._label_text: dict[Key, str] = {}

    def label_text(self, key: Key) -> str:
        """`{name="value",...}` for `key` ("" without labels), built once per series."""
        text = self._label_text.get(key)
        if text is None:
            pairs = _pairs(self.labels, key)
            text = self._label_text[key] = f"{{{pairs}}}" if pairs else ""
        return text

    def write(self, out: list[str]) -> None:
        """Append this family's sample lines to `out`."""
        raise NotImplementedError


class Counter(_Family):
    """Counts up; `inc(key)` adds one to the series of `key`."""

    kind = "counter"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labels)
        self.values: dict[Key, int] = {}

    def inc(self, key: Key = (), amount: int = 1) -> None:
        try:
            self.values[key] += amount
        except KeyError:  # a new series: its label text now, once, not all at one scrape
            self.label_text(key)
            self.values[key] = amount

    def write(self, out: list[str]) -> None:
        name = self.name
        for key, value in self.values.items():
            out.append(f"{name}{self.label_text(key)} {value}\n")


class Gauge(_Family):
    """A value that goes up and down; `values` may be replaced whole."""

    kind = "gauge"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labels)
        self.values: dict[Key, float] = {}

    def set(self, key: Key, value: float) -> None:
        self.values[key] = value

    def write(self, out: list[str]) -> None:
        name = self.name
        for key, value in self.values.items():
            out.append(f"{name}{self.label_text(key)} {_number(value)}\n")


class _Series:
    __slots__ = ("counts", "total")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * (buckets + 1)  # per bucket, not cumulative; the last is +Inf
        self.total = 0.0


class Histogram(_Family):
    """Observations counted in buckets (upper bounds, `le`), with their sum."""

    kind = "histogram"

    def __init__(
        self, name: str, help_text: str, buckets: Sequence[float], labels: Sequence[str] = ()
    ) -> None:
        super().__init__(name, help_text, labels)
        self.bounds = tuple(sorted(float(b) for b in buckets))
        self._le = [*(repr(b) for b in self.bounds), "+Inf"]
        self.series: dict[Key, _Series] = {}
        self._lines: dict[Key, tuple[list[str], str, str]] = {}

    def observe(self, key: Key, value: float) -> None:
        series = self.series.get(key)
        if series is None:  # a new series: its text now, once (and before a scrape sees it)
            self._prefixes(key)
            series = self.series[key] = _Series(len(self.bounds))
        series.counts[bisect_left(self.bounds, value)] += 1  # le: value <= bound
        series.total += value

    def write(self, out: list[str]) -> None:
        for key, series in list(self.series.items()):
            counts, total = list(series.counts), series.total
            buckets, sum_line, count_line = self._prefixes(key)
            cumulative = 0
            for prefix, count in zip(buckets, counts, strict=True):
                cumulative += count
                out.append(f"{prefix}{cumulative}\n")
            out.append(f"{sum_line}{_number(total)}\n{count_line}{cumulative}\n")

    def _prefixes(self, key: Key) -> tuple[list[str], str, str]:
        lines = self._lines.get(key)
        if lines is None:
            pairs = _pairs(self.labels, key)
            bucket = f'{self.name}_bucket{{{pairs}{"," if pairs else ""}le="'
            buckets = [f'{bucket}{le}"}} ' for le in self._le]
            labels = self.label_text(key)
            lines = self._lines[key] = (
                buckets,
                f"{self.name}_sum{labels} ",
                f"{self.name}_count{labels} ",
            )
        return lines


def render(families: Iterable[_Family]) -> bytes:
    """The families in the text exposition format 0.0.4."""
    out: list[str] = []
    for family in families:
        out.append(family.header)
        family.write(out)
    return "".join(out).encode()


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_value(text: str) -> str:
    if "\\" in text or '"' in text or "\n" in text:
        return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return text


def _pairs(names: tuple[str, ...], values: Key) -> str:
    """`name="value",...`, the values escaped."""
    return ",".join(
        [f'{name}="{_escape_value(value)}"' for name, value in zip(names, values, strict=True)]
    )


def _number(value: float) -> str:
    if math.isfinite(value):
        return repr(value)
    return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")


# -- hookd's metrics ----------------------------------------------------------------------

_BY_CLASS = {2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}
_BY_KIND = {
    "timeout": "timeout",
    "dns": "connect_error",
    "connect": "connect_error",
    "tls": "connect_error",
    "blocked": "blocked",
    "network": "network_error",
    "protocol": "network_error",
    "interrupted": "interrupted",
    "internal": "internal_error",
    "local": "local_error",
}


def outcome(result: AttemptResult) -> str:
    """The `outcome` label of an attempt."""
    code = result.status_code
    if code is not None:
        return _BY_CLASS.get(code // 100, "network_error")  # 6xx-9xx: not HTTP classes
    return _BY_KIND.get(result.error_kind or "", "network_error")


class Metrics:
    """hookd's metric families: one set per daemon, rendered by `GET /metrics`."""

    def __init__(self, version: str) -> None:
        self.events_ingested = Counter(
            "hookd_events_ingested_total",
            "Events stored through the API, by type, counted once committed (a repeated "
            "event id or Idempotency-Key stores nothing and is not counted).",
            ("event",),
        )
        self.events_nonconforming = Counter(
            "hookd_events_nonconforming_total",
            "Events accepted although a field departs from the event catalog (a type, a "
            "format, a value the spec does not show, a lone UTF-16 surrogate replaced), by "
            "type and field; with ingest.validate = 'report' they are delivered as sent.",
            ("event", "field"),
        )
        self.attempts = Counter(
            "hookd_attempts_total",
            "Delivery attempts recorded, by endpoint id and outcome: 2xx, 3xx, 4xx, 5xx "
            "(the status answered), timeout (no whole answer within delivery.timeout), "
            "connect_error (DNS, connect or TLS failure), blocked (address refused by the "
            "network policy, or http:// with require_https), network_error (connection "
            "lost, or an answer that is not valid HTTP), interrupted (cut short by hookd: "
            "the endpoint disabled or deleted meanwhile, or the stop's grace ran out), "
            "local_error (hookd itself out of descriptors or memory), internal_error (a bug "
            "or an input no rule foresaw, logged with its traceback).",
            ("endpoint", "outcome"),
        )
        self.deliveries_finished = Counter(
            "hookd_deliveries_finished_total",
            "Deliveries that ended succeeded or failed, by endpoint id, counted when the "
            "attempt that ended them is recorded (a delivery retried through the API can "
            "end again).",
            ("endpoint", "status"),
        )
        self.attempt_duration = Histogram(
            "hookd_attempt_duration_seconds",
            "Time one delivery attempt took, from sending to the answer or the failure, "
            "by endpoint id.",
            ATTEMPT_BUCKETS,
            ("endpoint",),
        )
        self.deliveries_pending = Gauge(
            "hookd_deliveries_pending",
            "Deliveries pending (due, or waiting for a retry), by endpoint id, read from "
            "the database at scrape time.",
            ("endpoint",),
        )
        self.oldest_pending = Gauge(
            "hookd_oldest_pending_seconds",
            "Seconds since the endpoint's oldest pending delivery was created (0 when "
            "none is pending), by endpoint id, read from the database at scrape time.",
            ("endpoint",),
        )
        self.ingest_commit = Histogram(
            "hookd_ingest_commit_seconds",
            "Time the writer took to run and commit one group-commit transaction "
            "(ingested events and recorded attempts share them).",
            COMMIT_BUCKETS,
        )
        self.db_bytes = Gauge(
            "hookd_db_bytes", "Size of the database file plus its write-ahead log, in bytes."
        )
        self.alerts = Counter(
            "hookd_alerts_total",
            "Alerts raised, by kind: delivery_failed (a delivery ended failed; not counted "
            "for hookd's own events) and endpoint_disabled (automatically or by hand).",
            ("kind",),
        )
        self.build_info = Gauge("hookd_build_info", "hookd's version; always 1.", ("version",))
        self.build_info.set((version,), 1)

    def attempt_recorded(
        self, endpoint_id: str, result: AttemptResult, seconds: float, finished: str | None
    ) -> None:
        """Count an attempt once it is on disk; `finished`: the status it ended its
        delivery with (succeeded or failed), None when the delivery goes on or had
        already left `pending` (cancelled meanwhile)."""
        self.attempts.inc((endpoint_id, outcome(result)))
        self.attempt_duration.observe((endpoint_id,), seconds)
        if finished is not None:
            self.deliveries_finished.inc((endpoint_id, finished))

    def set_backlog(
        self, pending: dict[str, tuple[int, float | None]], file_bytes: int, now: float
    ) -> None:
        """Set the database gauges: per endpoint (pending count, creation time of the
        oldest pending delivery), and the size on disk."""
        self.deliveries_pending.values = {(ident,): n for ident, (n, _) in pending.items()}
        self.oldest_pending.values = {
            (ident,): 0.0 if oldest is None else max(0.0, round(now - oldest, 3))
            for ident, (_, oldest) in pending.items()
        }
        self.db_bytes.set((), file_bytes)

    def render(self) -> bytes:
        """Every family, in the text format."""
        return render(
            [
                self.events_ingested,
                self.events_nonconforming,
                self.attempts,
                self.deliveries_finished,
                self.attempt_duration,
                self.deliveries_pending,
                self.oldest_pending,
                self.ingest_commit,
                self.alerts,
                self.db_bytes,
                self.build_info,
            ]
        )
