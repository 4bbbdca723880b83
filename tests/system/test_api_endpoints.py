"""/v1/endpoints against a real daemon: secrets, updates, config-file endpoints, routing of
later events, and the bearer token on the TCP listener.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from tests.conftest import API_TOKEN, Running, free_port
from tests.system.test_api_events import (
    assert_error,
    count,
    create_endpoint,
    db_path,
    db_rows,
    deliveries_of,
    ingest,
)

Factory = Callable[..., Awaitable[Running]]
GENERATED_SECRET = re.compile(r"^whsec_[A-Za-z0-9+/]{43}=$")
CONFIG_URL = "http://127.0.0.1:9/webhooks/crm"
CONFIG_ENDPOINT = f"""
[[endpoint]]
url = "{CONFIG_URL}"
events = ["cliente.*", "tarefa.concluida"]
secret = "sua_chave_secreta"
description = "ERP"
"""


async def stored_secret(running: Running, endpoint_id: str) -> str:
    [(secret,)] = await db_rows(
        db_path(running), "SELECT secret FROM endpoints WHERE id = ?", (endpoint_id,)
    )
    return str(secret)


async def get_endpoint(running: Running, endpoint_id: str) -> dict[str, Any]:
    response = await running.client.get(f"/v1/endpoints/{endpoint_id}")
    assert response.status_code == 200, response.text
    shown: dict[str, Any] = response.json()
    return shown


async def list_endpoints(running: Running) -> list[dict[str, Any]]:
    response = await running.client.get("/v1/endpoints")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def stop(running: Running) -> None:
    """Stop a daemon and wait until it is gone (its socket file is removed last)."""
    running.daemon.stop()
    for _ in range(500):
        if not await trio.Path(running.socket).exists():
            return
        await trio.sleep(0.01)
    raise AssertionError("the daemon did not stop within 5 s")


# -- create, read, update, delete ---------------------------------------------------------


async def test_create_shows_a_generated_secret_once(hookd: Running) -> None:
    response = await hookd.client.post(
        "/v1/endpoints",
        json={"url": "https://crm.example.com/hook", "events": ["cliente.*"], "description": "d"},
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert GENERATED_SECRET.match(created["secret"]), created["secret"]
    assert created["id"]
    assert created["url"] == "https://crm.example.com/hook"
    assert created["events"] == ["cliente.*"]
    assert created["description"] == "d"
    assert created["enabled"] is True
    assert created["origin"] == "api"
    assert response.headers["location"] == f"/v1/endpoints/{created['id']}"
    assert await stored_secret(hookd, created["id"]) == created["secret"]

    other = await create_endpoint(hookd.client, ["*"])
    assert GENERATED_SECRET.match(other["secret"])
    assert other["secret"] != created["secret"]


async def test_create_keeps_a_given_secret(hookd: Running) -> None:
    created = await create_endpoint(hookd.client, ["*"], secret="sua_chave_secreta")
    assert created["secret"] == "sua_chave_secreta"
    assert await stored_secret(hookd, created["id"]) == "sua_chave_secreta"


async def test_list_and_get_never_show_the_secret(hookd: Running) -> None:
    created = await create_endpoint(hookd.client, ["*"], secret="sua_chave_secreta")
    generated = await create_endpoint(hookd.client, ["cliente.*"])
    listing = await hookd.client.get("/v1/endpoints")
    one = await hookd.client.get(f"/v1/endpoints/{generated['id']}")
    patched = await hookd.client.patch(f"/v1/endpoints/{created['id']}", json={"description": "x"})
    for response in (listing, one, patched):
        assert response.status_code == 200, response.text
        assert "sua_chave_secreta" not in response.text
        assert generated["secret"] not in response.text
        assert '"secret"' not in response.text
    assert [e["id"] for e in listing.json()["items"]] == [created["id"], generated["id"]]


async def test_patch_changes_events_enabled_and_description(hookd: Running) -> None:
    created = await create_endpoint(hookd.client, ["cliente.*"])
    response = await hookd.client.patch(
        f"/v1/endpoints/{created['id']}",
        json={"events": ["tarefa.concluida", "chamado.*"], "enabled": False, "description": "n"},
    )
    assert response.status_code == 200, response.text
    shown = await get_endpoint(hookd, created["id"])
    assert shown["events"] == ["tarefa.concluida", "chamado.*"]
    assert shown["enabled"] is False
    assert shown["description"] == "n"
    assert shown["url"] == created["url"]
    assert response.json() == shown
    assert await stored_secret(hookd, created["id"]) == created["secret"]  # untouched


@pytest.mark.parametrize(
    "patch",
    [
        {"events": "cliente.*"},  # events not a list
        {"events": []},  # no pattern at all
        {"events": ["Bad Pattern"]},  # not a pattern
        {"enabled": "yes"},  # not a boolean
        {"description": 7},  # not a string
        {"description": "x" * 5000},  # too long
        {"url": "ftp://example.com/"},  # not http(s)
        {"url": "http://"},  # no host
        {"colour": "red"},  # unknown field
        {},  # nothing to change
    ],
)
async def test_patch_refuses_bad_values_and_changes_nothing(
    hookd: Running, patch: dict[str, Any]
) -> None:
    created = await create_endpoint(hookd.client, ["cliente.*"])
    before = await get_endpoint(hookd, created["id"])
    response = await hookd.client.patch(f"/v1/endpoints/{created['id']}", json=patch)
    assert_error(response, 422)
    assert await get_endpoint(hookd, created["id"]) == before


async def test_unknown_endpoint_is_404_everywhere(hookd: Running) -> None:
    await create_endpoint(hookd.client, ["*"])
    path = "/v1/endpoints/ep_nosuchendpoint"
    assert_error(await hookd.client.get(path), 404)
    assert_error(await hookd.client.patch(path, json={"enabled": False}), 404)
    assert_error(await hookd.client.delete(path), 404)
    assert_error(await hookd.client.post(f"{path}/rotate-secret"), 404)


async def test_delete_then_404(hookd: Running) -> None:
    created = await create_endpoint(hookd.client, ["*"])
    kept = await create_endpoint(hookd.client, ["*"])
    response = await hookd.client.delete(f"/v1/endpoints/{created['id']}")
    assert response.status_code == 204, response.text
    assert_error(await hookd.client.get(f"/v1/endpoints/{created['id']}"), 404)
    assert_error(await hookd.client.delete(f"/v1/endpoints/{created['id']}"), 404)
    assert [e["id"] for e in await list_endpoints(hookd)] == [kept["id"]]
    event_id = await ingest(hookd.client)
    assert await deliveries_of(hookd, event_id) == [(kept["id"], "pending")]


async def test_rotate_secret_shows_a_new_one(hookd: Running) -> None:
    created = await create_endpoint(hookd.client, ["*"])
    response = await hookd.client.post(f"/v1/endpoints/{created['id']}/rotate-secret")
    assert response.status_code == 200, response.text
    rotated = response.json()["secret"]
    assert GENERATED_SECRET.match(rotated), rotated
    assert rotated != created["secret"]
    assert await stored_secret(hookd, created["id"]) == rotated
    assert "secret" not in await get_endpoint(hookd, created["id"])

    given = await hookd.client.post(
        f"/v1/endpoints/{created['id']}/rotate-secret", json={"secret": "outra_chave"}
    )
    assert given.status_code == 200, given.text
    assert given.json()["secret"] == "outra_chave"
    assert await stored_secret(hookd, created["id"]) == "outra_chave"


@pytest.mark.parametrize(
    "secret", ["whsec_", "whsec_not base64!", "whsec_QUJDZA===", "whsec_QUJDZ", "whsec_ab-_cd"]
)
async def test_a_whsec_secret_that_does_not_decode_is_refused_everywhere(
    hookd: Running, secret: str
) -> None:
    # Accepted, it would be signed with X-Webhook-Signature alone, and every Standard
    # Webhooks library would reject its deliveries for the missing webhook-* headers.
    made = await create_endpoint(hookd.client, ["*"])
    path = f"/v1/endpoints/{made['id']}"
    for method, url, body in (
        (
            "POST",
            "/v1/endpoints",
            {"url": "http://127.0.0.1:9/h", "events": ["*"], "secret": secret},
        ),
        ("PATCH", path, {"secret": secret}),
        ("POST", f"{path}/rotate-secret", {"secret": secret}),
    ):
        error = assert_error(await hookd.client.request(method, url, json=body), 422)
        assert "whsec_" in error["message"], error
        assert "base64" in error["message"], error
    assert len(await list_endpoints(hookd)) == 1
    assert await stored_secret(hookd, made["id"]) == made["secret"]


# -- endpoints from the config file -------------------------------------------------------


async def test_config_endpoints_are_listed_and_keep_their_id_across_restarts(
    hookd_factory: Factory, short_dir: Path
) -> None:
    first = await hookd_factory(CONFIG_ENDPOINT)
    made = await create_endpoint(first.client, ["*"])
    [declared, api_made] = await list_endpoints(first)
    assert declared["origin"] == "config"
    assert declared["url"] == CONFIG_URL
    assert declared["events"] == ["cliente.*", "tarefa.concluida"]
    assert declared["description"] == "ERP"
    assert "secret" not in declared
    assert api_made["id"] == made["id"]
    assert api_made["origin"] == "api"
    await stop(first)

    again = await hookd_factory(CONFIG_ENDPOINT, directory=short_dir)
    assert [(e["id"], e["origin"]) for e in await list_endpoints(again)] == [
        (declared["id"], "config"),
        (made["id"], "api"),
    ]
    event_id = await ingest(again.client)
    assert sorted(await deliveries_of(again, event_id)) == sorted(
        [(declared["id"], "pending"), (made["id"], "pending")]
    )
    await stop(again)

    # Removed from the file: gone from the API, the API-made one stays.
    without = await hookd_factory("", directory=short_dir)
    assert [e["id"] for e in await list_endpoints(without)] == [made["id"]]


async def test_config_endpoints_cannot_be_changed_through_the_api(
    hookd_factory: Factory,
) -> None:
    running = await hookd_factory(CONFIG_ENDPOINT)
    [declared] = await list_endpoints(running)
    path = f"/v1/endpoints/{declared['id']}"
    assert_error(await running.client.patch(path, json={"enabled": False}), 409)
    assert_error(await running.client.patch(path, json={"events": ["*"]}), 409)
    assert_error(await running.client.delete(path), 409)
    assert_error(await running.client.post(f"{path}/rotate-secret"), 409)
    assert await get_endpoint(running, declared["id"]) == declared
    assert await stored_secret(running, declared["id"]) == "sua_chave_secreta"


# -- which events get deliveries ----------------------------------------------------------


async def test_only_events_ingested_after_creation_get_deliveries(hookd: Running) -> None:
    before = await ingest(hookd.client)
    created = await create_endpoint(hookd.client, ["cliente.*"])
    after = await ingest(hookd.client)

    assert await deliveries_of(hookd, before) == []
    assert await deliveries_of(hookd, after) == [(created["id"], "pending")]
    shown = (await hookd.client.get(f"/v1/events/{before}")).json()
    assert shown["deliveries"] == []
    assert await count(hookd, "deliveries") == 1


async def test_disabled_endpoint_gets_no_deliveries(hookd: Running) -> None:
    disabled = await create_endpoint(hookd.client, ["*"], enabled=False)
    toggled = await create_endpoint(hookd.client, ["*"])
    first = await ingest(hookd.client)
    assert await deliveries_of(hookd, first) == [(toggled["id"], "pending")]

    response = await hookd.client.patch(f"/v1/endpoints/{toggled['id']}", json={"enabled": False})
    assert response.status_code == 200, response.text
    second = await ingest(hookd.client)
    assert await deliveries_of(hookd, second) == []
    assert (await hookd.client.post("/v1/events", json={"event": "a.b", "data": {}})).json()[
        "deliveries"
    ] == 0

    response = await hookd.client.patch(f"/v1/endpoints/{disabled['id']}", json={"enabled": True})
    assert response.status_code == 200, response.text
    third = await ingest(hookd.client)
    assert await deliveries_of(hookd, third) == [(disabled["id"], "pending")]


# -- the TCP listener and its token -------------------------------------------------------


async def test_tcp_listener_requires_the_token(hookd_factory: Factory) -> None:
    port = free_port()
    listening = f'[server]\nlisten = "127.0.0.1:{port}"\napi_token = "{API_TOKEN}"'
    running = await hookd_factory(listening)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=10
    ) as tcp:
        for headers in (
            {},  # no token
            {"Authorization": "Bearer wrong"},  # wrong token
            {"Authorization": f"Bearer {API_TOKEN}0"},  # the token and more
            {"Authorization": f"Basic {API_TOKEN}"},  # wrong scheme
            {"Authorization": API_TOKEN},  # no scheme
        ):
            assert_error(await tcp.get("/v1/endpoints", headers=headers), 401)
            refused = await tcp.post(
                "/v1/events", json={"event": "a.b", "data": {}}, headers=headers
            )
            assert_error(refused, 401)
        assert await count(running, "events") == 0

        good = {"Authorization": f"Bearer {API_TOKEN}"}
        assert (await tcp.get("/v1/endpoints", headers=good)).status_code == 200
        accepted = await tcp.post("/v1/events", json={"event": "a.b", "data": {}}, headers=good)
        assert accepted.status_code == 202, accepted.text
        assert await count(running, "events") == 1

        health = await tcp.get("/healthz")
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
    # The Unix socket is guarded by its file mode, not the token.
    assert (await running.client.get("/v1/endpoints")).status_code == 200


async def test_config_endpoint_disabled_in_the_file_cancels_its_pending_deliveries(
    hookd_factory: Factory, short_dir: Path
) -> None:
    first = await hookd_factory(CONFIG_ENDPOINT)
    event_id = await ingest(first.client)  # port 9 refuses: the delivery waits to retry
    [(endpoint_id, status)] = await deliveries_of(first, event_id)
    assert status == "pending"
    await stop(first)

    again = await hookd_factory(CONFIG_ENDPOINT + "enabled = false\n", directory=short_dir)
    assert await deliveries_of(again, event_id) == [(endpoint_id, "cancelled")]
    await stop(again)
