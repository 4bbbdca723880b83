"""Group commit: concurrent writes share transactions, and each is acknowledged after it."""

from __future__ import annotations

import trio

from tests.conftest import Running


async def test_concurrent_ingests_share_commits(hookd: Running) -> None:
    store = hookd.daemon.store
    assert store is not None
    commits_before, writes_before = store.engine.commits, store.engine.writes

    async def client(n: int) -> None:
        for k in range(10):
            event = {"event": "cliente.criado", "data": {"n": n, "k": k}}
            response = await hookd.client.post("/v1/events", json=event)
            assert response.status_code == 202

    async with trio.open_nursery() as nursery:
        for n in range(20):
            nursery.start_soon(client, n)
    writes = store.engine.writes - writes_before
    commits = store.engine.commits - commits_before
    assert writes == 200
    assert commits < writes  # several requests rode on one transaction
