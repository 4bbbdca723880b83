"""hookd.domain.endpoints: which secrets sign at a given time, across rotations; which
endpoint URLs are accepted, judged by their host."""

from __future__ import annotations

import pytest

from hookd.domain.endpoints import Secrets, url_error, wire_host

HOUR = 3600.0
T = 1_800_000_000.0  # when the staged secret takes over


def test_no_rotation_signs_with_the_current_secret_alone() -> None:
    assert Secrets("s0").signing(T) == ("s0", None, None)


def test_an_immediate_rotation_keeps_the_old_secret_for_the_overlap() -> None:
    rotated = Secrets("s0").rotated("s1", T, 2 * HOUR)
    assert rotated == Secrets("s1", "s0", T + 2 * HOUR)
    assert rotated.signing(T) == ("s1", "s0", None)
    assert rotated.signing(T + 2 * HOUR - 1) == ("s1", "s0", None)
    assert rotated.signing(T + 2 * HOUR) == ("s1", None, None)
    assert Secrets("s0").rotated("s1", T, 0) == Secrets("s1")  # a leaked secret


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (T - HOUR, ("s0", None, "s1")),  # staged: the next one signs beside
        (T - 0.001, ("s0", None, "s1")),
        (T, ("s1", "s0", None)),  # its time: current, with nothing written
        (T + 2 * HOUR - 0.001, ("s1", "s0", None)),  # the overlap counts from T
        (T + 2 * HOUR, ("s1", None, None)),
    ],
)
def test_a_staged_rotation_takes_over_at_its_time(
    now: float, expected: tuple[str, str | None, str | None]
) -> None:
    staged = Secrets("s0").rotated("s1", T - 2 * HOUR, 2 * HOUR, activate_at=T)
    assert staged == Secrets("s0", next="s1", next_at=T, next_overlap=2 * HOUR)
    assert staged.signing(now) == expected


def test_staged_during_an_earlier_overlap() -> None:
    # s0 -> s1 at once with a day's overlap, then s2 staged for an hour later.
    earlier = Secrets("s0").rotated("s1", T - HOUR, 24 * HOUR)
    staged = earlier.rotated("s2", T - HOUR / 2, HOUR, activate_at=T)
    assert staged.signing(T - 1) == ("s1", "s0", "s2")
    # At T the secret s2 replaced (s1) is the previous one: s0's overlap ends there.
    assert staged.signing(T) == ("s2", "s1", None)
    assert staged.signing(T + HOUR) == ("s2", None, None)


def test_what_replaces_a_staged_secret() -> None:
    staged = Secrets("s0").rotated("s1", T - HOUR, HOUR, activate_at=T)
    assert staged.rotated("s2", T - HOUR, HOUR, activate_at=T + HOUR).signing(T) == (
        "s0",
        None,
        "s2",
    )  # staged again: the new one replaces it
    assert staged.rotated("s2", T - HOUR, HOUR).signing(T - 1) == ("s2", "s0", None)  # at once
    # An activation time not in the future is a rotation at once.
    assert staged.rotated("s2", T - HOUR, HOUR, activate_at=T - HOUR) == (Secrets("s2", "s0", T))


def test_a_rotation_after_a_staged_one_took_over_starts_from_it() -> None:
    staged = Secrets("s0").rotated("s1", T - HOUR, HOUR, activate_at=T)
    # Nothing was written at T; a rotation at T + 10 min sees s1 as current.
    assert staged.at(T + 600) == Secrets("s1", "s0", T + HOUR)
    assert staged.rotated("s2", T + 600, HOUR) == Secrets("s2", "s1", T + 600 + HOUR)


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example.com/hook",
        "https://api.example.com./hook",  # a fully qualified name, root dot included
        "http://localhost:3000/webhook",
        "http://127.0.0.1:3000/webhook",
        "http://[::1]:8080/",
        "http://[fe80::1%25eth0]/",  # a zone index
        "https://xn--n3h.example/",  # punycode as such
        "http://☃.example/",  # an internationalised name (IDNA)
        "http://My_Host.internal/",  # an underscore: fine in /etc/hosts and many zones
        f"http://{'a' * 63}.example.com/",  # the longest label
        "http://" + ".".join(["a" * 63] * 3 + ["b" * 61]) + "/",  # 253 characters
    ],
)
def test_resolvable_hosts_are_accepted(url: str) -> None:
    assert url_error(url) is None


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://api..example.com/hook", "empty label"),
        ("http://a..b/", "empty label"),
        ("http://.../", "empty label"),
        ("http://./", "empty label"),
        ("http://.example.com/", "empty label"),
        ("http://example.com../", "empty label"),
        (f"http://{'a' * 64}.example.com/", "longer than 63"),
        (f"http://{'a' * 64}/", "longer than 63"),
        ("http://" + ".".join(["a" * 63] * 3 + ["b" * 62]) + "/", "longer than 253"),
        ("http://a!b.example/", "letters, digits"),
        ("http://a%2eb.example/", "letters, digits"),
        ("http://a*.example/", "letters, digits"),
        ("http://\ufffd.example/", "internationalised"),  # prohibited in IDNA names
        ("http://\u2488.example/", "empty label"),  # IDNA maps "⒈" to "1.": a dot too many
        ("http://" + "é" * 60 + ".example/", "internationalised"),  # punycode over 63
    ],
)
def test_hosts_that_cannot_be_resolved_as_written_are_refused(url: str, why: str) -> None:
    problem = url_error(url)
    assert problem is not None
    assert why in problem, problem


def test_wire_host_is_what_the_sender_looks_up() -> None:
    assert wire_host("☃.example") == "xn--n3h.example"
    assert wire_host("api.example.com") == "api.example.com"
    assert wire_host("::1") == "::1"
