"""Secret rotation with overlap, against a real daemon and a real receiver on 127.0.0.1.

A receiver still verifying with the old secret and one already verifying with the new
one must both accept deliveries during the overlap (`delivery.secret_overlap`, 24 h by
default); after it, only the new. The daemon runs on trio's virtual clock, so the day of
overlap passes in well under a second. Receivers verify with the `standardwebhooks`
package, as an integrator's would; `X-Webhook-Signature` is checked as the spec does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest
import trio
import trio.testing
from standardwebhooks.webhooks import Webhook

from hookd.core.signing import verify_spec
from tests.conftest import Running
from tests.receiver import Answer, Received, serve_receiver
from tests.test_delivery import ingest, subscribe

Start = Callable[..., Awaitable[Running]]
FAST = '[server]\nidle_timeout = "2h"\nrequest_timeout = "2h"\n'
DAY = 86400


@pytest.fixture
def virtual_clock() -> trio.testing.MockClock:
    # As in test_schedule: jump only once every task has waited a few real milliseconds.
    return trio.testing.MockClock(autojump_threshold=0.02)


def accepts(secret: str, request: Received) -> bool:
    """Would a Standard Webhooks receiver with `secret` accept it? As the package's own
    `Webhook.verify` decides, but for its 5-minute freshness window: on the virtual
    clock, `webhook-timestamp` runs a day ahead of the real time that window reads.
    """
    headers = request.headers
    sent = datetime.fromtimestamp(int(headers["webhook-timestamp"]), tz=UTC)
    expected = Webhook(secret).sign(headers["webhook-id"], sent, request.body.decode())
    return expected in headers["webhook-signature"].split(" ")


async def rotate(hookd: Running, endpoint_id: str, **body: object) -> dict:
    response = await hookd.client.post(f"/v1/endpoints/{endpoint_id}/rotate-secret", json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def test_old_and_new_secrets_verify_during_the_overlap_then_only_the_new(
    virtual_clock: trio.testing.MockClock, hookd_factory: Start
) -> None:
    hookd = await hookd_factory(FAST, client_timeout=None)
    async with serve_receiver() as receiver:
        endpoint = await subscribe(hookd, receiver.url, ["*"])
        old = endpoint["secret"]
        rotated = await rotate(hookd, endpoint["id"])
        new = rotated["secret"]
        assert new != old
        assert new.startswith("whsec_")
        await ingest(hookd, "cliente.criado", {"id": "c1"})
        [during] = await receiver.wait_for(1)
        await trio.sleep(DAY - 60)  # a minute before the end of the overlap
        await ingest(hookd, "cliente.criado", {"id": "c2"})
        await receiver.wait_for(2)
        await trio.sleep(120)  # now past it
        await ingest(hookd, "cliente.criado", {"id": "c3"})
        received = await receiver.wait_for(3)
    last_minute, after = received[1], received[2]
    for request in (during, last_minute):
        assert accepts(old, request)
        assert accepts(new, request)
        assert len(request.headers["webhook-signature"].split()) == 2
    assert not accepts(old, after)
    assert accepts(new, after)
    assert len(after.headers["webhook-signature"].split()) == 1
    for request in received:  # the spec's header carries the new secret's signature alone
        assert verify_spec(new, request.body, request.headers["x-webhook-signature"])
        assert not verify_spec(old, request.body, request.headers["x-webhook-signature"])


async def test_a_retry_during_the_overlap_carries_both(
    virtual_clock: trio.testing.MockClock, hookd_factory: Start
) -> None:
    hookd = await hookd_factory(FAST, client_timeout=None)
    statuses = iter([500])
    async with serve_receiver(lambda _: Answer(next(statuses, 200))) as receiver:
        endpoint = await subscribe(hookd, receiver.url, ["*"])
        await ingest(hookd, "cliente.criado", {"id": "c1"})
        [first] = await receiver.wait_for(1)  # answered 500: retried in a minute
        rotated = await rotate(hookd, endpoint["id"])
        received = await receiver.wait_for(2)
    assert accepts(endpoint["secret"], first)
    Webhook(endpoint["secret"]).verify(first.body, first.headers)  # within the real window
    retry = received[1]
    assert retry.headers["x-webhook-attempt"] == "2"
    assert accepts(endpoint["secret"], retry)
    assert accepts(rotated["secret"], retry)


async def test_overlap_shown_chosen_and_replaced(
    virtual_clock: trio.testing.MockClock, hookd_factory: Start
) -> None:
    hookd = await hookd_factory(FAST + '[delivery]\nsecret_overlap = "2h"\n', client_timeout=None)
    endpoint = await subscribe(hookd, "http://127.0.0.1:9/hook", ["*"])
    assert endpoint["previous_secret_until"] is None
    rotated = await rotate(hookd, endpoint["id"])
    updated = rotated["updated_at"]
    assert rotated["previous_secret_until"] is not None
    gap = _seconds(rotated["previous_secret_until"]) - _seconds(updated)
    assert gap == pytest.approx(2 * 3600, abs=0.01)  # delivery.secret_overlap
    shown = (await hookd.client.get(f"/v1/endpoints/{endpoint['id']}")).json()
    assert shown["previous_secret_until"] == rotated["previous_secret_until"]
    assert "secret" not in shown
    # A leaked secret: rotate with no overlap.
    assert (await rotate(hookd, endpoint["id"], overlap_s=0))["previous_secret_until"] is None
    again = await rotate(hookd, endpoint["id"], overlap_s=600, secret="outro_segredo")
    assert again["secret"] == "outro_segredo"
    assert _seconds(again["previous_secret_until"]) - _seconds(again["updated_at"]) == (
        pytest.approx(600, abs=0.01)
    )
    # A secret set through PATCH replaces the old one at once.
    patched = await hookd.client.patch(
        f"/v1/endpoints/{endpoint['id']}", json={"secret": "mais_um_segredo"}
    )
    assert patched.json()["previous_secret_until"] is None
    for body, words in (
        ({"overlap_s": -1}, ">= 0"),
        ({"overlap_s": 31 * DAY}, "<= 2592000"),
        ({"overlap": "1h"}, "unknown field"),
    ):
        refused = await hookd.client.post(
            f"/v1/endpoints/{endpoint['id']}/rotate-secret", json=body
        )
        assert refused.status_code == 422, body
        assert words in refused.json()["error"]["message"]


async def test_config_endpoints_are_not_rotated_through_the_api(hookd_factory: Start) -> None:
    hookd = await hookd_factory(
        '[[endpoint]]\nid = "erp"\nurl = "http://127.0.0.1:9/hook"\nevents = ["*"]\n'
        'secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"\n'
    )
    response = await hookd.client.post("/v1/endpoints/erp/rotate-secret")
    assert response.status_code == 409
    assert "config file" in response.json()["error"]["message"]


def _seconds(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()
