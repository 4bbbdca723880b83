"""The API's errors: HTTP statuses, the JSON error body, and the one table that says
which status each kind of refusal (`domain.errors`) is answered with.

Rules (docs/ARCHITECTURE.md, "Layers"):
- Every refusal the API makes is an `ApiError`: an HTTP status, a stable machine `code`
  and a human `message` naming what is wrong. The server renders it as
  `{"error": {"code": ..., "message": ...}}`.
- A `Refused` raised below the API becomes the `ApiError` of `STATUS` (`from_refusal`).
- Anything else that escapes a handler is a bug and becomes a logged 500.
"""

from __future__ import annotations

import msgspec

from hookd.domain.errors import Conflict, Invalid, Malformed, NotFound, Refused, TooLarge

STATUS: dict[type[Refused], int] = {
    Malformed: 400,
    NotFound: 404,
    Conflict: 409,
    TooLarge: 413,
    Invalid: 422,
}


class ApiError(Exception):
    """A request refused with a 4xx (or 503) status and a JSON error body."""

    def __init__(self, status: int, code: str, message: str, allow: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.allow = allow  # the Allow header of a 405


def from_refusal(refused: Refused) -> ApiError:
    """The answer to a refusal of the domain or of storage."""
    return ApiError(STATUS[type(refused)], refused.code, refused.message)


class ErrorDetail(msgspec.Struct):
    code: str  # stable, for programs: "invalid_event", "not_found", ...
    message: str  # for people: what is wrong, naming the field


class ErrorBody(msgspec.Struct):
    """The JSON body of every refusal."""

    error: ErrorDetail
