"""`hookd listen`: the command line of the local test receiver (see `hookd.cli.receiver`).

Rules: `--fail-rate` draws from a generator seeded by `--seed` when given, so a run can
be repeated; `--delay` takes a duration ("2s", "500ms"). The secret comes from
`--secret`, `--secret -`, `--secret-file` or HOOKD_SECRET (see `hookd.commands`).
"""

from __future__ import annotations

import argparse
import random
from dataclasses import fields
from typing import Any

from hookd.cli.commands import Context, given_secret, secret_options
from hookd.domain.durations import parse_duration


def register(commands: Any) -> None:
    """Add `listen`."""
    parser = commands.add_parser(
        "listen",
        help="a local receiver: print each delivery and check its signature",
        description="Receive deliveries on this machine, print one line each, and answer "
        "as told: failing on purpose shows hookd's retries at work.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    parser.add_argument("--port", type=_port, default=3000, help="default 3000; 0 picks one")
    parser.add_argument("--path", type=_path, default="/webhook", help="default /webhook")
    secret_options(parser, "the endpoint's secret (default: $HOOKD_SECRET): check the signatures")
    parser.add_argument(
        "--status", type=_status, help="answer this status (with --fail-rate: when failing)"
    )
    parser.add_argument(
        "--fail-rate",
        type=_rate,
        metavar="RATE",
        help="fail this share of deliveries, 0 to 1 (with --status, or 500)",
    )
    parser.add_argument("--seed", type=int, help="seed --fail-rate's draws, to repeat a run")
    parser.add_argument(
        "--delay", type=_duration, default=0.0, help="wait this long before answering (2s)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object a delivery")
    parser.set_defaults(handler=_listen)


def _listen(context: Context) -> int:
    from hookd.cli import receiver  # trio: only for this command

    args = context.args
    given = {f.name: getattr(args, f.name) for f in fields(receiver.Options) if f.name != "secret"}
    options = receiver.Options(**given, secret=given_secret(context, environment=True))
    return receiver.run(options, context.screen, random.Random(args.seed))


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {text!r}")
    return int(text)


def _path(text: str) -> str:
    if not text.startswith("/"):
        raise argparse.ArgumentTypeError(f"expected a path starting with /, got {text!r}")
    return text


def _status(text: str) -> int:
    if not text.isdigit() or not 200 <= int(text) <= 599:
        raise argparse.ArgumentTypeError(f"expected an HTTP status from 200 to 599, got {text!r}")
    return int(text)


def _rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        rate = -1.0
    if not 0 <= rate <= 1:
        raise argparse.ArgumentTypeError(f"expected a share from 0 to 1, like 0.3, got {text!r}")
    return rate


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
