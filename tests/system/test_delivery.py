"""Deliveries end to end: the daemon in-process, a real receiver on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from tests.conftest import Running
from tests.receiver import Answer, Received, serve_receiver

Start = Callable[..., Awaitable[Running]]


async def subscribe(hookd: Running, url: str, events: list[str], **extra: object) -> dict[str, Any]:
    response = await hookd.client.post(
        "/v1/endpoints", json={"url": url, "events": events, **extra}
    )
    assert response.status_code == 201, response.text
    endpoint: dict[str, Any] = response.json()
    return endpoint


async def ingest(
    hookd: Running, event: str, data: dict[str, Any], **extra: object
) -> dict[str, Any]:
    response = await hookd.client.post("/v1/events", json={"event": event, "data": data, **extra})
    assert response.status_code == 202, response.text
    accepted: dict[str, Any] = response.json()
    return accepted


async def one_delivery(hookd: Running, url: str) -> int:
    """Subscribe `url` to everything, ingest one event; the id of its delivery."""
    await subscribe(hookd, url, ["*"])
    await ingest(hookd, "cliente.criado", {"id": "c"})
    [delivery] = (await hookd.client.get("/v1/deliveries")).json()["items"]
    return int(delivery["id"])


async def wait_delivery(
    hookd: Running, delivery_id: int, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The delivery, once `done(delivery)` holds."""
    while True:
        delivery: dict[str, Any] = (await hookd.client.get(f"/v1/deliveries/{delivery_id}")).json()
        if done(delivery):
            return delivery
        await trio.sleep(0.01)


async def wait_status(hookd: Running, delivery_id: int, status: str) -> dict[str, Any]:
    return await wait_delivery(hookd, delivery_id, lambda d: d["status"] == status)


async def test_receiver_gets_signed_body_and_headers(hookd: Running) -> None:
    async with serve_receiver() as receiver:
        await subscribe(hookd, receiver.url, ["cliente.*"], secret="sua_chave_secreta")
        accepted = await ingest(
            hookd,
            "cliente.criado",
            {"id": "cliente_123", "nome": "João Silva", "v": 1.0},
            timestamp="2024-01-01T10:00:00Z",
        )
        [got] = await receiver.wait_for(1)
    expected_body = (
        '{"event":"cliente.criado","timestamp":"2024-01-01T10:00:00Z",'
        '"data":{"id":"cliente_123","nome":"João Silva","v":1}}'
    ).encode()
    assert got.method == "POST"
    assert got.body == expected_body
    digest = hmac.new(b"sua_chave_secreta", expected_body, hashlib.sha256).hexdigest()
    assert got.headers["x-webhook-signature"] == f"sha256={digest}"
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-webhook-id"] == accepted["id"]
    assert got.headers["x-webhook-event"] == "cliente.criado"
    assert got.headers["x-webhook-attempt"] == "1"
    assert got.headers["x-webhook-timestamp"].isdigit()
    assert got.headers["user-agent"].startswith("hookd/")
    assert "webhook-signature" not in got.headers  # not a whsec_ secret


async def test_unsubscribed_endpoint_gets_nothing(hookd: Running) -> None:
    async with serve_receiver() as wanted, serve_receiver() as other:
        await subscribe(hookd, wanted.url, ["tarefa.concluida"])
        await subscribe(hookd, other.url, ["cliente.*"])
        await ingest(hookd, "tarefa.concluida", {"id": "tarefa_1"})
        await wanted.wait_for(1)
        await trio.sleep(0.2)
    assert other.received == []


async def test_every_subscriber_gets_the_same_bytes_and_id(hookd: Running) -> None:
    async with serve_receiver() as first, serve_receiver() as second:
        await subscribe(hookd, first.url, ["*"])
        await subscribe(hookd, second.url, ["chamado.*"])
        await ingest(hookd, "chamado.aberto", {"id": "chamado_1"})
        [a] = await first.wait_for(1)
        [b] = await second.wait_for(1)
    assert a.body == b.body
    assert a.headers["x-webhook-id"] == b.headers["x-webhook-id"]


async def test_redirect_is_a_failed_attempt_and_not_followed(hookd_factory: Start) -> None:
    hookd = await hookd_factory('[delivery]\nretry_schedule = ["0s", "1h"]')
    async with serve_receiver(lambda r: Answer(302, [("Location", "/elsewhere")], b"")) as receiver:
        await subscribe(hookd, receiver.url, ["*"])
        await ingest(hookd, "cliente.criado", {"id": "c"})
        await receiver.wait_for(1)
        delivery = (await hookd.client.get("/v1/deliveries")).json()["items"][0]
        delivery = await wait_status_code(hookd, delivery["id"], 302)
        await trio.sleep(0.2)
    assert [r.target for r in receiver.received] == ["/webhook"]
    assert delivery["status"] == "pending"
    assert delivery["attempt_log"][0]["status_code"] == 302


async def wait_attempts(hookd: Running, delivery_id: int, count: int) -> dict[str, Any]:
    return await wait_delivery(hookd, delivery_id, lambda d: len(d["attempt_log"]) >= count)


async def wait_status_code(hookd: Running, delivery_id: int, code: int) -> dict[str, Any]:
    return await wait_delivery(hookd, delivery_id, lambda d: d["last_status_code"] == code)


async def test_timeout_bounds_the_whole_attempt(hookd_factory: Start) -> None:
    hookd = await hookd_factory('[delivery]\ntimeout = "300ms"\nretry_schedule = ["0s", "1h"]')
    async with serve_receiver(lambda r: Answer(delay=30)) as receiver:
        await subscribe(hookd, receiver.url, ["*"])
        await ingest(hookd, "cliente.criado", {"id": "c"})
        await receiver.wait_for(1)
        started = trio.current_time()
        [delivery] = (await hookd.client.get("/v1/deliveries")).json()["items"]
        delivery = await wait_attempts(hookd, delivery["id"], 1)
        waited = trio.current_time() - started
    attempt = delivery["attempt_log"][0]
    assert attempt["error_kind"] == "timeout"
    assert 250 <= attempt["duration_ms"] < 1500
    assert waited < 2


async def test_slow_endpoint_does_not_hold_up_a_fast_one(hookd_factory: Start) -> None:
    hookd = await hookd_factory("[delivery]\nper_endpoint_concurrency = 2\nconcurrency = 8")
    async with serve_receiver(lambda r: Answer(delay=3)) as slow, serve_receiver() as fast:
        await subscribe(hookd, slow.url, ["cliente.*"])
        await subscribe(hookd, fast.url, ["tarefa.*"])
        for n in range(10):
            await ingest(hookd, "cliente.criado", {"id": f"c{n}"})
        await slow.wait_for(2)
        started = trio.current_time()
        for n in range(20):
            await ingest(hookd, "tarefa.criada", {"id": f"t{n}"})
        await fast.wait_for(20)
        elapsed = trio.current_time() - started
    assert elapsed < 1.5
    assert slow.most_in_flight == 2  # per-endpoint concurrency held


async def test_per_endpoint_concurrency_is_respected(hookd_factory: Start) -> None:
    hookd = await hookd_factory("[delivery]\nper_endpoint_concurrency = 3")
    async with serve_receiver(lambda r: Answer(delay=0.2)) as receiver:
        await subscribe(hookd, receiver.url, ["*"])
        for n in range(12):
            await ingest(hookd, "cliente.criado", {"id": f"c{n}"})
        await receiver.wait_for(12)
    assert receiver.most_in_flight == 3


async def test_disabled_endpoint_gets_nothing_more(hookd_factory: Start) -> None:
    hookd = await hookd_factory('[delivery]\nretry_schedule = ["0s", "1s", "1s"]')
    async with serve_receiver(lambda r: Answer(500)) as receiver:
        endpoint = await subscribe(hookd, receiver.url, ["*"])
        await ingest(hookd, "cliente.criado", {"id": "c"})
        await receiver.wait_for(1)
        response = await hookd.client.patch(
            f"/v1/endpoints/{endpoint['id']}", json={"enabled": False}
        )
        assert response.status_code == 200
        await trio.sleep(2.5)
        [delivery] = (await hookd.client.get("/v1/deliveries")).json()["items"]
    assert len(receiver.received) == 1
    assert delivery["status"] == "cancelled"


async def test_test_event_goes_to_that_endpoint_alone(hookd: Running) -> None:
    async with serve_receiver() as target, serve_receiver() as other:
        endpoint = await subscribe(hookd, target.url, ["cliente.*"])
        await subscribe(hookd, other.url, ["*"])
        response = await hookd.client.post(f"/v1/endpoints/{endpoint['id']}/test")
        assert response.status_code == 202
        [got] = await target.wait_for(1)
        await trio.sleep(0.2)
    assert got.headers["x-webhook-event"] == "hookd.teste"
    assert other.received == []


async def test_retry_and_replay_start_a_new_round(hookd_factory: Start) -> None:
    hookd = await hookd_factory('[delivery]\nretry_schedule = ["0s"]')
    outcomes = iter([500, 500, 200])

    def answer(_: Received) -> Answer:
        return Answer(next(outcomes))

    async with serve_receiver(answer) as receiver:
        endpoint = await subscribe(hookd, receiver.url, ["*"])
        await ingest(hookd, "cliente.criado", {"id": "c"})
        [delivery] = (await hookd.client.get("/v1/deliveries")).json()["items"]
        await wait_status(hookd, delivery["id"], "failed")
        response = await hookd.client.post(f"/v1/deliveries/{delivery['id']}/retry")
        assert response.status_code == 202
        await receiver.wait_for(2)
        await wait_status(hookd, delivery["id"], "failed")
        response = await hookd.client.post(
            f"/v1/endpoints/{endpoint['id']}/replay", json={"status": "failed"}
        )
        assert response.json() == {"replayed": 1}
        done = await wait_status(hookd, delivery["id"], "succeeded")
    assert [a["number"] for a in done["attempt_log"]] == [1, 2, 3]
    assert [r.headers["x-webhook-attempt"] for r in receiver.received] == ["1", "2", "3"]


async def test_private_address_is_refused_by_default(hookd_factory: Start) -> None:
    hookd = await hookd_factory(
        '[delivery]\nallow_private_networks = false\nretry_schedule = ["0s"]'
    )
    async with serve_receiver() as receiver:
        failed = await wait_status(hookd, await one_delivery(hookd, receiver.url), "failed")
    assert receiver.received == []
    assert failed["attempt_log"][0]["error_kind"] == "blocked"
    assert "loopback" in failed["attempt_log"][0]["error"]


async def test_allowed_network_is_let_through(hookd_factory: Start) -> None:
    hookd = await hookd_factory(
        '[delivery]\nallow_private_networks = false\nallowed_networks = ["127.0.0.0/8"]'
    )
    async with serve_receiver() as receiver:
        await subscribe(hookd, receiver.url, ["*"])
        await ingest(hookd, "cliente.criado", {"id": "c"})
        await receiver.wait_for(1)


async def test_require_https_refuses_http(hookd_factory: Start) -> None:
    hookd = await hookd_factory('[delivery]\nrequire_https = true\nretry_schedule = ["0s"]')
    async with serve_receiver() as receiver:
        failed = await wait_status(hookd, await one_delivery(hookd, receiver.url), "failed")
    assert receiver.received == []
    assert "require_https" in failed["attempt_log"][0]["error"]


async def test_retry_through_the_api_brings_a_waiting_retry_forward(hookd_factory: Start) -> None:
    hookd = await hookd_factory('[delivery]\nretry_schedule = ["0s", "30s", "1h"]')
    outcomes = iter([500, 200])
    async with serve_receiver(lambda _: Answer(next(outcomes))) as receiver:
        await subscribe(hookd, receiver.url, ["*"])
        await ingest(hookd, "cliente.criado", {"id": "c"})
        [delivery] = (await hookd.client.get("/v1/deliveries")).json()["items"]
        await wait_attempts(hookd, delivery["id"], 1)  # failed; next attempt in 30 s
        await trio.sleep(0.2)  # the scheduler has put it back to wait
        response = await hookd.client.post(f"/v1/deliveries/{delivery['id']}/retry")
        assert response.status_code == 202
        with trio.fail_after(3):
            done = await wait_status(hookd, delivery["id"], "succeeded")
    assert [a["status_code"] for a in done["attempt_log"]] == [500, 200]


async def test_internationalised_host_is_a_failed_attempt_not_a_crash(
    hookd_factory: Start,
) -> None:
    hookd = await hookd_factory('[delivery]\nretry_schedule = ["0s"]')
    delivery_id = await one_delivery(hookd, "http://☃.invalid/h")  # punycode: xn--n3h.invalid
    failed = await wait_status(hookd, delivery_id, "failed")
    assert failed["attempt_log"][0]["error_kind"] == "dns"
    assert "xn--n3h.invalid" in failed["attempt_log"][0]["error"]
    assert (await hookd.client.get("/healthz")).status_code == 200


async def test_a_retry_after_that_overflows_is_ignored_not_a_crash(hookd: Running) -> None:
    # Python's date parser raised OverflowError on this one, out of the scheduler.
    huge = "Tue, 8064217578 Feb 59 524:516:712 53F7O9"
    async with serve_receiver(lambda _: Answer(503, [("Retry-After", huge)])) as receiver:
        delivery_id = await one_delivery(hookd, receiver.url)
        waiting = await wait_delivery(hookd, delivery_id, lambda d: d["attempts"] == 1)
    assert waiting["status"] == "pending"
    assert waiting["attempt_log"][0]["status_code"] == 503
    assert (await hookd.client.get("/healthz")).status_code == 200


async def test_endpoint_change_during_an_attempt_does_not_send_it_twice(
    hookd_factory: Start,
) -> None:
    hookd = await hookd_factory()
    async with serve_receiver(lambda _: Answer(delay=0.5)) as receiver:
        endpoint_id = (await subscribe(hookd, receiver.url, ["*"]))["id"]
        await ingest(hookd, "cliente.criado", {"id": "c"})
        await receiver.wait_for(1)  # the attempt is in flight
        response = await hookd.client.post(f"/v1/endpoints/{endpoint_id}/rotate-secret")
        assert response.status_code == 200
        await trio.sleep(1.5)
    assert len(receiver.received) == 1
