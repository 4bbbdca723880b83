"""Endpoint changes as the audit log records them: an action and the names of the fields
that changed.

Rules:
- Names only, never values: a secret (or a URL carrying credentials) never reaches the
  audit log. A new secret shows as the field `secret`.
- The action says what the change did: `create`, `delete`; `enable` or `disable` when
  `enabled` changed; `rotate_secret` when the secret alone changed; `stage_secret` when
  a next secret alone was staged (field `next_secret`: it takes over later, with no
  write and so no entry of its own); `update` otherwise.
  A change that changes nothing is no change: nothing is recorded.
- The origin (who asked) is the caller's: `socket` or `tcp` for the API, `config` for
  the config file's endpoints.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

FIELDS = ("url", "events", "description", "enabled", "secret", "next_secret", "origin")


class Change(NamedTuple):
    action: str
    fields: list[str]


def describe(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> Change | None:
    """The change from endpoint `before` to `after` (None: not there), or None if none."""
    if after is None:
        return Change("delete", [])
    if before is None:
        return Change("create", [name for name in FIELDS if name in after and name != "origin"])
    fields = [name for name in FIELDS if name in after and after[name] != before.get(name)]
    if not fields:
        return None
    if "enabled" in fields:
        return Change("enable" if after["enabled"] else "disable", fields)
    if fields == ["secret"]:
        return Change("rotate_secret", fields)
    if fields == ["next_secret"]:
        return Change("stage_secret", fields)
    return Change("update", fields)
