"""hookd as a real process: start `hookd serve`, wait until it answers, signal it, rewrite
its config file, and wait for lines in its log (its stderr, kept in a file)."""

from __future__ import annotations

import functools
import os
import signal
import sys
from pathlib import Path
from typing import BinaryIO

import httpx
import trio

from tests.conftest import socket_client, write_config


class DaemonProcess:
    """A `hookd serve` subprocess on a config written into `directory`."""

    def __init__(self, directory: Path, extra: str = "") -> None:
        self.directory = directory
        self.config = write_config(directory, extra)
        self.socket = str(directory / "hookd.sock")
        self.database = directory / "hookd.db"
        self.log = directory / "hookd.log"
        self.process: trio.Process | None = None

    def rewrite(self, extra: str = "") -> None:
        """Write the config file again: the suite's defaults and `extra`."""
        write_config(self.directory, extra)

    async def launch(self, nursery: trio.Nursery, env: dict[str, str] | None = None) -> None:
        """Start the daemon, without waiting for it (stderr goes to `self.log`)."""
        command = [sys.executable, "-m", "hookd", "serve", "--config", str(self.config)]
        with self._log_file() as log:
            run = functools.partial(
                trio.run_process,
                command,
                check=False,
                stderr=log,
                env={**os.environ, **(env or {})},
            )
            self.process = await nursery.start(run)

    def _log_file(self) -> BinaryIO:
        return self.log.open("ab")

    async def start(
        self, nursery: trio.Nursery, env: dict[str, str] | None = None
    ) -> httpx.AsyncClient:
        """Start the daemon and return a client once /healthz answers."""
        await self.launch(nursery, env)
        return await self.ready()

    async def ready(self) -> httpx.AsyncClient:
        """A client, once /healthz answers."""
        client = socket_client(self.socket)
        with trio.fail_after(10):
            while True:
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        return client
                except httpx.TransportError:
                    pass
                await trio.sleep(0.05)

    def signal(self, number: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(number)

    def lines(self, text: str) -> list[str]:
        """The log's lines that contain `text`, so far."""
        return [line for line in self.log.read_text().splitlines() if text in line]

    async def wait_for_log(self, text: str, count: int = 1, seconds: float = 10) -> list[str]:
        """Wait until `count` lines of the log contain `text`; those lines."""
        with trio.move_on_after(seconds):
            while True:
                found = self.lines(text)
                if len(found) >= count:
                    return found
                await trio.sleep(0.02)
        raise AssertionError(f"no {count} log lines with {text!r}:\n{self.log.read_text()}")

    async def wait(self) -> int:
        """Wait for the process to end; its exit status."""
        assert self.process is not None
        return await self.process.wait()
