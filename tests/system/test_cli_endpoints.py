"""`hookd endpoints ...` against a real daemon: what each action changes, what it prints,
`--json` as the API gives it, and the exit statuses of refusals and usage errors.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import pytest

from tests.cli_runner import cli
from tests.conftest import Running
from tests.system.test_api_endpoints import CONFIG_ENDPOINT, get_endpoint
from tests.system.test_api_events import REFUSING_URL

Factory = Callable[..., Awaitable[Running]]
GENERATED_SECRET = re.compile(r"whsec_[A-Za-z0-9+/]{43}=")


async def add(hookd: Running, *extra: str) -> dict[str, Any]:
    """Add an endpoint with `--json`; the API's answer."""
    ran = await cli(hookd.socket, "endpoints", "add", REFUSING_URL, *extra, "--json")
    assert ran.code == 0, ran.err
    added: dict[str, Any] = ran.json()
    return added


async def test_add_shows_the_generated_secret_once(hookd: Running) -> None:
    ran = await cli(hookd.socket, "endpoints", "add", REFUSING_URL, "--events", "cliente.*")
    assert ran.code == 0, ran.err
    [endpoint_id] = re.findall(r"^id\s+(ep_[0-9a-f]+)$", ran.out, re.MULTILINE)
    [secret] = re.findall(r"^secret\s+(\S+)$", ran.out, re.MULTILINE)
    assert GENERATED_SECRET.fullmatch(secret)
    assert "will not show it again" in ran.err
    shown = await get_endpoint(hookd, endpoint_id)
    assert shown["url"] == REFUSING_URL
    assert shown["events"] == ["cliente.*"]
    assert "secret" not in shown
    again = await cli(hookd.socket, "endpoints", "show", endpoint_id)
    assert again.code == 0
    assert secret not in again.out


async def test_add_takes_patterns_repeated_or_with_commas(hookd: Running) -> None:
    created = await add(
        hookd,
        "--events",
        "cliente.*, tarefa.concluida",
        "--events",
        "chamado.aberto",
        "--secret",
        "sua_chave_secreta",
        "--description",
        "ERP",
        "--disabled",
    )
    assert created["events"] == ["cliente.*", "tarefa.concluida", "chamado.aberto"]
    assert created["secret"] == "sua_chave_secreta"
    assert created["description"] == "ERP"
    assert created["enabled"] is False
    assert await get_endpoint(hookd, created["id"]) == {
        k: v for k, v in created.items() if k != "secret"
    }


async def test_add_refusals(hookd: Running) -> None:
    no_events = await cli(hookd.socket, "endpoints", "add", REFUSING_URL)
    assert no_events.code == 2
    assert "--events" in no_events.err
    bad_url = await cli(hookd.socket, "endpoints", "add", "ftp://x", "--events", "*")
    assert bad_url.code == 1
    assert bad_url.err == "hookd: $.url: url must start with http:// or https://, got 'ftp://x'\n"


async def test_list_as_table_and_as_the_apis_json(hookd: Running) -> None:
    first = await add(hookd, "--events", "cliente.*", "--description", "ERP")
    second = await add(hookd, "--events", "*", "--disabled")
    ran = await cli(hookd.socket, "endpoints", "list")
    assert ran.code == 0
    header, *rows = ran.lines
    assert header.split() == ["ID", "ENABLED", "URL", "EVENTS", "ORIGIN", "DESCRIPTION"]
    assert rows[0].split() == [first["id"], "yes", REFUSING_URL, "cliente.*", "api", "ERP"]
    assert rows[1].split() == [second["id"], "no", REFUSING_URL, "*", "api"]
    assert rows[0].index(REFUSING_URL) == header.index("URL")  # aligned

    as_json = await cli(hookd.socket, "endpoints", "list", "--json")
    api = await hookd.client.get("/v1/endpoints")
    assert as_json.json() == api.json()


async def test_list_when_there_are_none(hookd: Running) -> None:
    ran = await cli(hookd.socket, "endpoints", "list")
    assert ran.code == 0
    assert ran.out == ""
    assert "no endpoints yet" in ran.err


async def test_show(hookd: Running) -> None:
    created = await add(hookd, "--events", "cliente.*")
    ran = await cli(hookd.socket, "endpoints", "show", created["id"])
    assert ran.code == 0
    assert re.search(rf"^url\s+{re.escape(REFUSING_URL)}$", ran.out, re.MULTILINE)
    assert re.search(r"^created\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(now\)$", ran.out, re.MULTILINE)
    as_json = await cli(hookd.socket, "endpoints", "show", created["id"], "--json")
    assert as_json.json() == await get_endpoint(hookd, created["id"])


async def test_unknown_endpoint_is_1_with_the_daemons_message(hookd: Running) -> None:
    for argv in (
        ["show", "ep_nope"],
        ["update", "ep_nope", "--description", "x"],
        ["rm", "ep_nope"],
        ["rotate-secret", "ep_nope"],
        ["test", "ep_nope"],
        ["enable", "ep_nope"],
        ["disable", "ep_nope"],
    ):
        ran = await cli(hookd.socket, "endpoints", *argv)
        assert (ran.code, ran.out, ran.err) == (1, "", "hookd: endpoint 'ep_nope' not found\n")


async def test_update(hookd: Running) -> None:
    created = await add(hookd, "--events", "cliente.*")
    ran = await cli(
        hookd.socket,
        "endpoints",
        "update",
        created["id"],
        "--new-url",
        "http://127.0.0.1:9/other",
        "--events",
        "tarefa.*,chamado.*",
        "--description",
        "novo",
    )
    assert ran.code == 0, ran.err
    shown = await get_endpoint(hookd, created["id"])
    assert shown["url"] == "http://127.0.0.1:9/other"
    assert shown["events"] == ["tarefa.*", "chamado.*"]
    assert shown["description"] == "novo"
    assert "secret" not in ran.out

    with_secret = await cli(
        hookd.socket, "endpoints", "update", created["id"], "--secret", "outra", "--json"
    )
    assert with_secret.json()["secret"] == "outra"


async def test_update_refusals(hookd_factory: Factory) -> None:
    hookd = await hookd_factory(CONFIG_ENDPOINT)
    [declared] = (await hookd.client.get("/v1/endpoints")).json()["items"]
    nothing = await cli(hookd.socket, "endpoints", "update", declared["id"])
    assert nothing.code == 2
    assert "nothing to change" in nothing.err
    from_file = await cli(hookd.socket, "endpoints", "update", declared["id"], "--description", "x")
    assert from_file.code == 1
    assert "declared in the config file" in from_file.err
    assert from_file.err.count("\n") == 1


async def test_enable_and_disable(hookd: Running) -> None:
    created = await add(hookd, "--events", "*")
    disabled = await cli(hookd.socket, "endpoints", "disable", created["id"])
    assert disabled.code == 0
    assert re.search(r"^enabled\s+no$", disabled.out, re.MULTILINE)
    assert (await get_endpoint(hookd, created["id"]))["enabled"] is False
    enabled = await cli(hookd.socket, "endpoints", "enable", created["id"], "--json")
    assert enabled.json()["enabled"] is True
    assert (await get_endpoint(hookd, created["id"]))["enabled"] is True


async def test_rotate_secret(hookd: Running) -> None:
    created = await add(hookd, "--events", "*")
    generated = await cli(hookd.socket, "endpoints", "rotate-secret", created["id"], "--json")
    assert generated.code == 0
    new = generated.json()["secret"]
    assert GENERATED_SECRET.fullmatch(new)
    assert new != created["secret"]
    chosen = await cli(
        hookd.socket, "endpoints", "rotate-secret", created["id"], "--secret", "minha_chave"
    )
    assert chosen.code == 0
    assert re.search(r"^secret\s+minha_chave$", chosen.out, re.MULTILINE)


async def test_rotate_secret_staged(hookd: Running) -> None:
    created = await add(hookd, "--events", "*")
    rotate = ("endpoints", "rotate-secret", created["id"], "--activate-at")
    ran = await cli(hookd.socket, *rotate, "2099-01-01T03:00Z", "--secret", "nova_chave")
    assert ran.code == 0, ran.err
    assert re.search(r"^next secret\s+nova_chave$", ran.out, re.MULTILINE)
    assert re.search(r"^next secret takes over\s+2099-01-01T03:00:00Z", ran.out, re.MULTILINE)
    assert (await get_endpoint(hookd, created["id"]))["next_secret_at"] == (
        "2099-01-01T03:00:00.000Z"
    )
    ahead = await cli(hookd.socket, *rotate, "2h", "--json")  # a duration from now
    staged = datetime.fromisoformat(ahead.json()["next_secret_at"]).timestamp()
    assert staged == pytest.approx(time.time() + 7200, abs=30)
    wrong = await cli(hookd.socket, *rotate, "amanhã")
    assert wrong.code == 2
    assert "--activate-at" in wrong.err


async def test_rm(hookd: Running) -> None:
    created = await add(hookd, "--events", "*")
    ran = await cli(hookd.socket, "endpoints", "rm", created["id"])
    assert ran.code == 0
    assert f"deleted endpoint {created['id']}" in ran.out
    assert (await hookd.client.get(f"/v1/endpoints/{created['id']}")).status_code == 404
    again = await cli(hookd.socket, "endpoints", "rm", created["id"])
    assert again.code == 1


async def test_test_sends_an_event_to_that_endpoint_alone(hookd: Running) -> None:
    created = await add(hookd, "--events", "cliente.*")
    other = await add(hookd, "--events", "*")
    ran = await cli(hookd.socket, "endpoints", "test", created["id"], "--json")
    assert ran.code == 0
    accepted = ran.json()
    assert accepted["event"] == "hookd.teste"
    assert accepted["deliveries"] == 1
    deliveries = await hookd.client.get(f"/v1/deliveries?event={accepted['id']}")
    assert [d["endpoint_id"] for d in deliveries.json()["items"]] == [created["id"]]
    assert other["id"] != created["id"]

    human = await cli(hookd.socket, "endpoints", "test", created["id"])
    assert human.out.startswith("sent hookd.teste event evt_")
    assert "hookd deliveries list --event evt_" in human.err
