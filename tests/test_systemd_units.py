"""The systemd unit is valid: `systemd-analyze verify` has nothing to say about it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).parents[1] / "systemd"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_service_unit_verifies_without_warnings(tmp_path: Path) -> None:
    hookd = Path(sys.executable).parent / "hookd"  # the console script, installed beside
    unit = (UNITS / "hookd.service").read_text()
    assert "/usr/local/bin/hookd" in unit
    (tmp_path / "hookd.service").write_text(unit.replace("/usr/local/bin/hookd", str(hookd)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "hookd.service")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_sysusers_declares_the_hookd_user() -> None:
    lines = [
        line.split()
        for line in (UNITS / "hookd.sysusers").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0][:3] == ["u", "hookd", "-"]
