from tests.conftest import Running


async def test_ingest_answers_202(hookd: Running) -> None:
    response = await hookd.client.post(
        "/v1/events", json={"event": "cliente.criado", "data": {"id": "cliente_123"}}
    )
    assert response.status_code == 202
    assert response.json()["event"] == "cliente.criado"
