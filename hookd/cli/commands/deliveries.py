"""`hookd deliveries ...`, `hookd retry` and `hookd replay`: what became of each event at
each endpoint, and sending again.

Rules: `deliveries show` prints the attempts as a timeline, oldest first (when, how long,
status code, error or the start of the answer), ending with what happens next.
"""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from hookd.cli.commands import Context, paging_options, print_list, since_time, subcommand
from hookd.cli.output import Cell, Screen, Styled, code_cell, status_cell
from hookd.domain.views import DELIVERY_STATUSES

COLUMNS = ["id", "status", "event", "endpoint", "attempts", "last result", "next attempt"]


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add `deliveries`, `retry` and `replay`."""
    parser = commands.add_parser("deliveries", help="list and show deliveries and attempts")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = subcommand(actions, "list", "deliveries, newest first", _list, common, None)
    listing.add_argument("--status", choices=DELIVERY_STATUSES)
    listing.add_argument("--endpoint", metavar="ID", help="only to this endpoint")
    listing.add_argument("--event", metavar="ID", help="only of this event")
    paging_options(listing)
    subcommand(actions, "show", "one delivery and its attempts", _show, common)

    subcommand(commands, "retry", "attempt a delivery now", _retry, common, "DELIVERY_ID")
    replay_text = "deliver an endpoint's deliveries again (its failed ones by default)"
    replay = subcommand(commands, "replay", replay_text, _replay, common, "ENDPOINT_ID")
    replay.add_argument(
        "--since",
        required=True,
        help="created since: a duration (2h) or a time (2024-01-01T10:00Z)",
    )
    replay.add_argument(
        "--status",
        choices=("failed", "succeeded", "cancelled"),
        default="failed",
        help="which deliveries (default: failed)",
    )


def _path(delivery_id: str, action: str = "") -> str:
    return f"/v1/deliveries/{quote(delivery_id, safe='')}{action}"


def delivery_table(screen: Screen, deliveries: list[Any], with_event: bool = True) -> None:
    """Deliveries as a table; the event column is left out unless `with_event`."""
    columns = [c for c in COLUMNS if with_event or c != "event"]
    rows: list[list[Cell]] = []
    for d in deliveries:
        pending = d["status"] == "pending"
        row: list[Cell] = [
            str(d["id"]),
            status_cell(d["status"]),
            d["event"],
            d["endpoint_id"],
            str(d["attempts"]),
            _last_result(d),
            screen.when(d["next_attempt_at"]) if pending else "-",
        ]
        if not with_event:
            del row[2]
        rows.append(row)
    screen.table(columns, rows)


def _last_result(delivery: dict[str, Any]) -> Cell:
    if delivery["last_status_code"] is not None and 200 <= delivery["last_status_code"] < 300:
        return code_cell(delivery["last_status_code"])
    if delivery["last_error"]:
        return Styled(_short(delivery["last_error"], 50), "red")
    return code_cell(delivery["last_status_code"])


def _short(text: str, size: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= size else flat[: size - 1] + "…"


def _list(context: Context) -> int:
    args = context.args
    params = {
        name: getattr(args, name) for name in ("status", "endpoint", "event") if getattr(args, name)
    }
    return print_list(context, "/v1/deliveries", params, delivery_table, "no deliveries")


def _show(context: Context) -> int:
    answer = context.client().get(_path(context.args.id))
    if not context.printed_json(answer):
        show_delivery(context.screen, answer.data())
    return 0


def show_delivery(screen: Screen, delivery: dict[str, Any]) -> None:
    """A delivery's fields, then its attempts as a timeline and what comes next."""
    screen.fields(
        [
            ("delivery", str(delivery["id"])),
            ("status", status_cell(delivery["status"])),
            ("event", f"{delivery['event']} {delivery['event_id']}"),
            ("endpoint", delivery["endpoint_id"]),
            ("created", screen.when(delivery["created_at"])),
            ("attempts", str(delivery["attempts"])),
        ]
    )
    attempts = delivery["attempt_log"]
    if attempts:
        screen.line("")
        rows = [
            [
                str(a["number"]),
                screen.when(a["started_at"]),
                _took(a["duration_ms"]),
                code_cell(a["status_code"]),
                _outcome(a),
            ]
            for a in attempts
        ]
        screen.table(["#", "when", "took", "status", "error / answer"], rows)
    screen.line("")
    screen.line(_next(screen, delivery))


def _took(milliseconds: float) -> str:
    if milliseconds < 1000:
        return f"{milliseconds:.0f} ms"
    return f"{milliseconds / 1000:.1f} s"


def _outcome(attempt: dict[str, Any]) -> Cell:
    if attempt["error"]:
        kind = f"{attempt['error_kind']}: " if attempt["error_kind"] else ""
        return Styled(_short(kind + attempt["error"], 70), "red")
    return _short(attempt["response_excerpt"], 70) or "-"


def _next(screen: Screen, delivery: dict[str, Any]) -> str:
    status = delivery["status"]
    if status == "pending":
        return f"next attempt {screen.when(delivery['next_attempt_at'])}"
    if status == "succeeded":
        return f"delivered {screen.when(delivery['updated_at'])}"
    if status == "failed":
        return (
            f"failed {screen.when(delivery['updated_at'])}, no attempts left: "
            f"'hookd retry {delivery['id']}' tries again"
        )
    return (
        f"cancelled {screen.when(delivery['updated_at'])} (its endpoint was disabled or "
        f"deleted): 'hookd replay {delivery['endpoint_id']} --status cancelled' brings it back"
    )


def _retry(context: Context) -> int:
    answer = context.client().post(_path(context.args.delivery_id, "/retry"))
    if context.printed_json(answer):
        return 0
    delivery = answer.data()
    context.screen.line(
        f"delivery {delivery['id']} will be attempted now (attempt {delivery['attempts'] + 1})"
    )
    context.screen.note(f"watch it: hookd deliveries show {delivery['id']}")
    return 0


def _replay(context: Context) -> int:
    args = context.args
    since = since_time(args.since, context.screen.now)
    answer = context.client().post(
        f"/v1/endpoints/{quote(args.endpoint_id, safe='')}/replay",
        {"status": args.status, "since": since},
    )
    if context.printed_json(answer):
        return 0
    count = answer.data()["replayed"]
    context.screen.line(
        f"queued again: {count} {args.status} deliver{'y' if count == 1 else 'ies'} "
        f"to {args.endpoint_id} created since {since}"
    )
    return 0
