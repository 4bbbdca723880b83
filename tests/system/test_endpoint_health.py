"""Endpoint health and statistics: windows that roll, auto-disable, 410 Gone, alerts.

The store-level tests drive `record_attempts` with attempts at chosen times (time is an
input), on a real SQLite file. The end-to-end tests run the daemon with real receivers.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypedDict

import pytest
import trio

from hookd.db.sqlite import SqliteBackend as Store
from hookd.db.types import NewEvent
from hookd.domain.attempts import AttemptRecord
from hookd.domain.envelope import IngestRequest, prepare
from hookd.domain.retry import AttemptResult
from hookd.domain.stats import WindowSummary
from hookd.domain.views import EndpointStats
from hookd.runtime import ids
from tests.conftest import Running
from tests.receiver import Answer, serve_receiver
from tests.system.test_delivery import ingest, subscribe, wait_status

Start = Callable[..., Awaitable[Running]]
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
ENDPOINT = "ep_health"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(str(tmp_path / "hookd.db"), "normal")
    try:
        await opened.create_endpoint(
            {
                "id": ENDPOINT,
                "url": "https://example.com/hook",
                "events": ["*"],
                "secret": "s",
                "description": "",
                "enabled": True,
            },
            T0,
            origin="socket",
        )
        yield opened
    finally:
        await opened.aclose()


async def _deliveries(store: Store, count: int) -> list[int]:
    event = prepare(IngestRequest("cliente.criado", {"id": "c"}), "2024-01-01T00:00:00Z")
    results = await store.ingest([NewEvent(event, ids.event_id(T0)) for _ in range(count)], T0)
    return [d.id for r in results for d in r.created]


def _record(
    delivery_id: int, at: float, code: int | None, status: str, ms: float = 30
) -> AttemptRecord:
    result = AttemptResult(status_code=code) if code else AttemptResult(error_kind="connect")
    return AttemptRecord(
        delivery_id=delivery_id,
        endpoint_id=ENDPOINT,
        number=1,
        started_at=at,
        duration_ms=ms,
        finished_at=at + ms / 1000,
        result=result,
        status=status,
        next_attempt_at=None if status != "pending" else at + 60,
        error=None if code == 200 else "failed",
    )


class _Stats(TypedDict):
    """The endpoint's two windows by name, and its whole row."""

    last_hour: WindowSummary
    last_24h: WindowSummary
    row: EndpointStats


async def _stats(store: Store, now: float) -> _Stats:
    [stats] = await store.endpoint_stats(ENDPOINT, now)
    return _Stats(
        last_hour=stats.windows["last_hour"], last_24h=stats.windows["last_24h"], row=stats
    )


async def test_windows_roll_a_minute_and_an_hour_at_a_time(store: Store) -> None:
    start = (T0 // 3600) * 3600  # an hour boundary
    [a, b, c] = await _deliveries(store, 3)
    await store.record_attempts([_record(a, start + 1, 200, "succeeded")])
    await store.record_attempts([_record(b, start + 1800, 500, "failed", ms=3000)])

    at_half_hour = await _stats(store, start + 1830)
    assert at_half_hour["last_hour"].attempts == 2
    assert at_half_hour["last_hour"].latency_ms["p99"] is not None
    assert at_half_hour["last_hour"].latency_ms["p99"] > 2500  # b's 3 s attempt
    # The last hour rolls by the minute: 59 minutes after a's minute it is in, 60 out.
    assert (await _stats(store, start + 59 * 60))["last_hour"].deliveries_succeeded == 1
    assert (await _stats(store, start + 60 * 60))["last_hour"].deliveries_succeeded == 0
    assert (await _stats(store, start + 60 * 60))["last_24h"].deliveries_succeeded == 1

    await store.record_attempts([_record(c, start + 7200, 200, "succeeded")])
    at_2h = await _stats(store, start + 7200)
    assert at_2h["last_hour"].deliveries_succeeded == 1  # only c
    assert at_2h["last_hour"].deliveries_failed == 0
    assert at_2h["last_24h"].deliveries_succeeded == 2
    assert at_2h["last_24h"].deliveries_failed == 1
    assert at_2h["last_24h"].success_rate == pytest.approx(2 / 3, abs=1e-4)
    # The last 24 h rolls by the hour: a's hour leaves it 24 hours later.
    assert (await _stats(store, start + 23 * 3600 + 3599))["last_24h"].attempts == 3
    assert (await _stats(store, start + 24 * 3600))["last_24h"].attempts == 1  # c only
    assert (await _stats(store, start + 27 * 3600))["last_24h"].attempts == 0


async def test_health_tracks_the_run_of_failures(store: Store) -> None:
    ids_ = await _deliveries(store, 4)
    await store.record_attempts([_record(ids_[0], T0 + 10, 200, "succeeded")])
    await store.record_attempts(
        [_record(ids_[1], T0 + 20, 500, "pending"), _record(ids_[2], T0 + 30, None, "pending")]
    )
    row = (await _stats(store, T0 + 40))["row"]
    assert row.consecutive_failures == 2
    assert row.failing_since is not None
    assert row.failing_since.startswith("2023-11-14T22:13:40")  # T0 + 20
    assert row.last_success_at is not None
    assert row.pending == 3  # all but the first
    await store.record_attempts([_record(ids_[3], T0 + 50, 200, "succeeded")])
    row = (await _stats(store, T0 + 60))["row"]
    assert (row.consecutive_failures, row.failing_since) == (0, None)


async def test_disable_after_fires_at_the_threshold_and_not_before(store: Store) -> None:
    day = 86400.0
    first, second, third = await _deliveries(store, 3)
    recorded = await store.record_attempts([_record(first, T0, 500, "pending")], day)
    assert recorded.disabled == []
    just_before = T0 + day - 1
    recorded = await store.record_attempts([_record(second, just_before, 500, "pending")], day)
    assert recorded.disabled == []
    assert (await _stats(store, just_before))["row"].enabled
    recorded = await store.record_attempts([_record(third, T0 + day, 500, "pending")], day)
    [(endpoint_id, reason)] = recorded.disabled
    assert endpoint_id == ENDPOINT
    assert "nothing but failures since" in reason
    row = (await _stats(store, T0 + day))["row"]
    assert not row.enabled
    assert row.disabled_reason == reason
    assert row.pending == 0  # its pending deliveries were cancelled
    [entry] = [e for e in (await store.list_audit(10, None, {})).items if e.action == "disable"]
    assert (entry.origin, entry.endpoint_id, entry.fields) == ("hookd", ENDPOINT, ["enabled"])


async def test_re_enabling_starts_the_run_of_failures_again(store: Store) -> None:
    day = 86400.0
    first, second = await _deliveries(store, 2)
    await store.record_attempts([_record(first, T0, 500, "pending")], day)
    recorded = await store.record_attempts([_record(second, T0 + day, 500, "pending")], day)
    assert recorded.disabled != []
    await store.update_endpoint(ENDPOINT, {"enabled": True}, T0 + day + 10, origin="socket")
    row = (await _stats(store, T0 + day + 10))["row"]
    assert (row.enabled, row.consecutive_failures, row.failing_since) == (True, 0, None)
    assert row.disabled_reason is None
    [fresh] = await _deliveries(store, 1)
    recorded = await store.record_attempts([_record(fresh, T0 + day + 20, 500, "pending")], day)
    assert recorded.disabled == []  # one failure after re-enabling is not a day of them
    await store.update_endpoint(ENDPOINT, {"enabled": False}, T0 + day + 30, origin="socket")
    assert (await _stats(store, T0 + day + 30))["row"].disabled_reason is None  # by hand


async def test_a_success_in_between_restarts_the_clock(store: Store) -> None:
    day = 86400.0
    a, b, c = await _deliveries(store, 3)
    await store.record_attempts([_record(a, T0, 500, "pending")], day)
    await store.record_attempts([_record(b, T0 + day / 2, 200, "succeeded")], day)
    recorded = await store.record_attempts([_record(c, T0 + day + 1, 500, "pending")], day)
    assert recorded.disabled == []


async def test_410_logs_the_delivery_as_cancelled_not_as_retried(
    hookd_factory: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="hookd.delivery")  # per attempt: debug
    hookd = await hookd_factory('[delivery]\nretry_schedule = ["0s", "2s", "1h"]')
    async with serve_receiver(lambda _: Answer(410, body=b"gone")) as gone:
        endpoint = await subscribe(hookd, gone.url, ["*"])
        await ingest(hookd, "cliente.criado", {"id": "c"})
        [delivery] = (await hookd.client.get("/v1/deliveries")).json()["items"]
        await wait_status(hookd, delivery["id"], "cancelled")
    mine = f"delivery={delivery['id']} "
    [line] = [r.getMessage() for r in caplog.records if mine in r.getMessage()]
    assert "retry_in" not in line
    assert line.startswith("action=delivery.cancelled ")
    assert f"endpoint={endpoint['id']}" in line
    assert "status=410" in line
    assert "it answered 410 Gone" in line


async def test_410_disables_at_once_and_alerts(hookd_factory: Start) -> None:
    hookd = await hookd_factory('[delivery]\nretry_schedule = ["0s", "1h"]')
    async with (
        serve_receiver(lambda _: Answer(410, body=b"gone")) as gone,
        serve_receiver() as ops,
        serve_receiver() as everything,
    ):
        endpoint = await subscribe(hookd, gone.url, ["cliente.*"])
        await subscribe(hookd, ops.url, ["hookd.*"])
        await subscribe(hookd, everything.url, ["*"])
        accepted = await ingest(hookd, "cliente.criado", {"id": "c"})
        [alert] = await ops.wait_for(1)
        await everything.wait_for(1)
        event = (await hookd.client.get(f"/v1/events/{accepted['id']}")).json()
        to_gone = next(d for d in event["deliveries"] if d["endpoint_id"] == endpoint["id"])
        cancelled = await wait_status(hookd, to_gone["id"], "cancelled")
        state = (await hookd.client.get(f"/v1/endpoints/{endpoint['id']}")).json()
        stats = (await hookd.client.get(f"/v1/endpoints/{endpoint['id']}/stats")).json()
        await trio.sleep(0.1)
        scraped = (await hookd.client.get("/metrics")).text
    assert alert.headers["x-webhook-event"] == "hookd.endpoint.desativado"
    assert b'"endpointId":"' + endpoint["id"].encode() in alert.body
    assert b"410 Gone" in alert.body
    assert cancelled["attempts"] == 1  # no retry after the 410
    assert state["enabled"] is False
    assert stats["disabled_reason"] == "it answered 410 Gone"
    assert stats["windows"]["last_hour"]["attempts_failed"] == 1
    assert len(everything.received) == 1  # '*' takes the CRM's event, not hookd's alert
    assert 'hookd_alerts_total{kind="endpoint_disabled"} 1' in scraped.splitlines()


async def test_a_failed_delivery_alerts_subscribers_once(hookd_factory: Start) -> None:
    hookd = await hookd_factory('[delivery]\nretry_schedule = ["0s"]')
    async with (
        serve_receiver(lambda _: Answer(500)) as failing,
        serve_receiver(lambda _: Answer(503)) as ops,
    ):
        await subscribe(hookd, failing.url, ["tarefa.*"])
        await subscribe(hookd, ops.url, ["hookd.entrega.falhou"])  # fails too: no loop
        accepted = await ingest(hookd, "tarefa.criada", {"id": "t"})
        [alert] = await ops.wait_for(1)
        await trio.sleep(0.3)
    assert alert.headers["x-webhook-event"] == "hookd.entrega.falhou"
    assert b'"eventoId":"' + accepted["id"].encode() in alert.body
    assert b'"ultimoStatus":500' in alert.body
    assert len(ops.received) == 1  # its own failure raised nothing more


async def test_disabling_by_hand_alerts(hookd: Running) -> None:
    async with serve_receiver() as ops:
        await subscribe(hookd, ops.url, ["hookd.*"])
        endpoint = await subscribe(hookd, "http://127.0.0.1:9/x", ["cliente.*"])
        response = await hookd.client.patch(
            f"/v1/endpoints/{endpoint['id']}", json={"enabled": False}
        )
        assert response.status_code == 200
        [alert] = await ops.wait_for(1)
        again = await hookd.client.patch(f"/v1/endpoints/{endpoint['id']}", json={"enabled": False})
        assert again.status_code == 200
        await trio.sleep(0.2)
    assert b"disabled through the API" in alert.body
    assert len(ops.received) == 1  # already disabled: no second alert


async def test_clients_cannot_send_hookd_events(hookd: Running) -> None:
    response = await hookd.client.post(
        "/v1/events", json={"event": "hookd.endpoint.desativado", "data": {}}
    )
    assert response.status_code == 422
    assert "hookd's own events" in response.json()["error"]["message"]
    batch = [{"event": "cliente.criado", "data": {}}, {"event": "hookd.teste", "data": {}}]
    response = await hookd.client.post("/v1/events/batch", json=batch)
    assert response.status_code == 422
    assert "item 1" in response.json()["error"]["message"]


async def test_stats_of_every_endpoint(hookd: Running) -> None:
    async with serve_receiver() as receiver:
        await subscribe(hookd, receiver.url, ["*"])
        await ingest(hookd, "cliente.criado", {"id": "c"})
        await receiver.wait_for(1)
        await trio.sleep(0.1)
        answer = (await hookd.client.get("/v1/stats")).json()
    [stats] = answer["endpoints"]
    assert stats["windows"]["last_hour"]["deliveries_succeeded"] == 1
    assert stats["windows"]["last_24h"]["success_rate"] == 1.0
    assert stats["last_success_at"] is not None
    assert stats["pending"] == 0
    unknown = await hookd.client.get("/v1/endpoints/ep_nope/stats")
    assert unknown.status_code == 404


async def test_a_retry_after_a_url_change_goes_to_the_new_url(hookd_factory: Start) -> None:
    # The attempt is in flight when the URL changes: its retry must not reuse the old job.
    hookd = await hookd_factory('[delivery]\nretry_schedule = ["0s", "500ms", "1h"]')
    async with (
        serve_receiver(lambda _: Answer(500, delay=0.3)) as old,
        serve_receiver() as new,
    ):
        endpoint = await subscribe(hookd, old.url, ["*"])
        accepted = await ingest(hookd, "cliente.criado", {"id": "c"})
        await old.wait_for(1)
        response = await hookd.client.patch(
            f"/v1/endpoints/{endpoint['id']}", json={"url": new.url}
        )
        assert response.status_code == 200
        with trio.fail_after(5):
            [retried] = await new.wait_for(1)
    assert len(old.received) == 1
    assert retried.headers["x-webhook-id"] == accepted["id"]
    assert retried.headers["x-webhook-attempt"] == "2"
