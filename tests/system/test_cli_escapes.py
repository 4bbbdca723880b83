"""What the daemon returns cannot drive the operator's terminal (issue 14, item 6).

A receiver's answer, an endpoint's description, an event's data or an error message may
hold terminal escape sequences; every command prints them through one function
(`hookd.output.printable`), which shows control characters as `\\u001b`-style escapes.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Awaitable, Callable

import pytest

from hookd.cli.output import Screen, Styled, printable
from tests.cli_runner import cli
from tests.conftest import Running
from tests.receiver import Answer, serve_receiver
from tests.system.test_api_events import create_endpoint
from tests.system.test_delivery import wait_attempts

Factory = Callable[..., Awaitable[Running]]

# A window title set, the screen cleared, a C1 CSI clear, and a right-to-left override.
HOSTILE = "\x1b]0;title\x07\x1b[2J\x9b2J\u202e"
SHOWN = "\\u001b]0;title\\u0007\\u001b[2J\\u009b2J\\u202e"
# What must never reach the terminal raw: C0 but newline, DEL, C1, bidi controls.
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def assert_inert(text: str) -> None:
    match = RAW_CONTROL.search(text)
    assert match is None, f"raw {match.group()!r} in {text!r}"


@pytest.mark.parametrize(
    ("text", "lines", "shown"),
    [
        (HOSTILE, False, SHOWN),
        ("plain João ✓", False, "plain João ✓"),  # printable text is left alone
        ("a\nb\tc\rd", False, "a\\u000ab\\u0009c\\u000dd"),  # one line: newlines too
        ("a\nb\tc\rd", True, "a\nb\tc\\u000dd"),  # several lines: newline and tab kept
        ("\x7f\x85\u2028\u2066", False, "\\u007f\\u0085\\u2028\\u2066"),
    ],
)
def test_printable(text: str, lines: bool, shown: str) -> None:
    assert printable(text, lines=lines) == shown


def test_printable_json_stays_the_same_json() -> None:
    """The escapes are JSON's: `--json` output escaped this way decodes to the same."""
    value = {"description": HOSTILE + "\x85", "n": [1, "\u2028"]}
    for text in (json.dumps(value, ensure_ascii=False), json.dumps(value, indent=2)):
        assert json.loads(printable(text, lines=True)) == value


def test_every_way_of_printing_escapes() -> None:
    out, err = io.StringIO(), io.StringIO()
    screen = Screen(out, err, True, 0.0)
    screen.line(HOSTILE, Styled(HOSTILE, "red"))
    screen.table(["x"], [[HOSTILE], [Styled(HOSTILE, "bold")]])
    screen.fields([("x", HOSTILE)])
    screen.raw(HOSTILE)
    screen.note(HOSTILE)
    colourless = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())  # our own colour codes
    assert_inert(colourless)
    assert_inert(err.getvalue())
    assert out.getvalue().count(SHOWN) == 6


async def test_a_hostile_description_in_endpoints_list_and_show(hookd: Running) -> None:
    created = await create_endpoint(hookd.client, ["*"], description=HOSTILE)
    for argv in (["list"], ["show", created["id"]], ["list", "--json"]):
        ran = await cli(hookd.socket, "endpoints", *argv)
        assert ran.code == 0, ran.err
        assert_inert(ran.out)
    assert SHOWN in ran.out
    assert ran.json()["items"][0]["description"] == HOSTILE  # --json: the same JSON


async def test_a_hostile_answer_in_deliveries_show(hookd_factory: Factory) -> None:
    hookd = await hookd_factory('[delivery]\nretry_schedule = ["0s", "1h"]')
    async with serve_receiver(lambda _: Answer(500, body=HOSTILE.encode())) as receiver:
        await create_endpoint(hookd.client, ["*"], url=receiver.url)
        await hookd.client.post("/v1/events", json={"event": "cliente.criado", "data": {}})
        await wait_attempts(hookd, 1, 1)
    ran = await cli(hookd.socket, "deliveries", "show", "1")
    assert ran.code == 0, ran.err
    assert_inert(ran.out)
    assert "\\u001b]0;title\\u0007\\u001b[2J" in ran.out


async def test_hostile_event_data_and_error_messages(hookd: Running) -> None:
    await create_endpoint(hookd.client, ["*"])
    response = await hookd.client.post(
        "/v1/events", json={"event": "cliente.criado", "data": {"nome": HOSTILE}}
    )
    ran = await cli(hookd.socket, "events", "show", response.json()["id"])
    assert ran.code == 0, ran.err
    assert_inert(ran.out)
    assert SHOWN in ran.out
    unknown = await cli(hookd.socket, "events", "show", "evt_" + HOSTILE)
    assert unknown.code == 1
    assert_inert(unknown.err)
