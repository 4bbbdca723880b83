"""The spec's own receiver examples, run for real, against real deliveries (DESIGN §1).

DESIGN.md: the spec's Node/Express and Python/Flask receivers are real clients, and a
delivery that either of them rejects is a bug in hookd. Each one runs here as a
subprocess on 127.0.0.1 (`tests/spec_receivers/`, the spec's code with only the changes
DESIGN.md allows), subscribed to `*` with the spec's example secret. Every one of the
spec's 15 example payloads, and payloads that are hard to re-serialise byte for byte
(floats, non-ASCII, escapes, nesting, numeric keys, big integers), must end `succeeded`:
the receiver verified the signature and answered 2xx. Retries are off
(`retry_schedule = ["0s"]`) so a rejection ends `failed` at once, with the receiver's
status and answer in the attempt log.

The Express receiver needs `express@4`: it is installed with npm into a temporary
directory once per session (never into the repository); without node/npm, or when the
install fails, those tests are skipped with the reason.

The copies are compared with the spec's own text, read from beside the checkout (or
HOOKD_SPEC). Without it those comparisons are skipped with the reason, except in CI
(CI=true), where they fail: a CI run must not pass without having compared.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from difflib import ndiff
from pathlib import Path
from typing import Any

import pytest
import trio
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from hookd.domain.catalog import Catalog
from tests.conftest import Running, free_port
from tests.receiver import serve_receiver
from tests.system.test_delivery import subscribe

Start = Callable[..., Awaitable[Running]]

RECEIVERS = Path(__file__).parents[1] / "spec_receivers"
README = Path(__file__).parents[2] / "README.md"
SPEC_SECRET = "sua_chave_secreta"  # the spec's example secret
SPEC_TIMESTAMP = "2024-01-01T10:00:00Z"  # the timestamp of every spec example
NO_RETRIES = '[delivery]\nretry_schedule = ["0s"]'
# The spec: spec/webhooks-disponiveis.md, next to DESIGN.md, outside the repository.
SPEC_FILE = Path(
    os.environ.get("HOOKD_SPEC", Path(__file__).parents[3] / "shared/spec/webhooks-disponiveis.md")
)

# -- the payloads ------------------------------------------------------------------------

# The spec's 15 examples (event, data), in the spec's order: the catalog's, which
# test_payloads_are_the_spec_examples compares with the spec's text.
SPEC_EXAMPLES: list[tuple[str, dict[str, object]]] = [
    (entry.name, entry.example["data"])
    for entry in Catalog().types()
    if entry.source == "spec" and entry.example is not None
]


@dataclass(frozen=True)
class Sample:
    """One ingest request; `name` is also its event id, so failures name the sample."""

    name: str
    event: str
    data: str  # the JSON text of `data`, sent byte for byte
    timestamp: str | None = SPEC_TIMESTAMP
    may_refuse: bool = False  # a 422 at ingest is a correct answer too

    def body(self) -> bytes:
        stamp = "" if self.timestamp is None else f',"timestamp":{json.dumps(self.timestamp)}'
        return f'{{"id":"{self.name}","event":"{self.event}"{stamp},"data":{self.data}}}'.encode()


SPEC_SAMPLES = [
    Sample(f"spec-{event}", event, json.dumps(data, ensure_ascii=False))
    for event, data in SPEC_EXAMPLES
]

# Payloads whose body is hard to reproduce byte for byte after a parse and re-serialise
# (the Node receiver checks the signature over JSON.stringify(JSON.parse(body))).
TRICKY_SAMPLES = [
    Sample(
        "tricky-floats",
        "tarefa.atualizada",
        '{"inteiro": 1.0, "grande": 1e21, "Grande": 1E+21, "pequeno": 1.5e-7, "zero": -0.0,'
        ' "preco": 19.90, "cem": 1e2, "pi": 3.141592653589793, "max": 1.7976931348623157e308}',
    ),
    Sample(
        "tricky-unicode",
        "cliente.criado",
        '{"nome": "João Conceição", "emoji": "👍🏽 🇧🇷 😀", "escapado": "Jo\\u00e3o \\ud83d\\ude00",'
        ' "cjk": "日本語", "rtl": "مرحبا"}',
    ),
    Sample(
        "tricky-escapes",
        "chamado.respondido",
        r'{"aspas": "ele disse \"oi\"", "barra": "C:\\pasta\\arquivo", "linhas": "a\nb\r\n\tc",'
        r' "controle": "\u0000\u0001\b\f\u001f\u007f", "separadores": "\u2028\u2029",'
        r' "html": "<b>&amp;</b>", "slash": "a\/b", "vazia": ""}',
    ),
    Sample(
        "tricky-nested",
        "whatsapp.conversa.criada",
        '{"cliente": {"id": "cliente_123", "tags": ["vip", {"nivel": [1, [2, [3, []]]]}],'
        ' "vazio": {}, "lista": [], "nulo": null, "ativo": true, "inativo": false,'
        ' "negativo": -42, "seguro": 9007199254740991}}',
    ),
    Sample("tricky-no-timestamp", "email.enviado", '{"id": "sem_timestamp"}', timestamp=None),
    Sample(
        "tricky-offset-timestamp",
        "email.recebido",
        '{"id": "com_fuso"}',
        timestamp="2024-01-01T07:00:00.123456-03:00",
    ),
    # Object keys that look like array indexes: JavaScript puts them first, ascending.
    Sample(
        "tricky-numeric-keys",
        "tarefa.criada",
        '{"id": "tarefa_123", "itens": {"10": "dez", "2": "dois", "b": "letra", "1": "um"}}',
    ),
    # Integers a double cannot hold exactly (JavaScript numbers are doubles). Refusing
    # them at ingest, as hookd refuses floats too large for a double, is also correct.
    Sample(
        "tricky-big-integers",
        "chamado.aberto",
        '{"protocolo": 12345678901234567890, "acima": 9007199254740993,'
        ' "sextilhao": 1000000000000000000000}',
        may_refuse=True,
    ),
]

# -- helpers -----------------------------------------------------------------------------


async def send_all(hookd: Running, samples: list[Sample], endpoints: int = 1) -> dict[str, Sample]:
    """Ingest every sample, each to `endpoints` endpoints; the accepted ones by event id
    (a 422 is allowed when marked)."""
    accepted = {}
    for sample in samples:
        response = await hookd.client.post(
            "/v1/events", content=sample.body(), headers={"Content-Type": "application/json"}
        )
        if sample.may_refuse and response.status_code == 422:
            continue
        assert response.status_code == 202, f"{sample.name}: {response.text}"
        assert response.json()["deliveries"] == endpoints, f"{sample.name}: {response.text}"
        accepted[response.json()["id"]] = sample
    return accepted


async def settled_deliveries(hookd: Running, count: int) -> list[dict[str, Any]]:
    """All deliveries, once `count` exist and none is pending any more (at most 20 s)."""
    with trio.fail_after(20):
        while True:
            response = await hookd.client.get("/v1/deliveries", params={"limit": 1000})
            items: list[dict[str, Any]] = response.json()["items"]
            if len(items) >= count and all(d["status"] != "pending" for d in items):
                return items
            await trio.sleep(0.05)


async def rejections(hookd: Running, accepted: dict[str, Sample]) -> list[str]:
    """One line per delivery that did not succeed: sample, status and what was answered."""
    lines = []
    for delivery in await settled_deliveries(hookd, len(accepted)):
        if delivery["status"] == "succeeded":
            continue
        detail = (await hookd.client.get(f"/v1/deliveries/{delivery['id']}")).json()
        last = detail["attempt_log"][-1]
        lines.append(
            f"{accepted[delivery['event_id']].name}: {delivery['status']},"
            f" HTTP {last['status_code']} {last['error'] or ''} {last['response_excerpt']!r}"
        )
    return lines


def wait_accepting(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Block until 127.0.0.1:`port` accepts connections (at most 15 s)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"receiver exited {process.returncode}: {log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"receiver not accepting on {port} after 15 s: {log.read_text()}")


@pytest.fixture(scope="session")
def express_modules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A node_modules with express@4, installed by npm into a session temp directory."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed to run the spec's Express receiver")
    where = tmp_path_factory.mktemp("express")
    (where / "package.json").write_text('{"private": true}\n')
    command = ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(where), "express@4"]
    try:
        done = subprocess.run(command, cwd=where, capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        pytest.skip("`npm install express@4` took over 180 s")
    if done.returncode != 0:
        pytest.skip(f"`npm install express@4` failed: {(done.stderr or done.stdout)[-500:]}")
    return where / "node_modules"


@pytest.fixture(scope="module", params=["flask", "express"])
def spec_receiver(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The URL of one of the spec's receivers, running with the spec's secret."""
    port = free_port()
    env = {**os.environ, "WEBHOOK_SECRET": SPEC_SECRET, "PORT": str(port)}
    if request.param == "flask":
        command = [sys.executable, str(RECEIVERS / "flask_receiver.py"), str(port)]
    else:
        env["NODE_PATH"] = str(request.getfixturevalue("express_modules"))
        command = ["node", str(RECEIVERS / "express_receiver.js")]
    log = tmp_path_factory.mktemp(request.param) / "receiver.log"
    with receiver_process(command, env, port, log):
        yield f"http://127.0.0.1:{port}/webhook"


@pytest.fixture(scope="module", params=["flask", "express"])
def readme_receiver(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The URL of one of the README's receivers (Secret rotation), run as written, with
    the spec's secret written in them: only the port is chosen here."""
    port = free_port()
    where = tmp_path_factory.mktemp(f"readme-{request.param}")
    env = dict(os.environ)
    if request.param == "flask":
        (where / "receiver.py").write_text(readme_block("python"))
        run = f"exec(open('receiver.py').read()); app.run(port={port})"
        command = [sys.executable, "-c", run]
    else:
        env["NODE_PATH"] = str(request.getfixturevalue("express_modules"))
        code = readme_block("javascript")
        assert code.count("app.listen(3000);") == 1
        (where / "receiver.js").write_text(
            code.replace("app.listen(3000);", f"app.listen({port});")
        )
        command = ["node", "receiver.js"]
    with receiver_process(command, env, port, where / "receiver.log", cwd=where):
        yield f"http://127.0.0.1:{port}/webhook"


def readme_block(language: str) -> str:
    """The README's receiver example in `language`: the block naming the three headers."""
    blocks: list[str] = re.findall(rf"```{language}\n(.*?)```", README.read_text(), re.DOTALL)
    [block] = [b for b in blocks if "x-webhook-signature-next" in b.lower()]
    return block


@contextlib.contextmanager
def receiver_process(
    command: list[str], env: dict[str, str], port: int, log: Path, cwd: Path | None = None
) -> Iterator[None]:
    """Run a receiver until the block ends, once it accepts connections on `port`."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_accepting(port, process, log)
        yield
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- the tests ---------------------------------------------------------------------------


async def test_spec_examples_pass_the_spec_receivers(
    spec_receiver: str, hookd_factory: Start
) -> None:
    hookd = await hookd_factory(NO_RETRIES)
    await subscribe(hookd, spec_receiver, ["*"], secret=SPEC_SECRET)
    accepted = await send_all(hookd, SPEC_SAMPLES)
    assert len(accepted) == 15
    assert await rejections(hookd, accepted) == []


async def test_tricky_payloads_pass_the_spec_receivers(
    spec_receiver: str, hookd_factory: Start
) -> None:
    hookd = await hookd_factory(NO_RETRIES)
    await subscribe(hookd, spec_receiver, ["*"], secret=SPEC_SECRET)
    accepted = await send_all(hookd, TRICKY_SAMPLES)
    assert await rejections(hookd, accepted) == []


STANDARD_SECRET = "whsec_" + base64.b64encode(b"hookd standard webhooks test key").decode()


# Every form of whsec_ secret the README allows: padded, and with the padding left out
# (as Standard Webhooks and Svix libraries accept it, so integrators write it).
@pytest.mark.parametrize("secret", [STANDARD_SECRET, STANDARD_SECRET.rstrip("=")])
async def test_standard_webhooks_headers_verify(hookd_factory: Start, secret: str) -> None:
    assert STANDARD_SECRET.endswith("=")  # so the second form does leave padding out
    hookd = await hookd_factory(NO_RETRIES)
    samples = SPEC_SAMPLES + TRICKY_SAMPLES
    async with serve_receiver() as receiver:
        await subscribe(hookd, receiver.url, ["*"], secret=secret)
        accepted = await send_all(hookd, samples)
        received = await receiver.wait_for(len(accepted))
    assert sorted(r.headers["webhook-id"] for r in received) == sorted(accepted)
    verifier = Webhook(secret)
    for got in received:
        verifier.verify(got.body, got.headers)  # raises WebhookVerificationError
        assert got.headers["webhook-id"] == got.headers["x-webhook-id"]
        # The check is not vacuous: the same headers do not verify another body.
        with pytest.raises(WebhookVerificationError):
            verifier.verify(got.body + b" ", got.headers)


async def test_the_readme_receivers_accept_every_secret_of_a_rotation(
    readme_receiver: str, hookd_factory: Start
) -> None:
    # The receiver holds the spec's secret. One endpoint has just rotated away from it
    # (it signs X-Webhook-Signature-Previous for the overlap), the other has it staged
    # (X-Webhook-Signature-Next until 2099): the receiver must accept both.
    hookd = await hookd_factory(NO_RETRIES)
    rotated = await subscribe(hookd, readme_receiver, ["*"], secret=SPEC_SECRET)
    staged = await subscribe(hookd, readme_receiver, ["*"], secret="outro_segredo")
    for endpoint, body in (
        (rotated, {"secret": "nova_chave"}),
        (staged, {"secret": SPEC_SECRET, "activate_at": "2099-01-01T00:00:00Z"}),
    ):
        path = f"/v1/endpoints/{endpoint['id']}/rotate-secret"
        assert (await hookd.client.post(path, json=body)).status_code == 200
    accepted = await send_all(hookd, SPEC_SAMPLES + TRICKY_SAMPLES, endpoints=2)
    assert await rejections(hookd, accepted) == []
    # Not vacuous: with the old secret no longer signing, the receiver refuses.
    path = f"/v1/endpoints/{rotated['id']}/rotate-secret"
    assert (await hookd.client.post(path, json={"overlap_s": 0})).status_code == 200
    last = Sample("after-the-overlap", "cliente.criado", '{"id": "cliente_123"}')
    accepted |= await send_all(hookd, [last], endpoints=2)
    [refused] = await rejections(hookd, accepted)
    assert refused.startswith("after-the-overlap: failed, HTTP 401"), refused


# -- the copies match the spec -----------------------------------------------------------


def spec_text(path: Path = SPEC_FILE, environ: Mapping[str, str] = os.environ) -> str:
    """The spec's text. Without it the test is skipped, saying where the spec was looked
    for, except in CI (CI=true), where a comparison that cannot run must fail."""
    if path.is_file():
        return path.read_text()
    reason = f"the spec is not at {path}: put it there or set HOOKD_SPEC to its path"
    if environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the spec comparisons must run)")
    pytest.skip(reason)


def spec_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", spec_text(), re.DOTALL)


def changed_lines(spec_code: str, copy: Path) -> list[str]:
    """The lines of `copy` (its header comment left out) that differ from `spec_code`."""
    lines = copy.read_text().splitlines()
    while lines[0].startswith(("#", "//")):
        lines.pop(0)
    diff = ndiff(spec_code.splitlines(), lines)
    return [line for line in diff if line[:1] in "+-" and line[2:].strip()]


@pytest.mark.parametrize(
    ("language", "copy", "allowed"),
    [
        (
            "python",
            "flask_receiver.py",
            [
                "+ import os",
                "+ import sys",
                "- WEBHOOK_SECRET = 'sua_chave_secreta'",
                "+ WEBHOOK_SECRET = os.environ.get('WEBHOOK_SECRET', 'sua_chave_secreta')",
                "+ def handle_tarefa_criada(data):",
                "+     pass",
                "-     app.run(port=3000)",
                "+     app.run(port=int(sys.argv[1]))",
            ],
        ),
        (
            "javascript",
            "express_receiver.js",
            [
                "- const WEBHOOK_SECRET = 'sua_chave_secreta';",
                "+ const WEBHOOK_SECRET = process.env.WEBHOOK_SECRET || 'sua_chave_secreta';",
                "- app.listen(3000, () => {",
                "+ function handleTarefaCriada(data) {}",
                "+ app.listen(process.env.PORT || 3000, () => {",
            ],
        ),
    ],
)
def test_receivers_are_the_spec_examples(language: str, copy: str, allowed: list[str]) -> None:
    [spec_code] = [b for b in spec_blocks(language) if "app.listen" in b or "app.run" in b]
    assert changed_lines(spec_code, RECEIVERS / copy) == allowed


@pytest.mark.parametrize(
    ("environ", "outcome"),
    [({"CI": "true"}, pytest.fail.Exception), ({}, pytest.skip.Exception)],
)
def test_a_missing_spec_fails_in_ci_and_skips_elsewhere(
    tmp_path: Path, environ: dict[str, str], outcome: type[BaseException]
) -> None:
    with pytest.raises(outcome, match=r"the spec is not at .*HOOKD_SPEC"):
        spec_text(tmp_path / "nowhere.md", environ)
    (tmp_path / "here.md").write_text("the spec")
    assert spec_text(tmp_path / "here.md", environ) == "the spec"


def test_payloads_are_the_spec_examples() -> None:
    envelopes = [json.loads(b) for b in spec_blocks("json")]
    in_spec = [(e["event"], e["data"]) for e in envelopes if "event" in e]
    assert [e["timestamp"] for e in envelopes if "event" in e] == [SPEC_TIMESTAMP] * 15
    # Compared as JSON text, so the key order counts too.
    assert json.dumps(SPEC_EXAMPLES) == json.dumps(in_spec)
