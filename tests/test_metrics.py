"""The Prometheus exposition writer: its text, checked line by line and by a parser."""

from __future__ import annotations

import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hookd import metrics
from hookd.core.retry import AttemptResult

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

# One line of the text format 0.0.4 as hookd writes it: a comment, or a sample.
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
_LINE = re.compile(
    r"# (?:HELP [a-zA-Z_:][a-zA-Z0-9_:]* (?:[^\\\n]|\\[\\n])*|TYPE [a-zA-Z_:][a-zA-Z0-9_:]* "
    r"(?:counter|gauge|histogram))"
    rf"|[a-zA-Z_:][a-zA-Z0-9_:]*(?:\{{{_LABEL}(?:,{_LABEL})*\}})? "
    r"(?:[-+]?[0-9.]+(?:e[-+]?[0-9]+)?|\+Inf|-Inf|NaN)"
)


def parse(text: str) -> Samples:
    """Every sample by (name, labels), after checking each line's form."""
    assert text.endswith("\n")
    for line in text.splitlines():
        assert _LINE.fullmatch(line), line
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[name, frozenset(labels.items())]


def series(samples: Samples, name: str, label: str) -> dict[str, float]:
    """The samples of `name` summed by the value of their label `label`."""
    sums: dict[str, float] = {}
    for (metric, key), count in samples.items():
        if metric == name:
            sums[dict(key)[label]] = sums.get(dict(key)[label], 0) + count
    return sums


# -- the exposition writer -----------------------------------------------------------------


def test_counter_and_gauge_text() -> None:
    counter = metrics.Counter("x_total", "Things done.\nBy kind \\ all.", ("kind", "where"))
    counter.inc(("a", "here"))
    counter.inc(("a", "here"), 2)
    counter.inc(("b", "there"))
    gauge = metrics.Gauge("y_bytes", "Size.")
    gauge.set((), 12.5)
    empty = metrics.Gauge("z", "Nothing yet.", ("endpoint",))
    assert metrics.render([counter, gauge, empty]).decode() == (
        "# HELP x_total Things done.\\nBy kind \\\\ all.\n"
        "# TYPE x_total counter\n"
        'x_total{kind="a",where="here"} 3\n'
        'x_total{kind="b",where="there"} 1\n'
        "# HELP y_bytes Size.\n"
        "# TYPE y_bytes gauge\n"
        "y_bytes 12.5\n"
        "# HELP z Nothing yet.\n"
        "# TYPE z gauge\n"
    )


def test_label_values_are_escaped() -> None:
    odd = 'a\\b "quoted"\nnext line é'
    counter = metrics.Counter("odd_total", "Odd labels.", ("name",))
    counter.inc((odd,))
    text = metrics.render([counter]).decode()
    assert 'odd_total{name="a\\\\b \\"quoted\\"\\nnext line é"} 1\n' in text
    assert parse(text) == {("odd_total", frozenset({("name", odd)})): 1.0}


def test_histogram_buckets_are_cumulative() -> None:
    histogram = metrics.Histogram("t_seconds", "Times.", (0.1, 1, 0.5), ("endpoint",))
    for seconds in (0.05, 0.1, 0.3, 0.5, 0.7, 3.0):  # a bound counts in its own bucket
        histogram.observe(("e1",), seconds)
    histogram.observe(("e2",), 0.2)
    text = metrics.render([histogram]).decode()
    assert text == (
        "# HELP t_seconds Times.\n"
        "# TYPE t_seconds histogram\n"
        't_seconds_bucket{endpoint="e1",le="0.1"} 2\n'
        't_seconds_bucket{endpoint="e1",le="0.5"} 4\n'
        't_seconds_bucket{endpoint="e1",le="1.0"} 5\n'
        't_seconds_bucket{endpoint="e1",le="+Inf"} 6\n'
        't_seconds_sum{endpoint="e1"} 4.65\n'
        't_seconds_count{endpoint="e1"} 6\n'
        't_seconds_bucket{endpoint="e2",le="0.1"} 0\n'
        't_seconds_bucket{endpoint="e2",le="0.5"} 1\n'
        't_seconds_bucket{endpoint="e2",le="1.0"} 1\n'
        't_seconds_bucket{endpoint="e2",le="+Inf"} 1\n'
        't_seconds_sum{endpoint="e2"} 0.2\n'
        't_seconds_count{endpoint="e2"} 1\n'
    )
    [family] = text_string_to_metric_families(text)
    assert family.type == "histogram"


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (AttemptResult(status_code=200), "2xx"),
        (AttemptResult(status_code=299), "2xx"),
        (AttemptResult(status_code=302), "3xx"),  # never followed
        (AttemptResult(status_code=404), "4xx"),
        (AttemptResult(status_code=503), "5xx"),
        (AttemptResult(status_code=600), "network_error"),  # no HTTP class: not HTTP
        (AttemptResult(error_kind="timeout"), "timeout"),
        (AttemptResult(error_kind="dns"), "connect_error"),
        (AttemptResult(error_kind="connect"), "connect_error"),
        (AttemptResult(error_kind="tls"), "connect_error"),
        (AttemptResult(error_kind="blocked"), "blocked"),
        (AttemptResult(error_kind="network"), "network_error"),  # connection lost
        (AttemptResult(error_kind="protocol"), "network_error"),  # an answer that isn't HTTP
    ],
)
def test_outcome_of_an_attempt(result: AttemptResult, expected: str) -> None:
    assert metrics.outcome(result) == expected


def test_every_family_renders_valid_text() -> None:
    figures = metrics.Metrics("1.2.3")
    figures.events_ingested.inc(("cliente.criado",))
    figures.attempt_recorded("ep_1", AttemptResult(status_code=500), 0.02, None)
    figures.attempt_recorded("ep_1", AttemptResult(error_kind="timeout"), 5.0, "failed")
    figures.ingest_commit.observe((), 0.003)
    figures.set_backlog({"ep_1": (2, 100.0), "ep_2": (0, None)}, 4096, now=160.5)
    text = figures.render().decode()
    samples = parse(text)
    types = {family.name: family.type for family in text_string_to_metric_families(text)}
    assert types == {
        "hookd_events_ingested": "counter",
        "hookd_attempts": "counter",
        "hookd_deliveries_finished": "counter",
        "hookd_attempt_duration_seconds": "histogram",
        "hookd_deliveries_pending": "gauge",
        "hookd_oldest_pending_seconds": "gauge",
        "hookd_ingest_commit_seconds": "histogram",
        "hookd_db_bytes": "gauge",
        "hookd_build_info": "gauge",
    }
    assert series(samples, "hookd_attempts_total", "outcome") == {"5xx": 1, "timeout": 1}
    assert series(samples, "hookd_deliveries_finished_total", "status") == {"failed": 1}
    assert value(samples, "hookd_attempt_duration_seconds_count", endpoint="ep_1") == 2
    assert value(samples, "hookd_attempt_duration_seconds_bucket", endpoint="ep_1", le="5.0") == 2
    assert value(samples, "hookd_attempt_duration_seconds_bucket", endpoint="ep_1", le="2.5") == 1
    assert series(samples, "hookd_deliveries_pending", "endpoint") == {"ep_1": 2, "ep_2": 0}
    assert series(samples, "hookd_oldest_pending_seconds", "endpoint") == {
        "ep_1": 60.5,
        "ep_2": 0,
    }
    assert value(samples, "hookd_ingest_commit_seconds_count") == 1
    assert value(samples, "hookd_db_bytes") == 4096
    assert value(samples, "hookd_build_info", version="1.2.3") == 1
