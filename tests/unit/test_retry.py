"""hookd.domain.retry: delivered, retry later, or give up."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hookd.domain.retry import (
    DEFAULT_SCHEDULE,
    AttemptResult,
    Delivered,
    GiveUp,
    Retry,
    decide,
    parse_retry_after,
)

NOW = 1_704_103_200.0  # 2024-01-01T10:00:00Z
HTTP_500 = AttemptResult(status_code=500)


def test_default_schedule_is_the_specs() -> None:
    assert DEFAULT_SCHEDULE == (0, 60, 300, 900, 3600)


@pytest.mark.parametrize(
    ("attempt", "delay"),
    [
        (1, 60.0),  # attempt 2 one minute after attempt 1 failed
        (2, 300.0),  # attempt 3 five minutes later
        (3, 900.0),  # attempt 4 fifteen minutes later
        (4, 3600.0),  # attempt 5 one hour later
    ],
)
def test_failed_attempt_is_retried_on_schedule(attempt: int, delay: float) -> None:
    assert decide(HTTP_500, attempt, DEFAULT_SCHEDULE, NOW) == Retry(delay)


def test_fifth_failure_gives_up() -> None:
    decision = decide(HTTP_500, 5, DEFAULT_SCHEDULE, NOW)
    assert isinstance(decision, GiveUp)
    assert "5 attempts" in decision.reason
    assert "HTTP 500" in decision.reason


def test_give_up_reason_names_a_network_error() -> None:
    result = AttemptResult(error_kind="timeout", error="no answer in 5s")
    decision = decide(result, 5, DEFAULT_SCHEDULE, NOW)
    assert isinstance(decision, GiveUp)
    assert "timeout: no answer in 5s" in decision.reason


@pytest.mark.parametrize(
    "status",
    [
        200,  # OK
        201,  # Created
        202,  # Accepted
        204,  # No Content
        299,  # the last 2xx
    ],
)
@pytest.mark.parametrize("attempt", [1, 5])
def test_2xx_is_delivered(status: int, attempt: int) -> None:
    assert decide(AttemptResult(status_code=status), attempt, DEFAULT_SCHEDULE, NOW) == Delivered()


@pytest.mark.parametrize(
    "result",
    [
        AttemptResult(status_code=199),  # informational is not success
        AttemptResult(status_code=300),  # 3xx is never followed
        AttemptResult(status_code=301),
        AttemptResult(status_code=400),  # 4xx
        AttemptResult(status_code=401),  # bad signature at the receiver
        AttemptResult(status_code=404),
        AttemptResult(status_code=500),  # 5xx
        AttemptResult(status_code=502),
        AttemptResult(error_kind="timeout", error="5s"),  # no status at all
        AttemptResult(error_kind="connect", error="refused"),
        AttemptResult(error_kind="blocked", error="private address"),
    ],
)
def test_anything_else_is_a_failed_attempt(result: AttemptResult) -> None:
    assert not result.ok
    assert decide(result, 1, DEFAULT_SCHEDULE, NOW) == Retry(60.0)


@pytest.mark.parametrize(
    ("status", "retry_after", "delay"),
    [
        (429, "120", 120.0),  # later than scheduled (60s): honoured
        (503, "90", 90.0),  # 503 too
        (429, "30", 60.0),  # earlier than scheduled: never earlier
        (429, "0", 60.0),  # "now": still the schedule
        (429, "1000", 120.0),  # capped at twice the scheduled delay
        (503, "120", 120.0),  # exactly twice
        (500, "120", 60.0),  # ignored on 500
        (502, "120", 60.0),  # ignored on 502
        (404, "120", 60.0),  # ignored on 4xx other than 429
        (429, "soon", 60.0),  # unreadable: the schedule
        (429, "-5", 60.0),  # negative: unreadable
        (429, "1.5", 60.0),  # not an integer: unreadable
        (429, "", 60.0),  # empty
        (429, " 120 ", 120.0),  # surrounding spaces
        (429, "\u00b2", 60.0),  # "²" passes str.isdigit() but is no number
    ],
)
def test_retry_after_after_attempt_1(status: int, retry_after: str, delay: float) -> None:
    result = AttemptResult(status_code=status, retry_after=retry_after)
    assert decide(result, 1, DEFAULT_SCHEDULE, NOW) == Retry(delay)


def test_retry_after_does_not_extend_the_attempts() -> None:
    result = AttemptResult(status_code=429, retry_after="60")
    assert isinstance(decide(result, 5, DEFAULT_SCHEDULE, NOW), GiveUp)


def test_retry_after_http_date() -> None:
    # 150 s after NOW; attempt 1 is scheduled 60 s later, capped at 120 s
    result = AttemptResult(status_code=503, retry_after="Mon, 01 Jan 2024 10:02:30 GMT")
    assert decide(result, 1, DEFAULT_SCHEDULE, NOW) == Retry(120.0)
    # 4 minutes after attempt 2 (scheduled 300 s): earlier, so the schedule
    assert decide(result, 2, DEFAULT_SCHEDULE, NOW - 90) == Retry(300.0)


@pytest.mark.parametrize(
    ("value", "now", "seconds"),
    [
        ("120", NOW, 120.0),  # delta-seconds
        ("0", NOW, 0.0),
        ("Mon, 01 Jan 2024 10:02:30 GMT", NOW, 150.0),  # IMF-fixdate
        ("Mon, 01 Jan 2024 10:00:00 GMT", NOW, 0.0),  # exactly now
        ("Mon, 01 Jan 2024 09:00:00 GMT", NOW, 0.0),  # in the past: at once, not negative
        ("Wed, 21 Oct 2015 07:28:00 GMT", 1_445_412_380.0, 100.0),  # RFC 9110's example
        ("Mon, 01 Jan 2024 10:02:30 +0000", NOW, 150.0),  # numeric zone
        ("Mon, 01 Jan 2024 10:02:30", NOW, None),  # no zone: unreadable
        ("Mon, 01 Jan 2024 10:02:30 -0000", NOW, None),  # "unknown zone": unreadable
        ("tomorrow", NOW, None),  # prose
        ("", NOW, None),  # empty
        ("1.5", NOW, None),  # not an integer
        ("\u00b2", NOW, None),  # "²": isdigit() but not a number
        ("Tue, 8064217578 Feb 59 524:516:712 53F7O9", NOW, None),  # OverflowError inside
    ],
)
def test_parse_retry_after(value: str, now: float, seconds: float | None) -> None:
    assert parse_retry_after(value, now) == seconds


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.text(),
        st.from_regex(
            r"(Mon|Tue), [0-9]{1,12} (Jan|Feb) [0-9]{1,12} [0-9]{1,3}:[0-9]{1,3}:[0-9]{1,3} "
            r"[A-Z0-9+-]{1,6}",
            fullmatch=True,
        ),
    )
)
def test_any_retry_after_from_a_receiver_is_a_delay_or_none(value: str) -> None:
    """Whatever a receiver sends as Retry-After, the decision is made: nothing raises."""
    seconds = parse_retry_after(value, NOW)
    assert seconds is None or seconds >= 0
    result = AttemptResult(status_code=503, retry_after=value)
    assert isinstance(decide(result, 1, DEFAULT_SCHEDULE, NOW), Retry)


@pytest.mark.parametrize(
    ("schedule", "attempt", "decision"),
    [
        ((0.0,), 1, None),  # one attempt only: give up at once
        ((0.0, 10.0), 1, Retry(10.0)),  # a custom delay
        ((0.0, 10.0), 2, None),  # and then give up
        ((5.0, 1.0, 2.0), 2, Retry(2.0)),  # schedule[n] follows attempt n
    ],
)
def test_custom_schedules(
    schedule: tuple[float, ...], attempt: int, decision: Retry | None
) -> None:
    got = decide(HTTP_500, attempt, schedule, NOW)
    if decision is None:
        assert isinstance(got, GiveUp)
    else:
        assert got == decision
