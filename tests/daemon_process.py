"""hookd as a real process: start `hookd serve`, wait until it answers, signal it."""

from __future__ import annotations

import functools
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import trio

from tests.conftest import socket_client, write_config


class DaemonProcess:
    """A `hookd serve` subprocess on a config written into `directory`."""

    def __init__(self, directory: Path, extra: str = "") -> None:
        self.config = write_config(directory, extra)
        self.socket = str(directory / "hookd.sock")
        self.database = directory / "hookd.db"
        self.process: trio.Process | None = None

    async def start(self, nursery: trio.Nursery) -> httpx.AsyncClient:
        """Start the daemon and return a client once /healthz answers."""
        command = [sys.executable, "-m", "hookd", "serve", "--config", str(self.config)]
        run = functools.partial(trio.run_process, command, check=False, stderr=subprocess.DEVNULL)
        self.process = await nursery.start(run)
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

    async def wait(self) -> int:
        """Wait for the process to end; its exit status."""
        assert self.process is not None
        return await self.process.wait()
