"""`hookd subject show|erase`: what hookd holds about a person, and its erasure (LGPD;
README, "Personal data").

Rules:
- A person is selected by `--cliente-id`, `--email` and/or `--phone` (one at least;
  several select the events naming any of them); the daemon checks and normalises them.
- `erase` cannot be undone: it asks on the terminal for `yes` unless `--yes` is given,
  and refuses (exit status 2) when standard input gives no such answer.
- The values given are sent to the daemon and never printed back.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from hookd.cli.client import UsageError
from hookd.cli.commands import Context, paging_options, print_list
from hookd.cli.output import Screen, Styled

SELECTORS = (("cliente_id", "--cliente-id"), ("email", "--email"), ("phone", "--phone"))


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add `subject` and its subcommands."""
    parser = commands.add_parser("subject", help="what hookd holds about a person; erase it")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser(
        "show", parents=[common], help="the events naming a person, with their deliveries"
    )
    _selector_options(show)
    paging_options(show)
    show.set_defaults(handler=_show)
    erase = actions.add_parser(
        "erase",
        parents=[common],
        help="erase a person: their events' data, pending deliveries and answers",
    )
    _selector_options(erase)
    erase.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    erase.set_defaults(handler=_erase)


def _selector_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("who (one at least; several: events naming any)")
    group.add_argument("--cliente-id", metavar="ID", help="the client's id in the CRM")
    group.add_argument("--email", metavar="ADDRESS", help="an e-mail address")
    group.add_argument("--phone", metavar="NUMBER", help="a phone or WhatsApp number")


def _selectors(args: argparse.Namespace) -> dict[str, str]:
    given = {name: value for name, _ in SELECTORS if (value := getattr(args, name)) is not None}
    if not given:
        raise UsageError("say who: give --cliente-id, --email or --phone")
    return given


def _show(context: Context) -> int:
    params = _selectors(context.args)
    return print_list(context, "/v1/subjects", params, _table, "hookd holds no event about them")


def _table(screen: Screen, events: list[dict[str, Any]]) -> None:
    rows = [
        [
            screen.when(e["received_at"]),
            e["id"],
            e["event"],
            Styled("erased", "dim") if e["erased"] else "",
            ", ".join(f"{d['endpoint_id']} {d['status']}" for d in e["deliveries"]) or "-",
        ]
        for e in events
    ]
    screen.table(["received", "event id", "type", "", "deliveries"], rows)


def _erase(context: Context) -> int:
    args = context.args
    body = _selectors(args)
    if not args.yes:
        who = ", ".join(flag for name, flag in SELECTORS if name in body)
        context.screen.note(
            f"erase every event naming that person ({who}) and their pending deliveries? "
            "This cannot be undone. Type yes: "
        )
        if sys.stdin.readline().strip().lower() != "yes":
            raise UsageError("not erased: confirm with 'yes', or pass --yes")
    answer = context.client().call("POST", "/v1/subjects/erase", body=body)
    if context.printed_json(answer):
        return 0
    done = answer.data()
    context.screen.line(
        f"erased {done['events']} events; {done['deliveries_erased']} pending deliveries "
        f"will not be sent; {done['attempts_cleared']} answers dropped"
    )
    if not done["wal_truncated"]:
        context.screen.note("the WAL could not be emptied now; it is at the next checkpoint")
    return 0
