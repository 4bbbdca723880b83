"""`hookd audit`: who changed which endpoint, when, and which fields.

Rules: newest first, like the API; fields are names only (the audit log never holds a
value, so a new secret shows as `secret`).
"""

from __future__ import annotations

import argparse
from typing import Any

from hookd.cli.commands import Context, paging_options, print_list, since_time, subcommand
from hookd.cli.output import Screen, Styled


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add `audit`."""
    text = "endpoint changes, newest first: when, from where, what, which fields"
    parser = subcommand(commands, "audit", text, _list, common, None)
    parser.add_argument("--endpoint", metavar="ID", help="only changes to this endpoint")
    parser.add_argument("--since", help="since: a duration (2h) or a time (2024-01-01T10:00Z)")
    paging_options(parser)


def _list(context: Context) -> int:
    args = context.args
    params = {"endpoint": args.endpoint} if args.endpoint else {}
    if args.since:
        params["since"] = since_time(args.since, context.screen.now)
    return print_list(context, "/v1/audit", params, _table, "no endpoint changes recorded")


def _table(screen: Screen, entries: list[dict[str, Any]]) -> None:
    rows = [
        [
            screen.when(e["at"]),
            e["origin"],
            Styled(e["action"], "bold"),
            e["endpoint_id"],
            ", ".join(e["fields"]) or "-",
        ]
        for e in entries
    ]
    screen.table(["when", "origin", "action", "endpoint", "fields"], rows)
