"""The systemd units are valid and hardened: `systemd-analyze` has nothing to say.

`systemd-analyze verify` must print nothing at all (a warning on stderr fails the test,
not only a non-zero exit), and `systemd-analyze security --offline=true` must rate the
service's exposure under 2.0.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).parents[2] / "systemd"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="no systemd-analyze here")


def _installed(tmp_path: Path) -> Path:
    """Both units in `tmp_path`, pointing at this checkout's console script."""
    hookd = Path(sys.executable).parent / "hookd"  # the console script, installed beside
    for name in ("hookd.service", "hookd.socket"):
        unit = (UNITS / name).read_text()
        (tmp_path / name).write_text(unit.replace("/usr/local/bin/hookd", str(hookd)))
    return tmp_path


def _directives(name: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


@needs_analyze
def test_units_verify_without_a_word(tmp_path: Path) -> None:
    directory = _installed(tmp_path)
    assert "/usr/local/bin/hookd" in (UNITS / "hookd.service").read_text()
    result = subprocess.run(
        [
            "systemd-analyze",
            "verify",
            "--man=no",  # hookd(1) comes with the package, not with this checkout
            str(directory / "hookd.socket"),
            str(directory / "hookd.service"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
    assert result.stdout.strip() == "", result.stdout


@needs_analyze
def test_service_exposure_is_under_2(tmp_path: Path) -> None:
    directory = _installed(tmp_path)
    result = subprocess.run(
        [
            "systemd-analyze",
            "security",
            "--offline=true",
            "--no-pager",
            str(directory / "hookd.service"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"Overall exposure level for hookd\.service: ([0-9.]+)", result.stdout)
    assert match is not None, result.stdout + result.stderr
    assert float(match.group(1)) < 2.0, result.stdout


def test_service_is_a_notify_service_with_a_watchdog() -> None:
    service = _directives("hookd.service")
    assert service["Type"] == ["notify"]
    assert service["NotifyAccess"] == ["all"]  # the single-file binary's child notifies
    assert int(service["WatchdogSec"][0]) >= 10
    assert service["Restart"] == ["on-failure"]
    assert service["KillMode"] == ["mixed"]  # SIGTERM once, through the bootloader
    assert int(service["TimeoutStopSec"][0]) > 10  # delivery.shutdown_grace's default
    assert service["User"] == ["hookd"]
    assert service["Group"] == ["hookd"]
    assert "DynamicUser" not in service
    # The socket unit owns /run/hookd/hookd.sock: the service must not delete it on stop.
    assert service["RuntimeDirectoryPreserve"] == ["yes"]
    for key, value in {
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "NoNewPrivileges": "yes",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "MemoryDenyWriteExecute": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert service[key] == [value], key
    assert "@system-service" in service["SystemCallFilter"]


def test_socket_unit_gives_the_group_the_socket() -> None:
    socket_unit = _directives("hookd.socket")
    assert socket_unit["ListenStream"] == ["/run/hookd/hookd.sock"]
    assert socket_unit["SocketGroup"] == ["hookd"]
    assert socket_unit["SocketMode"] == ["0660"]
    assert socket_unit["Service"] == ["hookd.service"]


def test_sysusers_declares_the_hookd_user() -> None:
    lines = [
        line.split()
        for line in (UNITS / "hookd.sysusers").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0][:3] == ["u", "hookd", "-"]


def test_the_unit_gives_the_descriptors_the_default_limits_need() -> None:
    """hookd cannot raise its own limit under the unit's seccomp filter (~@resources):
    LimitNOFILE must cover both connection limits and the reserve, by default."""
    from hookd.runtime import descriptors
    from hookd.runtime.config import Config

    directives = _directives("hookd.service")
    assert "~@privileged @resources" in directives["SystemCallFilter"]
    [limit] = directives["LimitNOFILE"]
    server, delivery = Config().server, Config().delivery
    needed = (
        server.max_connections
        + server.max_tcp_connections
        + descriptors.reserve(delivery.concurrency)
    )
    assert int(limit) >= needed
