"""`hookd deliveries ...`, `hookd retry` and `hookd replay` against a real daemon and a
real receiver: the attempts timeline, filters, and sending again.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import trio

from tests.cli_runner import cli
from tests.conftest import Running
from tests.receiver import Answer, Received, serve_receiver
from tests.system.test_api_events import create_endpoint
from tests.system.test_delivery import wait_attempts, wait_delivery, wait_status

Factory = Callable[..., Awaitable[Running]]


def fails_first() -> Callable[[Received], Answer]:
    """A receiver policy: 500 to the first request, 200 to every other."""
    seen: list[Received] = []

    def answer(request: Received) -> Answer:
        seen.append(request)
        return Answer(500 if len(seen) == 1 else 200)

    return answer


def status_of(row: str) -> str:
    """The status code column of a row of the attempts timeline."""
    match = re.search(r" [\d.]+ m?s\s+(\S+)", row)
    assert match is not None, row
    return match.group(1)


async def send(hookd: Running, event: str = "cliente.criado") -> str:
    ran = await cli(hookd.socket, "send", event, "--data", '{"id": "c1"}', "--json")
    assert ran.code == 0, ran.err
    return str(ran.json()["id"])


async def only_delivery(hookd: Running) -> int:
    [delivery] = (await hookd.client.get("/v1/deliveries")).json()["items"]
    return int(delivery["id"])


async def test_show_retry_and_show_again(hookd_factory: Factory) -> None:
    hookd = await hookd_factory('[delivery]\nretry_schedule = ["0s", "1h"]')
    async with serve_receiver(fails_first()) as receiver:
        await create_endpoint(hookd.client, ["*"], url=receiver.url)
        event_id = await send(hookd)
        delivery_id = await only_delivery(hookd)
        with trio.fail_after(5):
            await wait_attempts(hookd, delivery_id, 1)

        waiting = await cli(hookd.socket, "deliveries", "show", str(delivery_id))
        assert waiting.code == 0
        assert re.search(r"^status\s+pending$", waiting.out, re.MULTILINE)
        assert re.search(rf"^event\s+cliente.criado {event_id}$", waiting.out, re.MULTILINE)
        [row] = [line for line in waiting.lines if line.startswith("1 ")]
        assert re.fullmatch(r"1\s+\S+Z \((now|\d+s ago)\)\s+\d+ ms\s+500\s+.+", row)
        assert re.search(r"^next attempt \S+Z \(in (59m \d+s|1h)\)$", waiting.out, re.MULTILINE)
        as_json = await cli(hookd.socket, "deliveries", "show", str(delivery_id), "--json")
        api = await hookd.client.get(f"/v1/deliveries/{delivery_id}")
        assert as_json.json() == api.json()

        retried = await cli(hookd.socket, "retry", str(delivery_id))
        assert retried.code == 0, retried.err
        assert retried.out == f"delivery {delivery_id} will be attempted now (attempt 2)\n"
        with trio.fail_after(5):
            await wait_status(hookd, delivery_id, "succeeded")
        assert len(receiver.received) == 2

    done = await cli(hookd.socket, "deliveries", "show", str(delivery_id))
    assert re.search(r"^status\s+succeeded$", done.out, re.MULTILINE)
    codes = [status_of(line) for line in done.lines if re.match(r"[12] ", line)]
    assert codes == ["500", "200"]
    assert re.search(r"^delivered \S+Z \((now|\d+s ago)\)$", done.out, re.MULTILINE)


async def test_failed_delivery_says_how_to_try_again(hookd_factory: Factory) -> None:
    hookd = await hookd_factory('[delivery]\nretry_schedule = ["0s"]')
    await create_endpoint(hookd.client, ["*"])  # refuses connections
    await send(hookd)
    delivery_id = await only_delivery(hookd)
    with trio.fail_after(5):
        await wait_status(hookd, delivery_id, "failed")
    ran = await cli(hookd.socket, "deliveries", "show", str(delivery_id))
    assert f"no attempts left: 'hookd retry {delivery_id}' tries again" in ran.out
    [row] = [line for line in ran.lines if line.startswith("1 ")]
    assert "connect" in row  # the error, where there is no status code
    assert status_of(row) == "-"


async def test_list_filters_and_json(hookd: Running) -> None:
    first = await create_endpoint(hookd.client, ["cliente.*"])
    second = await create_endpoint(hookd.client, ["*"])
    event_id = await send(hookd, "cliente.criado")
    await send(hookd, "tarefa.criada")

    table = await cli(hookd.socket, "deliveries", "list")
    assert table.code == 0
    header, *rows = table.lines
    assert header.split()[:5] == ["ID", "STATUS", "EVENT", "ENDPOINT", "ATTEMPTS"]
    assert len(rows) == 3

    for query, argv in (
        ("", []),
        (f"endpoint={first['id']}", ["--endpoint", first["id"]]),
        (f"event={event_id}", ["--event", event_id]),
        ("status=pending", ["--status", "pending"]),
        ("status=failed", ["--status", "failed"]),
        (f"endpoint={second['id']}&limit=1", ["--endpoint", second["id"], "--limit", "1"]),
    ):
        ran = await cli(hookd.socket, "deliveries", "list", *argv, "--json")
        assert ran.code == 0, ran.err
        assert ran.json() == (await hookd.client.get(f"/v1/deliveries?{query}")).json(), argv

    bad = await cli(hookd.socket, "deliveries", "list", "--status", "lost")
    assert bad.code == 2


async def test_unknown_delivery_is_1(hookd: Running) -> None:
    for argv, message in (
        (["deliveries", "show", "999"], "hookd: delivery 999 not found\n"),
        (["deliveries", "show", "abc"], "hookd: delivery 'abc' not found\n"),
        (["retry", "999"], "hookd: delivery 999 not found\n"),
    ):
        ran = await cli(hookd.socket, *argv)
        assert (ran.code, ran.out, ran.err) == (1, "", message)


async def test_replay_failed_deliveries(hookd_factory: Factory) -> None:
    hookd = await hookd_factory('[delivery]\nretry_schedule = ["0s"]')
    endpoint = await create_endpoint(hookd.client, ["*"])  # refuses connections
    await send(hookd)
    delivery_id = await only_delivery(hookd)
    with trio.fail_after(5):
        await wait_status(hookd, delivery_id, "failed")

    none_cancelled = await cli(
        hookd.socket, "replay", endpoint["id"], "--since", "1h", "--status", "cancelled", "--json"
    )
    assert none_cancelled.json() == {"replayed": 0}
    ran = await cli(hookd.socket, "replay", endpoint["id"], "--since", "1h")
    assert ran.code == 0, ran.err
    assert re.fullmatch(
        rf"queued again: 1 failed delivery to {endpoint['id']} created since \S+Z\n", ran.out
    )
    with trio.fail_after(5):
        await wait_delivery(
            hookd, delivery_id, lambda d: d["status"] == "failed" and d["attempts"] == 2
        )
    later = await cli(hookd.socket, "replay", endpoint["id"], "--since", "2999-01-01T00:00Z")
    assert "queued again: 0 failed deliveries" in later.out


async def test_replay_refusals(hookd: Running) -> None:
    unknown = await cli(hookd.socket, "replay", "ep_nope", "--since", "1h")
    assert (unknown.code, unknown.err) == (1, "hookd: endpoint 'ep_nope' not found\n")
    for argv in (
        ["replay", "ep_nope"],  # --since is required
        ["replay", "ep_nope", "--since", "soon"],
        ["replay", "ep_nope", "--since", "1h", "--status", "pending"],
        ["retry"],
    ):
        ran = await cli(hookd.socket, *argv)
        assert ran.code == 2, argv
