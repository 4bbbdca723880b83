"""Secrets off the command line (issue 14, items 7 and 10): `--secret -` (stdin),
`--secret-file PATH` and HOOKD_SECRET, and the reminder to keep a secret only when
hookd generated it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from tests.cli_runner import cli
from tests.conftest import Running
from tests.system.test_api_endpoints import stored_secret
from tests.system.test_api_events import REFUSING_URL

REMINDER = "keep the secret now"
CHOSEN = "minha_chave_secreta"


async def add(hookd: Running, *argv: str, stdin: bytes = b"") -> tuple[str, str]:
    """`endpoints add` with `argv`; the new endpoint's id and what went to stderr."""
    command = ("endpoints", "add", REFUSING_URL, "--events", "*", *argv)
    ran = await cli(hookd.socket, *command, stdin=stdin)
    assert ran.code == 0, ran.err
    [endpoint_id] = re.findall(r"^id\s+(ep_[0-9a-f]+)$", ran.out, re.MULTILINE)
    return endpoint_id, ran.err


async def test_add_reads_the_secret_from_stdin_a_file_or_the_environment(
    hookd: Running, short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_stdin, said = await add(hookd, "--secret", "-", stdin=f"{CHOSEN}-1\n".encode())
    assert await stored_secret(hookd, from_stdin) == f"{CHOSEN}-1"
    assert REMINDER not in said  # the user has it: nothing to keep

    path = short_dir / "secret"
    path.write_text(f"{CHOSEN}-2\n")
    from_file, said = await add(hookd, "--secret-file", str(path))
    assert await stored_secret(hookd, from_file) == f"{CHOSEN}-2"
    assert REMINDER not in said

    monkeypatch.setenv("HOOKD_SECRET", f"{CHOSEN}-3")
    from_env, said = await add(hookd)
    assert await stored_secret(hookd, from_env) == f"{CHOSEN}-3"
    assert REMINDER not in said
    typed, said = await add(hookd, "--secret", f"{CHOSEN}-4")  # the option wins
    assert await stored_secret(hookd, typed) == f"{CHOSEN}-4"
    assert REMINDER not in said

    monkeypatch.delenv("HOOKD_SECRET")
    generated, said = await add(hookd)
    assert (await stored_secret(hookd, generated)).startswith("whsec_")
    assert REMINDER in said  # only hookd knows it


async def test_update_and_rotate_take_stdin_and_files_but_not_the_environment(
    hookd: Running, short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint_id, _ = await add(hookd)
    path = short_dir / "secret"
    path.write_text(f"{CHOSEN}-u\n")
    command = ("endpoints", "update", endpoint_id, "--secret-file", str(path))
    updated = await cli(hookd.socket, *command)
    assert updated.code == 0, updated.err
    assert await stored_secret(hookd, endpoint_id) == f"{CHOSEN}-u"

    monkeypatch.setenv("HOOKD_SECRET", "left_in_the_shell")
    described = await cli(hookd.socket, "endpoints", "update", endpoint_id, "--description", "x")
    assert described.code == 0, described.err
    assert await stored_secret(hookd, endpoint_id) == f"{CHOSEN}-u"  # unchanged

    rotated = await cli(
        hookd.socket, "endpoints", "rotate-secret", endpoint_id, "--secret", "-", stdin=b"nova\n"
    )
    assert rotated.code == 0, rotated.err
    assert await stored_secret(hookd, endpoint_id) == "nova"
    assert REMINDER not in rotated.err
    generated = await cli(hookd.socket, "endpoints", "rotate-secret", endpoint_id)
    assert (await stored_secret(hookd, endpoint_id)).startswith("whsec_")
    assert REMINDER in generated.err


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (["--secret", "-"], b"\n", "--secret: no secret in standard input"),
        (["--secret-file", "/nonexistent/secret"], b"", "--secret-file: cannot read"),
        (["--secret", "s", "--secret-file", "f"], b"", "not allowed with argument"),
    ],
)
async def test_secret_refusals(hookd: Running, argv: list[str], stdin: bytes, message: str) -> None:
    ran = await cli(
        hookd.socket, "endpoints", "add", REFUSING_URL, "--events", "*", *argv, stdin=stdin
    )
    assert ran.code == 2
    assert message in ran.err


@pytest.mark.parametrize("how", ["environment", "file"])
async def test_listen_takes_its_secret_from_the_environment_or_a_file(
    short_dir: Path, how: str
) -> None:
    path = short_dir / "secret"
    path.write_text("sua_chave_secreta\n")
    command = [sys.executable, "-m", "hookd", "listen", "--port", "0"]
    environment = None
    if how == "file":
        command += ["--secret-file", str(path)]
    else:
        environment = {**os.environ, "HOOKD_SECRET": "sua_chave_secreta"}
    process = await trio.lowlevel.open_process(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=environment
    )
    assert process.stderr is not None
    try:
        said = b""
        with trio.fail_after(20):
            while b"\n" not in said:
                said += await process.stderr.receive_some()
        assert b"checking signatures" in said, said
    finally:
        process.send_signal(signal.SIGINT)
        await process.wait()
        await process.stderr.aclose()
