"""hookd.domain.audit: which action an endpoint change is, and which fields it changed."""

from __future__ import annotations

from typing import Any

import pytest

from hookd.domain.audit import Change, describe

BEFORE = {
    "url": "https://erp.example.com/hook",
    "events": ["cliente.*"],
    "description": "ERP",
    "enabled": True,
    "secret": "whsec_old",
    "origin": "api",
}


@pytest.mark.parametrize(
    ("after", "change"),
    [
        ({**BEFORE}, None),  # the same values: no change, nothing recorded
        ({**BEFORE, "url": "https://x.example.com/"}, Change("update", ["url"])),
        (
            {**BEFORE, "events": ["*"], "description": "new"},  # several fields, in a fixed order
            Change("update", ["events", "description"]),
        ),
        ({**BEFORE, "events": ["cliente.*"]}, None),  # an equal list is no change
        ({**BEFORE, "enabled": False}, Change("disable", ["enabled"])),
        ({**BEFORE, "enabled": False, "url": "https://x/"}, Change("disable", ["url", "enabled"])),
        ({**BEFORE, "secret": "whsec_new"}, Change("rotate_secret", ["secret"])),  # alone
        ({**BEFORE, "secret": "s2", "url": "https://x/"}, Change("update", ["url", "secret"])),
        ({**BEFORE, "origin": "config"}, Change("update", ["origin"])),  # taken over by the file
        ({"secret": "whsec_new"}, Change("rotate_secret", ["secret"])),  # fields not given: same
        # a next secret staged alone: its own action, and never its value
        ({**BEFORE, "next_secret": "whsec_next"}, Change("stage_secret", ["next_secret"])),
        (
            {**BEFORE, "next_secret": "whsec_next", "description": "d"},
            Change("update", ["description", "next_secret"]),
        ),
    ],
)
def test_change_of_an_existing_endpoint(after: dict[str, Any], change: Change | None) -> None:
    assert describe(BEFORE, after) == change


def test_enable_names_the_action() -> None:
    assert describe({**BEFORE, "enabled": False}, BEFORE) == Change("enable", ["enabled"])


def test_create_lists_the_fields_given_but_the_origin() -> None:
    fields = ["url", "events", "description", "enabled", "secret"]
    assert describe(None, {**BEFORE, "id": "ep_1"}) == Change("create", fields)
    assert describe(None, {"url": "u", "events": ["*"], "secret": "s"}) == Change(
        "create", ["url", "events", "secret"]
    )


def test_delete() -> None:
    assert describe(BEFORE, None) == Change("delete", [])


def test_never_a_value() -> None:
    change = describe(BEFORE, {**BEFORE, "secret": "whsec_new", "url": "https://u:p@x/"})
    assert change is not None
    assert "whsec_new" not in repr(change)
    assert "u:p" not in repr(change)
