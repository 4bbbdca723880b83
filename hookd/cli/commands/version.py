"""`hookd version [--verbose]`: which hookd this is and, with --verbose, what it runs on.

Rules:
- Plain, it prints what `hookd --version` prints: `hookd <version>`.
- `--verbose` adds one `name: value` line each for the interpreter (CPython's version),
  OpenSSL (`ssl.OPENSSL_VERSION`, the library hookd's TLS runs on), SQLite (the one apsw
  carries), apsw, trio, httpx and msgspec, and whether the binary is frozen (the
  single-file build, packaging/README.md) or runs from a Python environment. Versions
  come from the modules themselves, not from package metadata, which the single-file
  binary does not carry.
- trio, httpx and apsw are imported only for `--verbose` (cli.main's rule: a client
  command starts without them).
"""

from __future__ import annotations

import platform
import ssl
import sys
from typing import Any

from hookd import __version__
from hookd.cli.commands import Context


def register(commands: Any) -> None:
    """Add `version`."""
    parser = commands.add_parser(
        "version",
        help="print hookd's version; --verbose: Python, OpenSSL, SQLite and libraries",
        description="Without options, what `hookd --version` prints.",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also the CPython, OpenSSL, SQLite, apsw, trio, httpx and msgspec versions, "
        "and whether this is the single-file binary",
    )
    parser.set_defaults(handler=_version)


def _version(context: Context) -> int:
    lines = [f"hookd {__version__}"]
    if context.args.verbose:
        lines += [f"{name}: {value}" for name, value in runtime_versions()]
    context.screen.raw("\n".join(lines) + "\n")
    return 0


def runtime_versions() -> list[tuple[str, str]]:
    """(name, version) of what this hookd runs on, in the order `--verbose` prints them."""
    import apsw
    import httpx
    import msgspec
    import trio

    return [
        ("python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("openssl", ssl.OPENSSL_VERSION),
        ("sqlite", apsw.sqlite_lib_version()),
        ("apsw", apsw.apsw_version()),
        ("trio", trio.__version__),
        ("httpx", httpx.__version__),
        ("msgspec", msgspec.__version__),
        ("frozen", _frozen()),
    ]


def _frozen() -> str:
    """'yes (...)' in the single-file binary, 'no (...)' in a Python environment."""
    if getattr(sys, "frozen", False):
        return f"yes (single-file binary {sys.executable})"
    return f"no ({sys.executable})"
