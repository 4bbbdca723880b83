"""What a refusal is, without HTTP: the kind of rule a request broke, a code, a message.

Rules (docs/ARCHITECTURE.md, "Layers"):
- Domain rules and storage refuse by raising a `Refused` of the kind that fits:
  `Malformed` (not what it must be at all: bad JSON, a bad query parameter or header),
  `Invalid` (well-formed, but its content is not acceptable), `NotFound`, `Conflict`
  (the resource's state forbids it), `TooLarge`. Each carries a stable machine `code`
  and a human `message` naming what is wrong.
- Which HTTP status each kind is, is the API's business, in one table (`api.errors`).
"""

from __future__ import annotations


class Refused(Exception):
    """A request refused: `code` for programs, `message` for people."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Malformed(Refused):
    """Not what it must be at all: bad JSON, a bad query parameter or header."""


class Invalid(Refused):
    """Well-formed, but its content is not acceptable; the message names the field."""


class NotFound(Refused):
    """No such resource."""


class Conflict(Refused):
    """The resource's state forbids it (declared in the config, disabled, a duplicate)."""


class TooLarge(Refused):
    """More than a limit allows."""


def bad_request(message: str, code: str = "bad_request") -> Malformed:
    """A malformed request."""
    return Malformed(message, code)


def invalid(message: str, code: str = "invalid") -> Invalid:
    """A well-formed request whose content is not acceptable."""
    return Invalid(message, code)


def not_found(what: str) -> NotFound:
    """`what` does not exist."""
    return NotFound(f"{what} not found", "not_found")


def conflict(message: str) -> Conflict:
    """The resource's state forbids the request."""
    return Conflict(message, "conflict")


def too_large(message: str, code: str) -> TooLarge:
    """More than a limit allows."""
    return TooLarge(message, code)
