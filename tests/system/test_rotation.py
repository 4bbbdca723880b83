"""Secret rotation with overlap, and staged, against a real daemon and real receivers on
127.0.0.1.

A receiver still verifying with the old secret and one already verifying with the new
one must both accept deliveries during the overlap (`delivery.secret_overlap`, 24 h by
default); after it, only the new. A staged rotation (`activate_at`) must be accepted
by a receiver given the new secret before it takes over. The daemon runs on trio's
virtual clock, so hours pass in well under a second. Receivers verify with the
`standardwebhooks` package, as an integrator's would, and with the README's receiver
examples (its Python one run here, its JavaScript one with node); `X-Webhook-Signature`
is checked as the spec does.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import trio
import trio.testing
from standardwebhooks.webhooks import Webhook
from werkzeug.datastructures import Headers

from hookd.domain import views
from hookd.domain.signing import verify_spec
from tests.conftest import Running
from tests.receiver import Answer, Received, serve_receiver
from tests.system.test_api_events import db_path, db_rows
from tests.system.test_delivery import ingest, subscribe
from tests.system.test_spec_receivers import readme_block

Start = Callable[..., Awaitable[Running]]
FAST = '[server]\nidle_timeout = "2h"\nrequest_timeout = "2h"\n'
DAY = 86400
HOUR = 3600


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


async def rotate(hookd: Running, endpoint_id: str, **body: object) -> dict[str, Any]:
    response = await hookd.client.post(f"/v1/endpoints/{endpoint_id}/rotate-secret", json=body)
    assert response.status_code == 200, response.text
    rotated: dict[str, Any] = response.json()
    return rotated


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
        assert "x-webhook-signature-next" not in request.headers
    for request in (during, last_minute):  # and the old one's beside it, for the overlap
        assert verify_spec(old, request.body, request.headers["x-webhook-signature-previous"])
    assert "x-webhook-signature-previous" not in after.headers


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


# -- a staged rotation -------------------------------------------------------------------


def readme_python_verify() -> Callable[[bytes, Any, str], bool]:
    """`verify_signature` of the README's Flask receiver, run as written."""
    namespace: dict[str, Any] = {"__name__": "readme_receiver"}
    exec(readme_block("python"), namespace)
    verify: Callable[[bytes, Any, str], bool] = namespace["verify_signature"]
    return verify


def readme_javascript_verdicts(cases: list[tuple[Received, str]]) -> list[bool]:
    """`verifySignature` of the README's Express receiver, run by node on each
    (request, secret); the part before Express is loaded, which needs npm."""
    source = readme_block("javascript")
    source = source[: source.index("const express")]
    source += (
        "const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));\n"
        "console.log(JSON.stringify(cases.map((c) =>"
        " verifySignature(Buffer.from(c.body, 'base64'), c.headers, c.secret))));\n"
    )
    given = [
        {"body": base64.b64encode(r.body).decode(), "headers": r.headers, "secret": secret}
        for r, secret in cases
    ]
    done = subprocess.run(
        ["node", "-e", source], input=json.dumps(given), capture_output=True, text=True, check=True
    )
    verdicts: list[bool] = json.loads(done.stdout)
    return verdicts


@dataclass
class Holder:
    """One receiver: the secret it holds at the moment, how it checks a delivery with it,
    and what it answered (request, secret held, status)."""

    check: Callable[[Received, str], bool]
    secret: str = ""
    answered: list[tuple[Received, str, int]] = field(default_factory=list)
    fail_first_of: str = ""  # an event whose first attempt is answered 503 on purpose

    def answer(self, request: Received) -> Answer:
        first = request.headers["x-webhook-attempt"] == "1"
        if first and request.headers["x-webhook-id"] == self.fail_first_of:
            status = 503
        else:
            status = 200 if self.check(request, self.secret) else 401
        self.answered.append((request, self.secret, status))
        return Answer(status)


SPEC_HEADER, PREVIOUS, NEXT = (
    "x-webhook-signature",
    "x-webhook-signature-previous",
    "x-webhook-signature-next",
)


def checks_previous(request: Received, secret: str) -> bool:
    """A spec receiver that also checks X-Webhook-Signature-Previous (not -Next)."""
    return any(
        verify_spec(secret, request.body, request.headers[name])
        for name in (SPEC_HEADER, PREVIOUS)
        if name in request.headers
    )


@pytest.fixture
def frozen_clock() -> trio.testing.MockClock:
    # Time moves only when the test jumps it: to the second it names, whatever real time
    # the daemon's threads take meanwhile.
    return trio.testing.MockClock()


async def recorded(hookd: Running, attempts: int) -> list[dict[str, Any]]:
    """All deliveries, once `attempts` attempts are on record (at most 20 real seconds;
    the frozen clock does not move while this waits)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        items = (await hookd.client.get("/v1/deliveries", params={"limit": 100})).json()["items"]
        if sum(d["attempts"] for d in items) >= attempts:
            return list(items)
        await trio.testing.wait_all_tasks_blocked(0.01)
    raise AssertionError(f"not {attempts} attempts on record: {items}")


async def test_a_staged_rotation_rejects_nothing(
    frozen_clock: trio.testing.MockClock, hookd_factory: Start
) -> None:
    verify = readme_python_verify()
    # Given the new secret as soon as it is staged, checking as the README's receiver.
    early = Holder(lambda r, secret: verify(r.body, Headers(list(r.headers.items())), secret))
    # Moved to the new secret an hour after the switch, checking -Previous too.
    late = Holder(checks_previous)
    hookd = await hookd_factory(FAST, client_timeout=None)
    async with serve_receiver(early.answer) as first, serve_receiver(late.answer) as second:
        endpoints = [await subscribe(hookd, r.url, ["*"]) for r in (first, second)]
        early.secret, late.secret = (e["secret"] for e in endpoints)
        # The daemon's clock: its Unix time at trio time 0 (the clock has not moved).
        anchor = _seconds(endpoints[-1]["created_at"]) - trio.current_time()

        async def at(unix: float) -> None:
            frozen_clock.jump(unix - anchor - trio.current_time())
            await trio.testing.wait_all_tasks_blocked(0.01)

        async def deliver(event_id: str, count: int) -> None:
            await ingest(hookd, "cliente.criado", {"id": event_id}, id=event_id)
            await first.wait_for(count)
            await second.wait_for(count + (count > 3))  # + the retry of "staged-retried"
            # Before the clock moves on: what the receivers answered is on record.
            await recorded(hookd, len(first.received) + len(second.received))

        await deliver("before-staging", 1)
        switch = anchor + trio.current_time() + HOUR
        staged = [
            await rotate(hookd, e["id"], activate_at=views.iso(switch), overlap_s=2 * HOUR)
            for e in endpoints
        ]
        old = [e["secret"] for e in endpoints]
        new = [e["secret"] for e in staged]
        assert [e["next_secret_at"] for e in staged] == [views.iso(switch)] * 2
        early.secret = new[0]
        await deliver("staged", 2)
        await at(switch - 30)
        late.fail_first_of = "staged-retried"  # its retry comes a minute later: switched
        await deliver("staged-retried", 3)
        await at(switch + 45)
        await second.wait_for(4)
        await recorded(hookd, 7)
        # Nothing was written at the switch: the row still holds the staged secret, and
        # the endpoint is shown as it stands by the daemon's clock.
        query = "SELECT secret, next_secret FROM endpoints WHERE id = ?"
        assert await db_rows(db_path(hookd), query, (endpoints[0]["id"],)) == [(old[0], new[0])]
        shown = (await hookd.client.get(f"/v1/endpoints/{endpoints[0]['id']}")).json()
        assert shown["next_secret_at"] is None
        assert shown["previous_secret_until"] == views.iso(switch + 2 * HOUR)
        await deliver("activated", 4)
        await at(switch + HOUR)
        late.secret = new[1]
        await deliver("overlap", 5)
        await at(switch + 2 * HOUR + 60)
        await deliver("after-overlap", 6)
        deliveries = await recorded(hookd, 13)
    assert [d["status"] for d in deliveries] == ["succeeded"] * 12
    for holder in (early, late):  # no receiver rejected anything
        statuses = [(r.headers["x-webhook-id"], status) for r, _, status in holder.answered]
        assert all(status == 200 for event, status in statuses if event != "staged-retried")
    assert [status for r, _, status in late.answered if "retried" in r.headers["x-webhook-id"]] == [
        503,
        200,
    ]

    # What signed each attempt: (X-Webhook-Signature, -Previous, -Next), 0 old, 1 new.
    expected = {
        "before-staging": (0, None, None),
        "staged": (0, None, 1),
        "staged-retried#1": (0, None, 1),
        "staged-retried#2": (1, 0, None),  # signed after the switch
        "activated": (1, 0, None),
        "overlap": (1, 0, None),
        "after-overlap": (1, None, None),
    }
    for index, holder in enumerate((early, late)):
        secrets = (old[index], new[index])
        seen = []
        for request, _, _ in holder.answered:
            headers = request.headers
            phase = headers["x-webhook-id"]
            if phase == "staged-retried":
                phase += "#" + headers["x-webhook-attempt"]
            seen.append(phase)
            signing = expected[phase]
            for name, which in zip((SPEC_HEADER, PREVIOUS, NEXT), signing, strict=True):
                if which is None:
                    assert name not in headers, (phase, name)
                else:
                    assert verify_spec(secrets[which], request.body, headers[name]), (phase, name)
            # webhook-signature: the same secrets, each verifying with standardwebhooks.
            standard = [secrets[w] for w in signing if w is not None]
            assert len(headers["webhook-signature"].split()) == len(standard), phase
            for secret in standard:
                assert accepts(secret, request), (phase, secret)
        retried = holder is late  # only late failed an attempt on purpose
        assert sorted(seen) == sorted(k for k in expected if retried or not k.endswith("#2"))

    if shutil.which("node") is not None:  # the README's JavaScript receiver, in early's place
        cases = [(request, secret) for request, secret, _ in early.answered]
        assert readme_javascript_verdicts(cases) == [True] * len(cases)
        wrong = [(request, "outro_segredo") for request, _, _ in early.answered]
        assert readme_javascript_verdicts(wrong) == [False] * len(cases)


async def test_staging_is_shown_audited_and_replaced(
    virtual_clock: trio.testing.MockClock, hookd_factory: Start
) -> None:
    hookd = await hookd_factory(FAST, client_timeout=None)
    endpoint = await subscribe(hookd, "http://127.0.0.1:9/hook", ["*"])
    path = f"/v1/endpoints/{endpoint['id']}"
    now = _seconds(endpoint["created_at"])
    later = views.iso(now + DAY)
    staged = await rotate(hookd, endpoint["id"], activate_at=later)
    assert staged["next_secret_at"] == later
    assert staged["previous_secret_until"] is None
    shown = (await hookd.client.get(path)).json()
    assert shown["next_secret_at"] == later
    assert "secret" not in shown
    # Staged again: replaced. At once (or a time not in the future): no longer staged.
    again = await rotate(hookd, endpoint["id"], secret="segredo_b", activate_at=later)
    assert again["secret"] == "segredo_b"
    past = views.iso(now - 60)
    at_once = await rotate(hookd, endpoint["id"], secret="segredo_c", activate_at=past)
    assert at_once["next_secret_at"] is None
    assert at_once["previous_secret_until"] is not None
    await rotate(hookd, endpoint["id"], secret="segredo_d", activate_at=later)
    patched = (await hookd.client.patch(path, json={"secret": "segredo_e"})).json()
    assert (patched["next_secret_at"], patched["previous_secret_until"]) == (None, None)
    audit = (await hookd.client.get("/v1/audit", params={"endpoint": endpoint["id"]})).json()
    actions = [(a["action"], a["fields"]) for a in reversed(audit["items"])]
    assert actions == [
        ("create", ["url", "events", "description", "enabled", "secret"]),
        ("stage_secret", ["next_secret"]),
        ("stage_secret", ["next_secret"]),
        ("rotate_secret", ["secret"]),
        ("stage_secret", ["next_secret"]),
        ("rotate_secret", ["secret"]),
    ]
    for body in ({"activate_at": "amanhã"}, {"activate_at": "2024-01-01"}):
        refused = await hookd.client.post(f"{path}/rotate-secret", json=body)
        assert refused.status_code == 400, body
        assert "activate_at" in refused.json()["error"]["message"]


def _seconds(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()
