"""GET /v1/audit against a real daemon: every endpoint change through the API and the
config file is recorded with its time, origin, action and field names (never a value),
together with the change or not at all; filters and pages; bad parameters are 400.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import API_TOKEN, Running, free_port
from tests.system.test_api_endpoints import CONFIG_ENDPOINT, list_endpoints, stop
from tests.system.test_api_events import assert_error, create_endpoint, db_path, db_rows

Factory = Callable[..., Awaitable[Running]]


async def audit(running: Running, **params: Any) -> list[dict[str, Any]]:
    response = await running.client.get("/v1/audit", params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def summary(entries: list[dict[str, Any]]) -> list[tuple[str, str, list[str]]]:
    return [(e["origin"], e["action"], e["fields"]) for e in entries]


async def test_every_api_change_is_recorded_newest_first(hookd: Running) -> None:
    created = await create_endpoint(hookd.client, ["cliente.*"], secret="primeira_chave")
    path = f"/v1/endpoints/{created['id']}"
    changes: list[tuple[str, str, dict[str, Any] | None]] = [
        ("PATCH", path, {"events": ["*"], "description": "ERP"}),
        ("PATCH", path, {"description": "ERP"}),  # the same value: no change
        ("PATCH", path, {"enabled": False}),
        ("PATCH", path, {"enabled": True}),
        ("POST", f"{path}/rotate-secret", None),
        ("PATCH", path, {"secret": "segunda_chave"}),
        ("DELETE", path, None),
    ]
    answers = []
    for method, target, body in changes:
        response = await hookd.client.request(method, target, json=body)
        assert response.status_code in (200, 204), response.text
        answers.append(response)
    rotated = answers[4].json()["secret"]

    entries = await audit(hookd)
    assert summary(entries) == [
        ("socket", "delete", []),
        ("socket", "rotate_secret", ["secret"]),
        ("socket", "rotate_secret", ["secret"]),
        ("socket", "enable", ["enabled"]),
        ("socket", "disable", ["enabled"]),
        ("socket", "update", ["events", "description"]),
        ("socket", "create", ["url", "events", "description", "enabled", "secret"]),
    ]
    assert {e["endpoint_id"] for e in entries} == {created["id"]}
    ids = [e["id"] for e in entries]
    assert ids == sorted(ids, reverse=True)
    times = [datetime.fromisoformat(e["at"]) for e in entries]
    assert times == sorted(times, reverse=True)

    stored = await db_rows(db_path(hookd), "SELECT * FROM audit")
    for secret in ("primeira_chave", "segunda_chave", rotated):
        assert secret not in repr(stored)
        assert secret not in (await hookd.client.get("/v1/audit")).text


async def test_a_refused_change_records_nothing(hookd_factory: Factory) -> None:
    running = await hookd_factory(CONFIG_ENDPOINT)
    [declared] = await list_endpoints(running)
    before = await audit(running)
    path = f"/v1/endpoints/{declared['id']}"
    assert_error(await running.client.patch(path, json={"enabled": False}), 409)
    assert_error(await running.client.delete(path), 409)
    assert_error(await running.client.post(f"{path}/rotate-secret"), 409)
    assert_error(await running.client.patch("/v1/endpoints/ep_none", json={"url": "x"}), 422)
    assert_error(await running.client.delete("/v1/endpoints/ep_none"), 404)
    assert await audit(running) == before


async def test_changes_over_tcp_say_so(hookd_factory: Factory) -> None:
    port = free_port()
    listening = f'[server]\nlisten = "127.0.0.1:{port}"\napi_token = "{API_TOKEN}"'
    running = await hookd_factory(listening)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"Bearer {API_TOKEN}"},
        trust_env=False,
    ) as tcp:
        made = await create_endpoint(tcp, ["*"])
        assert (await tcp.delete(f"/v1/endpoints/{made['id']}")).status_code == 204
        over_tcp = (await tcp.get("/v1/audit")).json()["items"]
    assert summary(over_tcp)[0] == ("tcp", "delete", [])
    assert summary(await audit(running)) == summary(over_tcp)


async def test_config_file_changes_are_recorded_once(
    hookd_factory: Factory, short_dir: Path
) -> None:
    first = await hookd_factory(CONFIG_ENDPOINT)
    [declared] = await list_endpoints(first)
    fields = ["url", "events", "description", "enabled", "secret"]
    assert summary(await audit(first)) == [("config", "create", fields)]
    await stop(first)

    same = await hookd_factory(CONFIG_ENDPOINT, directory=short_dir)
    assert len(await audit(same)) == 1  # nothing changed in the file: nothing recorded
    await stop(same)

    changed = CONFIG_ENDPOINT.replace("sua_chave_secreta", "nova").replace('"ERP"', '"ERP 2"')
    again = await hookd_factory(changed + "enabled = false\n", directory=short_dir)
    assert summary(await audit(again))[0] == (
        "config",
        "disable",
        ["description", "enabled", "secret"],
    )
    assert "nova" not in (await again.client.get("/v1/audit")).text
    await stop(again)

    without = await hookd_factory("", directory=short_dir)
    entries = await audit(without)
    assert summary(entries)[0] == ("config", "delete", [])
    assert {e["endpoint_id"] for e in entries} == {declared["id"]}


async def test_filters_and_pages(hookd: Running) -> None:
    one = await create_endpoint(hookd.client, ["*"])
    two = await create_endpoint(hookd.client, ["*"])
    for n in range(3):
        patch = {"description": f"d{n}"}
        response = await hookd.client.patch(f"/v1/endpoints/{one['id']}", json=patch)
        assert response.status_code == 200
    everything = await audit(hookd)
    assert len(everything) == 5

    only_two = await audit(hookd, endpoint=two["id"])
    assert summary(only_two) == [("socket", "create", summary(everything)[-1][2])]
    assert await audit(hookd, endpoint="ep_unknown") == []

    third = everything[2]["at"]
    assert [e["id"] for e in await audit(hookd, since=third)] == [
        e["id"] for e in everything if e["at"] >= third
    ]
    assert await audit(hookd, since="2999-01-01T00:00:00Z") == []

    seen: list[int] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        page = (await hookd.client.get("/v1/audit", params=params)).json()
        seen += [e["id"] for e in page["items"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == [e["id"] for e in everything]


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("since=yesterday", "since"),  # not RFC 3339
        ("since=2024-13-01T00:00:00Z", "since"),  # no such month
        ("limit=0", "limit"),  # below 1
        ("limit=1001", "limit"),  # above the largest page
        ("cursor=abc", "cursor"),  # not one the API gave
    ],
)
async def test_bad_parameters_are_400(hookd: Running, query: str, named: str) -> None:
    error = assert_error(await hookd.client.get(f"/v1/audit?{query}"), 400)
    assert named in error["message"]


async def test_only_get(hookd: Running) -> None:
    response = await hookd.client.post("/v1/audit", json={})
    assert_error(response, 405)
    assert response.headers["allow"] == "GET"
