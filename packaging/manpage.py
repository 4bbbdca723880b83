"""hookd's manual page, hookd(1), written from the command line's own definition:
`python packaging/manpage.py > dist/hookd.1` (`make deb` runs it; the package installs it).

Rules:
- Every subcommand, at every depth, appears with its `--help` text as argparse renders it,
  so the page cannot drift from the program.
- Reproducible: the date is SOURCE_DATE_EPOCH's (else the last commit's), the width fixed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deb import source_date_epoch

from hookd import __version__
from hookd.cli.main import command_line

FILES = (
    ("/etc/hookd/hookd.toml", "the configuration (`hookd config check` validates it)"),
    ("/var/lib/hookd/hookd.db", "the database: events, deliveries, endpoints and their secrets"),
    ("/run/hookd/hookd.sock", "the API socket (mode 0660, group hookd)"),
    ("/usr/share/doc/hookd/README.md.gz", "the full documentation"),
)


def subcommands(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, str]]:
    """(command path, its help text) for `parser`'s subcommands, depth first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                full = f"{path} {name}"
                yield full, child.format_help()
                yield from subcommands(child, full)


def roff(text: str) -> str:
    """Plain text made safe for a roff no-fill block."""
    lines = []
    for line in text.replace("\\", "\\e").splitlines():
        lines.append("\\&" + line if line.startswith((".", "'")) else line)
    return "\n".join(lines)


def page() -> str:
    """The whole manual page, in roff."""
    os.environ["COLUMNS"] = "78"  # argparse wraps help to the terminal's width
    parser = command_line()
    date = time.strftime("%Y-%m-%d", time.gmtime(source_date_epoch()))
    out = [
        f'.TH HOOKD 1 "{date}" "hookd {__version__}" "User Commands"',
        ".SH NAME",
        "hookd \\- outbound webhook daemon: durable queue, signed deliveries, retries",
        ".SH SYNOPSIS",
        ".B hookd",
        "\\fICOMMAND\\fR [\\fIOPTIONS\\fR]",
        ".SH DESCRIPTION",
        "hookd takes events over a Unix socket, stores each one durably in SQLite, and",
        "delivers it to every endpoint subscribed to its type, signed with HMAC-SHA256",
        "(X-Webhook-Signature), retrying failures on a fixed schedule.",
        ".B hookd serve",
        "runs the daemon (under systemd: hookd.service and hookd.socket); the other",
        "commands talk to it over its socket, or work offline.",
        ".PP",
        ".nf",
        roff(parser.format_help()),
        ".fi",
        ".SH COMMANDS",
    ]
    for name, text in subcommands(parser, "hookd"):
        out += [".SS " + name, ".nf", roff(text), ".fi"]
    out += [
        ".SH EXIT STATUS",
        "0 done; 1 failed (the daemon refused, or a signature did not match); 2 the command",
        "line or the configuration is wrong; 3 the daemon cannot be reached.",
        ".SH FILES",
    ]
    for path, what in FILES:
        out += [".TP", f".I {path}", what]
    out += [".SH SEE ALSO", "systemctl(1), journalctl(1), systemd.unit(5)", ""]
    return "\n".join(out)


if __name__ == "__main__":
    sys.stdout.write(page())
