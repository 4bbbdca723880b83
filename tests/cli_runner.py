"""Run the real `hookd` command line in-process, in a worker thread, from a trio test.

`hookd_cli(*argv)` calls `hookd.cli.main.main(argv)` with stdout, stderr and stdin swapped
for buffers, so a test can run it against a daemon serving in the test's own trio run.
The environment is the process's: tests change it with `monkeypatch`.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from dataclasses import dataclass
from typing import Any

import trio

from hookd.cli.main import main


@dataclass
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


def run_main(argv: list[str], stdin: bytes = b"") -> Ran:
    """`main(argv)` with captured output, in this thread."""
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    finally:
        sys.stdin = saved
    return Ran(code, out.getvalue(), err.getvalue())


async def hookd_cli(*argv: str, stdin: bytes = b"") -> Ran:
    """Run `hookd ARGV...` in a worker thread; its exit status and output."""
    return await trio.to_thread.run_sync(run_main, list(argv), stdin)


async def cli(socket: str, *argv: str, stdin: bytes = b"") -> Ran:
    """Run a client command against the daemon on `socket`."""
    return await hookd_cli(*argv, "--socket", socket, stdin=stdin)
