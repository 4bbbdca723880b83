"""hookd.domain.errors: each refusal is of its kind, with its code and message."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hookd.domain import errors
from hookd.domain.errors import Conflict, Invalid, Malformed, NotFound, Refused, TooLarge


@pytest.mark.parametrize(
    ("refusal", "kind", "code", "message"),
    [
        (lambda: errors.bad_request("no JSON"), Malformed, "bad_request", "no JSON"),
        (lambda: errors.bad_request("x", "invalid_json"), Malformed, "invalid_json", "x"),
        (lambda: errors.invalid("$.a is required"), Invalid, "invalid", "$.a is required"),
        (lambda: errors.invalid("x", "invalid_event"), Invalid, "invalid_event", "x"),
        (lambda: errors.not_found("endpoint 'e'"), NotFound, "not_found", "endpoint 'e' not found"),
        (lambda: errors.conflict("it is disabled"), Conflict, "conflict", "it is disabled"),
        (
            lambda: errors.too_large("1001 events", "batch_too_large"),
            TooLarge,
            "batch_too_large",
            "1001 events",
        ),
    ],
)
def test_each_helper_makes_its_kind_of_refusal(
    refusal: Callable[[], Refused], kind: type[Refused], code: str, message: str
) -> None:
    made = refusal()
    assert type(made) is kind
    assert isinstance(made, Refused)
    assert (made.code, made.message, str(made)) == (code, message, message)
