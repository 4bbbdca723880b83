"""`hookd config check`: a valid file prints the effective configuration as TOML that
hookd reads back the same, secrets masked; a bad one exits 2 naming the key.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import msgspec
import pytest
import trio

from hookd.cli.commands.config_check import MASK, STANDARD_MASK
from hookd.runtime import config
from tests.cli_runner import run_main
from tests.conftest import write_config

ROOT = Path(__file__).resolve().parents[2]
SECRETS = """
[server]
listen = "127.0.0.1:8787"
api_token = "t0k3n-secreto-0123456789abcdef0123"

[delivery]
retry_schedule = ["0s", "1m", "5m", "15m", "1h"]
timeout = "500ms"

[[endpoint]]
url = "https://erp.example.com/webhooks/crm"
events = ["cliente.*"]
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
description = "ERP \\"novo\\" ação"

[[endpoint]]
url = "https://outro.example.com/hook"
events = ["*"]
secret = "sua_chave_secreta"
"""


def test_prints_the_effective_config_with_secrets_masked(short_dir: Path) -> None:
    path = write_config(short_dir, SECRETS)
    ran = run_main(["config", "check", str(path)])
    assert ran.code == 0, ran.err
    assert ran.err == f"{path}: valid\n"
    for secret in ("t0k3n-secreto", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "sua_chave_secreta"):
        assert secret not in ran.out
    assert 'retry_schedule = ["0s", "1m", "5m", "15m", "1h"]' in ran.out
    assert 'timeout = "500ms"' in ran.out
    assert "max_connections = 1024" in ran.out  # a default the file does not name

    printed = config.parse(ran.out, "printed")  # hookd reads it back
    original = config.load(str(path))
    assert printed.server.api_token == MASK
    assert [e.secret for e in printed.endpoint] == [STANDARD_MASK, MASK]
    masked = msgspec.structs.replace(
        original,
        server=msgspec.structs.replace(original.server, api_token=MASK),
        endpoint=[
            msgspec.structs.replace(e, secret=s)
            for e, s in zip(original.endpoint, [STANDARD_MASK, MASK], strict=True)
        ],
    )
    assert printed == masked


def test_hookd_config_is_the_default_file(short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKD_CONFIG", str(write_config(short_dir)))
    ran = run_main(["config", "check"])
    assert ran.code == 0
    assert f'path = "{short_dir / "hookd.db"}"' in ran.out


@pytest.mark.parametrize("name", ["hookd.toml", "hookd.dev.toml"])
def test_the_shipped_configs_are_valid(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the dev config's paths are relative to where it runs
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "api-token").write_text(run_main(["config", "gen-token"]).out)
    ran = run_main(["config", "check", str(ROOT / "conf" / name)])
    assert ran.code == 0, ran.err


def test_gen_token_prints_a_new_token_each_time() -> None:
    tokens = {run_main(["config", "gen-token"]).out for _ in range(3)}
    assert len(tokens) == 3
    for token in tokens:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}\n", token), token


def test_a_tcp_listener_without_a_long_token_is_refused(short_dir: Path) -> None:
    for server, message in (
        ('listen = "127.0.0.1:8787"', "server.listen: a TCP listener needs an API token"),
        ('listen = "0.0.0.0:8787"\napi_token = "x"', "fewer than 32"),
    ):
        path = write_config(short_dir, f"[server]\n{server}")
        ran = run_main(["config", "check", str(path)])
        assert ran.code == 2
        assert message in ran.err


def test_a_token_read_from_a_file_is_not_printed(short_dir: Path) -> None:
    token = run_main(["config", "gen-token"]).out.strip()
    (short_dir / "api-token").write_text(token + "\n")
    where = f'[server]\nlisten = "127.0.0.1:8787"\napi_token_file = "{short_dir}/api-token"'
    path = write_config(short_dir, where)
    ran = run_main(["config", "check", str(path)])
    assert ran.code == 0, ran.err
    assert token not in ran.out
    assert f'api_token_file = "{short_dir}/api-token"' in ran.out
    assert "api_token = " not in ran.out
    assert config.parse(ran.out, "printed").server.api_token_file == f"{short_dir}/api-token"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[delivery]\nconcurrency = 0", "delivery.concurrency: Expected `int` >= 1"),
        ("[server]\nbogus = 1", "server.bogus: unknown key"),
        ('[delivery]\ntimeout = "soon"', "delivery.timeout: expected a duration"),
        ("[[endpoint]]\nurl = 'ftp://x'\nevents = ['*']\nsecret = 's'", "endpoint[0].url"),
        ("[server", "not valid TOML"),
    ],
)
def test_a_bad_file_is_2_naming_the_key(short_dir: Path, text: str, message: str) -> None:
    path = short_dir / "bad.toml"
    path.write_text(text)
    ran = run_main(["config", "check", str(path)])
    assert ran.code == 2
    assert ran.out == ""
    assert ran.err.startswith(f"hookd: config error: {path}: ")
    assert message in ran.err
    assert ran.err.count("\n") == 1


def test_a_missing_file_is_2(short_dir: Path) -> None:
    ran = run_main(["config", "check", str(short_dir / "none.toml")])
    assert ran.code == 2
    assert "cannot read config file" in ran.err


async def test_serve_exit_statuses(short_dir: Path) -> None:
    """`hookd serve`: 2 for a bad config, 1 when it cannot start, each with one line."""
    bad = short_dir / "bad.toml"
    bad.write_text("[delivery]\nconcurrency = 0\n")
    blocked = short_dir / "file"
    blocked.write_text("")  # a file where the database's directory should be
    unusable = write_config(short_dir, f'[storage]\npath = "{blocked}/hookd.db"')
    for path, status, start in (
        (bad, 2, f"hookd: config error: {bad}: delivery.concurrency: "),
        (unusable, 1, f"hookd: cannot open database {blocked}/hookd.db: "),
    ):
        done = await trio.run_process(
            [sys.executable, "-m", "hookd", "serve", "--config", str(path)],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        assert done.returncode == status
        assert done.stderr.decode().startswith(start)
        assert done.stderr.decode().count("\n") == 1


def test_event_types_are_printed_back_as_read(short_dir: Path) -> None:
    path = short_dir / "types.toml"
    path.write_text(
        '[ingest]\nvalidate = "strict"\n\n[[event_type]]\nname = "pedido.criado"\n'
        'description = "Disparado quando um pedido \\"grande\\" é criado."\n'
        'required = ["pedidoId"]\n'
        'example = { pedidoId = "p1", valor = 10.5, itens = [{ sku = "a", n = 2 }], '
        "pago = false, em = 2024-01-01T10:00:00Z }\n\n"
        '[[event_type]]\nname = "pedido.cancelado"\n'
    )
    ran = run_main(["config", "check", str(path)])
    assert ran.code == 0, ran.err
    assert 'validate = "strict"' in ran.out
    assert config.parse(ran.out, "printed") == config.load(str(path))
