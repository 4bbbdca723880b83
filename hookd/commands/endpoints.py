"""`hookd endpoints ...`: subscribe URLs to events and look after them.

Rules: `--events` may be repeated and may hold several patterns separated by commas.
A secret is printed only where the API shows it (on `add` and `rotate-secret`), with a
reminder that it will not be shown again when hookd generated it. A chosen secret comes
from `--secret`, `--secret -` (stdin) or `--secret-file`, and for `add` from
HOOKD_SECRET too (never read by `update` or `rotate-secret`, so that a variable left in
the shell cannot change a secret by accident). `rotate-secret --overlap` is a duration
("0s", "2h"), sent to the API in seconds; `--activate-at` a time, or a duration
from now ("2h"), sent as RFC 3339 UTC.
"""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from hookd.client import Answer, UsageError
from hookd.commands import (
    Context,
    given_secret,
    option_time,
    paging_options,
    print_list,
    secret_options,
    subcommand,
)
from hookd.core.durations import parse_duration
from hookd.output import Screen, Styled


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add `endpoints` and its subcommands."""
    parser = commands.add_parser("endpoints", help="subscribe URLs to events; manage them")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    add = subcommand(actions, "add", "subscribe a URL to events", _add, common, "URL")
    _events_option(add, required=True)
    secret_options(add, "signing secret (default: $HOOKD_SECRET, else a generated whsec_...)")
    add.add_argument("--description", default="", help="a note for people")
    add.add_argument("--disabled", action="store_true", help="create it disabled")

    paging_options(subcommand(actions, "list", "list endpoints", _list, common, None))
    subcommand(actions, "show", "show one endpoint", _show, common)

    update = subcommand(actions, "update", "change an endpoint", _update, common)
    update.add_argument(
        "--new-url", metavar="URL", help="deliver to this URL (--url names the daemon's API)"
    )
    _events_option(update, required=False)
    update.add_argument("--description")
    secret_options(update, "a new secret of your choice (see rotate-secret)")

    rm_text = "delete an endpoint (its pending deliveries are cancelled)"
    subcommand(actions, "rm", rm_text, _remove, common)
    rotate = subcommand(actions, "rotate-secret", "give it a new secret", _rotate, common)
    secret_options(rotate, "the new secret (default: a generated one)")
    rotate.add_argument(
        "--overlap",
        metavar="DURATION",
        help="how long the old secret keeps signing too (default: delivery.secret_overlap, "
        "24h; 0s for a leaked secret)",
    )
    rotate.add_argument(
        "--activate-at",
        metavar="TIME",
        help="stage the new secret to take over then (a time like 2024-01-01T03:00Z, or "
        "a duration from now like 2h); until then it signs X-Webhook-Signature-Next",
    )
    test_text = "send a hookd.teste event to this endpoint alone"
    subcommand(actions, "test", test_text, _test, common)
    subcommand(actions, "enable", "deliver to it again", _toggle, common).set_defaults(enabled=True)
    disable_text = "stop delivering to it (its pending deliveries are cancelled)"
    subcommand(actions, "disable", disable_text, _toggle, common).set_defaults(enabled=False)


def _events_option(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument(
        "--events",
        action="append",
        required=required,
        metavar="PATTERN",
        help="event types: cliente.criado, cliente.* or *; repeat or separate with commas",
    )


def _patterns(given: list[str]) -> list[str]:
    return [p.strip() for text in given for p in text.split(",") if p.strip()]


def _path(endpoint_id: str, action: str = "") -> str:
    return f"/v1/endpoints/{quote(endpoint_id, safe='')}{action}"


def _add(context: Context) -> int:
    args = context.args
    body: dict[str, Any] = {
        "url": args.url,
        "events": _patterns(args.events),
        "description": args.description,
        "enabled": not args.disabled,
    }
    secret = given_secret(context, environment=True)
    if secret is not None:
        body["secret"] = secret
    _print_endpoint(context, context.client().post("/v1/endpoints", body), secret is None)
    return 0


def _list(context: Context) -> int:
    nothing = "no endpoints yet: add one with 'hookd endpoints add URL --events ...'"
    return print_list(context, "/v1/endpoints", {}, _table, nothing)


def _table(screen: Screen, endpoints: list[dict[str, Any]]) -> None:
    rows = [
        [
            e["id"],
            _enabled(e["enabled"]),
            e["url"],
            ",".join(e["events"]),
            e["origin"],
            e["description"],
        ]
        for e in endpoints
    ]
    screen.table(["id", "enabled", "url", "events", "origin", "description"], rows)


def _show(context: Context) -> int:
    _print_endpoint(context, context.client().get(_path(context.args.id)))
    return 0


def _update(context: Context) -> int:
    args = context.args
    changes: dict[str, Any] = {
        name: value
        for name, value in (
            ("url", args.new_url),
            ("events", _patterns(args.events) if args.events else None),
            ("description", args.description),
            ("secret", given_secret(context, environment=False)),
        )
        if value is not None
    }
    if not changes:
        raise UsageError(
            "nothing to change: give --new-url, --events, --description, --secret or --secret-file"
        )
    _print_endpoint(context, context.client().call("PATCH", _path(args.id), body=changes))
    return 0


def _toggle(context: Context) -> int:
    body = {"enabled": context.args.enabled}
    _print_endpoint(context, context.client().call("PATCH", _path(context.args.id), body=body))
    return 0


def _remove(context: Context) -> int:
    context.client().call("DELETE", _path(context.args.id))
    if not context.json:
        context.screen.line(
            f"deleted endpoint {context.args.id}; its pending deliveries are cancelled"
        )
    return 0


def _rotate(context: Context) -> int:
    args = context.args
    body: dict[str, Any] = {}
    secret = given_secret(context, environment=False)
    if secret is not None:
        body["secret"] = secret
    if args.overlap is not None:
        try:
            body["overlap_s"] = parse_duration(args.overlap)
        except ValueError as exc:
            raise UsageError(f"--overlap: {exc}") from None
    if args.activate_at is not None:
        now = context.screen.now
        body["activate_at"] = option_time("--activate-at", args.activate_at, now, ahead=True)
    answer = context.client().post(_path(args.id, "/rotate-secret"), body or None)
    _print_endpoint(context, answer, secret is None)
    return 0


def _test(context: Context) -> int:
    answer = context.client().post(_path(context.args.id, "/test"))
    if context.printed_json(answer):
        return 0
    event = answer.data()
    context.screen.line(f"sent {event['event']} event {event['id']} to {context.args.id}")
    context.screen.note(f"follow it: hookd deliveries list --event {event['id']}")
    return 0


def _print_endpoint(context: Context, answer: Answer, generated: bool = False) -> None:
    """The endpoint's fields; the reminder to keep a secret hookd `generated`."""
    if context.printed_json(answer):
        return
    endpoint = answer.data()
    screen = context.screen
    pairs: list[tuple[str, str | Styled]] = [
        ("id", endpoint["id"]),
        ("url", endpoint["url"]),
        ("events", ", ".join(endpoint["events"])),
        ("enabled", _enabled(endpoint["enabled"])),
        ("description", endpoint["description"] or "-"),
        ("origin", endpoint["origin"]),
        ("created", screen.when(endpoint["created_at"])),
        ("updated", screen.when(endpoint["updated_at"])),
    ]
    staged = endpoint.get("next_secret_at")
    if "secret" in endpoint:  # a staged rotation's answer shows the staged secret
        pairs.append(("next secret" if staged else "secret", Styled(endpoint["secret"], "bold")))
    if staged:
        pairs.append(("next secret takes over", screen.when(staged)))
    if endpoint.get("previous_secret_until"):
        until = endpoint["previous_secret_until"]
        pairs.append(("old secret signs until", screen.when(until)))
    screen.fields(pairs)
    if "secret" in endpoint and generated:
        screen.note("keep the secret now: hookd will not show it again")


def _enabled(enabled: bool) -> Styled:
    return Styled("yes", "green") if enabled else Styled("no", "red")
