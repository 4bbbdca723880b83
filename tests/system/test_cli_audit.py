"""`hookd audit` against a real daemon: the changes as a table, newest first, filtered by
endpoint and time, paged, and as the API's JSON."""

from __future__ import annotations

import re

import pytest

from tests.cli_runner import cli
from tests.conftest import Running
from tests.system.test_api_events import create_endpoint


async def test_audit_table_newest_first(hookd: Running) -> None:
    empty = await cli(hookd.socket, "audit")
    assert empty.code == 0
    assert empty.out == ""
    assert "no endpoint changes recorded" in empty.err

    made = await create_endpoint(hookd.client, ["*"], secret="sua_chave_secreta")
    assert (await cli(hookd.socket, "endpoints", "disable", made["id"])).code == 0
    assert (await cli(hookd.socket, "endpoints", "rotate-secret", made["id"])).code == 0

    ran = await cli(hookd.socket, "audit")
    assert ran.code == 0, ran.err
    header, *rows = ran.lines
    assert header.split() == ["WHEN", "ORIGIN", "ACTION", "ENDPOINT", "FIELDS"]
    assert [re.split(r"\s{2,}", row)[1:3] for row in rows] == [
        ["socket", "rotate_secret"],
        ["socket", "disable"],
        ["socket", "create"],
    ]
    assert rows[0].endswith(f"{made['id']}  secret")
    assert rows[2].endswith("url, events, description, enabled, secret")
    assert "sua_chave_secreta" not in ran.out


async def test_audit_filters_paging_and_json(hookd: Running) -> None:
    one = await create_endpoint(hookd.client, ["*"])
    two = await create_endpoint(hookd.client, ["*"])

    only_one = await cli(hookd.socket, "audit", "--endpoint", one["id"], "--json")
    assert only_one.code == 0, only_one.err
    assert [e["endpoint_id"] for e in only_one.json()["items"]] == [one["id"]]
    assert only_one.json() == (await hookd.client.get(f"/v1/audit?endpoint={one['id']}")).json()

    first = await cli(hookd.socket, "audit", "--limit", "1")
    assert len(first.lines) == 2
    assert two["id"] in first.out
    assert "there may be more" in first.err

    recent = await cli(hookd.socket, "audit", "--since", "1h", "--all", "--json")
    assert len(recent.json()["items"]) == 2
    assert (await cli(hookd.socket, "audit", "--since", "2999-01-01T00:00Z")).lines == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--since", "yesterday"], "--since"),  # neither a duration nor a time
        (["--limit", "0"], "--limit"),  # below 1
    ],
)
async def test_audit_usage_errors(hookd: Running, argv: list[str], message: str) -> None:
    ran = await cli(hookd.socket, "audit", *argv)
    assert ran.code == 2
    assert message in ran.err
