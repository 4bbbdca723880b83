"""`hookd send` and `hookd events ...` against a real daemon: the event stored is the one
given (inline, from a file, from stdin, in a batch), lists page as asked, and refusals
exit with the right status.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hookd.cli.client import UsageError
from hookd.cli.commands import since_time
from tests.cli_runner import cli
from tests.conftest import Running
from tests.system.test_api_events import create_endpoint

NOW = datetime(2024, 1, 1, 12, 0, tzinfo=UTC).timestamp()


async def get_event(hookd: Running, event_id: str) -> dict[str, Any]:
    response = await hookd.client.get(f"/v1/events/{event_id}")
    assert response.status_code == 200, response.text
    event: dict[str, Any] = response.json()
    return event


async def test_send_inline_data_keeps_its_order_and_numbers(hookd: Running) -> None:
    await create_endpoint(hookd.client, ["cliente.*"])
    data = '{"nome": "João Silva", "id": "cliente_123", "n": 9007199254740991}'
    ran = await cli(hookd.socket, "send", "cliente.criado", "--data", data)
    assert ran.code == 0, ran.err
    [event_id] = re.findall(r"evt_[0-9a-f]+", ran.out)
    assert ran.out == f"accepted cliente.criado {event_id}: 1 delivery\n"
    assert f"hookd deliveries list --event {event_id}" in ran.err
    event = await get_event(hookd, event_id)
    assert list(event["data"]) == ["nome", "id", "n"]
    assert event["data"]["n"] == 9007199254740991


async def test_send_from_a_file_and_from_stdin(hookd: Running, short_dir: Path) -> None:
    path = short_dir / "data.json"
    path.write_text('{"id": "tarefa_1"}\n')
    from_file = await cli(hookd.socket, "send", "tarefa.criada", "--data", f"@{path}", "--json")
    assert from_file.code == 0, from_file.err
    assert (await get_event(hookd, from_file.json()["id"]))["data"] == {"id": "tarefa_1"}

    piped = await cli(
        hookd.socket, "send", "tarefa.criada", "--data", "-", "--json", stdin=b'{"id": "t2"}'
    )
    assert piped.code == 0, piped.err
    assert (await get_event(hookd, piped.json()["id"]))["data"] == {"id": "t2"}

    nothing = await cli(hookd.socket, "send", "tarefa.criada", "--json")
    assert (await get_event(hookd, nothing.json()["id"]))["data"] == {}


async def test_send_json_is_the_apis_answer_and_ids_repeat(hookd: Running) -> None:
    await create_endpoint(hookd.client, ["*"])
    argv = ["send", "cliente.criado", "--data", "{}", "--id", "crm-1", "--json"]
    first = await cli(hookd.socket, *argv)
    assert first.json() == {"id": "crm-1", "event": "cliente.criado", "deliveries": 1}
    again = await cli(hookd.socket, *argv)
    assert again.json() == first.json()
    assert len((await hookd.client.get("/v1/events")).json()["items"]) == 1

    keyed = ["send", "cliente.criado", "--idempotency-key", "k-1", "--json"]
    one = await cli(hookd.socket, *keyed, "--timestamp", "2024-01-01T10:00:00Z")
    two = await cli(hookd.socket, *keyed)
    assert one.json()["id"] == two.json()["id"]
    assert (await get_event(hookd, one.json()["id"]))["timestamp"] == "2024-01-01T10:00:00Z"


async def test_send_batch_ndjson_and_array(hookd: Running, short_dir: Path) -> None:
    await create_endpoint(hookd.client, ["cliente.*"])
    ndjson = short_dir / "events.ndjson"
    ndjson.write_text(
        '{"event": "cliente.criado", "data": {"id": "c1"}}\n'
        '{"event": "tarefa.criada", "data": {"id": "t1"}}\n'
    )
    ran = await cli(hookd.socket, "send", "--batch", str(ndjson))
    assert ran.code == 0, ran.err
    assert ran.lines[0] == "accepted 2 events: 1 deliveries"
    ids = ran.lines[1:]
    assert [(await get_event(hookd, i))["event"] for i in ids] == [
        "cliente.criado",
        "tarefa.criada",
    ]

    array = b'[{"event": "cliente.excluido", "data": {}}]'
    piped = await cli(hookd.socket, "send", "--batch", "-", "--json", stdin=array)
    assert piped.code == 0, piped.err
    assert piped.json()["deliveries"] == 1

    broken = await cli(hookd.socket, "send", "--batch", "-", stdin=b'[{"event": "x"}]')
    assert broken.code == 1
    assert broken.err.startswith("hookd: ")
    assert broken.err.count("\n") == 1


async def test_send_usage_errors_exit_2(hookd: Running, short_dir: Path) -> None:
    cases = [
        (["send"], "give the EVENT"),  # no event
        (["send", "cliente.criado", "--data", "{nope"], "--data is not valid JSON"),
        (["send", "cliente.criado", "--data", "[1, 2]"], "--data must be a JSON object"),
        (["send", "cliente.criado", "--data", f"@{short_dir}/none.json"], "cannot read"),
        (["send", "cliente.criado", "--batch", "-"], "--batch sends whole events"),
        (["send", "--batch", f"{short_dir}/none.ndjson"], "--batch: cannot read"),
        (["send", "cliente.criado", "--bogus"], "unrecognized arguments: --bogus"),
    ]
    for argv, message in cases:
        ran = await cli(hookd.socket, *argv)
        assert ran.code == 2, argv
        assert message in ran.err, (argv, ran.err)
    assert (await hookd.client.get("/v1/events")).json()["items"] == []


async def test_send_refused_by_the_daemon_is_1(hookd: Running) -> None:
    ran = await cli(hookd.socket, "send", "Cliente", "--data", "{}")
    assert ran.code == 1
    assert ran.err == (
        "hookd: $.event must be a dotted lowercase name like 'cliente.criado', got 'Cliente'\n"
    )


async def test_events_list_pages_and_filters(hookd: Running) -> None:
    for n in range(5):
        kind = "cliente.criado" if n % 2 else "tarefa.criada"
        assert (await cli(hookd.socket, "send", kind, "--data", f'{{"n": {n}}}')).code == 0

    two = await cli(hookd.socket, "events", "list", "--limit", "2")
    assert two.code == 0
    header, *rows = two.lines
    assert header.split() == ["ID", "EVENT", "RECEIVED"]
    assert len(rows) == 2
    assert "there may be more" in two.err

    everything = await cli(hookd.socket, "events", "list", "--all", "--json")
    api = (await hookd.client.get("/v1/events?limit=1000")).json()
    assert everything.json() == api
    assert len(api["items"]) == 5

    paged = await cli(hookd.socket, "events", "list", "--limit", "2", "--json")
    assert paged.json() == (await hookd.client.get("/v1/events?limit=2")).json()

    clientes = await cli(hookd.socket, "events", "list", "--type", "cliente.criado", "--json")
    assert [e["event"] for e in clientes.json()["items"]] == ["cliente.criado"] * 2

    recent = await cli(hookd.socket, "events", "list", "--since", "1h", "--json")
    assert len(recent.json()["items"]) == 5
    future = await cli(hookd.socket, "events", "list", "--since", "2999-01-01T00:00Z")
    assert future.code == 0
    assert "no events" in future.err


async def test_events_list_usage_errors(hookd: Running) -> None:
    for argv in (["--limit", "0"], ["--limit", "x"], ["--since", "yesterday"]):
        ran = await cli(hookd.socket, "events", "list", *argv)
        assert ran.code == 2, argv
    bad_type = await cli(hookd.socket, "events", "list", "--type", "X")
    assert bad_type.code == 1


async def test_events_show(hookd: Running) -> None:
    await create_endpoint(hookd.client, ["cliente.*"])
    sent = await cli(hookd.socket, "send", "cliente.criado", "--data", '{"nome": "João"}', "--json")
    event_id = sent.json()["id"]
    ran = await cli(hookd.socket, "events", "show", event_id)
    assert ran.code == 0
    assert '"nome": "João"' in ran.out
    assert "STATUS" in ran.out  # the deliveries table
    as_json = await cli(hookd.socket, "events", "show", event_id, "--json")
    assert as_json.json() == await get_event(hookd, event_id)

    unknown = await cli(hookd.socket, "events", "show", "evt_nope")
    assert (unknown.code, unknown.err) == (1, "hookd: event 'evt_nope' not found\n")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2h", "2024-01-01T10:00:00Z"),  # a duration back from now
        ("90m", "2024-01-01T10:30:00Z"),
        ("2024-01-01T10:00Z", "2024-01-01T10:00:00Z"),  # seconds left out
        ("2024-01-01T10:00:00+02:00", "2024-01-01T08:00:00Z"),  # an offset
        ("2023-12-31T23:59:59.5Z", "2023-12-31T23:59:59Z"),  # a fraction is dropped
    ],
)
def test_since_time(given: str, expected: str) -> None:
    assert since_time(given, NOW) == expected


def test_since_time_without_offset_is_local_time() -> None:
    local = datetime(2024, 1, 1, 10, 0).astimezone(UTC)
    assert since_time("2024-01-01T10:00", NOW) == local.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("given", ["yesterday", "", "2h ago", "2024-13-01T00:00Z", "-2h"])
def test_since_time_refuses(given: str) -> None:
    with pytest.raises(UsageError, match="--since"):
        since_time(given, NOW)
