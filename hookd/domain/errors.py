"""The API's error type.

Rules:
- Every refusal the API makes is an `ApiError`: an HTTP status, a stable machine `code`
  and a human `message` naming what is wrong. The server renders it as
  `{"error": {"code": ..., "message": ...}}`.
- Anything else that escapes a handler is a bug and becomes a logged 500.
"""

from __future__ import annotations

import msgspec


class ApiError(Exception):
    """A request refused with a 4xx (or 503) status and a JSON error body."""

    def __init__(self, status: int, code: str, message: str, allow: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.allow = allow  # the Allow header of a 405


class ErrorDetail(msgspec.Struct):
    code: str  # stable, for programs: "invalid_event", "not_found", ...
    message: str  # for people: what is wrong, naming the field


class ErrorBody(msgspec.Struct):
    """The JSON body of every refusal."""

    error: ErrorDetail


def bad_request(message: str, code: str = "bad_request") -> ApiError:
    return ApiError(400, code, message)


def invalid(message: str, code: str = "invalid") -> ApiError:
    """A well-formed request whose content is not acceptable (422)."""
    return ApiError(422, code, message)


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def conflict(message: str) -> ApiError:
    return ApiError(409, "conflict", message)
