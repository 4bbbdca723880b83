"""GET /v1/openapi.json: the document covers every route, follows the catalog, and holds
up against schemathesis run on the real daemon.

The schemathesis run (`tests/contract/run.py`) happens in a network namespace of its
own (`unshare --user --map-root-user --net`): the endpoints schemathesis creates point
at made-up hosts, and nothing may leave the machine. Its size is `HOOKD_CONTRACT_EXAMPLES`
examples per operation (default 30, about 45 s here; 80 for a deeper run, about two
minutes) with the seed `HOOKD_CONTRACT_SEED`
(default fixed, so a failure reproduces; "random" for a new one each run).
"""

from __future__ import annotations

import functools
import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hookd.api import openapi, routes
from hookd.domain import endpoints as endpoint_rules
from hookd.domain.catalog import Catalog, CustomType, ValidateMode
from hookd.runtime.metrics import CONTENT_TYPE as METRICS_TYPE
from tests.conftest import Running

Start = Callable[..., Awaitable[Running]]
RUNNER = Path(__file__).parents[1] / "contract" / "run.py"
DEFAULT_SEED = "20261129"


def operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item}


def test_every_route_is_in_the_document_and_nothing_else() -> None:
    document = openapi.document(routes.OPERATIONS, Catalog())
    assert operations(document) == set(routes.routes())
    assert len(routes.routes()) == len(set(routes.routes()))


def test_each_described_route_is_served_by_its_own_handler() -> None:
    for route in routes.ROUTES:  # the table carries both: the router must agree with it
        path = route.path.replace("{id}", "x1").replace("{name}", "a.b")
        handler, params = routes.route(route.method, path)
        assert handler is route.handler, route.path
        assert set(params) == {name.strip("{}") for name in route.path.split("/") if "{" in name}


def test_every_operation_documents_its_answers_and_errors() -> None:
    document = openapi.document(routes.OPERATIONS, Catalog(), with_token=True)
    error = {"$ref": "#/components/schemas/ErrorBody"}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            errors = {s: r for s, r in responses.items() if s >= "400"}
            assert errors or path == "/healthz", (method, path)  # liveness never refuses
            for answer in errors.values():
                assert answer["content"]["application/json"]["schema"] == error
            if path != "/healthz":
                assert "401" in responses
                assert operation["security"] == [{"bearer": []}]
            if operation.get("requestBody"):
                assert {"400", "413", "415", "422"} <= set(responses)
    metrics = document["paths"]["/metrics"]["get"]["responses"]["200"]
    assert list(metrics["content"]) == [METRICS_TYPE]
    assert "securitySchemes" in document["components"]
    assert "securitySchemes" not in openapi.document(routes.OPERATIONS, Catalog())["components"]


def test_the_ingest_schema_follows_the_catalog_and_its_mode() -> None:
    own = CustomType(name="pedido.criado", required=["pedidoId"])

    def branches(mode: ValidateMode) -> list[str]:
        document = openapi.document(routes.OPERATIONS, Catalog([own], mode))
        schema = document["components"]["schemas"]["IngestEvent"]
        return [branch["title"] for branch in schema.get("anyOf", [])]

    spec = [kind.name for kind in Catalog().types() if kind.source == "spec"]
    assert branches("known") == [*spec, "pedido.criado", "other"]
    assert branches("strict") == [*spec, "pedido.criado"]
    assert branches("off") == []
    components = openapi.document(routes.OPERATIONS, Catalog())["components"]["schemas"]
    assert components["TarefaCriada"]["properties"]["prioridade"]["anyOf"][0] == {
        "enum": ["ALTA", "BAIXA", "MEDIA", "URGENTE"]
    }
    # The ingest route's examples are the catalog's, every one accepted at ingest.
    post = openapi.document(routes.OPERATIONS, Catalog([own]))["paths"]["/v1/events"]["post"]
    assert list(post["requestBody"]["content"]["application/json"]["examples"]) == spec


@functools.cache
def secret_validator() -> jsonschema_rs.Validator:
    components = openapi.document(routes.OPERATIONS, Catalog())["components"]["schemas"]
    return jsonschema_rs.validator_for(components["EndpointPatch"]["properties"]["secret"])


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.text(max_size=12),
        st.from_regex(r"whsec_[A-Za-z0-9+/=_ -]{0,10}", fullmatch=True),
        st.sampled_from(
            ["whsec_QUJDZGU", "whsec_QUJDZA=", "whsec_QUJ==", "whsec_QU=", "whsec_QU=="]
        ),
    )
)
def test_the_secret_schema_allows_what_the_api_accepts(secret: str) -> None:
    # schemathesis holds the daemon to the document: a whsec_ secret the API refuses
    # (it does not decode) must be one the document forbids, and the other way round.
    allowed = secret_validator().is_valid(secret)
    assert allowed == (endpoint_rules.secret_error(secret) is None)


async def test_the_daemon_serves_the_document_for_its_config(hookd_factory: Start) -> None:
    hookd = await hookd_factory(
        '[ingest]\nvalidate = "strict"\n[[event_type]]\nname = "pedido.criado"\n'
    )
    response = await hookd.client.get("/v1/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    expected = openapi.document(
        routes.OPERATIONS, Catalog([CustomType(name="pedido.criado")], "strict")
    )
    assert response.json() == json.loads(json.dumps(expected))


# -- schemathesis against the running daemon -----------------------------------------------


def test_schemathesis_finds_nothing(tmp_path: Path) -> None:
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.fail("the contract test needs unshare(1) (util-linux) for its network namespace")
    seed = os.environ.get("HOOKD_CONTRACT_SEED", DEFAULT_SEED)
    if seed == "random":
        seed = str(random.SystemRandom().getrandbits(64))
    examples = os.environ.get("HOOKD_CONTRACT_EXAMPLES", "30")
    command = [unshare, "--user", "--map-root-user", "--net", sys.executable, str(RUNNER)]
    ran = subprocess.run(
        [*command, str(tmp_path), examples, seed],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,  # schemathesis leaves a .schemathesis/ cache where it runs
    )
    assert ran.returncode == 0, ran.stderr
    summary = json.loads(ran.stdout.splitlines()[-1])
    report = json.loads((tmp_path / "report.json").read_text())
    output = (tmp_path / "schemathesis.txt").read_text()
    print(  # shown with -s or on failure: what was exercised
        f"schemathesis seed {seed}: {report['operations']['tested']} operations, "
        f"{report['test_cases']['generated']} test cases, phases {report['phases']}"
    )
    assert summary["schemathesis_exit"] == 0, output[-6000:]
    assert report["failures"] == [], output[-6000:]
    assert report["errors"] == [], output[-6000:]
    # Every operation but the one serving the document itself, which schemathesis leaves
    # out (it read the document from there; test_the_daemon_serves_... checks it).
    operations = report["operations"]
    assert operations["tested"] == operations["total"] == len(routes.routes()) - 1
    assert all(phase["status"] == "success" for phase in report["phases"].values())
    assert summary["crashes"] == 0  # no handler raised: no 500 was ever answered
    assert summary["alive_after"]
    assert (summary["healthz"], summary["status"]) == (200, 200)
    assert summary["daemon_exit"] == 0
