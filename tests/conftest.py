"""Shared fixtures: a real hookd daemon on a real Unix socket with a real SQLite file.

`hookd_factory(extra_toml)` starts a daemon in the test's trio run and returns a
`Running` with an httpx client bound to its socket; every daemon is stopped at the end
of the test. Socket paths live in a short temporary directory (Unix socket paths are
limited to about 100 bytes).
"""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trio
from hypothesis import settings

from hookd.runtime import config
from hookd.runtime.daemon import Daemon

API_TOKEN = "t0k-0123456789abcdef0123456789ab"  # 32 characters: the shortest token taken

# `make mutate` runs with --hypothesis-profile=mutate: the same examples on every run and no
# example database, so whether a mutant is killed never depends on what ran before it.
settings.register_profile("mutate", derandomize=True, database=None)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A temporary directory with a short path, for Unix sockets."""
    path = Path(tempfile.mkdtemp(prefix="hk"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def write_config(directory: Path, extra: str = "") -> Path:
    """A config file with state under `directory`; `extra` TOML is appended."""
    text = f"""
[server]
socket = "{directory / "hookd.sock"}"
request_timeout = "2s"
idle_timeout = "5s"

[storage]
path = "{directory / "hookd.db"}"
durability = "normal"

[delivery]
allow_private_networks = true
shutdown_grace = "2s"

# The suite's events carry whatever data each test needs; the catalog's checks (the
# default, "report") are tested where a test asks for them (tests/system/test_catalog_api.py,
# tests/system/test_ingest_variants.py).
[ingest]
validate = "off"
"""
    path = directory / "hookd.toml"
    path.write_text(merge_toml(text, extra))
    return path


def merge_toml(base: str, extra: str) -> str:
    """`base` with the keys of `extra` added to (or replacing) its tables."""

    merged = tomllib.loads(base)
    for table, values in tomllib.loads(extra).items():
        if isinstance(values, dict):
            merged.setdefault(table, {}).update(values)
        else:
            merged[table] = values
    return dump_toml(merged)


def dump_toml(data: dict[str, object]) -> str:
    """A tiny TOML writer for test configs (tables, arrays of tables, scalars, lists,
    inline tables)."""

    def value(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):  # an inline table
            return "{" + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + "}"
        return json.dumps(v)

    lines = []
    for key, v in data.items():
        if (
            not isinstance(v, dict | list)
            or (isinstance(v, list) and not v)
            or (isinstance(v, list) and not isinstance(v[0], dict))
        ):
            lines.append(f"{key} = {value(v)}")
    for key, v in data.items():
        if isinstance(v, dict):
            lines.append(f"[{key}]")
            lines += [f"{k} = {value(x)}" for k, x in v.items()]
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            for item in v:
                lines.append(f"[[{key}]]")
                lines += [f"{k} = {value(x)}" for k, x in item.items()]
    return "\n".join(lines) + "\n"


@dataclass
class Running:
    daemon: Daemon
    client: httpx.AsyncClient
    directory: Path

    @property
    def socket(self) -> str:
        return self.daemon.config.server.socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on just now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def socket_client(path: str, timeout: float | None = 10) -> httpx.AsyncClient:
    """An httpx client speaking to the API over the Unix socket at `path`."""
    return httpx.AsyncClient(
        transport=httpx.AsyncHTTPTransport(uds=path), base_url="http://hookd", timeout=timeout
    )


@pytest.fixture
async def hookd_factory(
    short_dir: Path,
) -> AsyncIterator[Callable[..., Awaitable[Running]]]:
    """Start daemons on demand; all are stopped when the test ends."""
    started: list[Running] = []
    async with trio.open_nursery() as nursery:

        async def start(
            extra: str = "", directory: Path | None = None, client_timeout: float | None = 10
        ) -> Running:
            where = directory or short_dir
            settings = config.load(str(write_config(where, extra)))
            daemon = Daemon(settings, handle_signals=False)
            await nursery.start(daemon.run)
            client = socket_client(settings.server.socket, client_timeout)
            running = Running(daemon, client, where)
            started.append(running)
            return running

        yield start
        for running in started:
            await running.client.aclose()
            running.daemon.stop()


@pytest.fixture
async def hookd(hookd_factory: Callable[..., Awaitable[Running]]) -> Running:
    """One daemon with the test defaults."""
    return await hookd_factory()
