"""`hookd stats`: per-endpoint figures from a real daemon, as a table, one endpoint's
fields, or the API's JSON unchanged.
"""

from __future__ import annotations

import json

import pytest
import trio

from tests.cli_runner import cli
from tests.conftest import Running
from tests.receiver import serve_receiver
from tests.system.test_delivery import ingest, subscribe


@pytest.fixture(autouse=True)
def no_hookd_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HOOKD_SOCKET", "HOOKD_CONFIG", "HOOKD_TOKEN", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)


async def test_stats_table_fields_and_json(hookd: Running) -> None:
    async with serve_receiver() as receiver:
        endpoint = await subscribe(hookd, receiver.url, ["*"])
        await ingest(hookd, "cliente.criado", {"id": "c"})
        await receiver.wait_for(1)
        await trio.sleep(0.1)
        table = await cli(hookd.socket, "stats")
        one = await cli(hookd.socket, "stats", endpoint["id"])
        as_json = await cli(hookd.socket, "stats", endpoint["id"], "--json")
        api = (await hookd.client.get(f"/v1/endpoints/{endpoint['id']}/stats")).json()
        unknown = await cli(hookd.socket, "stats", "ep_nope")
    assert table.code == 0, table.err
    assert table.lines[0].split()[:3] == ["ENDPOINT", "STATE", "PENDING"]
    assert endpoint["id"] in table.lines[1]
    assert "1 ok / 0 failed (100.0%)" in table.lines[1]
    assert one.code == 0
    assert any(line.startswith("last hour") and "1 ok" in line for line in one.lines)
    assert as_json.code == 0
    assert json.loads(as_json.out) == api
    assert unknown.code == 1
    assert "not found" in unknown.err or "ep_nope" in unknown.err
