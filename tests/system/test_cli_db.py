"""`hookd db backup` and `hookd db check` as an operator runs them: another process than
the daemon, which keeps running and ingesting meanwhile.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import trio

from tests.cli_runner import run_main
from tests.daemon_process import DaemonProcess

HOOKD = [sys.executable, "-m", "hookd"]


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HOOKD, *argv], capture_output=True, text=True, check=False)


async def test_backup_and_check_while_the_daemon_runs(short_dir: Path) -> None:
    daemon = DaemonProcess(short_dir)
    async with trio.open_nursery() as nursery:
        client = await daemon.start(nursery)
        for n in range(20):
            response = await client.post(
                "/v1/events", json={"event": "cliente.criado", "data": {"id": str(n)}}
            )
            assert response.status_code == 202
        target = short_dir / "backup.db"
        backup = await trio.to_thread.run_sync(
            _run, "db", "backup", str(target), "--config", str(daemon.config)
        )
        assert backup.returncode == 0, backup.stderr
        assert f"written to {target}" in backup.stderr
        check = await trio.to_thread.run_sync(_run, "db", "check", "--config", str(daemon.config))
        assert check.returncode == 0, check.stderr
        assert check.stderr.strip().endswith(": ok")
        again = await trio.to_thread.run_sync(
            _run, "db", "backup", str(target), "--config", str(daemon.config)
        )
        assert again.returncode == 1
        assert "already exists" in again.stderr
        assert (await client.get("/healthz")).status_code == 200  # undisturbed
        await client.aclose()
        daemon.signal(signal.SIGTERM)
        assert await daemon.wait() == 0


def test_check_reports_damage_with_exit_1(short_dir: Path) -> None:
    config = short_dir / "hookd.toml"
    database = short_dir / "hookd.db"
    config.write_text(f'[server]\nsocket = "{short_dir}/s.sock"\n[storage]\npath = "{database}"\n')
    database.write_bytes(b"not a database at all " * 500)
    ran = run_main(["db", "check", "--config", str(config)])
    assert ran.code == 1
    assert "is damaged" in ran.err
    assert "hint: restore the latest backup" in ran.err


def test_bad_config_is_a_usage_error(short_dir: Path) -> None:
    config = short_dir / "hookd.toml"
    config.write_text("[storage]\npathh = 1\n")
    ran = run_main(["db", "check", "--config", str(config)])
    assert ran.code == 2
    assert "config error" in ran.err


def test_missing_database_is_exit_1(short_dir: Path) -> None:
    config = short_dir / "hookd.toml"
    config.write_text(f'[storage]\npath = "{short_dir}/none.db"\n')
    ran = run_main(["db", "backup", str(short_dir / "b.db"), "--config", str(config)])
    assert ran.code == 1
    assert "no database at" in ran.err


def test_hookd_config_names_the_database(short_dir: Path) -> None:
    """Without --config, HOOKD_CONFIG names the config, as for `hookd serve`."""
    config = short_dir / "hookd.toml"
    config.write_text(f'[storage]\npath = "{short_dir}/elsewhere.db"\n')
    environment = {**os.environ, "HOOKD_CONFIG": str(config)}
    for argv in (["db", "check"], ["db", "backup", str(short_dir / "b.db")]):
        ran = subprocess.run(
            [*HOOKD, *argv], capture_output=True, text=True, check=False, env=environment
        )
        assert ran.returncode == 1, ran.stderr
        assert f"no database at {short_dir}/elsewhere.db" in ran.stderr
