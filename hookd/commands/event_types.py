"""`hookd event-types [NAME]`: the event catalog the daemon checks ingest against.

Rules: the list shows each type's name, group, required fields and description, and how
ingest checks events (`ingest.validate`); a NAME shows that type's JSON Schema and
example. Both come from the daemon (`GET /v1/event-types`), so the operator's own types
from the config file are there too.
"""

from __future__ import annotations

import argparse
import json
from typing import Any
from urllib.parse import quote

from hookd.commands import Context, subcommand
from hookd.output import Styled


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add `event-types`."""
    text = "the event catalog: types, their schemas and examples"
    parser = subcommand(commands, "event-types", text, _event_types, common, None)
    parser.add_argument("name", metavar="NAME", nargs="?", help="show this type in full")


def _event_types(context: Context) -> int:
    if context.args.name:
        return _show(context, context.args.name)
    answer = context.client().get("/v1/event-types")
    if context.printed_json(answer):
        return 0
    catalog = answer.data()
    rows = [
        [
            kind["name"] if kind["accepted_at_ingest"] else Styled(kind["name"], "dim"),
            kind["group"],
            ", ".join(kind["schema"].get("required") or _required(kind["schema"])) or "-",
            kind["description"],
        ]
        for kind in catalog["types"]
    ]
    context.screen.table(["type", "group", "required", "description"], rows)
    context.screen.note(
        f"ingest.validate = {catalog['validate']!r}; hookd.* types are hookd's own "
        "(not accepted at ingest). One in full: hookd event-types NAME"
    )
    return 0


def _required(schema: dict[str, Any]) -> list[str]:
    """The required fields of a Struct's schema (a `$ref` into its `$defs`)."""
    ref = schema.get("$ref", "")
    target = schema.get("$defs", {}).get(ref.rpartition("/")[2], {})
    return list(target.get("required", []))


def _show(context: Context, name: str) -> int:
    answer = context.client().get(f"/v1/event-types/{quote(name, safe='')}")
    if context.printed_json(answer):
        return 0
    kind = answer.data()
    screen = context.screen
    screen.fields(
        [
            ("type", Styled(kind["name"], "bold")),
            ("group", kind["group"]),
            ("source", kind["source"]),
            ("accepted at ingest", "yes" if kind["accepted_at_ingest"] else "no (hookd's own)"),
            ("description", kind["description"]),
        ]
    )
    screen.line("schema of data")
    screen.raw(json.dumps(kind["schema"], ensure_ascii=False, indent=2))
    if kind["example"] is not None:
        screen.line("example")
        screen.raw(json.dumps(kind["example"], ensure_ascii=False, indent=2))
        screen.note(f"send it: hookd send {kind['name']} --example")
    return 0
