"""`hookd version [--verbose]`: plain, what `hookd --version` prints; verbose, the versions
of what hookd runs on, as the modules themselves report them (issue 16, item 4).
packaging/smoke.py checks the same on the single-file binary, where `frozen` is `yes`.
"""

from __future__ import annotations

import importlib.metadata
import platform
import ssl
import sys

import apsw

from hookd import __version__
from tests.cli_runner import run_main


def test_plain_version_is_what_dash_dash_version_prints() -> None:
    ran = run_main(["version"])
    assert (ran.code, ran.out, ran.err) == (0, f"hookd {__version__}\n", "")


def test_verbose_names_the_interpreter_openssl_sqlite_and_libraries() -> None:
    ran = run_main(["version", "--verbose"])
    assert ran.code == 0
    assert ran.lines[0] == f"hookd {__version__}"
    fields = dict(line.split(": ", 1) for line in ran.lines[1:])
    assert fields == {
        "python": f"CPython {platform.python_version()}",
        "openssl": ssl.OPENSSL_VERSION,
        "sqlite": apsw.sqlite_lib_version(),
        "apsw": importlib.metadata.version("apsw"),
        "trio": importlib.metadata.version("trio"),
        "httpx": importlib.metadata.version("httpx"),
        "msgspec": importlib.metadata.version("msgspec"),
        "frozen": f"no ({sys.executable})",
    }
    assert run_main(["version", "-v"]).out == ran.out
