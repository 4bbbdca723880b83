"""`hookd send` and `hookd events ...`: hand events to hookd, and look at them.

Rules:
- `--data` is JSON given inline, `@file`, or `-` for standard input; it is checked to be
  a JSON object here (a usage error otherwise) and sent byte for byte, so its key order
  and numbers reach the API as written.
- `--batch FILE` (or `-`) sends a JSON array or NDJSON file in one all-or-nothing request;
  a file whose first character is `[` is a JSON array, anything else NDJSON.
- `--example` sends the `data` of the type's example from the daemon's catalog (the
  spec's payload), with the time of sending as its timestamp unless `--timestamp`.
"""

from __future__ import annotations

import argparse
import json
from typing import Any
from urllib.parse import quote

from hookd.client import UsageError
from hookd.commands import (
    Context,
    paging_options,
    print_list,
    read_input,
    read_source,
    since_time,
    subcommand,
)
from hookd.commands.deliveries import delivery_table
from hookd.output import Screen, Styled


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add `send` and `events`."""
    send = subcommand(commands, "send", "hand an event to hookd", _send, common, None)
    send.add_argument("event", metavar="EVENT", nargs="?", help="event type, e.g. cliente.criado")
    send.add_argument(
        "--data", metavar="JSON|@FILE|-", help="the event's data object (default: {})"
    )
    send.add_argument(
        "--example",
        action="store_true",
        help="send the catalog's example data of EVENT (hookd event-types EVENT)",
    )
    send.add_argument("--timestamp", help="the event's RFC 3339 time (default: now)")
    send.add_argument("--id", help="the event's id (a repeated id creates nothing)")
    send.add_argument("--idempotency-key", help="sent as the Idempotency-Key header")
    send.add_argument(
        "--batch", metavar="FILE|-", help="send a JSON array or NDJSON file of events instead"
    )

    parser = commands.add_parser("events", help="list and show events")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = subcommand(actions, "list", "events, newest first", _list, common, None)
    listing.add_argument("--type", help="only this event type")
    listing.add_argument("--since", help="received since: a duration (2h) or a time")
    paging_options(listing)
    subcommand(actions, "show", "one event and its deliveries", _show, common)


def _send(context: Context) -> int:
    args = context.args
    if args.batch is not None:
        if args.event or args.data is not None or args.id or args.timestamp or args.example:
            raise UsageError(
                "--batch sends whole events: give no EVENT, --data, --example, --id or --timestamp"
            )
        return _send_batch(context)
    if not args.event:
        raise UsageError("give the EVENT type to send, e.g. hookd send cliente.criado --data '{}'")
    if args.example and args.data is not None:
        raise UsageError("give --data or --example, not both")
    if args.example:
        data = _example(context, args.event)
    else:
        data = read_input("--data", args.data) if args.data is not None else b"{}"
    try:
        parsed = json.loads(data)
    except ValueError as exc:
        raise UsageError(f"--data is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise UsageError('--data must be a JSON object, like \'{"id": "cliente_123"}\'')
    head = {"event": args.event}
    for name in ("timestamp", "id"):
        if getattr(args, name) is not None:
            head[name] = getattr(args, name)
    content = json.dumps(head, ensure_ascii=False)[:-1].encode() + b',"data":' + data + b"}"
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else {}
    answer = context.client().call("POST", "/v1/events", content=content, headers=headers)
    if context.printed_json(answer):
        return 0
    accepted = answer.data()
    count = accepted["deliveries"]
    context.screen.line(
        f"accepted {accepted['event']} {accepted['id']}: "
        f"{count} deliver{'y' if count == 1 else 'ies'}"
    )
    if count:
        context.screen.note(f"follow it: hookd deliveries list --event {accepted['id']}")
    else:
        context.screen.note("no endpoint is subscribed to it (hookd endpoints list)")
    return 0


def _example(context: Context, event: str) -> bytes:
    """The `data` of `event`'s example in the daemon's catalog, as JSON."""
    kind = context.client().get(f"/v1/event-types/{quote(event, safe='')}").data()
    if kind["example"] is None:
        raise UsageError(f"{event} has no example in the catalog; give --data")
    return json.dumps(kind["example"]["data"], ensure_ascii=False).encode()


def _send_batch(context: Context) -> int:
    content = read_source("--batch", context.args.batch)
    is_array = content.lstrip().startswith(b"[")
    kind = "application/json" if is_array else "application/x-ndjson"
    answer = context.client().call("POST", "/v1/events/batch", content=content, content_type=kind)
    if context.printed_json(answer):
        return 0
    accepted = answer.data()
    context.screen.line(
        f"accepted {len(accepted['ids'])} events: {accepted['deliveries']} deliveries"
    )
    for event_id in accepted["ids"]:
        context.screen.line(event_id)
    return 0


def _list(context: Context) -> int:
    args = context.args
    params = {"type": args.type} if args.type else {}
    if args.since:
        params["since"] = since_time(args.since, context.screen.now)
    return print_list(context, "/v1/events", params, _table, "no events")


def _table(screen: Screen, events: list[dict[str, Any]]) -> None:
    rows = [[e["id"], e["event"], screen.when(e["received_at"])] for e in events]
    screen.table(["id", "event", "received"], rows)


def _show(context: Context) -> int:
    answer = context.client().get(f"/v1/events/{quote(context.args.id, safe='')}")
    if context.printed_json(answer):
        return 0
    event = answer.data()
    screen = context.screen
    screen.fields(
        [
            ("id", event["id"]),
            ("event", Styled(event["event"], "bold")),
            ("timestamp", event["timestamp"]),
            ("received", screen.when(event["received_at"])),
        ]
    )
    screen.line("data")
    screen.raw(json.dumps(event["data"], ensure_ascii=False, indent=2))
    deliveries = event["deliveries"]
    if deliveries:
        screen.line("")
        delivery_table(screen, deliveries, with_event=False)
    else:
        screen.note("no deliveries: no endpoint was subscribed to it when it arrived")
    return 0
