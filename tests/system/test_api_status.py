"""GET /v1/status against a real daemon: version, endpoint and delivery counts, the age of
the oldest pending delivery, the token on TCP, and a query plan that stays cheap.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import apsw
import httpx
import trio

from hookd import __version__
from hookd.db import schema, stats
from tests.conftest import API_TOKEN, Running, free_port
from tests.receiver import serve_receiver
from tests.system.test_api_events import assert_error, create_endpoint, ingest
from tests.system.test_delivery import wait_delivery

Factory = Callable[..., Awaitable[Running]]


async def status(running: Running) -> dict[str, Any]:
    response = await running.client.get("/v1/status")
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_empty_daemon(hookd: Running) -> None:
    assert await status(hookd) == {
        "version": __version__,
        "endpoints": 0,
        "endpoints_enabled": 0,
        "deliveries": {"pending": 0, "succeeded": 0, "failed": 0, "cancelled": 0, "erased": 0},
        "oldest_pending_at": None,
        "oldest_pending_age_s": None,
        "secrets_key": None,  # no key given: secrets in clear
    }


async def test_counts_pending_and_the_oldest_of_them(hookd: Running) -> None:
    # Port 9 refuses: each delivery fails once and waits a minute to be retried.
    refusing = await create_endpoint(hookd.client, ["*"])
    await create_endpoint(hookd.client, ["*"], enabled=False)  # gets no deliveries
    await ingest(hookd.client)
    await trio.sleep(0.01)
    await ingest(hookd.client)
    first = (await hookd.client.get("/v1/deliveries")).json()["items"][-1]

    figures = await status(hookd)
    assert figures["endpoints"] == 2
    assert figures["endpoints_enabled"] == 1
    assert figures["deliveries"] == {
        "pending": 2,
        "succeeded": 0,
        "failed": 0,
        "cancelled": 0,
        "erased": 0,
    }
    assert figures["oldest_pending_at"] == first["created_at"]
    assert 0 <= figures["oldest_pending_age_s"] < 10

    response = await hookd.client.delete(f"/v1/endpoints/{refusing['id']}")
    assert response.status_code == 204
    figures = await status(hookd)
    assert figures["endpoints"] == 1
    assert figures["deliveries"]["cancelled"] == 2
    assert figures["deliveries"]["pending"] == 0
    assert figures["oldest_pending_at"] is None


async def test_counts_succeeded_and_failed(hookd_factory: Factory) -> None:
    hookd = await hookd_factory('[delivery]\nretry_schedule = ["0s"]')  # one attempt only
    await create_endpoint(hookd.client, ["cliente.*"])  # refuses: fails at once
    async with serve_receiver() as receiver:
        await create_endpoint(hookd.client, ["cliente.*"], url=receiver.url)
        await ingest(hookd.client)
        with trio.fail_after(5):
            for delivery in (await hookd.client.get("/v1/deliveries")).json()["items"]:
                await wait_delivery(hookd, delivery["id"], lambda d: d["status"] != "pending")
    deliveries = (await status(hookd))["deliveries"]
    assert deliveries == {"pending": 0, "succeeded": 1, "failed": 1, "cancelled": 0, "erased": 0}


async def test_tcp_needs_the_token(hookd_factory: Factory) -> None:
    port = free_port()
    await hookd_factory(f'[server]\nlisten = "127.0.0.1:{port}"\napi_token = "{API_TOKEN}"')
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False) as tcp:
        assert_error(await tcp.get("/v1/status"), 401)
        good = await tcp.get("/v1/status", headers={"Authorization": f"Bearer {API_TOKEN}"})
        assert good.status_code == 200
        assert good.json()["version"] == __version__


def test_queries_use_indexes(short_dir: Path) -> None:
    """The counts scan one covering index; the oldest pending is two index look-ups."""
    conn = apsw.Connection(str(short_dir / "plan.db"))
    conn.execute(schema.MIGRATIONS[0])
    conn.execute("ANALYZE")

    def plan(query: str) -> str:
        return " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + query))

    assert plan(stats.DELIVERY_COUNTS) == "SCAN deliveries USING COVERING INDEX deliveries_status"
    oldest = plan(stats.OLDEST_PENDING)
    assert "SEARCH deliveries USING INTEGER PRIMARY KEY (rowid=?)" in oldest
    assert "SEARCH deliveries USING COVERING INDEX deliveries_status (status=?)" in oldest
    assert "SCAN" not in oldest
    conn.close()
