"""`hookd stats [ENDPOINT_ID]`: how each endpoint is doing, for the last hour and day.

Rules: one row per endpoint (or the fields of one), from `GET /v1/stats`: enabled or
why it was disabled, backlog and its oldest delivery, deliveries succeeded/failed and
the success rate, attempt latency p50/p95/p99, the run of failures and the last success.
`--json` prints the API's answer unchanged.
"""

from __future__ import annotations

import argparse
from typing import Any

from hookd.cli.commands import Context, subcommand
from hookd.cli.output import Cell, Styled


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add `stats`."""
    parser = subcommand(
        commands, "stats", "per-endpoint success rates, latency and backlog", _stats, common, None
    )
    parser.add_argument("endpoint", metavar="ENDPOINT_ID", nargs="?", help="just this one")


def _stats(context: Context) -> int:
    endpoint = context.args.endpoint
    path = f"/v1/endpoints/{endpoint}/stats" if endpoint else "/v1/stats"
    answer = context.client().get(path)
    if context.printed_json(answer):
        return 0
    data = answer.data()
    screen = context.screen
    if endpoint:
        stats = data
        screen.fields(
            [
                ("endpoint", stats["id"]),
                ("url", stats["url"]),
                ("state", _state(stats)),
                ("pending", _backlog(context, stats)),
                ("failures", _failures(context, stats)),
                ("last success", screen.when(stats["last_success_at"])),
                *(
                    (name.replace("_", " "), _window(stats["windows"][name]))
                    for name in ("last_hour", "last_24h")
                ),
            ]
        )
        return 0
    rows: list[list[Cell]] = [
        [
            stats["id"],
            _state(stats),
            _backlog(context, stats),
            _window(stats["windows"]["last_hour"]),
            _window(stats["windows"]["last_24h"]),
            str(stats["consecutive_failures"]),
        ]
        for stats in data["endpoints"]
    ]
    screen.table(
        ["ENDPOINT", "STATE", "PENDING", "LAST HOUR", "LAST 24H", "FAILURES IN A ROW"], rows
    )
    return 0


def _state(stats: dict[str, Any]) -> Cell:
    if stats["enabled"]:
        return Styled("enabled", "green")
    reason = stats["disabled_reason"]
    return Styled("disabled" + (f" ({reason})" if reason else ""), "red")


def _backlog(context: Context, stats: dict[str, Any]) -> str:
    if not stats["pending"]:
        return "0"
    return f"{stats['pending']} (oldest {context.screen.when(stats['oldest_pending_at'])})"


def _failures(context: Context, stats: dict[str, Any]) -> str:
    if not stats["consecutive_failures"]:
        return "none in a row"
    since = context.screen.when(stats["failing_since"])
    return f"{stats['consecutive_failures']} in a row, since {since}"


def _window(window: dict[str, Any]) -> str:
    finished = window["deliveries_succeeded"] + window["deliveries_failed"]
    if not window["attempts"]:
        return "-"
    rate = f"{window['success_rate']:.1%}" if finished else "n/a"
    latency = window["latency_ms"]
    return (
        f"{window['deliveries_succeeded']} ok / {window['deliveries_failed']} failed ({rate}); "
        f"p50 {latency['p50']} p95 {latency['p95']} p99 {latency['p99']} ms"
    )
