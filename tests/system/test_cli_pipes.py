"""A closed stdout (`hookd event-types | head`) ends a command quietly (issue 14, item 10).

Each command runs as a process whose stdout is a pipe with no reader left, so its first
write fails with EPIPE, as when `head` has read its lines and gone.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import trio

from tests.conftest import Running
from tests.system.test_api_events import create_endpoint

HOOKD = [sys.executable, "-m", "hookd"]


@contextmanager
def reader_gone() -> Iterator[int]:
    """The write end of a pipe whose read end is already closed."""
    read, write = os.pipe()
    os.close(read)
    try:
        yield write
    finally:
        os.close(write)


def assert_quiet(stderr: str) -> None:
    for sign in ("Traceback", "BrokenPipeError", "Exception ignored"):
        assert sign not in stderr, stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["event-types"],
        ["event-types", "cliente.criado"],
        ["endpoints", "list"],
        ["endpoints", "list", "--json"],
    ],
)
async def test_a_closed_stdout_ends_a_command_quietly(hookd: Running, argv: list[str]) -> None:
    await create_endpoint(hookd.client, ["*"])
    with reader_gone() as stdout:
        done = await trio.to_thread.run_sync(
            lambda: subprocess.run(
                [*HOOKD, *argv, "--socket", hookd.socket],
                stdout=stdout,
                stderr=subprocess.PIPE,
                text=True,
                timeout=30,
                check=False,
            )
        )
    assert_quiet(done.stderr)
    assert done.returncode == 0, done.stderr


async def test_listen_ends_quietly_when_its_stdout_is_closed() -> None:
    with reader_gone() as stdout:
        process = await trio.lowlevel.open_process(
            [*HOOKD, "listen", "--port", "0"], stdout=stdout, stderr=subprocess.PIPE
        )
    assert process.stderr is not None
    with trio.fail_after(20):
        said = b""
        while (match := re.search(rb"http://127\.0\.0\.1:(\d+)/webhook", said)) is None:
            said += await process.stderr.receive_some()
        async with httpx.AsyncClient() as client:
            url = f"http://127.0.0.1:{int(match.group(1))}/webhook"
            answer = await client.post(url, content=b"{}")
        assert answer.status_code == 200  # answered, then it stops: nothing can be shown
        while data := await process.stderr.receive_some():
            said += data
        status = await process.wait()
    assert_quiet(said.decode())
    assert status == 0
