"""GET /metrics: the exposition writer's text, and a scripted scenario against a real
daemon and real receivers whose scraped figures must equal exactly what happened.
"""

from __future__ import annotations

import os
import re
from collections import Counter as Tally
from collections.abc import Awaitable, Callable
from pathlib import Path

import apsw
import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from hookd import __version__
from hookd.db import schema, stats
from hookd.domain.retry import AttemptResult
from hookd.runtime import metrics
from tests.conftest import API_TOKEN, Running, free_port
from tests.receiver import Answer, Received, serve_receiver
from tests.system.test_api_events import REFUSING_URL, assert_error, create_endpoint, ingest

Factory = Callable[..., Awaitable[Running]]
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


async def scrape(running: Running) -> Samples:
    response = await running.client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse(response.text)


async def scrape_until(running: Running, done: Callable[[Samples], bool]) -> Samples:
    """Scrape until `done(samples)` holds (within 10 s); those samples."""
    with trio.fail_after(10):
        while True:
            samples = await scrape(running)
            if done(samples):
                return samples
            await trio.sleep(0.02)


def on_disk(database: str) -> int:
    """Bytes of the database file and its WAL."""
    return sum(os.stat(p).st_size for p in (database, f"{database}-wal") if os.path.exists(p))


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
        "hookd_events_nonconforming": "counter",
        "hookd_attempts": "counter",
        "hookd_deliveries_finished": "counter",
        "hookd_attempt_duration_seconds": "histogram",
        "hookd_deliveries_pending": "gauge",
        "hookd_oldest_pending_seconds": "gauge",
        "hookd_ingest_commit_seconds": "histogram",
        "hookd_alerts": "counter",
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


# -- against a real daemon -----------------------------------------------------------------

ATTEMPTS = "hookd_attempts_total"
FINISHED = "hookd_deliveries_finished_total"
SCENARIO = """
[delivery]
timeout = "300ms"
retry_schedule = ["0s", "200ms"]
"""


def flaky(request: Received) -> Answer:
    """500 to a first attempt; then 200, but 404 to a `tarefa.concluida`."""
    if request.headers["x-webhook-attempt"] == "1":
        return Answer(status=500)
    return Answer(status=404 if request.headers["x-webhook-event"] == "tarefa.concluida" else 200)


async def test_scripted_scenario(hookd_factory: Factory) -> None:
    hookd = await hookd_factory(SCENARIO)
    client = hookd.client
    async with (
        serve_receiver() as ok,
        serve_receiver(flaky) as failing,
        serve_receiver(lambda _: Answer(delay=5)) as slow,
    ):
        ids = {
            "ok": (await create_endpoint(client, ["*"], url=ok.url))["id"],
            "failing": (await create_endpoint(client, ["*"], url=failing.url))["id"],
            "slow": (await create_endpoint(client, ["cliente.*"], url=slow.url))["id"],
            "refused": (await create_endpoint(client, ["tarefa.*"], url=REFUSING_URL))["id"],
        }
        for _ in range(2):  # the repeat stores nothing, so it is not counted
            first = await client.post(
                "/v1/events",
                json={"event": "cliente.criado", "data": {"n": 1}},
                headers={"Idempotency-Key": "k1"},
            )
            assert first.status_code == 202
        assert first.headers["idempotent-replayed"] == "true"
        batch = [
            {"event": "cliente.criado", "data": {"n": 2}},
            {"event": "tarefa.concluida", "data": {"n": 3}},
            {"event": "chamado.aberto", "data": {"n": 4}},
        ]
        assert (await client.post("/v1/events/batch", json=batch)).status_code == 202
        # 11 deliveries, each to succeeded or failed. A scrape reads the backlog before
        # it renders the counters, so an attempt recorded in between is counted finished
        # while the backlog still shows it pending: wait for both to agree.
        samples = await scrape_until(
            hookd,
            lambda got: (
                sum(series(got, FINISHED, "status").values()) == 11
                and not any(series(got, "hookd_deliveries_pending", "endpoint").values())
            ),
        )
        received = {"ok": ok, "failing": failing, "slow": slow}
        assert {name: len(r.received) for name, r in received.items()} == {
            "ok": 4,
            "failing": 8,
            "slow": 4,
        }

    names = {ident: name for name, ident in ids.items()}

    def by(name: str, *labels: str) -> dict[tuple[str, ...], float]:
        return {
            tuple(names.get(v, v) for _, v in sorted(key)): n
            for (metric, key), n in samples.items()
            if metric == name and dict(key).keys() == set(labels)
        }

    assert by("hookd_events_ingested_total", "event") == {
        ("cliente.criado",): 2,
        ("tarefa.concluida",): 1,
        ("chamado.aberto",): 1,
    }
    assert by("hookd_attempts_total", "endpoint", "outcome") == {
        ("ok", "2xx"): 4,
        ("failing", "5xx"): 4,
        ("failing", "2xx"): 3,
        ("failing", "4xx"): 1,
        ("slow", "timeout"): 4,
        ("refused", "connect_error"): 2,
    }
    assert by("hookd_deliveries_finished_total", "endpoint", "status") == {
        ("ok", "succeeded"): 4,
        ("failing", "succeeded"): 3,
        ("failing", "failed"): 1,
        ("slow", "failed"): 2,
        ("refused", "failed"): 1,
    }
    assert by("hookd_attempt_duration_seconds_count", "endpoint") == {
        ("ok",): 4,
        ("failing",): 8,
        ("slow",): 4,
        ("refused",): 2,
    }
    slow_id = ids["slow"]
    assert value(samples, "hookd_attempt_duration_seconds_bucket", endpoint=slow_id, le="0.25") == 0
    assert value(samples, "hookd_attempt_duration_seconds_sum", endpoint=slow_id) >= 4 * 0.29
    assert by("hookd_deliveries_pending", "endpoint") == {(name,): 0 for name in ids}
    assert by("hookd_oldest_pending_seconds", "endpoint") == {(name,): 0 for name in ids}
    assert hookd.daemon.store is not None
    store = hookd.daemon.store
    # Alerts for the failed delivery are written after its record: let those land too.
    samples = await scrape_until(
        hookd, lambda got: value(got, "hookd_ingest_commit_seconds_count") == store.engine.commits
    )
    assert value(samples, "hookd_db_bytes") == on_disk(hookd.daemon.config.storage.path)
    assert value(samples, "hookd_build_info", version=__version__) == 1

    # And the database agrees: deliveries by endpoint and status, attempts in all.
    stored: Tally[tuple[str, str]] = Tally()
    attempts = 0
    for delivery in (await client.get("/v1/deliveries", params={"limit": 100})).json()["items"]:
        stored[names[delivery["endpoint_id"]], delivery["status"]] += 1
        attempts += delivery["attempts"]
    assert stored == by("hookd_deliveries_finished_total", "endpoint", "status")
    assert attempts == sum(by("hookd_attempts_total", "endpoint", "outcome").values())


async def test_pending_gauges_follow_the_database(hookd: Running) -> None:
    # Port 9 refuses: each delivery fails once and waits a minute for its retry.
    refusing = (await create_endpoint(hookd.client, ["*"]))["id"]
    disabled = (await create_endpoint(hookd.client, ["*"], enabled=False))["id"]
    await ingest(hookd.client)
    await ingest(hookd.client)
    await scrape_until(hookd, lambda got: series(got, ATTEMPTS, "endpoint") == {refusing: 2})
    age = (await hookd.client.get("/v1/status")).json()["oldest_pending_age_s"]
    samples = await scrape(hookd)
    assert series(samples, "hookd_deliveries_pending", "endpoint") == {refusing: 2, disabled: 0}
    oldest = series(samples, "hookd_oldest_pending_seconds", "endpoint")
    assert oldest[disabled] == 0
    assert age <= oldest[refusing] < age + 5
    assert series(samples, "hookd_deliveries_finished_total", "endpoint") == {}

    # A deleted endpoint leaves the gauges; its counters stay until the next start.
    assert (await hookd.client.delete(f"/v1/endpoints/{refusing}")).status_code == 204
    samples = await scrape(hookd)
    assert series(samples, "hookd_deliveries_pending", "endpoint") == {disabled: 0}
    assert value(samples, "hookd_attempts_total", endpoint=refusing, outcome="connect_error") == 2


async def test_an_attempt_on_a_cancelled_delivery_finishes_nothing(hookd: Running) -> None:
    async with serve_receiver(lambda _: Answer(delay=0.5)) as late:
        endpoint = (await create_endpoint(hookd.client, ["*"], url=late.url))["id"]
        await ingest(hookd.client)
        await late.wait_for(1)
        disable = await hookd.client.patch(f"/v1/endpoints/{endpoint}", json={"enabled": False})
        assert disable.status_code == 200  # cancels the delivery while its attempt is out
        await scrape_until(hookd, lambda got: bool(series(got, ATTEMPTS, "outcome")))
    samples = await scrape(hookd)
    # the disable cut the attempt short: counted as interrupted, finishing nothing
    assert series(samples, "hookd_attempts_total", "outcome") == {"interrupted": 1}
    assert series(samples, "hookd_deliveries_finished_total", "status") == {}
    [delivery] = (await hookd.client.get("/v1/deliveries")).json()["items"]
    assert delivery["status"] == "cancelled"


async def test_tcp_needs_the_token(hookd_factory: Factory) -> None:
    port = free_port()
    hookd = await hookd_factory(f'[server]\nlisten = "127.0.0.1:{port}"\napi_token = "{API_TOKEN}"')
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False) as tcp:
        assert_error(await tcp.get("/metrics"), 401)
        good = await tcp.get("/metrics", headers={"Authorization": f"Bearer {API_TOKEN}"})
        assert good.status_code == 200
        assert good.headers["content-type"] == metrics.CONTENT_TYPE
        assert value(parse(good.text), "hookd_build_info", version=__version__) == 1
    await scrape(hookd)  # the socket needs no token


def test_backlog_query_reads_only_the_pending_index(short_dir: Path) -> None:
    conn = apsw.Connection(str(short_dir / "plan.db"))
    conn.execute(schema.MIGRATIONS[0])
    rows = [
        (n, f"ep_{n % 10}", "pending" if n % 3 else "succeeded", float(n), float(n), float(n))
        for n in range(1, 3001)
    ]
    with conn:
        conn.executemany(
            "INSERT INTO deliveries (event_seq, endpoint_id, status, next_attempt_at,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
    conn.execute("ANALYZE")
    plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + stats.PENDING_BY_ENDPOINT)]
    assert "SCAN deliveries USING COVERING INDEX deliveries_due" in plan
    assert "SEARCH d USING INTEGER PRIMARY KEY (rowid=?)" in plan
    assert not [step for step in plan if "TEMP B-TREE" in step]
    got = {ident: (n, oldest) for ident, n, oldest in conn.execute(stats.PENDING_BY_ENDPOINT)}
    assert got["ep_1"] == (200, 1.0)  # ids 1, 11, 21, ...: those not divisible by 3
    assert got["ep_0"] == (200, 10.0)
    conn.close()
