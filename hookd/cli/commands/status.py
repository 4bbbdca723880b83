"""`hookd status`: is the daemon up, which version, and how its queue stands.

Rules: exit 0 when the daemon answers, 3 when it does not (with the hint naming the
socket tried), like every client command.
"""

from __future__ import annotations

import argparse
from typing import Any

from hookd.cli.commands import Context, subcommand
from hookd.cli.output import Styled


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add `status`."""
    text = "is the daemon up; its version and queue figures"
    subcommand(commands, "status", text, _status, common, None)


def _status(context: Context) -> int:
    client = context.client()
    answer = client.get("/v1/status")
    if context.printed_json(answer):
        return 0
    figures = answer.data()
    screen = context.screen
    screen.line(
        Styled(f"hookd {figures['version']}", "bold"),
        Styled("is up", "green"),
        f"at {client.target.describe()}",
    )
    counts = figures["deliveries"]
    pending = str(counts["pending"])
    if figures["oldest_pending_at"]:
        pending += f" (the oldest created {screen.when(figures['oldest_pending_at'])})"
    screen.fields(
        [
            ("endpoints", f"{figures['endpoints']} ({figures['endpoints_enabled']} enabled)"),
            ("pending", pending),
            *((name, str(counts[name])) for name in counts if name != "pending"),
            ("secrets", _secrets(figures.get("secrets_key"))),
        ]
    )
    return 0


def _secrets(key: str | None) -> str:
    if key is None:
        return 'stored in clear: no key given (README, "Secrets at rest")'
    return f"encrypted (key {key})"
